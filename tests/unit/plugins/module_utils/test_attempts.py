"""A split input's parts with their attempts, from the chain's results: jobs matched to downloads by file ID or S3 URI."""

import json

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.attempts import parts_with_attempts
from ansible_collections.opensearch.ml_commons.plugins.modules import batch_output_merge
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule

SPLIT = [{"index": 1, "path": "/w/in.part-00001.jsonl", "lines": 4}, {"index": 2, "path": "/w/in.part-00002.jsonl", "lines": 4}]


def job(task_id, status, output=None, errors=None, reason=None):
    """An entry of ml_batch_predict's jobs."""
    return {"task_id": task_id, "status": status, "reason": reason,
            "job": {"id": "batch_" + task_id, "output_file_id": output, "error_file_id": errors}}


def download(file_id, dest):
    """An openai_file download result, as a loop registers it."""
    return {"changed": True, "file_id": file_id, "dest": dest, "file": {"id": file_id}, "item": ["ignored"]}


SKIPPED = {"skipped": True, "changed": False, "false_condition": "item.0.job.error_file_id is not none"}


def test_each_part_gets_its_job_and_the_files_downloaded_for_it_whatever_their_names():
    jobs = [job("t1", "COMPLETED", output="file-o1"), job("t2", "EXPIRED", output="file-o2", errors="file-e2", reason="expired")]
    downloads = [download("file-e2", "/r/x.jsonl"), SKIPPED, download("file-o2", "/r/y.jsonl"), download("file-o1", "/r/z.jsonl")]
    assert parts_with_attempts(SPLIT, jobs, downloads=downloads) == [
        {"input": "/w/in.part-00001.jsonl", "attempts": [{"status": "COMPLETED", "reason": None, "output": "/r/z.jsonl", "errors": None}]},
        {"input": "/w/in.part-00002.jsonl", "attempts": [{"status": "EXPIRED", "reason": "expired", "output": "/r/y.jsonl", "errors": "/r/x.jsonl"}]},
    ]


def test_a_bedrock_or_sagemaker_job_gets_the_s3_object_downloaded_for_it_by_its_uri():
    jobs = [dict(job("t1", "COMPLETED"), job={"jobArn": "arn/j1"}, output_uri="s3://b/out/j1/a.out"),
            dict(job("t2", "COMPLETED"), job={"jobArn": "arn/j2"}, output_uri="s3://b/out/j2/b.out")]
    # s3_object's download results: the object's URI and where it went.
    downloads = [{"changed": True, "uri": "s3://b/out/j2/b.out", "dest": "/r/2.jsonl"}, {"changed": True, "uri": "s3://b/out/j1/a.out", "dest": "/r/1.jsonl"}]
    assert [part["attempts"][0]["output"] for part in parts_with_attempts(SPLIT, jobs, downloads=downloads)] == ["/r/1.jsonl", "/r/2.jsonl"]
    with pytest.raises(ConfigurationError, match="ended with the output file s3://b/out/j2/b.out, which is not among the downloads"):
        parts_with_attempts(SPLIT, jobs, downloads=downloads[1:])


def test_a_retry_job_is_the_next_attempt_of_the_part_its_input_names():
    jobs = [job("t1", "COMPLETED", output="o1"), job("t2", "COMPLETED", output="o2", errors="e2")]
    retry_inputs = [{"part": 2, "path": "/w/retry/in.part-00002.retry.jsonl", "lines": 1}]
    downloads = [download(file_id, "/r/" + file_id) for file_id in ("o1", "o2", "e2", "o3")]
    parts = parts_with_attempts(SPLIT, jobs, retry_inputs, [job("t3", "COMPLETED", output="o3")], downloads)
    assert [len(part["attempts"]) for part in parts] == [1, 2]
    assert parts[1]["attempts"][1] == {"status": "COMPLETED", "reason": None, "output": "/r/o3", "errors": None}


def test_a_job_without_files_is_an_attempt_without_files():
    parts = parts_with_attempts(SPLIT[:1], [{"task_id": "t1", "status": "FAILED", "reason": "quota", "job": {}}])
    assert parts[0]["attempts"] == [{"status": "FAILED", "reason": "quota", "output": None, "errors": None}]


def test_a_file_of_a_job_that_was_not_downloaded_is_refused_by_its_id():
    with pytest.raises(ConfigurationError, match=r"part 2 \(task t2\) ended with the errors file file-e2, which is not among the downloads"):
        parts_with_attempts(SPLIT, [job("t1", "COMPLETED", output="o1"), job("t2", "COMPLETED", output="o2", errors="file-e2")],
                            downloads=[download("o1", "/r/1"), download("o2", "/r/2")])


@pytest.mark.parametrize("status, said", [(None, "it waits to be submitted"), ("RUNNING", "RUNNING")])
def test_a_job_that_has_not_ended_is_refused(status, said):
    with pytest.raises(ConfigurationError, match="The job of part 1 has not ended \\(%s\\)" % said):
        parts_with_attempts(SPLIT[:1], [job("t1", status)])


def test_lists_that_do_not_pair_up_are_refused():
    with pytest.raises(ConfigurationError, match="jobs holds 1 job"):
        parts_with_attempts(SPLIT, [job("t1", "COMPLETED")])
    with pytest.raises(ConfigurationError, match="retry_jobs holds 0 job"):
        parts_with_attempts(SPLIT, [job("t1", "COMPLETED"), job("t2", "COMPLETED")], [{"part": 1}], [])
    with pytest.raises(ConfigurationError, match="names part 3, which is not one of the 2 parts"):
        parts_with_attempts(SPLIT, [job("t1", "COMPLETED"), job("t2", "COMPLETED")], [{"part": 3}], [job("t3", "COMPLETED")])


def test_the_merge_of_split_parts_writes_what_the_same_parts_given_whole_write(tmp_path):
    def lines(name, objects):
        path = tmp_path / name
        path.write_text("".join(json.dumps(item) + "\n" for item in objects))
        return str(path)

    def answer(custom_id):
        return {"id": "r-" + custom_id, "custom_id": custom_id, "response": {"status_code": 200, "body": {}}, "error": None}

    split = [{"index": number, "path": lines("in.part-%05d.jsonl" % number, [{"custom_id": "%d-%d" % (number, line)} for line in (1, 2)])}
             for number in (1, 2)]
    # Part 2's job expired after one line; its other line ran in a retry job.
    outputs = [lines("o1", [answer("1-2"), answer("1-1")]), lines("o2", [answer("2-1")]), lines("o3", [answer("2-2")])]
    by_jobs = batch_output_merge.run(FakeModule(
        batch_output_merge, split_parts=split, dest=str(tmp_path / "by_jobs.jsonl"),
        jobs=[job("t1", "COMPLETED", output="f1"), job("t2", "EXPIRED", output="f2", reason="expired")],
        retry_inputs=[{"part": 2}], retry_jobs=[job("t3", "COMPLETED", output="f3")],
        downloads=[download("f%d" % number, path) for number, path in enumerate(outputs, 1)]))
    whole = batch_output_merge.run(FakeModule(batch_output_merge, dest=str(tmp_path / "whole.jsonl"), parts=[
        {"input": split[0]["path"], "attempts": [{"status": "COMPLETED", "output": outputs[0]}]},
        {"input": split[1]["path"], "attempts": [{"status": "EXPIRED", "output": outputs[1]}, {"status": "COMPLETED", "output": outputs[2]}]}]))
    assert (by_jobs["requests"], by_jobs["failed_requests"]) == (whole["requests"], whole["failed_requests"]) == (4, 0)
    assert (tmp_path / "by_jobs.jsonl").read_text() == (tmp_path / "whole.jsonl").read_text()
    assert [json.loads(line)["custom_id"] for line in (tmp_path / "by_jobs.jsonl").read_text().splitlines()] == ["1-1", "1-2", "2-1", "2-2"]
