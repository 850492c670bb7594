"""openai_file against a scripted Files API: re-runs that move no content, streamed downloads, checks."""

import hashlib
import json
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.batch_input import BatchInputError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import BearerAuth, Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError, UnexpectedAnswerError
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


def test_a_dest_directory_takes_the_file_id_and_the_plain_extension_of_the_files_name(server, tmp_path):
    server.answer("GET", "/v1/files/file-out", (200, listed("file-out", "batch_1_output.jsonl", 11)))
    server.answer("GET", "/v1/files/file-out/content", (200, {"line": 1}))
    result = openai_file.run(fake_module(file_id="file-out", dest=str(tmp_path)), openai(server))
    assert result["dest"] == str(tmp_path / "file-out.jsonl")
    assert (tmp_path / "file-out.jsonl").read_bytes() == b'{"line": 1}'


@pytest.mark.parametrize("filename", ["../../srv/app/x", ".bashrc", "/etc/cron.d/job", "x.json\nl", None])
def test_a_servers_file_name_never_names_the_local_file(server, tmp_path, filename):
    target = tmp_path / "downloads"
    target.mkdir()
    server.answer("GET", "/v1/files/file-out", (200, listed("file-out", filename, 11)))
    server.answer("GET", "/v1/files/file-out/content", (200, {"line": 1}))
    result = openai_file.run(fake_module(file_id="file-out", dest=str(target)), openai(server))
    assert result["dest"] == str(target / "file-out") and os.listdir(str(tmp_path)) == ["downloads"]
    assert os.listdir(str(target)) == ["file-out"]


def test_a_traversal_file_id_is_refused_before_anything_is_downloaded_into_a_directory(server, tmp_path):
    server.answer("GET", "/v1/files/*", (200, listed("../../srv/app/x", "out.jsonl", 11)))
    with pytest.raises(ConfigurationError, match="file_id '../../srv/app/x' is not a plain file name"):
        openai_file.run(fake_module(file_id="../../srv/app/x", dest=str(tmp_path)), openai(server))
    # The ID went to the API as one escaped path segment, and nothing was written.
    assert requests_sent(server) == [("GET", "/v1/files/..%2F..%2Fsrv%2Fapp%2Fx")] and os.listdir(str(tmp_path)) == []


def test_a_listing_whose_cursor_does_not_move_on_stops(server, tmp_path):
    source = tmp_path / "input.jsonl"
    source.write_bytes(LINE)
    # A gateway that ignores after: the same page, has_more for ever.
    server.answer("GET", "/v1/files", (200, {"data": [listed("file-a", "other.jsonl", 3)], "has_more": True}))
    result = openai_file.run(fake_module(src=str(source), check_mode=True), openai(server))
    assert result["changed"]
    assert requests_sent(server) == [("GET", "/v1/files?purpose=batch&limit=10000"),
                                     ("GET", "/v1/files?purpose=batch&limit=10000&after=file-a")]


def test_an_empty_page_that_claims_more_ends_the_listing(server, tmp_path):
    source = tmp_path / "input.jsonl"
    source.write_bytes(LINE)
    server.answer("GET", "/v1/files", (200, {"data": [], "has_more": True}))
    openai_file.run(fake_module(src=str(source), check_mode=True), openai(server))
    assert requests_sent(server) == [("GET", "/v1/files?purpose=batch&limit=10000")]


def test_a_listing_that_never_ends_fails_after_the_cap_of_pages(server, tmp_path, monkeypatch):
    source = tmp_path / "input.jsonl"
    source.write_bytes(LINE)
    monkeypatch.setattr(openai_file, "MAX_LIST_PAGES", 4)
    server.answer("GET", "/v1/files", *[(200, {"data": [listed("file-%d" % page, "other.jsonl", 3)], "has_more": True}) for page in range(10)])
    with pytest.raises(UnexpectedAnswerError, match="listed more than 4 pages"):
        openai_file.run(fake_module(src=str(source), check_mode=True), openai(server))
    assert len(server.received) == 4


def test_reuse_false_uploads_without_trusting_or_deleting_a_copy_of_the_same_name(server, tmp_path):
    source = tmp_path / "input.jsonl"
    source.write_bytes(LINE)
    name = openai_file.fingerprinted_name(str(source), hashlib.sha256(LINE).hexdigest())
    planted = listed("file-planted", name, len(LINE), created_at=0)
    server.answer("GET", "/v1/files", (200, {"data": [planted], "has_more": False}))
    server.answer("POST", "/v1/files", (200, listed("file-mine", name, len(LINE), created_at=5)))
    result = openai_file.run(fake_module(src=str(source), reuse=False), openai(server))
    assert result["changed"] and result["file_id"] == "file-mine"
    assert requests_sent(server) == [("POST", "/v1/files")]


class EndlessBody:
    """A Files API whose content never ends, counting what it sent."""

    def __init__(self, announced):
        self.sent = 0
        endless = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if not self.path.endswith("/content"):
                    data = json.dumps(listed("file-out", "out.jsonl", announced)).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    while endless.sent < 512 * 1024 * 1024:
                        self.wfile.write(b"x" * 65536)
                        endless.sent += 65536
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_an_endless_download_stops_as_soon_as_it_exceeds_the_announced_size(tmp_path):
    endless = EndlessBody(announced=100000)
    try:
        client = Client(endless.url + "/v1", auth=BearerAuth("sk-test"), service="OpenAI", backoff=0, timeout=5)
        with pytest.raises(UnexpectedAnswerError, match="more than the 100000 bytes it announced"):
            openai_file.run(fake_module(file_id="file-out", dest=str(tmp_path / "out.jsonl")), client)
    finally:
        endless.close()
    assert os.listdir(str(tmp_path)) == []
    # What the sockets' buffers held when the client hung up, not the 512 MiB the server would send.
    assert endless.sent < 64 * 1024 * 1024


@pytest.mark.usefixtures("open_umask")
def test_a_download_is_0600_unless_mode_says_otherwise_and_a_mode_change_alone_is_a_change(server, tmp_path):
    dest = tmp_path / "out.jsonl"
    server.answer("GET", "/v1/files/file-out", (200, listed("file-out", "out.jsonl", 11)))
    server.answer("GET", "/v1/files/file-out/content", (200, {"line": 1}))
    assert openai_file.run(fake_module(file_id="file-out", dest=str(dest)), openai(server))["changed"]
    assert stat.S_IMODE(os.stat(str(dest)).st_mode) == 0o600
    again = openai_file.run(fake_module(file_id="file-out", dest=str(dest), mode="0640"), openai(server))
    assert again["changed"] and stat.S_IMODE(os.stat(str(dest)).st_mode) == 0o640
    assert not openai_file.run(fake_module(file_id="file-out", dest=str(dest), mode="0640"), openai(server))["changed"]
    assert [path for method, path in requests_sent(server) if path.endswith("/content")] == ["/v1/files/file-out/content"]


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


def test_absent_of_a_file_another_run_deleted_since_it_was_found_changes_nothing(server):
    """Two hosts of one play share an input, so their teardowns find one upload and both delete it."""
    server.answer("GET", "/v1/files/file-shared", (200, listed("file-shared", "in.jsonl", 5)))
    server.answer("DELETE", "/v1/files/file-shared", (404, {"error": {"message": "No such File object: file-shared"}}))
    result = openai_file.run(fake_module(file_id="file-shared", state="absent"), openai(server))
    assert not result["changed"] and result["file_id"] is None
    assert requests_sent(server) == [("GET", "/v1/files/file-shared"), ("DELETE", "/v1/files/file-shared")]
