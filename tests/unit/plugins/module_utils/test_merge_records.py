"""The merge of Bedrock's and SageMaker's batch outputs: Bedrock's records put in input order by recordId,
SageMaker's lines by place, each merged line the provider's record as written."""

import json

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files import merge
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule


def write_lines(path, objects):
    path.write_bytes(b"".join((json.dumps(item) + "\n").encode() for item in objects))
    return str(path)


def record(record_id):
    return {"recordId": record_id, "modelInput": {"inputText": "text " + record_id}}


def answered(record_id):
    return dict(record(record_id), modelOutput={"embedding": [0.5], "inputTextTokenCount": 2})


def refused(record_id):
    return dict(record(record_id), error={"errorCode": 400, "errorMessage": "Malformed input request"})


def run(parts, record_format, dest=None, errors_dest=None, check_mode=False):
    changed, _before, _after, counts = merge.Merge(FakeModule({}, check_mode), parts, dest, errors_dest, record_format=record_format).apply()
    return dict(counts, changed=changed)


def test_bedrock_records_are_put_in_input_order_by_record_id_as_written(tmp_path):
    ids = ["r%03d" % number for number in range(6)]
    source = write_lines(tmp_path / "input.jsonl", [record(record_id) for record_id in ids])
    # Bedrock writes its records in an order of its own.
    output = tmp_path / "input.jsonl.out"
    written = [answered("r003"), answered("r000"), refused("r005"), answered("r001"), answered("r004"), answered("r002")]
    output.write_bytes(b"".join((json.dumps(item, separators=(",", ":")) + "\n").encode() for item in written))
    dest, errors = tmp_path / "merged.jsonl", tmp_path / "errors.jsonl"
    result = run([{"input": source, "attempts": [{"output": str(output), "status": "COMPLETED"}]}], "bedrock", str(dest), str(errors))
    assert result["changed"] and result["requests"] == 6 and result["succeeded"] == 5 and result["failed_requests"] == 1
    lines = dest.read_bytes().splitlines()
    assert [json.loads(line)["recordId"] for line in lines] == ids[:5]
    # Each line as Bedrock wrote it, byte for byte.
    assert lines[0] == json.dumps(answered("r000"), separators=(",", ":")).encode()
    assert result["failed_lines"] == [{"part": 1, "line": 6, "custom_id": "r005", "code": "400", "reason": "Malformed input request"}]
    assert json.loads(errors.read_bytes()) == refused("r005")
    assert not run([{"input": source, "attempts": [{"output": str(output), "status": "COMPLETED"}]}], "bedrock", str(dest), str(errors))["changed"]


def test_bedrock_records_missing_from_the_output_are_failed_lines(tmp_path):
    source = write_lines(tmp_path / "input.jsonl", [record("a"), record("b"), record("c")])
    output = write_lines(tmp_path / "out", [answered("c"), answered("a")])
    errors = tmp_path / "errors.jsonl"
    result = run([{"input": source, "attempts": [{"output": output, "status": "COMPLETED"}]}], "bedrock", str(tmp_path / "m"), str(errors))
    assert result["failed_requests"] == 1 and result["failed_lines"][0]["custom_id"] == "b"
    assert result["failed_lines"][0]["code"] == "no_answer"
    assert json.loads(errors.read_bytes())["recordId"] == "b"


@pytest.mark.parametrize("line, problem", [
    ({"modelInput": {"inputText": "x"}}, "has no recordId"),
    ({"recordId": "", "modelInput": {}}, "has no recordId"),
    ("not json", "is not JSON"),
])
def test_a_bedrock_record_without_record_id_fails_naming_the_line(tmp_path, line, problem):
    source = tmp_path / "input.jsonl"
    source.write_bytes((json.dumps(record("a")) + "\n" + (line if isinstance(line, str) else json.dumps(line)) + "\n").encode())
    with pytest.raises(ConfigurationError, match="Line 2 of .*input.jsonl .*%s" % problem):
        run([{"input": str(source)}], "bedrock")


def test_a_repeated_record_id_fails_and_an_answer_to_no_record_too(tmp_path):
    source = write_lines(tmp_path / "input.jsonl", [record("a"), record("a")])
    with pytest.raises(ConfigurationError, match="repeats the recordId 'a'"):
        run([{"input": source}], "bedrock")
    source = write_lines(tmp_path / "input.jsonl", [record("a")])
    output = write_lines(tmp_path / "out", [answered("z")])
    with pytest.raises(ConfigurationError, match="answers the recordId 'z'"):
        run([{"input": source, "attempts": [{"output": output, "status": "COMPLETED"}]}], "bedrock", str(tmp_path / "m"))


def test_a_check_of_the_input_alone_counts_its_records(tmp_path):
    source = write_lines(tmp_path / "input.jsonl", [record("r%d" % number) for number in range(150)])
    result = run([{"input": source}], "bedrock")
    assert result["requests"] == 150 and not result["changed"]


def test_sagemaker_lines_are_answered_by_place(tmp_path):
    source = write_lines(tmp_path / "input.jsonl", [{"id": number, "content": "text %d" % number} for number in range(3)])
    output = write_lines(tmp_path / "input.jsonl.out", [{"id": number, "content": "text %d" % number, "SageMakerOutput": [0.1]} for number in range(3)])
    dest = tmp_path / "merged.jsonl"
    result = run([{"input": source, "attempts": [{"output": output, "status": "COMPLETED"}]}], "sagemaker", str(dest))
    assert result["succeeded"] == 3 and dest.read_bytes() == open(output, "rb").read()


def test_a_sagemaker_output_short_of_lines_leaves_them_failed_and_one_too_long_fails(tmp_path):
    source = write_lines(tmp_path / "input.jsonl", [{"content": "x"}, {"content": "y"}])
    short = write_lines(tmp_path / "short.out", [{"content": "x", "SageMakerOutput": [1]}])
    result = run([{"input": source, "attempts": [{"output": short, "status": "COMPLETED"}]}], "sagemaker", str(tmp_path / "m"))
    assert result["failed_requests"] == 1 and result["failed_lines"][0]["line"] == 2
    long = write_lines(tmp_path / "long.out", [{"content": "x"}, {"content": "y"}, {"content": "z"}])
    with pytest.raises(ConfigurationError, match="Line 3 of .*long.out .*answers the line '3'"):
        run([{"input": source, "attempts": [{"output": long, "status": "COMPLETED"}]}], "sagemaker", str(tmp_path / "m"))


def test_a_failed_job_fails_every_record_with_its_status(tmp_path):
    source = write_lines(tmp_path / "input.jsonl", [record("a"), record("b")])
    result = run([{"input": source, "attempts": [{"status": "FAILED", "reason": "The role was refused"}]}], "bedrock", str(tmp_path / "m"))
    assert [line["code"] for line in result["failed_lines"]] == ["batch_failed", "batch_failed"]
    assert result["failed_lines"][0]["reason"] == "The role was refused"
