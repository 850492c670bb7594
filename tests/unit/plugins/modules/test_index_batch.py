"""index_batch_input and index_batch_output against the scripted server: what they send, what they write, what they report."""

import hashlib
import json

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.index.export import RequestLines, request_body
from ansible_collections.opensearch.ml_commons.plugins.module_utils.index.fingerprint import RequestFingerprint, canonical, custom_id, parse_custom_id
from ansible_collections.opensearch.ml_commons.plugins.module_utils.index.write_back import same
from ansible_collections.opensearch.ml_commons.plugins.modules import index_batch_input, index_batch_output
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule, requests_sent

EXPORT = dict(index="docs", text_field="text", target_field="vec", model="m", body={"dimensions": 2})


def scroll(server, *documents):
    hits = [{"_id": doc_id, "_source": source} for doc_id, source in documents]
    server.answer("POST", "/docs/_search", (200, {"_scroll_id": "s1", "hits": {"hits": hits}}))
    server.answer("POST", "/_search/scroll", (200, {"_scroll_id": "s1", "hits": {"hits": []}}))
    server.answer("DELETE", "/_search/scroll", (200, {"succeeded": True}))


def fingerprint(url, body):
    """The definition: the SHA-256 of the canonical request, built here from its parts."""
    return hashlib.sha256(canonical({"url": url, "body": body}).encode("utf-8", "surrogatepass")).hexdigest()


def embedding_fingerprint(text):
    return fingerprint("/v1/embeddings", request_body("/v1/embeddings", "m", {"dimensions": 2}, [], text))


def test_the_export_sends_new_and_edited_documents_and_reports_those_without_text(module_test_server, tmp_path):
    dest = tmp_path / "input.jsonl"
    current = embedding_fingerprint("kept")
    scroll(module_test_server, ("new", {"text": "fresh"}), ("kept", {"text": "kept", "vec_fingerprint": current}),
           ("edited", {"text": "changed", "vec_fingerprint": embedding_fingerprint("before")}), ("empty", {"text": " "}), ("none", {}))
    result = index_batch_input.run(FakeModule(index_batch_input, dest=str(dest), **EXPORT), Client(module_test_server.url))
    lines = [json.loads(line) for line in dest.read_text().splitlines()]
    assert result["changed"] and (result["requests"], result["unchanged"], result["skipped_count"]) == (2, 1, 2)
    # Ansible would read a "skipped" key as the task's own skip.
    assert "skipped" not in result
    assert [parse_custom_id(line["custom_id"]) for line in lines] == [("new", embedding_fingerprint("fresh")), ("edited", embedding_fingerprint("changed"))]
    assert lines[0]["body"] == {"model": "m", "dimensions": 2, "input": "fresh"} and lines[0]["url"] == "/v1/embeddings"
    assert result["skipped_documents"] == [{"_id": "empty", "reason": "text is empty"}, {"_id": "none", "reason": "no text"}]
    search = json.loads(module_test_server.received[0]["body"])
    assert search["_source"] == ["text", "vec_fingerprint"] and search["sort"] == ["_doc"]
    assert ("DELETE", "/_search/scroll") in requests_sent(module_test_server)


def test_the_export_writes_nothing_in_check_mode_and_leaves_an_unchanged_file(module_test_server, tmp_path):
    dest = tmp_path / "input.jsonl"
    scroll(module_test_server, ("a", {"text": "one"}))
    check = index_batch_input.run(FakeModule(index_batch_input, True, dest=str(dest), **EXPORT), Client(module_test_server.url))
    assert check["changed"] and not dest.exists()
    index_batch_input.run(FakeModule(index_batch_input, dest=str(dest), **EXPORT), Client(module_test_server.url))
    mtime = dest.stat().st_mtime_ns
    again = index_batch_input.run(FakeModule(index_batch_input, dest=str(dest), **EXPORT), Client(module_test_server.url))
    assert not again["changed"] and dest.stat().st_mtime_ns == mtime


def test_chat_requests_put_the_text_where_the_messages_say(module_test_server, tmp_path):
    dest = tmp_path / "input.jsonl"
    scroll(module_test_server, ("a", {"text": "hello"}))
    messages = [{"role": "system", "content": "Summarise."}, {"role": "user", "content": "Text: {text}"}]
    params = dict(EXPORT, dest=str(dest), endpoint="/v1/chat/completions")
    params.update(body=None, messages=messages)
    index_batch_input.run(FakeModule(index_batch_input, **params), Client(module_test_server.url))
    assert json.loads(dest.read_text())["body"]["messages"][1] == {"role": "user", "content": "Text: hello"}
    params.update(messages=[{"role": "user", "content": "x"}])
    with pytest.raises(ConfigurationError, match="No message holds"):
        index_batch_input.run(FakeModule(index_batch_input, **params), Client(module_test_server.url))


def output_line(doc_id, text, vector):
    body = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": vector}]}
    return json.dumps({"id": "r", "custom_id": custom_id(doc_id, embedding_fingerprint(text)), "response": {"status_code": 200, "body": body}, "error": None})


MAPPING = (200, {"docs": {"mappings": {"properties": {"text": {"type": "text"}, "vec": {"type": "knn_vector", "dimension": 2}}}}})
WRITABLE = (200, {})


def bulk_lines(request):
    return [json.loads(line) for line in request["body"].decode().splitlines()]


def test_the_write_back_updates_only_what_differs_and_retries_rejected_items(module_test_server, tmp_path, monkeypatch):
    monkeypatch.setattr("ansible_collections.opensearch.ml_commons.plugins.module_utils.index.bulk.time.sleep", lambda seconds: None)
    src = tmp_path / "output.jsonl"
    failed = json.dumps({"id": "r", "custom_id": custom_id("gone", "0" * 64), "response": None, "error": {"code": "batch_expired", "message": "late"}})
    src.write_text("\n".join([output_line("a", "x", [0.5, 0.5]), output_line("b", "y", [1.0, 0.0]), output_line("c", "z", [0.0, 1.0]), failed]) + "\n")
    module_test_server.answer("GET", "/docs/_mapping", MAPPING)
    module_test_server.answer("GET", "/docs/_settings*", WRITABLE)
    module_test_server.answer("POST", "/docs/_mget", (200, {"docs": [
        {"_id": "a", "found": True, "_source": {"vec": [0.5, 0.5], "vec_fingerprint": embedding_fingerprint("x")}},
        {"_id": "b", "found": True, "_source": {"text": "y"}}, {"_id": "c", "found": False}]}))
    rejected = {"update": {"_id": "b", "status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}}
    updated = {"update": {"_id": "b", "result": "updated"}}
    module_test_server.answer("POST", "/_bulk", (200, {"errors": True, "items": [rejected]}), (200, {"errors": False, "items": [updated]}))
    module_test_server.answer("POST", "/docs/_refresh", (200, {}))
    result = index_batch_output.run(FakeModule(index_batch_output, src=str(src), index="docs", target_field="vec"), Client(module_test_server.url))
    assert result["changed"] and (result["written"], result["unchanged"], result["failed_documents"]) == (1, 1, 2)
    assert result["failures"][0] == {"_id": "gone", "reason": "batch_expired: late"}
    assert result["failures"][1]["_id"] == "c" and "not created again" in result["failures"][1]["reason"]
    bulks = [request for request in module_test_server.received if request["path"] == "/_bulk"]
    update = {"doc": {"vec": [1.0, 0.0], "vec_fingerprint": embedding_fingerprint("y")}}
    assert len(bulks) == 2 and bulk_lines(bulks[1]) == [{"update": {"_index": "docs", "_id": "b"}}, update]
    assert bulks[0]["headers"]["Content-Type"] == "application/x-ndjson"


def test_a_dimension_mismatch_fails_before_any_write(module_test_server, tmp_path):
    src = tmp_path / "output.jsonl"
    src.write_text(output_line("a", "x", [0.1, 0.2, 0.3]) + "\n")
    module_test_server.answer("GET", "/docs/_mapping", MAPPING)
    with pytest.raises(ConfigurationError, match="knn_vector of 2 dimensions; the output's embeddings have 3"):
        index_batch_output.run(FakeModule(index_batch_output, src=str(src), index="docs", target_field="vec"), Client(module_test_server.url))
    assert requests_sent(module_test_server) == [("GET", "/docs/_mapping")]


def test_a_read_only_index_fails_before_any_write(module_test_server, tmp_path):
    src = tmp_path / "output.jsonl"
    src.write_text(output_line("a", "x", [0.1, 0.2]) + "\n")
    module_test_server.answer("GET", "/docs/_mapping", MAPPING)
    module_test_server.answer("GET", "/docs/_settings*", (200, {"docs": {"settings": {"index.blocks.write": "true"}}}))
    with pytest.raises(ConfigurationError, match="docs is read-only \\(index.blocks.write is true\\)"):
        index_batch_output.run(FakeModule(index_batch_output, src=str(src), index="docs", target_field="vec"), Client(module_test_server.url))
    assert requests_sent(module_test_server) == [("GET", "/docs/_mapping"), ("GET", "/docs/_settings/index.blocks.*?flat_settings=true")]


def test_a_missing_index_is_named_when_writing_in_place(module_test_server, tmp_path):
    src = tmp_path / "output.jsonl"
    src.write_text(output_line("a", "x", [0.1, 0.2]) + "\n")
    module_test_server.answer("GET", "/docs/_mapping", (404, {"error": {"type": "index_not_found_exception", "reason": "no such index"}}))
    with pytest.raises(ConfigurationError, match="The index docs does not exist"):
        index_batch_output.run(FakeModule(index_batch_output, src=str(src), index="docs", target_field="vec"), Client(module_test_server.url))
    assert requests_sent(module_test_server) == [("GET", "/docs/_mapping")]


def test_into_another_index_creates_it_and_indexes_past_its_pipeline(module_test_server, tmp_path):
    src = tmp_path / "output.jsonl"
    src.write_text(output_line("a", "x", [0.5, 0.5]) + "\n")
    module_test_server.answer("GET", "/copy/_mapping", (404, {"error": {"type": "index_not_found_exception", "reason": "no such index"}}))
    module_test_server.answer("PUT", "/copy", (200, {"acknowledged": True}))
    module_test_server.answer("POST", "/docs/_mget", (200, {"docs": [{"_id": "a", "found": True, "_source": {"title": "T"}}]}))
    module_test_server.answer("POST", "/_bulk", (200, {"errors": False, "items": [{"index": {"_id": "a", "result": "created"}}]}))
    module_test_server.answer("POST", "/copy/_refresh", (200, {}))
    params = dict(src=str(src), index="docs", target_index="copy", target_field="vec", copy_fields=["title"])
    check = index_batch_output.run(FakeModule(index_batch_output, True, **params), Client(module_test_server.url))
    assert check["changed"] and check["created_index"] and check["written"] == 1
    assert [request for request in requests_sent(module_test_server) if request[0] != "GET"] == [("POST", "/docs/_mget?_source_includes=title")]
    result = index_batch_output.run(FakeModule(index_batch_output, **params), Client(module_test_server.url))
    created = [request for request in module_test_server.received if request["method"] == "PUT"][0]
    assert json.loads(created["body"])["mappings"]["properties"]["vec"] == {
        "type": "knn_vector", "dimension": 2, "method": {"name": "hnsw", "engine": "lucene", "space_type": "l2"}}
    bulk = [request for request in module_test_server.received if request["path"] == "/_bulk"][0]
    assert bulk_lines(bulk) == [{"index": {"_index": "copy", "_id": "a", "pipeline": "_none"}},
                                {"title": "T", "vec": [0.5, 0.5], "vec_fingerprint": embedding_fingerprint("x")}]
    assert result["written"] == 1 and result["created_index"]


def test_a_vector_given_back_as_float32_is_the_same_result():
    """OpenSearch 3 gives a knn_vector back from the stored float32s, not as the JSON that was sent."""
    assert same([-0.50393401277065277, 0.25], [-0.503934, 0.25])
    assert not same([-0.5039, 0.25], [-0.503934, 0.25])
    assert same("text", "text") and not same([1, 2], [1, 2, 3])


def test_the_fingerprint_is_the_sha256_of_the_canonical_request_so_stored_ones_stay_current():
    body = {"model": "m", "input": "caf\u00e9 \"quoted\"", "dimensions": 2}
    request = json.dumps({"url": "/v1/embeddings", "body": body}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert RequestFingerprint("/v1/embeddings").of(canonical(body).encode("utf-8")) == hashlib.sha256(request.encode("utf-8")).hexdigest()


TEXTS = ["plain", "", "caf\u00e9 \"quoted\" back\\slash", "line\nbreak\ttab\x00nul\x1f", "{text} in the text", "\U0001f600 \u2028", "\ud800 lone"]


@pytest.mark.parametrize("endpoint, body, messages", [
    ("/v1/embeddings", {"dimensions": 2, "encoding_format": "float"}, []),
    ("/v1/chat/completions", {"temperature": 0}, [{"role": "system", "content": "Be brief. {text}"},
                                                  {"role": "user", "content": "\"{text}\" and again {text}", "name": "u"}]),
])
@pytest.mark.parametrize("text", TEXTS)
def test_each_request_body_is_the_canonical_json_of_the_request(endpoint, body, messages, text):
    """The bodies come from one template with the text put in: each must be the canonical JSON that the fingerprint
    of a stored result was made from, whatever the text holds."""
    lines = RequestLines(endpoint, "m", body, messages)
    built = lines.body(text)
    expected = request_body(endpoint, "m", body, messages, text)
    assert built == canonical(expected).encode("utf-8", "surrogatepass")
    assert lines.fingerprint.of(built) == fingerprint(endpoint, expected)
    line = json.loads(lines.line("id \"1\"", "f" * 64, built).decode("utf-8", "surrogatepass"))
    assert line == {"custom_id": custom_id("id \"1\"", "f" * 64), "method": "POST", "url": endpoint, "body": expected}
