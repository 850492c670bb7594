"""batch_output_merge as a module: its options and return values, and a run as Ansible runs it (the merge is tested with it, in module_utils)."""

import json
import os
import subprocess
import sys

from ansible_collections.opensearch.ml_commons.plugins.modules import batch_output_merge
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule


def request(custom_id):
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings", "body": {"model": "m", "input": custom_id}}


def answer(custom_id, status=200):
    return {"id": "batch_req_" + custom_id, "custom_id": custom_id, "response": {"status_code": status, "request_id": "req", "body": {}}, "error": None}


def write_lines(path, objects):
    path.write_bytes(b"".join((json.dumps(item) + "\n").encode() for item in objects))
    return str(path)


def run(check_mode=False, **params):
    return batch_output_merge.run(FakeModule(batch_output_merge, check_mode, **params))


def test_output_and_errors_name_the_files_written(tmp_path):
    source = write_lines(tmp_path / "in.jsonl", [request("a"), request("b")])
    output = write_lines(tmp_path / "out.jsonl", [answer("a")])
    errors = write_lines(tmp_path / "err.jsonl", [answer("b", 400)])
    parts = [{"input": source, "attempts": [{"output": output, "errors": errors, "status": "COMPLETED", "reason": None}]}]
    dest, errors_dest = str(tmp_path / "merged.jsonl"), str(tmp_path / "errors.jsonl")
    result = run(parts=parts, dest=dest, errors_dest=errors_dest)
    assert result["changed"] and (result["output"], result["errors"]) == (dest, errors_dest)
    assert (result["requests"], result["succeeded"], result["failed_requests"], result["failed_lines_truncated"]) == (2, 1, 1, False)
    assert result["failed_lines"] == [{"part": 1, "line": 2, "custom_id": "b", "code": "http_400", "reason": "status 400"}]
    assert result["retry_inputs"] == [] and result["diff"]["after"]["output"] == {"path": dest, "bytes": os.path.getsize(dest), "lines": 1}
    # No line failed: no error file, and errors is null.
    parts[0]["attempts"].append({"output": write_lines(tmp_path / "retry.jsonl", [answer("b")]), "errors": None, "status": "COMPLETED", "reason": None})
    result = run(parts=parts, dest=dest, errors_dest=errors_dest)
    assert result["errors"] is None and not os.path.exists(errors_dest)
    # Without dest, nothing is merged and output is null.
    result = run(parts=parts)
    assert (result["output"], result["errors"], result["changed"]) == (None, None, False)


def run_as_ansible_does(arguments, cwd):
    """The module's main() in a process of its own, as Ansible runs it; its JSON result."""
    (cwd / "args.json").write_text(json.dumps({"ANSIBLE_MODULE_ARGS": arguments}))
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    # A failed module exits 1 and says why in its JSON result, which is what the tests look at.
    command = [sys.executable, "-m", batch_output_merge.__name__, "args.json"]
    completed = subprocess.run(command, capture_output=True, env=environment, cwd=str(cwd), check=False)
    return json.loads(completed.stdout)


def test_the_module_runs_as_ansible_runs_it_with_relative_paths(tmp_path):
    write_lines(tmp_path / "in.part-00001.jsonl", [request("a-1"), request("a-2")])
    write_lines(tmp_path / "in.part-00002.jsonl", [request("b-1"), request("b-2")])
    write_lines(tmp_path / "out1.jsonl", [answer("a-2"), answer("a-1")])
    write_lines(tmp_path / "err1.jsonl", [])
    write_lines(tmp_path / "out2.jsonl", [answer("b-1")])
    write_lines(tmp_path / "err2.jsonl", [answer("b-2", 500)])
    parts = [{"input": "in.part-00001.jsonl", "attempts": [{"output": "out1.jsonl", "errors": "err1.jsonl", "status": "COMPLETED"}]},
             {"input": "in.part-00002.jsonl", "attempts": [{"output": "out2.jsonl", "errors": "err2.jsonl", "status": "COMPLETED"}]}]
    arguments = dict(parts=parts, dest="merged.jsonl", errors_dest="errors.jsonl", retry_dir="retry")
    result = run_as_ansible_does(arguments, tmp_path)
    assert result["changed"] and not result.get("failed") and result["failed_requests"] == 1, result
    assert [json.loads(line)["custom_id"] for line in open(str(tmp_path / "merged.jsonl"))] == ["a-1", "a-2", "b-1"]
    assert os.path.isfile(str(tmp_path / "merged.jsonl.merge.json")) and os.listdir(str(tmp_path / "retry")) == ["in.part-00002.retry.jsonl"]
    assert not run_as_ansible_does(arguments, tmp_path)["changed"]


def test_a_bad_line_fails_the_task_with_one_message(tmp_path):
    write_lines(tmp_path / "in.jsonl", [request("a")])
    (tmp_path / "out.jsonl").write_bytes(b"not json\n")
    result = run_as_ansible_does(dict(parts=[{"input": "in.jsonl", "attempts": [{"output": "out.jsonl", "status": "COMPLETED"}]}]), tmp_path)
    assert result["failed"] and result["msg"].startswith("Line 1 of out.jsonl (the output file of attempt 1 of part 1) is not JSON"), result
