"""openai_file against a scripted Files API: re-runs that move no content, streamed downloads, checks."""

import hashlib
import os

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.batch_input import BatchInputError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import BearerAuth, Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.modules import openai_file
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule, requests_sent

pytestmark = pytest.mark.usefixtures("module_test_server")

LINE = b'{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"model": "m", "input": "x"}}\n'


def fake_module(check_mode=False, **params):
    return FakeModule(openai_file, check_mode, **params)


def listed(file_id, filename, size, created_at=1):
    return {"id": file_id, "object": "file", "bytes": size, "created_at": created_at, "filename": filename, "purpose": "batch"}


def openai(server):
    return Client(server.url + "/v1", auth=BearerAuth("sk-test"), service="OpenAI", backoff=0)


def test_the_upload_is_named_after_its_content():
    assert openai_file.fingerprinted_name("/data/input.jsonl", "ab12") == "input.sha256-ab12.jsonl"


def test_a_rerun_finds_the_upload_from_the_list_alone_across_pages(server, tmp_path):
    source = tmp_path / "input.jsonl"
    source.write_bytes(LINE)
    name = openai_file.fingerprinted_name(str(source), hashlib.sha256(LINE).hexdigest())
    server.answer("GET", "/v1/files",
                  (200, {"object": "list", "data": [listed("file-other", name, len(LINE) + 1)], "has_more": True}),
                  (200, {"object": "list", "data": [listed("file-mine", name, len(LINE))], "has_more": False}))
    result = openai_file.run(fake_module(src=str(source)), openai(server))
    assert not result["changed"] and result["file_id"] == "file-mine"
    assert requests_sent(server) == [("GET", "/v1/files?purpose=batch&limit=10000"),
                                     ("GET", "/v1/files?purpose=batch&limit=10000&after=file-other")]


def test_a_new_upload_sends_the_file_under_its_fingerprinted_name(server, tmp_path):
    source = tmp_path / "input.jsonl"
    source.write_bytes(LINE)
    name = openai_file.fingerprinted_name(str(source), hashlib.sha256(LINE).hexdigest())
    mine = listed("file-new", name, len(LINE))
    # Listed once before the upload, then after it until the upload shows as the oldest copy.
    server.answer("GET", "/v1/files", (200, {"data": [], "has_more": False}), (200, {"data": [mine], "has_more": False}))
    server.answer("POST", "/v1/files", (200, mine))
    result = openai_file.run(fake_module(src=str(source)), openai(server))
    assert result["changed"] and result["file_id"] == "file-new" and result["requests"] == 1
    uploads = [request for request in server.received if request["method"] == "POST"]
    assert len(uploads) == 1 and uploads[0]["path"] == "/v1/files"
    upload = uploads[0]
    assert ('filename="%s"' % name).encode() in upload["body"] and LINE in upload["body"]


def test_an_input_openai_would_fail_is_refused_before_any_upload(server, tmp_path):
    source = tmp_path / "input.jsonl"
    source.write_bytes(LINE + LINE)
    server.answer("GET", "/v1/files", (200, {"data": [], "has_more": False}))
    with pytest.raises(BatchInputError, match="Line 2 of .* repeats the custom_id 'a' of line 1"):
        openai_file.run(fake_module(src=str(source)), openai(server))
    assert requests_sent(server) == [("GET", "/v1/files?purpose=batch&limit=10000")]


def test_an_existing_dest_of_the_files_size_is_kept_without_reading_the_content(server, tmp_path):
    dest = tmp_path / "out.jsonl"
    dest.write_bytes(b"12345")
    server.answer("GET", "/v1/files/file-out", (200, listed("file-out", "out.jsonl", 5)))
    result = openai_file.run(fake_module(file_id="file-out", dest=str(dest)), openai(server))
    assert not result["changed"] and "sha256" not in result
    assert requests_sent(server) == [("GET", "/v1/files/file-out")]


def test_a_download_replaces_dest_and_leaves_no_partial_file(server, tmp_path):
    dest = tmp_path / "out.jsonl"
    dest.write_bytes(b"old")
    server.answer("GET", "/v1/files/file-out", (200, listed("file-out", "out.jsonl", 11)))
    server.answer("GET", "/v1/files/file-out/content", (200, {"line": 1}))
    result = openai_file.run(fake_module(file_id="file-out", dest=str(dest)), openai(server))
    assert result["changed"] and dest.read_bytes() == b'{"line": 1}'
    assert result["sha256"] == hashlib.sha256(dest.read_bytes()).hexdigest()
    assert result["diff"] == {"before": {"dest": str(dest), "bytes": 3}, "after": {"dest": str(dest), "bytes": 11}}
    assert os.listdir(str(tmp_path)) == ["out.jsonl"]


def test_force_downloads_again_but_an_identical_dest_is_no_change(server, tmp_path):
    content = b'{"line": 1}'
    dest = tmp_path / "out.jsonl"
    dest.write_bytes(content)
    server.answer("GET", "/v1/files/file-out", (200, listed("file-out", "out.jsonl", len(content))))
    server.answer("GET", "/v1/files/file-out/content", (200, {"line": 1}))
    result = openai_file.run(fake_module(file_id="file-out", dest=str(dest), force=True), openai(server))
    assert not result["changed"] and result["sha256"] == hashlib.sha256(content).hexdigest()
    assert requests_sent(server) == [("GET", "/v1/files/file-out"), ("GET", "/v1/files/file-out/content")]
    assert os.listdir(str(tmp_path)) == ["out.jsonl"]


def test_a_checksum_mismatch_fails_and_keeps_dest(server, tmp_path):
    dest = tmp_path / "out.jsonl"
    dest.write_bytes(b"old")
    server.answer("GET", "/v1/files/file-out", (200, listed("file-out", "out.jsonl", 11)))
    server.answer("GET", "/v1/files/file-out/content", (200, {"line": 1}))
    with pytest.raises(ConfigurationError, match="The checksum of file-out did not match: sha256:00 was expected"):
        openai_file.run(fake_module(file_id="file-out", dest=str(dest), checksum="sha256:00"), openai(server))
    assert dest.read_bytes() == b"old" and os.listdir(str(tmp_path)) == ["out.jsonl"]


def test_a_dest_directory_takes_the_files_name(server, tmp_path):
    server.answer("GET", "/v1/files/file-out", (200, listed("file-out", "batch_1_output.jsonl", 11)))
    server.answer("GET", "/v1/files/file-out/content", (200, {"line": 1}))
    result = openai_file.run(fake_module(file_id="file-out", dest=str(tmp_path)), openai(server))
    assert result["dest"] == str(tmp_path / "batch_1_output.jsonl")
    assert (tmp_path / "batch_1_output.jsonl").read_bytes() == b'{"line": 1}'


def test_check_mode_downloads_nothing(server, tmp_path):
    server.answer("GET", "/v1/files/file-out", (200, listed("file-out", "out.jsonl", 11)))
    result = openai_file.run(fake_module(check_mode=True, file_id="file-out", dest=str(tmp_path / "out.jsonl")), openai(server))
    assert result["changed"] and len(server.received) == 1 and os.listdir(str(tmp_path)) == []


def test_a_download_that_cannot_be_moved_into_place_leaves_no_partial_file(server, tmp_path, monkeypatch):
    server.answer("GET", "/v1/files/file-out", (200, listed("file-out", "out.jsonl", 11)))
    server.answer("GET", "/v1/files/file-out/content", (200, {"line": 1}))
    module = fake_module(file_id="file-out", dest=str(tmp_path / "out.jsonl"))

    def refused(source, dest):
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(module, "atomic_move", refused)
    with pytest.raises(OSError, match="Permission denied"):
        openai_file.run(module, openai(server))
    assert os.listdir(str(tmp_path)) == []


def test_absent_deletes_the_file_and_returns_none(server, tmp_path):
    found = listed("file-gone", "in.jsonl", 5)
    server.answer("GET", "/v1/files/file-gone", (200, found))
    server.answer("DELETE", "/v1/files/file-gone", (200, {"id": "file-gone", "object": "file", "deleted": True}))
    result = openai_file.run(fake_module(file_id="file-gone", state="absent"), openai(server))
    assert result["changed"] and (result["file_id"], result["file"]) == (None, {})
    assert result["diff"] == {"before": dict(found, id="file-gone"), "after": {}}
    assert requests_sent(server) == [("GET", "/v1/files/file-gone"), ("DELETE", "/v1/files/file-gone")]
    server.answer("GET", "/v1/files/file-gone", (404, {"error": {"message": "No such File object: file-gone"}}))
    again = openai_file.run(fake_module(file_id="file-gone", state="absent"), openai(server))
    assert not again["changed"] and again["file_id"] is None and again["diff"] == {"before": {}, "after": {}}
