"""Tests for the OpenAI emulator of the test bed (tests/testbed/openai_emulator.py).

The server runs in-process on an ephemeral port with a fake clock, so lifecycle tests step through
batch statuses instantly; one test runs the real CLI with real (tiny) timings.
"""

import base64
import http.client
import io
import importlib.util
import json
import math
import pathlib
import struct
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest
import requests

EMULATOR_PATH = pathlib.Path(__file__).resolve().parents[2] / "testbed" / "openai_emulator.py"
API_KEY = "sk-test-emulator-key-0123456789"
TIMEOUT = 10
START_TIME = 1_700_000_000.0


def load_emulator_module():
    spec = importlib.util.spec_from_file_location("openai_emulator", EMULATOR_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


emulator = load_emulator_module()


class FakeClock:
    """A clock the test moves; before each move it lets the batch workers finish, so that, as for small batches
    on the real clock, what a status read shows depends on the clock alone."""

    def __init__(self, now):
        self.now = now
        self.emulator = None

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.emulator.wait_for_workers()
        self.now += seconds


class Client:
    """Thin requests wrapper bound to one running emulator."""

    def __init__(self, root, clock, server):
        self.root = root
        self.base = root + "/v1"
        self.clock = clock
        self.server = server
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {API_KEY}"

    def get(self, path, **kwargs):
        return self.session.get(self.base + path, timeout=TIMEOUT, **kwargs)

    def post(self, path, **kwargs):
        return self.session.post(self.base + path, timeout=TIMEOUT, **kwargs)

    def delete(self, path, **kwargs):
        return self.session.delete(self.base + path, timeout=TIMEOUT, **kwargs)

    def upload(self, content, filename="input.jsonl", purpose="batch", extra=None):
        data = {"purpose": purpose, **(extra or {})}
        return self.post("/files", files={"file": (filename, content)}, data=data)

    def upload_lines(self, lines):
        response = self.upload("".join(json.dumps(line) + "\n" for line in lines).encode())
        assert response.status_code == 200, response.text
        return response.json()["id"]

    def create_batch(self, file_id, endpoint="/v1/embeddings", metadata=None):
        body = {"input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h"}
        if metadata is not None:
            body["metadata"] = metadata
        response = self.post("/batches", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def batch(self, batch_id):
        response = self.get(f"/batches/{batch_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def jsonl(self, file_id):
        response = self.get(f"/files/{file_id}/content")
        assert response.status_code == 200, response.text
        return [json.loads(line) for line in response.text.splitlines()]

    def admin(self, method, name):
        return requests.request(method, f"{self.root}/_emulator/{name}", timeout=TIMEOUT)


@pytest.fixture
def client():
    clock = FakeClock(START_TIME)
    timings = emulator.Timings(validating=1, in_progress=10, finalizing=1, cancelling=1)
    server = emulator.make_server("127.0.0.1", 0, API_KEY, timings=timings, dimensions=8, clock=clock)
    clock.emulator = server.emulator
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield Client(f"http://{host}:{port}/openai", clock, server)
    server.shutdown()
    server.server_close()
    thread.join()


def embedding_line(custom_id, text="hello world", model="text-embedding-3-small", url="/v1/embeddings"):
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": {"model": model, "input": text}}


def assert_error(response, status, error_type="invalid_request_error"):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == error_type
    return error


# --------------------------------------------------------------------------- auth and routing

def test_missing_api_key_is_rejected(client):
    error = assert_error(requests.get(client.base + "/batches", timeout=TIMEOUT), 401)
    assert error["message"].startswith("You didn't provide an API key.")


def test_non_bearer_authorization_counts_as_missing_key(client):
    response = requests.get(client.base + "/batches", headers={"Authorization": f"Basic {API_KEY}"}, timeout=TIMEOUT)
    assert assert_error(response, 401)["message"].startswith("You didn't provide an API key.")


def test_wrong_api_key_is_rejected_with_masked_key(client):
    wrong_key = "sk-wrong-key-abcdefghijklmnopxyz1"
    response = requests.get(client.base + "/files", headers={"Authorization": f"Bearer {wrong_key}"}, timeout=TIMEOUT)
    error = assert_error(response, 401)
    assert error["code"] == "invalid_api_key"
    assert error["message"].startswith("Incorrect API key provided: sk-")
    assert "xyz1" in error["message"] and "*" in error["message"]
    assert wrong_key not in error["message"]


@pytest.mark.parametrize("key, masked", [("short", "*****"), ("sk-abcdefghij-xyz1", "sk-***********xyz1")])
def test_mask_api_key_never_reveals_the_whole_key(key, masked):
    assert emulator.mask_api_key(key) == masked


def test_unknown_route_is_404_in_openai_shape(client):
    error = assert_error(client.get("/nothing-here"), 404)
    assert error["message"] == "Invalid URL (GET /openai/v1/nothing-here)"


def test_path_outside_the_prefix_is_404(client):
    server_root = client.root[: -len("/openai")]
    assert_error(requests.get(server_root + "/v1/batches", headers=client.session.headers, timeout=TIMEOUT), 404)


def test_wrong_method_on_known_route_is_405(client):
    response = client.session.put(client.base + "/batches", timeout=TIMEOUT)
    assert_error(response, 405)
    assert set(response.headers["Allow"].split(", ")) == {"POST", "GET"}


def test_invalid_json_body_is_400(client):
    error = assert_error(client.post("/batches", data=b"{not json", headers={"Content-Type": "application/json"}), 400)
    assert "could not parse the JSON body" in error["message"]


def test_chunked_request_body_is_read(client):
    host, port = client.server.server_address[:2]
    connection = http.client.HTTPConnection(host, port)
    body = json.dumps({"model": "text-embedding-3-small", "input": "chunked"}).encode()
    connection.request("POST", "/openai/v1/embeddings", body=iter([body[:10], body[10:]]),
                       headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["data"][0]["object"] == "embedding"
    connection.close()


# --------------------------------------------------------------------------- files

def test_upload_batch_file_returns_file_object(client):
    response = client.upload(b'{"a": 1}\n', filename="requests.jsonl")
    assert response.status_code == 200, response.text
    file_object = response.json()
    assert set(file_object) == {"id", "object", "bytes", "created_at", "expires_at", "filename", "purpose", "status", "status_details"}
    assert file_object["id"].startswith("file-") and len(file_object["id"]) == len("file-") + 24
    assert file_object["id"][len("file-"):].isalnum()
    assert file_object["object"] == "file"
    assert file_object["bytes"] == 9
    assert file_object["created_at"] == int(START_TIME)
    assert file_object["expires_at"] == int(START_TIME) + 30 * 24 * 3600
    assert (file_object["filename"], file_object["purpose"]) == ("requests.jsonl", "batch")
    assert (file_object["status"], file_object["status_details"]) == ("processed", None)


def test_upload_for_other_purpose_has_no_default_expiry(client):
    file_object = client.upload(b"data", filename="notes.txt", purpose="user_data").json()
    assert file_object["purpose"] == "user_data"
    assert file_object["expires_at"] is None


def test_upload_with_expires_after_sets_expiry(client):
    extra = {"expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"}
    file_object = client.upload(b"x\n", extra=extra).json()
    assert file_object["expires_at"] == file_object["created_at"] + 3600


def test_upload_with_out_of_range_expiry_is_400(client):
    extra = {"expires_after[anchor]": "created_at", "expires_after[seconds]": "60"}
    assert assert_error(client.upload(b"x\n", extra=extra), 400)["param"] == "expires_after.seconds"


def test_upload_rejects_unknown_purpose(client):
    error = assert_error(client.upload(b"x", purpose="training"), 400)
    assert error["param"] == "purpose"


def test_upload_requires_file_and_purpose(client):
    assert assert_error(client.post("/files", data={"purpose": "batch"}, files={"other": ("a", b"b")}), 400)["param"] == "file"
    assert assert_error(client.post("/files", files={"file": ("a.jsonl", b"b")}), 400)["param"] == "purpose"


def test_upload_requires_multipart(client):
    assert_error(client.post("/files", json={"purpose": "batch"}), 400)


def test_batch_upload_must_be_jsonl(client):
    error = assert_error(client.upload(b"{}\n", filename="input.json"), 400)
    assert error["message"] == "Invalid file format for Batch API. Must be .jsonl"


def test_batch_upload_size_limit(client, monkeypatch):
    monkeypatch.setattr(emulator, "MAX_BATCH_FILE_BYTES", 4)
    assert assert_error(client.upload(b"12345"), 400)["message"] == "File is too large."
    assert client.upload(b"1234").status_code == 200


def multipart_body(boundary, parts):
    """A multipart/form-data body from (name, filename or None, content) parts, in the order given."""
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def post_multipart(client, parts, boundary="b0undary"):
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return client.post("/files", data=multipart_body(boundary, parts), headers=headers)


def test_batch_size_limit_stops_a_streamed_upload_whichever_field_comes_first(client, monkeypatch):
    monkeypatch.setattr(emulator, "MAX_BATCH_FILE_BYTES", 1024 * 1024)
    too_large = b"x" * (3 * 1024 * 1024)
    purpose_first = [("purpose", None, b"batch"), ("file", "input.jsonl", too_large)]
    # Also sent as a stream of unknown length (chunked): refused as soon as the file part passes the limit.
    body = multipart_body("b0undary", purpose_first)
    pieces = iter([body[start:start + 65_536] for start in range(0, len(body), 65_536)])
    response = client.post("/files", data=pieces, headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
    assert assert_error(response, 400)["message"] == "File is too large."
    for parts in (purpose_first, list(reversed(purpose_first))):
        error = assert_error(post_multipart(client, parts), 400)
        assert (error["message"], error["param"], error["code"]) == ("File is too large.", None, None)
    assert list(pathlib.Path(client.server.emulator.data_dir).iterdir()) == []
    assert client.upload(b"{}\n").status_code == 200  # the connection (and server) still work


def test_any_upload_is_limited_to_512_mb(client, monkeypatch):
    monkeypatch.setattr(emulator, "MAX_FILE_BYTES", 10)
    assert assert_error(client.upload(b"x" * 11, filename="a.txt", purpose="user_data"), 400)["message"] == "File is too large."


def test_streamed_upload_and_download_round_trip_a_large_file(client):
    # Several MB with bytes that look like the start of a multipart delimiter, spread over many reads.
    content = (b"\r\n--b0undar" + bytes(range(256)) + b"\r\n-") * 30_000
    response = post_multipart(client, [("purpose", None, b"batch"), ("file", "input.sha256-" + "a" * 64 + ".jsonl", content)])
    assert response.status_code == 200, response.text
    file_object = response.json()
    assert file_object["bytes"] == len(content)
    download = client.get(f"/files/{file_object['id']}/content", stream=True)
    assert download.headers["Content-Length"] == str(len(content))
    assert b"".join(download.iter_content(1024 * 1024)) == content


def test_memory_stays_flat_while_a_file_streams_up_and_down(client):
    size, piece = 32 * 1024 * 1024, b"0123456789abcdef" * 4096
    head = b'--flat\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n' \
           b'--flat\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n\r\n'

    def body():  # made as it is sent, so only the emulator could hold the whole file
        yield head
        for _piece in range(size // len(piece)):
            yield piece
        yield b"\r\n--flat--\r\n"

    tracemalloc.start()
    try:
        response = client.post("/files", data=body(), headers={"Content-Type": "multipart/form-data; boundary=flat"})
        assert response.status_code == 200, response.text
        download = client.get(f"/files/{response.json()['id']}/content", stream=True)
        assert sum(len(chunk) for chunk in download.iter_content(1024 * 1024)) == size
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < size / 4


def test_chunked_upload_is_streamed_to_disk(client):
    host, port = client.server.server_address[:2]
    content = b'{"chunk": "ed"}\n' * 100_000
    body = multipart_body("chunky", [("purpose", None, b"batch"), ("file", "in.jsonl", content)])
    pieces = [body[start:start + 65_537] for start in range(0, len(body), 65_537)]
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    connection.request("POST", "/openai/v1/files", body=iter(pieces), encode_chunked=True,
                       headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "multipart/form-data; boundary=chunky"})
    response = connection.getresponse()
    file_object = json.loads(response.read())
    connection.close()
    assert response.status == 200, file_object
    assert file_object["bytes"] == len(content)
    assert client.get(f"/files/{file_object['id']}/content").content == content


def test_multipart_reader_finds_delimiters_split_across_reads(monkeypatch):
    monkeypatch.setattr(emulator, "TRANSFER_CHUNK_BYTES", 7)
    content = b"line one\r\n--bound but not the boundary\r\n--boundar\r\n"
    body = multipart_body("boundary", [("purpose", None, b"batch"), ("other", "skip.bin", b"ignored"), ("file", "f.jsonl", content)])
    sink = io.BytesIO()
    fields, upload = emulator.read_form(emulator.ContentLengthBody(io.BytesIO(body), len(body)), "multipart/form-data; boundary=boundary",
                                        lambda filename, _fields: emulator.UploadSink(sink, filename, 1000))
    assert fields == {"purpose": b"batch"}
    assert (upload.filename, upload.size, sink.getvalue()) == ("f.jsonl", len(content), content)


@pytest.mark.parametrize("purpose", ["assistants", "user_data"])
def test_content_of_some_purposes_cannot_be_downloaded(client, purpose):
    file_id = client.upload(b"secret", filename="notes.txt", purpose=purpose).json()["id"]
    error = assert_error(client.get(f"/files/{file_id}/content"), 400)
    assert (error["message"], error["param"], error["code"]) == (f"Not allowed to download files of purpose: {purpose}", None, None)
    assert client.get(f"/files/{file_id}").status_code == 200


def test_files_live_in_the_data_dir(client):
    data_dir = pathlib.Path(client.server.emulator.data_dir)
    kept = client.upload(b"{}\n").json()["id"]
    deleted = client.upload(b"[]\n").json()["id"]
    assert sorted(path.read_bytes() for path in data_dir.iterdir()) == [b"[]\n", b"{}\n"]
    client.delete(f"/files/{deleted}")
    assert [path.read_bytes() for path in data_dir.iterdir()] == [b"{}\n"]
    assert client.get(f"/files/{kept}/content").content == b"{}\n"
    client.admin("POST", "reset")
    assert list(data_dir.iterdir()) == []


def test_an_own_temporary_data_dir_is_removed_on_close(tmp_path):
    own = emulator.OpenAIEmulator(API_KEY)
    given = emulator.OpenAIEmulator(API_KEY, data_dir=tmp_path)
    own.close()
    given.close()
    assert not pathlib.Path(own.data_dir).exists()
    assert tmp_path.exists()


def test_file_content_round_trips_bytes(client):
    content = b'{"x": "\xc3\xa9"}\r\nbinary\x00\xff\n'
    file_id = client.upload(content).json()["id"]
    response = client.get(f"/files/{file_id}/content")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.content == content


def test_retrieve_and_delete_file(client):
    file_object = client.upload(b"{}\n").json()
    assert client.get(f"/files/{file_object['id']}").json() == file_object
    response = client.delete(f"/files/{file_object['id']}")
    assert response.json() == {"id": file_object["id"], "object": "file", "deleted": True}
    error = assert_error(client.get(f"/files/{file_object['id']}"), 404)
    assert error["message"] == f"No such File object: {file_object['id']}"
    assert_error(client.get(f"/files/{file_object['id']}/content"), 404)
    assert_error(client.delete(f"/files/{file_object['id']}"), 404)


def test_list_files_orders_filters_and_paginates(client):
    ids = [client.upload(b"{}\n", filename=f"f{n}.jsonl").json()["id"] for n in range(3)]
    other = client.upload(b"x", filename="notes.txt", purpose="assistants").json()["id"]

    listing = client.get("/files").json()
    assert listing["object"] == "list"
    assert [item["id"] for item in listing["data"]] == [other, *reversed(ids)]
    assert (listing["first_id"], listing["last_id"], listing["has_more"]) == (other, ids[0], False)

    ascending = client.get("/files", params={"order": "asc", "purpose": "batch"}).json()
    assert [item["id"] for item in ascending["data"]] == ids

    page = client.get("/files", params={"order": "asc", "limit": 1, "after": ids[0]}).json()
    assert [item["id"] for item in page["data"]] == [ids[1]]
    assert page["has_more"] is True


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": "many"}, {"order": "sideways"}, {"after": "file-unknown"}])
def test_list_files_rejects_bad_query(client, params):
    assert_error(client.get("/files", params=params), 400)


# --------------------------------------------------------------------------- batch creation

def test_create_batch_returns_full_batch_object(client):
    file_id = client.upload_lines([embedding_line("a")])
    batch = client.create_batch(file_id, metadata={"purpose": "test"})
    assert set(batch) == {
        "id", "object", "endpoint", "model", "errors", "input_file_id", "completion_window", "status", "output_file_id", "error_file_id",
        "created_at", "in_progress_at", "expires_at", "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at",
        "cancelled_at", "request_counts", "metadata", "usage",
    }
    assert batch["id"].startswith("batch_")
    assert (batch["object"], batch["status"], batch["endpoint"]) == ("batch", "validating", "/v1/embeddings")
    assert (batch["input_file_id"], batch["completion_window"]) == (file_id, "24h")
    assert batch["created_at"] == int(START_TIME)
    assert batch["expires_at"] == int(START_TIME) + 24 * 3600
    assert batch["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert batch["metadata"] == {"purpose": "test"}
    for field in ("model", "errors", "output_file_id", "error_file_id", "in_progress_at", "finalizing_at", "completed_at", "failed_at",
                  "expired_at", "cancelling_at", "cancelled_at", "usage"):
        assert batch[field] is None, field


@pytest.mark.parametrize("override, param", [
    ({"completion_window": "48h"}, "completion_window"),
    ({"endpoint": "/v1/unknown"}, "endpoint"),
    ({"input_file_id": "file-doesnotexist"}, "input_file_id"),
    ({"input_file_id": None}, "input_file_id"),
    ({"metadata": {f"k{n}": "v" for n in range(17)}}, "metadata"),
    ({"metadata": {"k": 1}}, "metadata.k"),
    ({"metadata": {"emulator_validating_seconds": "soon"}}, "metadata.emulator_validating_seconds"),
    ({"output_expires_after": {"anchor": "created_at", "seconds": 10}}, "output_expires_after.seconds"),
])
def test_create_batch_validates_request(client, override, param):
    body = {"input_file_id": client.upload_lines([embedding_line("a")]), "endpoint": "/v1/embeddings", "completion_window": "24h"}
    body.update(override)
    body = {key: value for key, value in body.items() if value is not None}
    assert assert_error(client.post("/batches", json=body), 400)["param"] == param


def test_create_batch_requires_batch_purpose_file(client):
    file_id = client.upload(b"{}", filename="a.txt", purpose="assistants").json()["id"]
    body = {"input_file_id": file_id, "endpoint": "/v1/embeddings", "completion_window": "24h"}
    assert assert_error(client.post("/batches", json=body), 400)["param"] == "input_file_id"


def test_unknown_batch_is_404(client):
    error = assert_error(client.get("/batches/batch_nope"), 404)
    assert error["message"] == "No such Batch: batch_nope"
    assert_error(client.post("/batches/batch_nope/cancel"), 404)


def test_list_batches_newest_first_with_pagination(client):
    file_id = client.upload_lines([embedding_line("a")])
    ids = [client.create_batch(file_id)["id"] for _batch in range(3)]
    listing = client.get("/batches").json()
    assert [batch["id"] for batch in listing["data"]] == list(reversed(ids))
    assert (listing["object"], listing["first_id"], listing["last_id"], listing["has_more"]) == ("list", ids[2], ids[0], False)
    page = client.get("/batches", params={"limit": 1, "after": ids[2]}).json()
    assert [batch["id"] for batch in page["data"]] == [ids[1]]
    assert page["has_more"] is True
    assert_error(client.get("/batches", params={"limit": 101}), 400)


# --------------------------------------------------------------------------- batch lifecycle

def test_embeddings_batch_runs_to_completion(client):
    lines = [embedding_line(f"req-{n}", text=f"text number {n}") for n in range(4)]
    batch = client.create_batch(client.upload_lines(lines))

    client.clock.advance(0.5)
    assert client.batch(batch["id"])["status"] == "validating"

    client.clock.advance(0.5)
    running = client.batch(batch["id"])
    assert running["status"] == "in_progress"
    assert running["in_progress_at"] == int(START_TIME) + 1
    assert running["model"] == "text-embedding-3-small"
    assert running["request_counts"] == {"total": 4, "completed": 0, "failed": 0}

    client.clock.advance(5)
    assert client.batch(batch["id"])["request_counts"] == {"total": 4, "completed": 2, "failed": 0}

    client.clock.advance(5)
    finalizing = client.batch(batch["id"])
    assert finalizing["status"] == "finalizing"
    assert finalizing["finalizing_at"] == int(START_TIME) + 11
    assert finalizing["output_file_id"] is None

    client.clock.advance(1)
    done = client.batch(batch["id"])
    assert done["status"] == "completed"
    assert done["completed_at"] == int(START_TIME) + 12
    assert done["request_counts"] == {"total": 4, "completed": 4, "failed": 0}
    assert done["error_file_id"] is None
    assert done["usage"]["input_tokens"] == 12 and done["usage"]["total_tokens"] == 12

    output_file = client.get(f"/files/{done['output_file_id']}").json()
    assert output_file["purpose"] == "batch_output"
    assert output_file["filename"] == f"{batch['id']}_output.jsonl"

    output = client.jsonl(done["output_file_id"])
    assert sorted(line["custom_id"] for line in output) == [f"req-{n}" for n in range(4)]
    first = output[0]
    assert first["id"].startswith("batch_req_") and first["error"] is None
    assert first["response"]["status_code"] == 200 and first["response"]["request_id"].startswith("req_")
    direct = client.post("/embeddings", json=lines[0]["body"]).json()
    assert first["response"]["body"]["data"] == direct["data"]


def test_requests_rejected_by_the_endpoint_go_to_the_error_file(client):
    lines = [embedding_line("good"), embedding_line("bad", text="")]
    batch = client.create_batch(client.upload_lines(lines))
    client.clock.advance(12)
    done = client.batch(batch["id"])
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    assert [line["custom_id"] for line in client.jsonl(done["output_file_id"])] == ["good"]
    [failure] = client.jsonl(done["error_file_id"])
    assert failure["custom_id"] == "bad" and failure["error"] is None
    assert failure["response"]["status_code"] == 400
    assert failure["response"]["body"]["error"]["type"] == "invalid_request_error"
    assert client.get(f"/files/{done['error_file_id']}").json()["filename"] == f"{batch['id']}_error.jsonl"


def test_batch_where_every_request_fails_completes_without_output_file(client):
    batch = client.create_batch(client.upload_lines([embedding_line("a", text=""), embedding_line("b", text="")]))
    client.clock.advance(12)
    done = client.batch(batch["id"])
    assert done["status"] == "completed"
    assert done["output_file_id"] is None and done["error_file_id"]
    assert done["request_counts"] == {"total": 2, "completed": 0, "failed": 2}


def test_chat_completions_batch(client):
    line = {"custom_id": "c1", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi there"}]}}
    batch = client.create_batch(client.upload_lines([line]), endpoint="/v1/chat/completions")
    client.clock.advance(12)
    done = client.batch(batch["id"])
    [output] = client.jsonl(done["output_file_id"])
    assert output["response"]["body"]["choices"][0]["message"]["content"] == "echo: hi there"
    assert done["usage"]["output_tokens"] == 3


def test_responses_batch(client):
    line = {"custom_id": "r1", "method": "POST", "url": "/v1/responses", "body": {"model": "gpt-4.1-mini", "input": "hi there"}}
    bad = {"custom_id": "r2", "method": "POST", "url": "/v1/responses", "body": {"model": "gpt-4.1-mini"}}
    batch = client.create_batch(client.upload_lines([line, bad]), endpoint="/v1/responses")
    client.clock.advance(12)
    done = client.batch(batch["id"])
    assert done["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    [output] = client.jsonl(done["output_file_id"])
    body = output["response"]["body"]
    assert body["object"] == "response" and body["status"] == "completed" and body["model"] == "gpt-4.1-mini"
    [message] = body["output"]
    assert (message["type"], message["role"], message["content"][0]["type"]) == ("message", "assistant", "output_text")
    assert message["content"][0]["text"] == "echo: hi there"
    assert body["usage"] == {"input_tokens": 2, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}, "output_tokens": 3,
                             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 5}
    assert (done["usage"]["input_tokens"], done["usage"]["output_tokens"]) == (2, 3)
    [failure] = client.jsonl(done["error_file_id"])
    assert failure["custom_id"] == "r2" and failure["response"]["status_code"] == 400
    assert failure["response"]["body"]["error"]["param"] == "input"


def test_completions_batch(client):
    line = {"custom_id": "p1", "method": "POST", "url": "/v1/completions", "body": {"model": "gpt-3.5-turbo-instruct", "prompt": "say this"}}
    bad = {"custom_id": "p2", "method": "POST", "url": "/v1/completions", "body": {"model": "gpt-3.5-turbo-instruct"}}
    batch = client.create_batch(client.upload_lines([line, bad]), endpoint="/v1/completions")
    client.clock.advance(12)
    done = client.batch(batch["id"])
    assert done["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    [output] = client.jsonl(done["output_file_id"])
    body = output["response"]["body"]
    assert body["object"] == "text_completion" and body["model"] == "gpt-3.5-turbo-instruct"
    assert body["choices"] == [{"text": "echo: say this", "index": 0, "logprobs": None, "finish_reason": "stop"}]
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert (done["usage"]["input_tokens"], done["usage"]["output_tokens"]) == (2, 3)
    [failure] = client.jsonl(done["error_file_id"])
    assert failure["custom_id"] == "p2" and failure["response"]["body"]["error"]["code"] == "missing_required_parameter"


def test_batch_lines_for_endpoints_the_emulator_does_not_run_fail_per_request(client):
    line = {"custom_id": "m1", "method": "POST", "url": "/v1/moderations", "body": {"model": "omni-moderation-latest", "input": "x"}}
    batch = client.create_batch(client.upload_lines([line]), endpoint="/v1/moderations")
    client.clock.advance(12)
    done = client.batch(batch["id"])
    assert done["status"] == "completed" and done["output_file_id"] is None
    [failure] = client.jsonl(done["error_file_id"])
    assert failure["response"]["body"]["error"]["code"] == "unsupported_endpoint"


def raw_lines(*lines):
    return "".join(line + "\n" for line in lines).encode()


VALID = json.dumps(embedding_line("a"))


@pytest.mark.parametrize("content, code, line_number", [
    (raw_lines(VALID, "{not json"), "invalid_json_line", 2),
    (raw_lines(VALID, json.dumps(embedding_line("a"))), "duplicate_custom_id", 2),
    (raw_lines(json.dumps(embedding_line("a", url="/v1/chat/completions"))), "url_mismatch", 1),
    (raw_lines(VALID, json.dumps(embedding_line("b", model="text-embedding-3-large"))), "model_mismatch", 2),
    (raw_lines(json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/embeddings"})), "missing_required_parameter", 1),
    (raw_lines(json.dumps({**embedding_line("a"), "method": "GET"})), "invalid_value", 1),
    (b"\n  \n", "empty_file", None),
])
def test_invalid_input_file_fails_the_batch(client, content, code, line_number):
    file_id = client.upload(content).json()["id"]
    batch = client.create_batch(file_id)
    client.clock.advance(1)
    failed = client.batch(batch["id"])
    assert failed["status"] == "failed"
    assert failed["failed_at"] == int(START_TIME) + 1
    assert failed["errors"]["object"] == "list"
    error = failed["errors"]["data"][0]
    assert set(error) == {"code", "message", "param", "line"}
    assert (error["code"], error["line"]) == (code, line_number)
    assert failed["output_file_id"] is None and failed["error_file_id"] is None


def test_invalid_json_line_message(client):
    batch = client.create_batch(client.upload(raw_lines("nope")).json()["id"])
    client.clock.advance(1)
    assert client.batch(batch["id"])["errors"]["data"] == [
        {"code": "invalid_json_line", "message": "This line is not parseable as valid JSON.", "param": None, "line": 1}
    ]


def test_too_many_tasks_fails_the_batch(client):
    client.server.emulator.max_batch_requests = 2  # what --max-batch-input-requests 2 sets
    batch = client.create_batch(client.upload_lines([embedding_line(str(n)) for n in range(3)]))
    client.clock.advance(1)
    failed = client.batch(batch["id"])
    assert failed["status"] == "failed"
    assert failed["errors"]["data"][0]["code"] == "too_many_tasks"


def test_metadata_overrides_timings_per_batch(client):
    metadata = {"emulator_validating_seconds": "3", "emulator_in_progress_seconds": "0", "emulator_finalizing_seconds": "2.5"}
    batch = client.create_batch(client.upload_lines([embedding_line("a")]), metadata=metadata)
    client.clock.advance(2.9)
    assert client.batch(batch["id"])["status"] == "validating"
    client.clock.advance(0.1)
    assert client.batch(batch["id"])["status"] == "finalizing"
    client.clock.advance(2.4)
    assert client.batch(batch["id"])["status"] == "finalizing"
    client.clock.advance(0.1)
    assert client.batch(batch["id"])["status"] == "completed"


def test_expiring_batch_keeps_finished_work_and_marks_the_rest_expired(client):
    lines = [embedding_line(f"r{n}", text=f"t{n}") for n in range(4)]
    batch = client.create_batch(client.upload_lines(lines), metadata={"emulator_expire": "true"})
    client.clock.advance(11)
    expired = client.batch(batch["id"])
    assert expired["status"] == "expired"
    assert expired["expired_at"] == int(START_TIME) + 11
    assert expired["completed_at"] is None and expired["finalizing_at"] is None
    assert expired["request_counts"] == {"total": 4, "completed": 2, "failed": 2}
    assert len(client.jsonl(expired["output_file_id"])) == 2
    errors = client.jsonl(expired["error_file_id"])
    assert [line["error"]["code"] for line in errors] == ["batch_expired", "batch_expired"]
    assert all(line["response"] is None for line in errors)


def test_cancel_in_progress_batch(client):
    lines = [embedding_line(f"r{n}", text=f"t{n}") for n in range(4)]
    batch = client.create_batch(client.upload_lines(lines))
    client.clock.advance(1 + 5)  # halfway through in_progress: two requests ran
    response = client.post(f"/batches/{batch['id']}/cancel")
    assert response.status_code == 200
    cancelling = response.json()
    assert cancelling["status"] == "cancelling"
    assert cancelling["cancelling_at"] == int(START_TIME) + 6

    client.clock.advance(0.5)
    assert client.post(f"/batches/{batch['id']}/cancel").json() == cancelling

    client.clock.advance(0.5)
    cancelled = client.batch(batch["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelled_at"] == int(START_TIME) + 7
    assert cancelled["request_counts"] == {"total": 4, "completed": 2, "failed": 2}
    assert len(client.jsonl(cancelled["output_file_id"])) == 2
    errors = client.jsonl(cancelled["error_file_id"])
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    assert all(line["error"]["message"] for line in errors)


def test_cancel_while_validating_produces_no_files(client):
    batch = client.create_batch(client.upload_lines([embedding_line("a")]))
    assert client.post(f"/batches/{batch['id']}/cancel").json()["status"] == "cancelling"
    client.clock.advance(1)
    cancelled = client.batch(batch["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["output_file_id"] is None and cancelled["error_file_id"] is None
    assert cancelled["request_counts"] == {"total": 0, "completed": 0, "failed": 0}


def test_cancel_of_a_finished_batch_is_400(client):
    batch = client.create_batch(client.upload_lines([embedding_line("a")]))
    client.clock.advance(12)
    error = assert_error(client.post(f"/batches/{batch['id']}/cancel"), 400)
    assert error["message"] == "Cannot cancel a batch with status 'completed'."


def wide_embedding_lines(count, dimensions=1536):
    return [{**embedding_line(f"r{n}"), "body": {"model": "text-embedding-3-small", "input": f"text {n}", "dimensions": dimensions}}
            for n in range(count)]


NO_WAIT = {"emulator_validating_seconds": "0", "emulator_in_progress_seconds": "0", "emulator_finalizing_seconds": "0"}


def test_status_reads_stay_fast_while_a_big_batch_runs(client):
    batch = client.create_batch(client.upload_lines(wide_embedding_lines(1500)), metadata=NO_WAIT)
    job = client.server.emulator.batches[batch["id"]]
    reads, deadline = [], time.monotonic() + 60
    while job.worker is not None and time.monotonic() < deadline:
        started = time.monotonic()
        status = client.batch(batch["id"])
        reads.append((time.monotonic() - started, status["status"], status["request_counts"]["completed"]))
        time.sleep(0.02)
    assert len(reads) >= 5, "the batch ran too fast to be read while it ran"
    assert max(seconds for seconds, _status, _completed in reads) < 0.5  # running the batch inside a read took seconds
    # The status never runs ahead of the work: in_progress (not done) until the last request ran, counts growing.
    assert all(status in ("validating", "in_progress") for _seconds, status, _completed in reads[:-1])
    completed = [count for _seconds, _status, count in reads]
    assert completed == sorted(completed) and 0 < completed[len(completed) // 2] < 1500
    done = client.batch(batch["id"])
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 1500, "completed": 1500, "failed": 0}
    assert len(client.jsonl(done["output_file_id"])) == 1500


def test_cancel_while_the_worker_runs_keeps_exactly_the_requests_shown_as_run(client):
    batch = client.create_batch(client.upload_lines(wide_embedding_lines(1500)), metadata=NO_WAIT)
    deadline = time.monotonic() + 60
    while (running := client.batch(batch["id"]))["request_counts"]["completed"] < 10:
        assert running["status"] in ("validating", "in_progress") and time.monotonic() < deadline
        time.sleep(0.01)
    cancelling = client.post(f"/batches/{batch['id']}/cancel").json()
    shown = cancelling["request_counts"]["completed"]
    assert cancelling["status"] == "cancelling" and 10 <= shown < 1500
    client.clock.advance(1)
    cancelled = client.batch(batch["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["request_counts"] == {"total": 1500, "completed": shown, "failed": 1500 - shown}
    assert [line["custom_id"] for line in client.jsonl(cancelled["output_file_id"])] == [f"r{n}" for n in range(shown)]
    errors = client.jsonl(cancelled["error_file_id"])
    assert [line["custom_id"] for line in errors] == [f"r{n}" for n in range(shown, 1500)]
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}


def test_batch_survives_deletion_of_its_input_file(client):
    file_id = client.upload_lines([embedding_line("a")])
    batch = client.create_batch(file_id)
    client.delete(f"/files/{file_id}")
    client.clock.advance(12)
    assert client.batch(batch["id"])["status"] == "completed"


# --------------------------------------------------------------------------- embeddings

def vector_length(vector):
    return math.sqrt(sum(component * component for component in vector))


def test_embeddings_are_deterministic_unit_vectors(client):
    body = {"model": "text-embedding-3-small", "input": ["alpha beta", "gamma"]}
    first, second = client.post("/embeddings", json=body).json(), client.post("/embeddings", json=body).json()
    assert first == second
    assert first["object"] == "list" and first["model"] == "text-embedding-3-small"
    assert [item["index"] for item in first["data"]] == [0, 1]
    assert all(item["object"] == "embedding" and len(item["embedding"]) == 8 for item in first["data"])
    assert all(vector_length(item["embedding"]) == pytest.approx(1.0) for item in first["data"])
    assert first["data"][0]["embedding"] != first["data"][1]["embedding"]
    assert first["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_embedding_vector_is_derived_from_the_text(client):
    response = client.post("/embeddings", json={"model": "m", "input": "same text"}).json()
    assert response["data"][0]["embedding"] == emulator.deterministic_vector("same text", 8)


def test_embeddings_dimensions_parameter(client):
    response = client.post("/embeddings", json={"model": "text-embedding-3-large", "input": "x", "dimensions": 256}).json()
    assert len(response["data"][0]["embedding"]) == 256


def test_embeddings_base64_encoding_is_little_endian_float32(client):
    body = {"model": "m", "input": "encode me"}
    floats = client.post("/embeddings", json=body).json()["data"][0]["embedding"]
    encoded = client.post("/embeddings", json={**body, "encoding_format": "base64"}).json()["data"][0]["embedding"]
    decoded = struct.unpack("<8f", base64.b64decode(encoded))
    assert [float("%.9g" % component) for component in decoded] == floats  # the same float32 numbers


def significant_digits(number):
    mantissa = repr(abs(number)).split("e")[0].replace(".", "").lstrip("0")
    return len(mantissa)


def test_embedding_floats_have_openai_precision(client):
    body = {"model": "text-embedding-3-small", "input": "precise", "dimensions": 1536}
    response = client.post("/embeddings", json=body)
    vector = response.json()["data"][0]["embedding"]
    assert max(significant_digits(component) for component in vector) == 9
    assert all(float("%.9g" % struct.unpack("<f", struct.pack("<f", component))[0]) == component for component in vector)
    assert len(json.dumps(vector)) < 1536 * 16  # about 1 GB for 50,000 of them, as OpenAI's output files


def test_embeddings_accept_token_inputs(client):
    single = client.post("/embeddings", json={"model": "m", "input": [1, 2, 3]}).json()
    assert len(single["data"]) == 1 and single["usage"]["prompt_tokens"] == 3
    several = client.post("/embeddings", json={"model": "m", "input": [[1, 2], [3]]}).json()
    assert len(several["data"]) == 2 and several["usage"]["prompt_tokens"] == 3


@pytest.mark.parametrize("body", [
    {"model": "m", "input": ""},
    {"model": "m", "input": []},
    {"model": "m", "input": ["ok", ""]},
    {"model": "m", "input": [1, "mixed"]},
    {"model": "m", "input": "x", "surprise": True},
    {"model": "m", "input": "x", "encoding_format": "hex"},
    {"model": "m", "input": "x", "dimensions": 0},
    {"model": "m", "input": "x", "dimensions": True},
    {"model": "m", "input": ["x"] * 2049},
    {"input": "x"},
    {"model": "m"},
])
def test_invalid_embedding_requests_are_400(client, body):
    assert_error(client.post("/embeddings", json=body), 400)


def test_unknown_embedding_argument_message(client):
    error = assert_error(client.post("/embeddings", json={"model": "m", "input": "x", "surprise": 1}), 400)
    assert error["message"] == "Unrecognized request argument supplied: surprise"


# --------------------------------------------------------------------------- chat completions

def test_chat_completion_echoes_last_user_message(client):
    body = {"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second question"}]},
    ]}
    completion = client.post("/chat/completions", json=body).json()
    assert completion["id"].startswith("chatcmpl-")
    assert completion["object"] == "chat.completion" and completion["model"] == "gpt-4o-mini"
    assert isinstance(completion["created"], int)
    [choice] = completion["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "echo: second question"
    usage = completion["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("body", [
    {"model": "m"},
    {"model": "m", "messages": []},
    {"model": "m", "messages": [{"role": "wizard", "content": "x"}]},
    {"messages": [{"role": "user", "content": "x"}]},
])
def test_invalid_chat_requests_are_400(client, body):
    assert_error(client.post("/chat/completions", json=body), 400)


# --------------------------------------------------------------------------- responses and completions

def test_response_echoes_last_user_message(client):
    body = {"model": "gpt-4.1-mini", "instructions": "be brief", "input": [
        {"role": "user", "content": "first"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "second question"}]},
    ]}
    response = client.post("/responses", json=body).json()
    assert response["id"].startswith("resp_") and response["object"] == "response"
    assert response["instructions"] == "be brief" and isinstance(response["created_at"], int)
    [message] = response["output"]
    assert message["id"].startswith("msg_") and message["status"] == "completed"
    assert message["content"] == [{"type": "output_text", "text": "echo: second question", "annotations": [], "logprobs": []}]
    usage = response["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (4, 3)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


@pytest.mark.parametrize("body, param", [
    ({"input": "x"}, "model"),
    ({"model": "m"}, "input"),
    ({"model": "m", "input": 5}, "input"),
    ({"model": "m", "input": [{"role": "wizard", "content": "x"}]}, "input[0].role"),
    ({"model": "m", "input": [{"role": "user", "content": 5}]}, "input[0].content"),
])
def test_invalid_response_requests_are_400(client, body, param):
    assert assert_error(client.post("/responses", json=body), 400)["param"] == param


def test_completion_echoes_each_prompt(client):
    completion = client.post("/completions", json={"model": "gpt-3.5-turbo-instruct", "prompt": ["one two", [5, 6]]}).json()
    assert completion["id"].startswith("cmpl-") and completion["object"] == "text_completion"
    assert [(choice["index"], choice["text"]) for choice in completion["choices"]] == [(0, "echo: one two"), (1, "echo: [5, 6]")]
    assert completion["usage"] == {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}


@pytest.mark.parametrize("body, param", [
    ({"prompt": "x"}, "model"),
    ({"model": "m"}, "prompt"),
    ({"model": "m", "prompt": []}, "prompt"),
    ({"model": "m", "prompt": [1.5]}, "prompt"),
])
def test_invalid_completion_requests_are_400(client, body, param):
    assert assert_error(client.post("/completions", json=body), 400)["param"] == param


# --------------------------------------------------------------------------- admin routes

def test_stats_count_batches_uploads_and_requests(client):
    file_id = client.upload_lines([embedding_line("a")])
    batch = client.create_batch(file_id)
    client.batch(batch["id"])
    client.batch(batch["id"])
    requests.get(client.base + "/batches", timeout=TIMEOUT)  # unauthenticated attempts are still requests
    stats = client.admin("GET", "stats").json()
    assert stats["batches_created"] == 1
    assert stats["files_uploaded"] == 1
    assert stats["requests"] == {"POST /v1/files": 1, "POST /v1/batches": 1, "GET /v1/batches/{id}": 2, "GET /v1/batches": 1}


def test_stats_count_file_content_bytes(client):
    file_id = client.upload(b"0123456789").json()["id"]
    assert_error(client.upload(b"x", purpose="training"), 400)  # refused: not counted
    client.get(f"/files/{file_id}/content")
    client.get(f"/files/{file_id}/content")
    stats = client.admin("GET", "stats").json()
    assert (stats["file_bytes_uploaded"], stats["file_bytes_downloaded"]) == (10, 20)


def test_failed_batch_creation_is_not_counted_as_created(client):
    client.post("/batches", json={"input_file_id": "file-x", "endpoint": "/v1/embeddings", "completion_window": "24h"})
    assert client.admin("GET", "stats").json()["batches_created"] == 0


def test_reset_clears_all_state(client):
    file_id = client.upload_lines([embedding_line("a")])
    batch = client.create_batch(file_id)
    assert client.admin("POST", "reset").status_code == 200
    assert client.admin("GET", "stats").json() == {
        "batches_created": 0, "files_uploaded": 0, "file_bytes_uploaded": 0, "file_downloads": 0, "file_bytes_downloaded": 0,
        "batch_busy_seconds": 0.0, "batch_seconds_first_created_to_last_ended": 0.0, "requests": {},
    }
    assert_error(client.get(f"/batches/{batch['id']}"), 404)
    assert_error(client.get(f"/files/{file_id}"), 404)


def test_admin_routes_check_method(client):
    assert client.admin("POST", "stats").status_code == 405
    assert client.admin("GET", "reset").status_code == 405
    assert client.admin("GET", "faults").status_code == 405
    assert client.admin("GET", "timings").status_code == 405


def test_timings_route_sets_the_seconds_of_later_batches_until_a_reset(client):
    before = client.create_batch(client.upload_lines([embedding_line("a")]))
    answer = requests.post(f"{client.root}/_emulator/timings", json={"in_progress": 60, "finalizing": "2"}, timeout=TIMEOUT)
    assert answer.json() == {"validating": 1.0, "in_progress": 60.0, "finalizing": 2.0, "cancelling": 1.0}
    after = client.create_batch(client.upload_lines([embedding_line("b")]))
    client.clock.advance(12)
    assert client.batch(before["id"])["status"] == "completed"  # created with the start-up timings: 1 + 10 + 1
    assert client.batch(after["id"])["status"] == "in_progress"
    client.clock.advance(51)
    assert client.batch(after["id"])["status"] == "completed"  # 1 + 60 + 2
    client.admin("POST", "reset")
    reset = client.create_batch(client.upload_lines([embedding_line("c")]))
    client.clock.advance(12)
    assert client.batch(reset["id"])["status"] == "completed"


@pytest.mark.parametrize("body, param", [({"in_progres": 5}, "in_progres"), ({"in_progress": -1}, "in_progress"),
                                         ({"validating": "soon"}, "validating"), ({"finalizing": True}, "finalizing")])
def test_timings_route_rejects_unknown_and_invalid_seconds(client, body, param):
    answer = requests.post(f"{client.root}/_emulator/timings", json=body, timeout=TIMEOUT)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


def test_stats_count_file_downloads_served(client):
    file_id = client.upload(b"0123456789").json()["id"]
    notes = client.upload(b"private", filename="notes.txt", purpose="user_data").json()["id"]
    client.get(f"/files/{file_id}/content")
    client.get(f"/files/{file_id}/content")
    assert_error(client.get(f"/files/{notes}/content"), 400)  # refused: not a download
    assert_error(client.get("/files/file-missing/content"), 404)
    stats = client.admin("GET", "stats").json()
    assert stats["file_downloads"] == 2
    assert stats["requests"]["GET /v1/files/{id}/content"] == 4


@pytest.mark.parametrize("spans, length", [
    ([], 0.0),
    ([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)], 4.0),
    ([(0.0, 10.0), (2.0, 3.0), (4.0, 12.0)], 12.0),
    ([(1.0, 1.0)], 0.0),
])
def test_union_length_counts_overlaps_once(spans, length):
    assert emulator.union_length(spans) == length


def test_stats_measure_the_time_batches_were_running(client):
    # Each batch takes 12 s (1 validating, 10 in_progress, 1 finalizing); the stats read no status before.
    first = client.create_batch(client.upload_lines([embedding_line("a")]))
    client.clock.advance(5)
    client.create_batch(client.upload_lines([embedding_line("b")]))  # runs from 5 to 17, overlapping the first
    client.clock.advance(20)
    stats = client.admin("GET", "stats").json()
    assert (stats["batch_busy_seconds"], stats["batch_seconds_first_created_to_last_ended"]) == (17.0, 17.0)

    client.create_batch(client.upload_lines([embedding_line("c")]))  # at 25, after 8 idle seconds
    client.clock.advance(2.5)
    stats = client.admin("GET", "stats").json()  # the third still runs: counted up to now
    assert (stats["batch_busy_seconds"], stats["batch_seconds_first_created_to_last_ended"]) == (19.5, 27.5)
    client.clock.advance(20)
    stats = client.admin("GET", "stats").json()
    assert (stats["batch_busy_seconds"], stats["batch_seconds_first_created_to_last_ended"]) == (29.0, 37.0)
    assert client.batch(first["id"])["completed_at"] == int(START_TIME) + 12


def test_batch_busy_time_ends_when_a_batch_fails_or_is_cancelled(client):
    client.create_batch(client.upload(raw_lines("nope")).json()["id"])  # fails when validation ends, at 1
    cancelled = client.create_batch(client.upload_lines([embedding_line("a")]))
    client.clock.advance(3)
    client.post(f"/batches/{cancelled['id']}/cancel")  # cancelling for 1 s: cancelled at 4
    client.clock.advance(10)
    assert client.admin("GET", "stats").json()["batch_busy_seconds"] == 4.0


# --------------------------------------------------------------------------- the enqueued-token limit

def words_line(custom_id, words, model="text-embedding-3-small"):
    return embedding_line(custom_id, text=" ".join(["word"] * words), model=model)


def test_request_input_tokens_count_as_the_endpoints_do():
    count = emulator.request_input_tokens
    assert count("/v1/embeddings", {"model": "m", "input": "one two three"}) == 3
    assert count("/v1/embeddings", {"model": "m", "input": ["one two", [5, 6, 7]]}) == 5
    chat = {"model": "m", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there you"}]}
    assert count("/v1/chat/completions", chat) == 5
    assert count("/v1/chat/completions", chat) == emulator.create_chat_completion(chat)["usage"]["prompt_tokens"]
    assert count("/v1/responses", {"model": "m", "input": [{"role": "user", "content": "a b"}]}) == 2
    assert count("/v1/completions", {"model": "m", "prompt": ["a b", [1, 2, 3]]}) == 5
    assert count("/v1/moderations", {"model": "m", "input": "a b"}) == 5  # words of the JSON body: {"model": "m", "input": "a b"}
    assert count("/v1/embeddings", {"model": "m", "input": []}) == 4  # invalid input: words of the JSON body


def test_token_limit_message_is_openais():
    assert emulator.token_limit_message("gpt-4o-mini", 2_000_000) == (
        "Enqueued token limit reached for gpt-4o-mini in organization org-emulator. Limit: 2,000,000 enqueued tokens. "
        "Please try again once some in_progress batches have been completed.")


def test_a_batch_over_the_enqueued_token_limit_fails_validation(client):
    client.server.emulator.enqueued_token_limit = 10  # what --enqueued-token-limit 10 sets
    data_dir = pathlib.Path(client.server.emulator.data_dir)
    enqueued = client.create_batch(client.upload_lines([words_line("a", 3), words_line("b", 3)]))  # 6 tokens
    client.clock.advance(0.5)
    over = client.create_batch(client.upload_lines([words_line("c", 5)]))  # 6 + 5 > 10 once the first is enqueued
    other_model = client.create_batch(client.upload_lines([words_line("d", 5, model="text-embedding-3-large")]))
    client.clock.advance(1)  # the first entered in_progress at 1, the others leave validating at 1.5

    failed = client.batch(over["id"])  # no status of the first was read: the limit does not depend on reads
    assert failed["status"] == "failed"
    assert failed["failed_at"] == int(START_TIME) + 1 and failed["in_progress_at"] is None
    assert failed["errors"] == {"object": "list", "data": [{
        "code": "token_limit_exceeded", "param": None, "line": None,
        "message": "Enqueued token limit reached for text-embedding-3-small in organization org-emulator. Limit: 10 enqueued tokens. "
                   "Please try again once some in_progress batches have been completed.",
    }]}
    assert (failed["output_file_id"], failed["error_file_id"], failed["request_counts"]["total"]) == (None, None, 0)
    assert client.batch(other_model["id"])["status"] == "in_progress"  # the limit is per model
    assert client.batch(enqueued["id"])["status"] == "in_progress"

    client.clock.advance(12)  # the first completed at 12: its tokens left the queue
    assert client.batch(enqueued["id"])["status"] == "completed"
    again = client.create_batch(client.upload_lines([words_line("c", 5)]))
    client.clock.advance(1)
    assert client.batch(again["id"])["status"] == "in_progress"
    client.clock.advance(12)
    client.server.emulator.wait_for_workers()
    results = {batch["output_file_id"] for batch in client.get("/batches").json()["data"]} - {None}
    kept = {path.name for path in data_dir.iterdir()}
    assert not any(name.startswith(over["id"]) for name in kept)  # what its worker wrote ahead of the clock is gone
    assert len(results) == 3


@pytest.mark.parametrize("read_order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_batches_leaving_validating_together_are_decided_in_creation_order_whatever_is_read_first(client, read_order):
    client.server.emulator.enqueued_token_limit = 8
    batches = [client.create_batch(client.upload_lines([words_line(f"r{n}", 4)])) for n in range(3)]
    client.clock.advance(1)
    statuses = {index: client.batch(batches[index]["id"])["status"] for index in read_order}
    assert [statuses[index] for index in range(3)] == ["in_progress", "in_progress", "failed"]


def test_many_batches_leaving_validating_together_are_decided_without_deep_recursion(client):
    client.server.emulator.enqueued_token_limit = 10 * 4
    file_id = client.upload_lines([words_line("r", 4)])
    batches = [client.create_batch(file_id) for _index in range(400)]  # ~3 stack frames each if decided recursively
    client.clock.advance(1)
    assert client.batch(batches[-1]["id"])["status"] == "failed"
    assert [client.batch(batch["id"])["status"] for batch in batches[9:11]] == ["in_progress", "failed"]


def test_a_batch_alone_over_the_enqueued_token_limit_fails(client):
    client.server.emulator.enqueued_token_limit = 4
    batch = client.create_batch(client.upload_lines([words_line("a", 5)]))
    client.clock.advance(1)
    assert client.batch(batch["id"])["errors"]["data"][0]["code"] == "token_limit_exceeded"
    exact = client.create_batch(client.upload_lines([words_line("a", 4)]))  # at the limit is within it
    client.clock.advance(1)
    assert client.batch(exact["id"])["status"] == "in_progress"


def test_without_a_limit_any_number_of_tokens_is_enqueued(client):
    batches = [client.create_batch(client.upload_lines([words_line("a", 1000)])) for _index in range(3)]
    client.clock.advance(1)
    assert [client.batch(batch["id"])["status"] for batch in batches] == ["in_progress"] * 3


# --------------------------------------------------------------------------- faults

def post_faults(client, body):
    return requests.post(f"{client.root}/_emulator/faults", json=body, timeout=TIMEOUT)


def test_expire_fault_expires_the_next_batches_only(client):
    armed = post_faults(client, {"expire_next_batches": 1})
    assert armed.status_code == 200
    assert armed.json() == {"expire_next_batches": 1, "fail_next_batches": 0, "fail_code": "token_limit_exceeded", "fail_message": None}
    lines = [embedding_line(f"r{n}", text=f"t{n}") for n in range(4)]
    hit = client.create_batch(client.upload_lines(lines))
    spared = client.create_batch(client.upload_lines(lines))
    client.clock.advance(12)
    expired, completed = client.batch(hit["id"]), client.batch(spared["id"])
    assert expired["status"] == "expired" and expired["metadata"] is None
    assert expired["request_counts"] == {"total": 4, "completed": 2, "failed": 2}
    assert [line["error"]["code"] for line in client.jsonl(expired["error_file_id"])] == ["batch_expired"] * 2
    assert completed["status"] == "completed"
    assert client.admin("GET", "stats").json()["batches_created"] == 2


def test_fail_fault_fails_validation_with_openais_queue_error_by_default(client):
    post_faults(client, {"fail_next_batches": 2, "expire_next_batches": 1})
    first = client.create_batch(client.upload_lines([embedding_line("a")]))
    second = client.create_batch(client.upload_lines([embedding_line("a")]))
    third = client.create_batch(client.upload_lines([embedding_line("a"), embedding_line("b")]))
    client.clock.advance(1)
    [error] = client.batch(first["id"])["errors"]["data"]
    assert error == {"code": "token_limit_exceeded", "param": None, "line": None,
                     "message": emulator.token_limit_message("text-embedding-3-small", 0)}
    assert client.batch(second["id"])["status"] == "failed"
    client.clock.advance(11)
    assert client.batch(third["id"])["status"] == "expired"  # the expire fault waited for a batch no fail fault hit


def test_fail_fault_with_a_given_code_and_message(client):
    post_faults(client, {"fail_next_batches": 1, "fail_code": "invalid_request", "fail_message": "Something went wrong."})
    batch = client.create_batch(client.upload_lines([embedding_line("a")]))
    client.clock.advance(1)
    failed = client.batch(batch["id"])
    assert failed["status"] == "failed"
    assert failed["errors"]["data"] == [{"code": "invalid_request", "message": "Something went wrong.", "param": None, "line": None}]


def test_an_invalid_input_fails_with_its_own_errors_even_when_a_fail_fault_hits_it(client):
    post_faults(client, {"fail_next_batches": 1})
    batch = client.create_batch(client.upload(raw_lines("nope")).json()["id"])
    client.clock.advance(1)
    assert [error["code"] for error in client.batch(batch["id"])["errors"]["data"]] == ["invalid_json_line"]


@pytest.mark.parametrize("body", [
    {"expire_next_batch": 1}, {"expire_next_batches": -1}, {"fail_next_batches": "2"}, {"fail_next_batches": True},
    {"fail_code": 3}, ["expire_next_batches"],
])
def test_invalid_faults_are_400_and_arm_nothing(client, body):
    response = post_faults(client, body)
    assert_error(response, 400)
    assert post_faults(client, {}).json()["expire_next_batches"] == 0


def test_reset_disarms_faults(client):
    post_faults(client, {"expire_next_batches": 3, "fail_next_batches": 1, "fail_code": "x"})
    client.admin("POST", "reset")
    assert post_faults(client, {}).json() == dict(emulator.FAULT_DEFAULTS)


# --------------------------------------------------------------------------- the official SDK

def test_the_official_sdk_uploads_lists_runs_and_downloads(client):
    import openai  # pylint: disable=import-outside-toplevel  # only this test needs it

    sdk = openai.OpenAI(api_key=API_KEY, base_url=client.base, max_retries=0)
    content = "".join(json.dumps(line) + "\n" for line in wide_embedding_lines(3, dimensions=16)).encode()
    first = sdk.files.create(file=("input.sha256-" + "0" * 64 + ".jsonl", content), purpose="batch")
    second = sdk.files.create(file=("input.sha256-" + "1" * 64 + ".jsonl", content), purpose="batch")
    assert (first.bytes, first.purpose) == (len(content), "batch")
    assert [listed.id for listed in sdk.files.list(purpose="batch", limit=1)] == [second.id, first.id]  # follows has_more/after

    batch = sdk.batches.create(input_file_id=first.id, endpoint="/v1/embeddings", completion_window="24h")
    client.clock.advance(12)
    done = sdk.batches.retrieve(batch.id)
    assert (done.status, done.request_counts.completed, done.error_file_id) == ("completed", 3, None)
    output = [json.loads(line) for line in sdk.files.content(done.output_file_id).text.splitlines()]
    batch_vector = {line["custom_id"]: line["response"]["body"]["data"][0]["embedding"] for line in output}["r0"]
    # The SDK asks for base64 and decodes the float32s itself: the same numbers as the batch's printed floats.
    direct = sdk.embeddings.create(model="text-embedding-3-small", input="text 0", dimensions=16).data[0].embedding
    assert [float("%.9g" % component) for component in direct] == batch_vector

    notes = sdk.files.create(file=("notes.txt", b"private"), purpose="user_data")
    with pytest.raises(openai.BadRequestError, match="Not allowed to download files of purpose: user_data"):
        sdk.files.content(notes.id)


def test_the_official_sdk_sees_a_batch_failed_on_the_enqueued_token_limit(client):
    import openai  # pylint: disable=import-outside-toplevel  # only the SDK tests need it

    client.server.emulator.enqueued_token_limit = 2
    sdk = openai.OpenAI(api_key=API_KEY, base_url=client.base, max_retries=0)
    content = (json.dumps(words_line("a", 3)) + "\n").encode()
    batch = sdk.batches.create(input_file_id=sdk.files.create(file=("in.jsonl", content), purpose="batch").id,
                               endpoint="/v1/embeddings", completion_window="24h")
    client.clock.advance(1)
    failed = sdk.batches.retrieve(batch.id)
    assert failed.status == "failed" and failed.failed_at == int(START_TIME) + 1
    [error] = failed.errors.data
    assert (error.code, error.line, error.param) == ("token_limit_exceeded", None, None)
    assert error.message.startswith("Enqueued token limit reached for text-embedding-3-small in organization ")
    assert "Limit: 2 enqueued tokens." in error.message


def test_the_official_sdk_reads_responses_and_completions_synchronously_and_in_batches(client):
    import openai  # pylint: disable=import-outside-toplevel  # only the SDK tests need it
    from openai.types import Completion  # pylint: disable=import-outside-toplevel
    from openai.types.responses import Response  # pylint: disable=import-outside-toplevel

    sdk = openai.OpenAI(api_key=API_KEY, base_url=client.base, max_retries=0)
    assert sdk.responses.create(model="gpt-4.1-mini", input="hello there").output_text == "echo: hello there"
    assert sdk.completions.create(model="gpt-3.5-turbo-instruct", prompt="hello").choices[0].text == "echo: hello"
    with pytest.raises(openai.BadRequestError, match="Missing required parameter: 'input'"):
        sdk.responses.create(model="gpt-4.1-mini")
    for endpoint, body, parse, answer in [
        ("/v1/responses", {"model": "gpt-4.1-mini", "input": "batched"}, Response.model_validate, lambda parsed: parsed.output_text),
        ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "batched"}, Completion.model_validate, lambda parsed: parsed.choices[0].text),
    ]:
        content = (json.dumps({"custom_id": "a", "method": "POST", "url": endpoint, "body": body}) + "\n").encode()
        uploaded = sdk.files.create(file=("in.jsonl", content), purpose="batch")
        batch = sdk.batches.create(input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h")
        client.clock.advance(12)
        done = sdk.batches.retrieve(batch.id)
        assert (done.status, done.request_counts.completed, done.usage.output_tokens) == ("completed", 1, 2)
        [line] = [json.loads(text) for text in sdk.files.content(done.output_file_id).text.splitlines()]
        assert answer(parse(line["response"]["body"])) == "echo: batched"


# --------------------------------------------------------------------------- CLI

def test_cli_serves_a_batch_with_real_timings_and_never_logs_the_key():
    command = [sys.executable, str(EMULATOR_PATH), "--port", "0", "--api-key", API_KEY, "--validating-seconds", "0.1",
               "--in-progress-seconds", "0.1", "--finalizing-seconds", "0.1", "--dimensions", "4"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stderr.readline()
        base = banner.strip().rsplit(" ", 1)[-1]
        assert base.startswith("http://127.0.0.1:") and base.endswith("/openai/v1")
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {API_KEY}"
        line = json.dumps(embedding_line("a")) + "\n"
        file_id = session.post(base + "/files", files={"file": ("in.jsonl", line)}, data={"purpose": "batch"}, timeout=TIMEOUT).json()["id"]
        body = {"input_file_id": file_id, "endpoint": "/v1/embeddings", "completion_window": "24h"}
        batch = session.post(base + "/batches", json=body, timeout=TIMEOUT).json()
        status = wait_for_terminal_status(session, f"{base}/batches/{batch['id']}")
        assert status["status"] == "completed"
        [output] = [json.loads(text) for text in session.get(f"{base}/files/{status['output_file_id']}/content", timeout=TIMEOUT).text.splitlines()]
        assert len(output["response"]["body"]["data"][0]["embedding"]) == 4
    finally:
        process.terminate()
        log = process.communicate(timeout=10)[1]
    request_lines = [text for text in log.splitlines() if '"GET ' in text or '"POST ' in text]
    assert len(request_lines) >= 4
    assert API_KEY not in log and "Bearer" not in log


def wait_for_terminal_status(session, url, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = session.get(url, timeout=TIMEOUT).json()
        if batch["status"] in ("completed", "failed", "expired", "cancelled"):
            return batch
        time.sleep(0.05)
    raise AssertionError(f"batch did not finish within {timeout}s")


def test_cli_limits_reach_the_emulator():
    args = emulator.parse_args(["--api-key", API_KEY, "--enqueued-token-limit", "2000000", "--max-batch-input-requests", "3"])
    assert (args.enqueued_token_limit, args.max_batch_input_requests) == (2_000_000, 3)
    defaults = emulator.parse_args(["--api-key", API_KEY])
    assert (defaults.enqueued_token_limit, defaults.max_batch_input_requests) == (None, 50_000)
    server = emulator.make_server("127.0.0.1", 0, API_KEY, enqueued_token_limit=7, max_batch_requests=3)
    try:
        assert (server.emulator.enqueued_token_limit, server.emulator.max_batch_requests) == (7, 3)
    finally:
        server.server_close()


@pytest.mark.parametrize("flags", [["--enqueued-token-limit", "0"], ["--max-batch-input-requests", "0"], ["--enqueued-token-limit", "x"]])
def test_cli_refuses_limits_below_one(flags):
    with pytest.raises(SystemExit):
        emulator.parse_args(["--api-key", API_KEY, *flags])


def test_cli_requires_an_api_key(monkeypatch):
    monkeypatch.delenv("OPENAI_EMULATOR_API_KEY", raising=False)
    with pytest.raises(SystemExit):
        emulator.parse_args(["--port", "0"])
