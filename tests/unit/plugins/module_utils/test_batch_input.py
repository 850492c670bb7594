"""Batch inputs refused before upload, as OpenAI's batch validation would fail them, naming the line."""

import json
import tempfile

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.batch_input import BatchInput, BatchInputError, CustomIds


def request(custom_id, url="/v1/embeddings", model="text-embedding-3-small", **changes):
    line = {"custom_id": custom_id, "method": "POST", "url": url, "body": {"model": model, "input": "text %s" % custom_id}}
    line.update(changes)
    return json.dumps(line)


def write(tmp_path, lines):
    path = tmp_path / "input.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def refusal(path, **options):
    with pytest.raises(BatchInputError) as caught:
        BatchInput(path, **options).check()
    return caught.value


def test_a_valid_input_is_counted(tmp_path):
    path = write(tmp_path, [request("a"), "", request("b")])
    checked = BatchInput(path, endpoint="/v1/embeddings").check()
    assert (checked.requests, checked.url, checked.model) == (2, "/v1/embeddings", "text-embedding-3-small")


@pytest.mark.parametrize("bad_line, problem", [
    ('{"custom_id": "b", "method": "POST",', "is not valid JSON"),
    ('["a list"]', "is not a JSON object"),
    (json.dumps({"custom_id": "b", "method": "POST", "url": "/v1/embeddings"}), "lacks body"),
    (request("b").replace('"custom_id": "b"', '"custom_id": 7'), "has a custom_id that is not a non-empty string"),
    (request("b", method="GET"), "has method 'GET'; the Batch API takes only POST"),
    (request("b", body="text"), "has a body that is not a JSON object"),
    (request("a"), "repeats the custom_id 'a' of line 1"),
    (request("b", url="/v1/chat/completions"), "has url '/v1/chat/completions', not the url of the lines before it '/v1/embeddings'"),
    (request("b", model="text-embedding-3-large"), "names the model 'text-embedding-3-large', not 'text-embedding-3-small'"),
])
def test_the_first_bad_line_is_named_with_what_is_wrong(tmp_path, bad_line, problem):
    path = write(tmp_path, [request("a"), bad_line, request("c")])
    error = refusal(path)
    assert str(error).startswith("Line 2 of %s %s" % (path, problem))
    assert "fix the input and run again" in str(error)
    assert error.details == {"line": 2}


def test_a_url_other_than_the_endpoint_is_refused_on_the_first_line(tmp_path):
    error = refusal(write(tmp_path, [request("a")]), endpoint="/v1/chat/completions")
    assert "Line 1 of" in str(error) and "not the batch endpoint '/v1/chat/completions'" in str(error)


def test_more_requests_than_the_limit_are_refused_at_the_first_one_too_many(tmp_path):
    error = refusal(write(tmp_path, [request(str(n)) for n in range(4)]), max_requests=3)
    assert "Line 4 of" in str(error) and "at most 3 (max_requests)" in str(error)
    assert BatchInput(write(tmp_path, [request(str(n)) for n in range(4)]), max_requests=0).check().requests == 4


def test_a_file_larger_than_the_limit_is_refused_before_it_is_read(tmp_path):
    path = write(tmp_path, [request("a"), "{not json"])
    error = refusal(path, max_bytes=10)
    assert "a batch input may hold at most 10 (max_bytes)" in str(error)
    assert "line" not in error.details


def test_an_empty_file_and_text_that_is_not_utf8_are_refused(tmp_path):
    assert "holds no request" in str(refusal(write(tmp_path, ["", "  "])))
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(request("a").encode() + b"\n" + b'{"custom_id": "caf\xe9"}\n')
    assert "Line 2 of %s is not UTF-8" % path in str(refusal(str(path)))


def test_a_repeat_far_apart_is_found_when_the_ids_are_cut_into_many_buckets(tmp_path, monkeypatch):
    # About 12 records to each of the 256 first-level buckets: some are cut again by the second byte.
    monkeypatch.setattr(CustomIds, "BUCKET_BYTES", 16 * CustomIds.RECORD.size)
    lines = [request("id-%d" % n) for n in range(3000)]
    assert BatchInput(write(tmp_path, lines), max_requests=0).check().requests == 3000
    lines[2900] = request("id-17")
    error = refusal(write(tmp_path, lines), max_requests=0)
    assert str(error).startswith("Line 2901 of") and "repeats the custom_id 'id-17' of line 18" in str(error)


def test_one_id_repeated_more_often_than_a_bucket_holds_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(CustomIds, "BUCKET_BYTES", 4 * CustomIds.RECORD.size)
    error = refusal(write(tmp_path, [request("other")] + [request("same")] * 50), max_requests=0)
    assert "Line 3 of" in str(error) and "repeats the custom_id 'same' of line 2" in str(error)


def first_letter_hash(custom_id):
    """A hash under which every ID of the same first letter collides."""
    return custom_id[0].encode().ljust(CustomIds.HASH_BYTES, b"-")


def test_ids_that_only_share_a_hash_are_not_repeats(tmp_path, monkeypatch):
    monkeypatch.setattr(CustomIds, "hashed", staticmethod(first_letter_hash))
    assert BatchInput(write(tmp_path, [request(name) for name in ("a1", "b1", "a2", "a3", "b2")])).check().requests == 5
    error = refusal(write(tmp_path, [request(name) for name in ("a1", "a2", "a3", "a2", "a1")]))
    assert "Line 4 of" in str(error) and "repeats the custom_id 'a2' of line 2" in str(error)


def test_when_the_earliest_candidates_all_collide_the_later_ones_are_confirmed(tmp_path, monkeypatch):
    monkeypatch.setattr(CustomIds, "hashed", staticmethod(first_letter_hash))
    monkeypatch.setattr(CustomIds, "CANDIDATES", 1)
    error = refusal(write(tmp_path, [request(name) for name in ("a1", "a2", "b1", "b2", "c1", "c1")]))
    assert "Line 6 of" in str(error) and "repeats the custom_id 'c1' of line 5" in str(error)


def test_the_temporary_files_are_removed_whatever_the_outcome(tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    BatchInput(write(tmp_path, [request("a"), request("b")])).check()
    refusal(write(tmp_path, [request("a"), request("a")]))
    refusal(write(tmp_path, [request("a"), "{not json"]))
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("endpoint, body", [
    ("/v1/responses", {"model": "gpt-4.1-mini", "input": [{"role": "user", "content": "hi"}]}),
    ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": ["hi", "there"]}),
])
def test_inputs_of_the_other_text_endpoints_are_checked_alike(tmp_path, endpoint, body):
    lines = [json.dumps({"custom_id": custom_id, "method": "POST", "url": endpoint, "body": body}) for custom_id in ("a", "b")]
    checked = BatchInput(write(tmp_path, lines), endpoint=endpoint).check()
    assert (checked.requests, checked.url, checked.model) == (2, endpoint, body["model"])
    error = refusal(write(tmp_path, lines + [request("c")]), endpoint=endpoint)
    assert "has url '/v1/embeddings', not the batch endpoint %r" % endpoint in str(error) and str(error).startswith("Line 3 of ")
