"""The merge of batch outputs on files written as OpenAI writes them: input order, failed lines, retries, re-runs, memory."""

import json
import os
import stat
import subprocess
import sys
import textwrap
import tracemalloc

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files import merge
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule

EXPIRED = ("batch_expired", "This request could not be executed before the completion window expired.")


def request(custom_id):
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings", "body": {"model": "m", "input": custom_id}}


def answer(custom_id, status=200):
    body = {"data": [{"embedding": [0.5]}]} if status == 200 else {"error": {"message": "bad input", "type": "invalid_request_error", "code": "bad"}}
    return {"id": "batch_req_" + custom_id, "custom_id": custom_id, "response": {"status_code": status, "request_id": "req", "body": body}, "error": None}


def unrun(custom_id, code_message=EXPIRED):
    return {"id": "batch_req_" + custom_id, "custom_id": custom_id, "response": None, "error": {"code": code_message[0], "message": code_message[1]}}


def write_lines(path, objects):
    path.write_bytes(b"".join((json.dumps(item) + "\n").encode() for item in objects))
    return str(path)


def ids(prefix, count):
    return ["%s-%d" % (prefix, number) for number in range(1, count + 1)]


def merged_ids(path):
    return [json.loads(line)["custom_id"] for line in open(path, "rb")]


def run(check_mode=False, parts=(), dest=None, errors_dest=None, retry_dir=None, mode=None):
    """The merge's outcome as one dict: changed, the counts and failed lines, the diff."""
    changed, before, after, counts = merge.Merge(FakeModule({}, check_mode), list(parts), dest, errors_dest, retry_dir, mode).apply()
    return dict(counts, changed=changed, diff={"before": before, "after": after})


@pytest.fixture
def two_parts(tmp_path):
    """Part 1 completed (answers written out of order, one line failed inside), part 2 expired half way."""
    first, second = ids("a", 4), ids("b", 4)
    inputs = [write_lines(tmp_path / "in.part-00001.jsonl", [request(i) for i in first]),
              write_lines(tmp_path / "in.part-00002.jsonl", [request(i) for i in second])]
    out1 = write_lines(tmp_path / "out1.jsonl", [answer("a-3"), answer("a-1"), answer("a-4")])
    err1 = write_lines(tmp_path / "err1.jsonl", [answer("a-2", 400)])
    out2 = write_lines(tmp_path / "out2.jsonl", [answer("b-2"), answer("b-1")])
    err2 = write_lines(tmp_path / "err2.jsonl", [unrun("b-3"), unrun("b-4")])
    parts = [
        {"input": inputs[0], "attempts": [{"output": out1, "errors": err1, "status": "COMPLETED", "reason": None}]},
        {"input": inputs[1], "attempts": [{"output": out2, "errors": err2, "status": "EXPIRED", "reason": "expired after 24h"}]},
    ]
    return parts, tmp_path


def test_answers_are_merged_in_input_order_across_parts_and_failed_lines_reported(two_parts):
    parts, tmp_path = two_parts
    dest, errors = str(tmp_path / "merged.jsonl"), str(tmp_path / "errors.jsonl")
    result = run(parts=parts, dest=dest, errors_dest=errors, retry_dir=str(tmp_path / "retry"))
    assert result["changed"]
    assert (result["requests"], result["succeeded"], result["failed_requests"]) == (8, 5, 3)
    assert merged_ids(dest) == ["a-1", "a-3", "a-4", "b-1", "b-2"]
    # The answers' bytes are copied as the provider wrote them.
    assert open(dest, "rb").readline() == (json.dumps(answer("a-1")) + "\n").encode()
    assert open(errors, "rb").read() == b"".join((json.dumps(item) + "\n").encode() for item in [answer("a-2", 400), unrun("b-3"), unrun("b-4")])
    assert not result["failed_lines_truncated"]
    assert result["failed_lines"] == [
        {"part": 1, "line": 2, "custom_id": "a-2", "code": "bad", "reason": "bad input"},
        {"part": 2, "line": 3, "custom_id": "b-3", "code": EXPIRED[0], "reason": EXPIRED[1]},
        {"part": 2, "line": 4, "custom_id": "b-4", "code": EXPIRED[0], "reason": EXPIRED[1]},
    ]
    retry1, retry2 = str(tmp_path / "retry" / "in.part-00001.retry.jsonl"), str(tmp_path / "retry" / "in.part-00002.retry.jsonl")
    assert result["retry_inputs"] == [{"part": 1, "path": retry1, "lines": 1}, {"part": 2, "path": retry2, "lines": 2}]
    assert open(retry2, "rb").read() == b"".join((json.dumps(request(i)) + "\n").encode() for i in ["b-3", "b-4"])
    assert result["diff"]["before"] == {"output": None, "errors": None, "retry_inputs": []}
    assert result["diff"]["after"]["output"] == {"path": dest, "bytes": os.path.getsize(dest), "lines": 5}


def test_answers_of_responses_and_completions_are_merged_alike(tmp_path):
    """The answer's shape is the endpoint's: the merge reads only the custom_id, the status and a refusal's error."""
    def line(custom_id, status, body):
        return {"id": "batch_req_" + custom_id, "custom_id": custom_id, "response": {"status_code": status, "request_id": "req", "body": body}, "error": None}

    responses = {"object": "response", "output": [{"type": "message", "id": "msg_1", "role": "assistant",
                                                   "content": [{"type": "output_text", "text": "echo: hi", "annotations": []}]}]}
    completions = {"object": "text_completion", "choices": [{"text": "echo: hi", "index": 0, "logprobs": None, "finish_reason": "stop"}]}
    refused = {"error": {"message": "Missing required parameter: 'input'.", "type": "invalid_request_error", "param": "input",
                         "code": "missing_required_parameter"}}
    for name, body in (("responses", responses), ("completions", completions)):
        source = write_lines(tmp_path / ("%s.part-00001.jsonl" % name), [request(i) for i in ids(name, 3)])
        output = write_lines(tmp_path / ("%s.out.jsonl" % name), [line(name + "-3", 200, body), line(name + "-1", 200, body)])
        errors = write_lines(tmp_path / ("%s.err.jsonl" % name), [line(name + "-2", 400, refused)])
        dest = str(tmp_path / ("%s.merged.jsonl" % name))
        result = run(parts=[{"input": source, "attempts": [{"output": output, "errors": errors, "status": "COMPLETED", "reason": None}]}],
                     dest=dest, errors_dest=str(tmp_path / ("%s.errors.jsonl" % name)), retry_dir=str(tmp_path / ("%s.retry" % name)))
        assert (result["requests"], result["succeeded"], result["failed_requests"]) == (3, 2, 1)
        assert [json.loads(text)["response"]["body"] for text in open(dest, "rb")] == [body, body]
        assert merged_ids(dest) == [name + "-1", name + "-3"]
        assert result["failed_lines"] == [{"part": 1, "line": 2, "custom_id": name + "-2", "code": "missing_required_parameter",
                                           "reason": "Missing required parameter: 'input'."}]


def test_a_failed_part_without_files_fails_every_line_with_the_jobs_reason(tmp_path):
    source = write_lines(tmp_path / "in.jsonl", [request(i) for i in ids("a", 3)])
    parts = [{"input": source, "attempts": [{"output": None, "errors": None, "status": "FAILED", "reason": "credentials refused"}]}]
    errors = str(tmp_path / "errors.jsonl")
    result = run(parts=parts, dest=str(tmp_path / "merged.jsonl"), errors_dest=errors)
    assert (result["succeeded"], result["failed_requests"]) == (0, 3)
    assert [line["code"] for line in result["failed_lines"]] == ["batch_failed"] * 3
    expected = {"custom_id": "a-1", "response": None, "error": {"code": "batch_failed", "message": "credentials refused"}}
    assert [json.loads(line) for line in open(errors, "rb")][0] == expected
    assert os.path.getsize(str(tmp_path / "merged.jsonl")) == 0


def test_a_part_never_submitted_and_one_without_attempts(tmp_path):
    first = write_lines(tmp_path / "one.jsonl", [request("a")])
    second = write_lines(tmp_path / "two.jsonl", [request("b")])
    result = run(parts=[{"input": first, "attempts": [{"output": None, "errors": None, "status": None, "reason": None}]},
                        {"input": second, "attempts": []}])
    assert [(line["code"], line["reason"]) for line in result["failed_lines"]] == [
        ("not_submitted", "No batch job ran for this part."), ("no_answer", "No attempt answered this line.")]
    assert result["retry_inputs"] == [] and result["diff"]["after"] == {"output": None, "errors": None, "retry_inputs": []}


def test_a_retry_fills_the_failed_lines_in_place_and_removes_what_is_stale(two_parts):
    parts, tmp_path = two_parts
    dest, errors, retry = str(tmp_path / "merged.jsonl"), str(tmp_path / "errors.jsonl"), str(tmp_path / "retry")
    run(parts=parts, dest=dest, errors_dest=errors, retry_dir=retry)
    # The retry of part 1 answers its line; the retry of part 2 answers b-4 and expires again for b-3.
    parts[0]["attempts"].append({"output": write_lines(tmp_path / "retry1.out.jsonl", [answer("a-2")]), "errors": None,
                                 "status": "COMPLETED", "reason": None})
    parts[1]["attempts"].append({"output": write_lines(tmp_path / "retry2.out.jsonl", [answer("b-4")]), "errors": None,
                                 "status": "EXPIRED", "reason": "expired again"})
    result = run(parts=parts, dest=dest, errors_dest=errors, retry_dir=retry)
    assert result["changed"] and merged_ids(dest) == ["a-1", "a-2", "a-3", "a-4", "b-1", "b-2", "b-4"]
    assert result["failed_lines"] == [{"part": 2, "line": 3, "custom_id": "b-3", "code": "batch_expired", "reason": "expired again"}]
    assert not os.path.exists(os.path.join(retry, "in.part-00001.retry.jsonl"))
    assert merged_ids(os.path.join(retry, "in.part-00002.retry.jsonl")) == ["b-3"]
    # A last retry answers everything: no error file, no retry input.
    parts[1]["attempts"].append({"output": write_lines(tmp_path / "retry3.out.jsonl", [answer("b-3")]), "errors": None,
                                 "status": "COMPLETED", "reason": None})
    predicted = run(check_mode=True, parts=parts, dest=dest, errors_dest=errors, retry_dir=retry)
    assert predicted["changed"] and predicted["diff"]["after"]["errors"] is None and os.path.exists(errors) and len(os.listdir(retry)) == 1
    result = run(parts=parts, dest=dest, errors_dest=errors, retry_dir=retry)
    assert result["failed_requests"] == 0 and result["diff"]["after"]["errors"] is None and result["retry_inputs"] == []
    assert not os.path.exists(errors) and os.listdir(retry) == []
    assert merged_ids(dest) == ids("a", 4) + ids("b", 4)


def test_the_first_successful_answer_stands(tmp_path):
    source = write_lines(tmp_path / "in.jsonl", [request("a")])
    first, later = answer("a"), dict(answer("a"), id="batch_req_later")
    attempts = [{"output": write_lines(tmp_path / name, [line]), "errors": None, "status": "COMPLETED", "reason": None}
                for name, line in (("first.jsonl", first), ("later.jsonl", later))]
    dest = str(tmp_path / "merged.jsonl")
    run(parts=[{"input": source, "attempts": attempts}], dest=dest)
    assert json.loads(open(dest).read())["id"] == "batch_req_a"


def test_a_rerun_reads_and_writes_nothing(two_parts):
    parts, tmp_path = two_parts
    params = dict(parts=parts, dest=str(tmp_path / "merged.jsonl"), errors_dest=str(tmp_path / "errors.jsonl"), retry_dir=str(tmp_path / "retry"))
    first = run(**params)
    written = [params["dest"], params["errors_dest"], params["dest"] + ".merge.json"] + [entry["path"] for entry in first["retry_inputs"]]
    stamps = [os.stat(path).st_mtime_ns for path in written]
    # Without reading: the same size and time over other bytes would fail a merge that read them.
    output = parts[1]["attempts"][0]["output"]
    stat = os.stat(output)
    with open(output, "r+b") as handle:
        handle.write(b"x" * stat.st_size)
    os.utime(output, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = run(**params)
    assert not again["changed"]
    assert [os.stat(path).st_mtime_ns for path in written] == stamps
    assert dict(again, diff=None, changed=True) == dict(first, diff=None)
    assert again["diff"]["before"] == again["diff"]["after"]


def test_a_rerun_with_touched_sources_merges_again_but_changes_nothing(two_parts):
    parts, tmp_path = two_parts
    dest = str(tmp_path / "merged.jsonl")
    params = dict(dest=dest, errors_dest=str(tmp_path / "errors.jsonl"), retry_dir=str(tmp_path / "retry"))
    first = run(parts=parts, **params)
    written = [dest, params["errors_dest"]] + [entry["path"] for entry in first["retry_inputs"]]
    stamps = [os.stat(path).st_mtime_ns for path in written]
    os.utime(parts[0]["attempts"][0]["output"], ns=(1, 1))
    assert not run(parts=parts, **params)["changed"]
    assert [os.stat(path).st_mtime_ns for path in written] == stamps
    # A source downloaded again with other content is merged again.
    write_lines(tmp_path / "out1.jsonl", [answer("a-2"), answer("a-3"), answer("a-1"), answer("a-4")])
    assert run(parts=parts, dest=dest)["changed"]
    assert merged_ids(dest) == ["a-1", "a-2", "a-3", "a-4", "b-1", "b-2"]


def test_check_mode_predicts_and_writes_nothing(two_parts):
    parts, tmp_path = two_parts
    params = dict(parts=parts, dest=str(tmp_path / "merged.jsonl"), errors_dest=str(tmp_path / "errors.jsonl"), retry_dir=str(tmp_path / "retry"))
    before = sorted(os.listdir(str(tmp_path)))
    result = run(check_mode=True, **params)
    assert result["changed"] and result["failed_requests"] == 3
    assert result["diff"]["after"]["output"]["lines"] == 5
    assert sorted(os.listdir(str(tmp_path))) == before
    run(**params)
    assert not run(check_mode=True, **params)["changed"]
    # Without the manifest the merge reads everything again, and the diff counts the lines that are there.
    os.remove(params["dest"] + ".merge.json")
    result = run(check_mode=True, **params)
    assert not result["changed"] and result["diff"]["before"] == result["diff"]["after"]
    assert result["diff"]["before"]["output"]["lines"] == 5
    os.remove(params["errors_dest"])
    assert run(check_mode=True, **params)["changed"] and not os.path.exists(params["errors_dest"])


def test_more_than_a_hundred_failed_lines_are_truncated(tmp_path):
    source = write_lines(tmp_path / "in.jsonl", [request(i) for i in ids("a", 150)])
    result = run(parts=[{"input": source, "attempts": [{"output": None, "errors": None, "status": "CANCELLED", "reason": None}]}])
    assert result["failed_requests"] == 150 and len(result["failed_lines"]) == 100 and result["failed_lines_truncated"]
    assert result["failed_lines"][0]["code"] == "batch_cancelled"


def test_lines_in_another_key_order_or_with_escapes_are_read_as_json(tmp_path):
    source = write_lines(tmp_path / "in.jsonl", [{"method": "POST", "custom_id": 'q"1', "url": "/v1/embeddings", "body": {}}])
    output = tmp_path / "out.jsonl"
    line = json.dumps({"custom_id": 'q"1', "error": None, "response": {"body": {}, "status_code": 200}}) + "\n"
    output.write_bytes(line.encode())
    dest = str(tmp_path / "merged.jsonl")
    result = run(parts=[{"input": source, "attempts": [{"output": str(output), "errors": None, "status": "COMPLETED", "reason": None}]}], dest=dest)
    assert result["succeeded"] == 1 and open(dest).read() == line


@pytest.mark.parametrize("line, problem", [
    (b'{"custom_id": "a-1", "response": {"status_code": 200, "body": {"trunc', "Line 2 of .*out.jsonl .* is not JSON"),
    (b'{"id": "x", "response": null}', "Line 2 of .*out.jsonl .* has no custom_id"),
    (json.dumps(answer("z-9")).encode(), "Line 2 of .*out.jsonl .* answers the custom_id 'z-9', which the part's input .* does not hold"),
])
def test_a_bad_output_line_fails_naming_file_and_line(tmp_path, line, problem):
    source = write_lines(tmp_path / "in.jsonl", [request(i) for i in ids("a", 2)])
    output = tmp_path / "out.jsonl"
    output.write_bytes((json.dumps(answer("a-1")) + "\n").encode() + line + b"\n")
    dest = tmp_path / "merged.jsonl"
    with pytest.raises(ConfigurationError, match=problem):
        run(parts=[{"input": source, "attempts": [{"output": str(output), "errors": None, "status": "COMPLETED", "reason": None}]}], dest=str(dest))
    assert os.listdir(str(tmp_path)) == ["in.jsonl", "out.jsonl"]


def test_a_missing_input_and_repeated_custom_ids_fail_clearly(tmp_path):
    with pytest.raises(ConfigurationError, match="The input of part 1, .*nowhere.jsonl, does not exist"):
        run(parts=[{"input": str(tmp_path / "nowhere.jsonl"), "attempts": []}])
    source = write_lines(tmp_path / "in.jsonl", [request("a"), request("a")])
    with pytest.raises(ConfigurationError, match=r"Line 2 of .*in.jsonl \(the input of part 1\) repeats the custom_id 'a'"):
        run(parts=[{"input": source, "attempts": []}])
    (tmp_path / "in.jsonl").write_bytes(b'{"method": "POST"}\n')
    with pytest.raises(ConfigurationError, match=r"Line 1 of .*in.jsonl \(the input of part 1\) has no custom_id. Give each part the input"):
        run(parts=[{"input": source, "attempts": []}])


def test_a_missing_output_file_and_destinations_that_cannot_be_written_fail_clearly(tmp_path):
    source = write_lines(tmp_path / "in.jsonl", [request("a")])
    missing = str(tmp_path / "out.jsonl")
    with pytest.raises(ConfigurationError, match="The output file of attempt 1 of part 1, .*out.jsonl, does not exist. Download it first"):
        run(parts=[{"input": source, "attempts": [{"output": missing, "errors": None, "status": "COMPLETED", "reason": None}]}])
    with pytest.raises(ConfigurationError, match="dest is .*in.jsonl, which is also one of the files to merge"):
        run(parts=[{"input": source, "attempts": []}], dest=source)
    with pytest.raises(ConfigurationError, match="Cannot write errors_dest .*: the directory .*nowhere does not exist"):
        run(check_mode=True, parts=[{"input": source, "attempts": []}], errors_dest=str(tmp_path / "nowhere" / "errors.jsonl"))


def test_parts_whose_retry_inputs_would_collide_are_refused(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    parts = [{"input": write_lines(tmp_path / folder / "in.jsonl", [request(folder)]), "attempts": []} for folder in ("x", "y")]
    with pytest.raises(ConfigurationError, match="Parts 1 and 2 have inputs of the same name"):
        run(parts=parts, retry_dir=str(tmp_path / "retry"))


# The peak of this process's own memory (VmHWM): ru_maxrss would keep the peak of the pytest process it was
# forked from, which Linux carries across exec.
MEMORY_SCRIPT = textwrap.dedent("""
    import json, sys
    from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.merge import Merge
    from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule
    params = json.loads(sys.argv[1])
    counts = Merge(FakeModule({}), **params).apply()[3]
    with open("/proc/self/status") as status:
        peak_kb = int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
    print(json.dumps({"succeeded": counts["succeeded"], "rss_kb": peak_kb}))
""")


def test_memory_stays_flat_for_a_200_mb_output(tmp_path):
    lines, parts = 5000, []
    padding = "0.123456789," * 1700  # about 20 KB, as an embedding's answer line
    for number in (1, 2):
        custom_ids = ids("p%d" % number, lines)
        source = write_lines(tmp_path / ("in%d.jsonl" % number), [request(i) for i in custom_ids])
        output = tmp_path / ("out%d.jsonl" % number)
        with open(str(output), "wb") as handle:
            for custom_id in reversed(custom_ids):
                handle.write(('{"id": "batch_req_1", "custom_id": "%s", "response": {"status_code": 200, "request_id": "r", '
                              '"body": {"data": [%s0]}}, "error": null}\n' % (custom_id, padding)).encode())
        parts.append({"input": source, "attempts": [{"output": str(output), "errors": None, "status": "COMPLETED", "reason": None}]})
    dest = tmp_path / "merged.jsonl"
    params = dict(parts=parts, dest=str(dest), errors_dest=None, retry_dir=None)
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    completed = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, json.dumps(params)], capture_output=True, env=environment, check=True)
    measured = json.loads(completed.stdout)
    assert measured["succeeded"] == 2 * lines
    assert os.path.getsize(str(dest)) > 200 * 1000 * 1000
    assert measured["rss_kb"] < 100 * 1024, measured


def merge_peak_bytes(tmp_path, parts_count, lines):
    """The peak of memory allocated while merging ``parts_count`` parts of ``lines`` short lines each."""
    parts = []
    for number in range(1, parts_count + 1):
        custom_ids = ids("p%d" % number, lines)
        source = write_lines(tmp_path / ("in-%d-%d.jsonl" % (parts_count, number)), [request(i) for i in custom_ids])
        output = write_lines(tmp_path / ("out-%d-%d.jsonl" % (parts_count, number)), [answer(i) for i in custom_ids])
        parts.append({"input": source, "attempts": [{"output": output, "errors": None, "status": "COMPLETED", "reason": None}]})
    tracemalloc.start()
    try:
        result = run(parts=parts, dest=str(tmp_path / ("merged-%d.jsonl" % parts_count)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result["succeeded"] == parts_count * lines
    return peak


def test_memory_holds_one_part_at_a_time_whatever_the_number_of_parts(tmp_path):
    # Each line's index (custom_id, where its answer is) is what a part costs; 8 parts peak about as 1 does.
    one = merge_peak_bytes(tmp_path, 1, 5000)
    eight = merge_peak_bytes(tmp_path, 8, 5000)
    assert eight < 1.5 * one, (one, eight)


def test_runs_of_answers_are_copied_as_they_are_and_a_last_line_gets_its_newline(tmp_path):
    first, second = ids("a", 3), ids("b", 3)
    out1 = write_lines(tmp_path / "out1.jsonl", [answer(i) for i in first])
    out2 = tmp_path / "out2.jsonl"
    out2.write_bytes(b"".join((json.dumps(answer(i)) + "\n").encode() for i in second).rstrip(b"\n"))
    parts = [{"input": write_lines(tmp_path / "in1.jsonl", [request(i) for i in first]), "attempts": [{"output": out1, "status": "COMPLETED"}]},
             {"input": write_lines(tmp_path / "in2.jsonl", [request(i) for i in second]), "attempts": [{"output": str(out2), "status": "COMPLETED"}]}]
    dest = tmp_path / "merged.jsonl"
    result = run(parts=parts, dest=str(dest))
    assert result["changed"] and result["succeeded"] == 6
    assert dest.read_bytes() == b"".join((json.dumps(answer(i)) + "\n").encode() for i in first + second)
    assert run(parts=parts, dest=str(dest))["changed"] is False


def test_a_merge_again_replaces_only_the_files_whose_content_differs(two_parts):
    parts, tmp_path = two_parts
    params = dict(dest=str(tmp_path / "merged.jsonl"), errors_dest=str(tmp_path / "errors.jsonl"), retry_dir=str(tmp_path / "retry"))
    first = run(parts=parts, **params)
    untouched = [params["errors_dest"]] + [entry["path"] for entry in first["retry_inputs"]]
    for path in untouched + [params["dest"]]:
        os.utime(path, ns=(1, 1))
    # b-1 answered with other bytes: the merged output differs, the failures do not.
    write_lines(tmp_path / "out2.jsonl", [answer("b-2"), dict(answer("b-1"), id="batch_req_other")])
    result = run(parts=parts, **params)
    assert result["changed"] and json.loads(open(params["dest"]).readlines()[3])["id"] == "batch_req_other"
    assert os.stat(params["dest"]).st_mtime_ns != 1
    assert [os.stat(path).st_mtime_ns for path in untouched] == [1] * len(untouched)
    assert sorted(os.listdir(str(tmp_path / "retry"))) == ["in.part-00001.retry.jsonl", "in.part-00002.retry.jsonl"]


def test_a_merge_that_fails_half_way_leaves_the_files_as_they_were(two_parts):
    parts, tmp_path = two_parts
    params = dict(dest=str(tmp_path / "merged.jsonl"), errors_dest=str(tmp_path / "errors.jsonl"), retry_dir=str(tmp_path / "retry"))
    run(parts=parts, **params)
    listing = sorted(os.listdir(str(tmp_path))), sorted(os.listdir(params["retry_dir"]))
    contents = dict((path, open(path, "rb").read()) for path in (params["dest"], params["errors_dest"]))
    with open(parts[1]["attempts"][0]["output"], "ab") as handle:
        handle.write(b"not json\n")
    with pytest.raises(ConfigurationError, match="Line 3 of .*out2.jsonl .* is not JSON"):
        run(parts=parts, **params)
    assert (sorted(os.listdir(str(tmp_path))), sorted(os.listdir(params["retry_dir"]))) == listing
    assert dict((path, open(path, "rb").read()) for path in contents) == contents


def modes_of(*paths):
    return [stat.S_IMODE(os.stat(path).st_mode) for path in paths]


@pytest.mark.usefixtures("open_umask")
def test_outputs_retry_inputs_and_the_retry_directory_are_private_whatever_the_umask_and_mode_sets_others(two_parts):
    parts, tmp_path = two_parts
    dest, errors, retry = str(tmp_path / "merged.jsonl"), str(tmp_path / "errors.jsonl"), str(tmp_path / "retry" / "new")
    run(parts=parts, dest=dest, errors_dest=errors, retry_dir=retry)
    retried = [os.path.join(retry, name) for name in sorted(os.listdir(retry))]
    assert modes_of(dest, errors, dest + ".merge.json", *retried) == [0o600] * 5
    assert modes_of(str(tmp_path / "retry"), retry) == [0o700, 0o700]
    # The manifest shows the merge done: only the permissions change, and that is a change.
    assert run(parts=parts, dest=dest, errors_dest=errors, retry_dir=retry, mode="0640")["changed"]
    assert modes_of(dest, errors, *retried) == [0o640] * 4 and modes_of(dest + ".merge.json") == [0o600]
    assert not run(parts=parts, dest=dest, errors_dest=errors, retry_dir=retry, mode="0640")["changed"]
