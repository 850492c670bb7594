"""Local files: a multipart body read from disk, checksums, a download sink, files replaced whole, manifests, line counts."""

import hashlib
import io
import json
import os
import stat

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError, UnexpectedAnswerError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import LocalModule
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.local import (
    CHUNK_SIZE,
    DigestSink,
    MultipartFile,
    Replacement,
    count_lines,
    file_digest,
    make_directory,
    parse_checksum,
    plain_name,
    read_manifest,
    write_manifest,
)
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule, module_args


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


@pytest.mark.parametrize("content, lines", [
    (b"", 0), (b"\n", 1), (b"a\nb\n", 2), (b"a\nb", 2), (b"a", 1),
    (b"x" * (CHUNK_SIZE - 1) + b"\n", 1), (b"x" * CHUNK_SIZE + b"\ny", 2),
])
def test_a_last_line_without_its_newline_is_a_line(tmp_path, content, lines):
    path = tmp_path / "lines.jsonl"
    path.write_bytes(content)
    assert count_lines(str(path)) == lines


def test_a_replacement_appears_whole_at_its_commit_and_nothing_is_left_beside_it(tmp_path):
    dest = tmp_path / "out.jsonl"
    dest.write_bytes(b"old")
    with Replacement(FakeModule({}), str(dest)) as replacement:
        replacement.write(b"new ")
        assert dest.read_bytes() == b"old"
        replacement.write(b"content")
        replacement.commit()
    assert dest.read_bytes() == b"new content" and os.listdir(str(tmp_path)) == ["out.jsonl"]


def test_a_replacement_not_committed_is_removed_and_dest_kept(tmp_path):
    dest = tmp_path / "out.jsonl"
    dest.write_bytes(b"old")
    with Replacement(FakeModule({}), str(dest)) as replacement:
        replacement.write(b"unwanted")
    with pytest.raises(ValueError):
        with Replacement(FakeModule({}), str(dest)) as replacement:
            replacement.write(b"half")
            raise ValueError("a failure while writing")
    assert dest.read_bytes() == b"old" and os.listdir(str(tmp_path)) == ["out.jsonl"]


def test_a_replacement_that_cannot_be_moved_into_place_is_removed(tmp_path, monkeypatch):
    module = FakeModule({})

    def refused(source, dest):
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(module, "atomic_move", refused)
    with pytest.raises(OSError, match="Permission denied"):
        with Replacement(module, str(tmp_path / "out.jsonl")) as replacement:
            replacement.write(b"data")
            replacement.commit()
    assert os.listdir(str(tmp_path)) == []


def versioned(manifest):
    return manifest["version"] == 1


def test_a_manifest_is_read_back_as_written_or_not_at_all(tmp_path):
    path = str(tmp_path / "records.json")
    assert read_manifest(path, versioned) is None
    write_manifest(FakeModule({}), path, {"version": 1, "parts": [1, 2]})
    assert read_manifest(path, versioned) == {"version": 1, "parts": [1, 2]}
    assert os.listdir(str(tmp_path)) == ["records.json"]
    for content in ("{not json", "[]", json.dumps({"version": 2}), json.dumps({"other": 1})):
        (tmp_path / "records.json").write_text(content)
        assert read_manifest(path, versioned) is None, content


def mode_of(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


@pytest.mark.usefixtures("open_umask")
def test_files_created_are_0600_and_replaced_ones_keep_their_mode_whatever_the_umask(tmp_path):
    with module_args({}):
        module = LocalModule(argument_spec={})  # its atomic_move, which gives a new file the umask's mode
        with Replacement(module, str(tmp_path / "new.jsonl")) as replacement:
            replacement.write(b"new")
            replacement.commit()
        kept = tmp_path / "kept.jsonl"
        kept.write_bytes(b"old")
        os.chmod(str(kept), 0o640)
        with Replacement(module, str(kept)) as replacement:
            replacement.write(b"replaced")
            replacement.commit()
        write_manifest(module, str(tmp_path / "records.json"), {"version": 1})
    assert (mode_of(tmp_path / "new.jsonl"), mode_of(kept), mode_of(tmp_path / "records.json")) == (0o600, 0o640, 0o600)
    assert os.umask(0) == 0


@pytest.mark.usefixtures("open_umask")
def test_directories_created_are_0700_parents_included(tmp_path):
    make_directory(str(tmp_path / "a" / "b"))
    assert (mode_of(tmp_path / "a"), mode_of(tmp_path / "a" / "b")) == (0o700, 0o700)


def test_a_download_longer_than_announced_stops_as_soon_as_it_exceeds_it():
    handle = io.BytesIO()
    sink = DigestSink(handle, limit=10)
    sink.write(b"12345")
    sink.write(b"67890")
    with pytest.raises(UnexpectedAnswerError, match="more than the 10 bytes it announced"):
        sink.write(b"x")
    assert handle.getvalue() == b"1234567890" and sink.size == 10


@pytest.mark.parametrize("name", ["../../srv/app/x", "..", ".", "", "a/b", "a\\b", "x\ny", "x\x00", "n" * 256, None, 7])
def test_a_name_from_a_server_must_be_plain(name):
    with pytest.raises(ConfigurationError, match="the job ID .* is not a plain file name"):
        plain_name(name, "the job ID")


def test_plain_names_pass_as_they_are():
    assert plain_name("batch_6801e2a0-output", "the job ID") == "batch_6801e2a0-output"
    assert plain_name("file-abc.jsonl", "file_id") == "file-abc.jsonl"
