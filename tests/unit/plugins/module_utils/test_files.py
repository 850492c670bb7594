"""Streamed files: a multipart body read from disk, checksums, and a download sink."""

import hashlib

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.local import (
    CHUNK_SIZE,
    DigestSink,
    MultipartFile,
    file_digest,
    parse_checksum,
)


def test_the_body_is_read_in_chunks_of_at_most_the_size_asked(tmp_path):
    source = tmp_path / "big.jsonl"
    source.write_bytes(b"x" * (3 * CHUNK_SIZE + 17))
    body = MultipartFile({"purpose": "batch"}, "file", 'a "quoted"\nname.jsonl', str(source))
    reader = body.open()
    chunks = list(iter(lambda: reader.read(CHUNK_SIZE), b""))
    assert max(len(chunk) for chunk in chunks) <= CHUNK_SIZE
    sent = b"".join(chunks)
    assert len(sent) == len(reader)
    assert b'filename="a %22quoted%22%0Aname.jsonl"' in sent
    assert sent.endswith(("\r\n--%s--\r\n" % body.boundary).encode())
    assert body.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    body.close()


def test_opening_again_reads_the_file_again_from_the_start(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"abc")
    body = MultipartFile({}, "file", "in.jsonl", str(source))
    first = body.open().read(CHUNK_SIZE)
    assert body.open().read(CHUNK_SIZE) == first
    body.close()


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigurationError, match="Cannot read .*missing.jsonl: No such file or directory"):
        file_digest(str(tmp_path / "missing.jsonl"))


def test_checksums_take_get_urls_form():
    assert parse_checksum("SHA256: ABC ") == ("sha256", "abc")
    with pytest.raises(ConfigurationError, match="sha256:<hex digest>"):
        parse_checksum("abc")
    with pytest.raises(ConfigurationError, match="names the algorithm 'crc32'"):
        parse_checksum("crc32:abc")


def test_the_sink_keeps_every_digest_and_restarts_empty(tmp_path):
    with (tmp_path / "out").open("w+b") as handle:
        sink = DigestSink(handle, ("sha256", "md5", "sha256"))
        sink.write(b"wrong")
        sink.restart()
        sink.write(b"right")
        assert sink.size == 5
        assert sink.hexdigest("md5") == hashlib.md5(b"right").hexdigest()
    assert (tmp_path / "out").read_bytes() == b"right"
