"""Tests for the emulator's Bedrock and SageMaker side (tests/testbed/aws_emulator.py, served by openai_emulator.py).

AWS's own clients (botocore) call it, against moto's S3 server, both in-process on ephemeral ports; a fake
clock (starting now, since signatures are checked against the clock) steps through the job statuses.
"""

import hashlib
import importlib
import json
import pathlib
import sys
import threading

import pytest
import requests

TESTBED_DIR = str(pathlib.Path(__file__).resolve().parents[2] / "testbed")


def load_testbed_script(name):
    """One of the test bed's scripts, imported when a test needs it: botocore, moto and Flask imported at collection
    would weigh on the process of every test that runs before these (their subprocesses' peak RSS included).
    The scripts import each other by name, as when run from their directory; the path is put back at once."""
    pytest.importorskip("botocore")
    sys.path.insert(0, TESTBED_DIR)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(TESTBED_DIR)


def sign(method, url, body, service, secret, region="us-east-1", headers=None):
    """The headers of a request signed as AWS's SDKs sign it."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {"Content-Type": "application/json"})
    SigV4Auth(Credentials(ACCESS_KEY, secret), service, region).add_auth(request)
    return dict(request.headers.items())


ACCESS_KEY, SECRET_KEY = "AKIATESTBED000000001", "testbed-secret-key-0123456789"
ROLE = "arn:aws:iam::123456789012:role/batch"
BUCKET = "batch-bucket"


class FakeClock:
    def __init__(self):
        import time
        self.now = time.time()

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def s3_endpoint():
    # Imported here, when these tests run: moto and Flask at collection time would weigh on every later test's process.
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bed(s3_endpoint):
    load_testbed_script("aws_emulator")  # which openai_emulator imports when it serves AWS
    openai_emulator = load_testbed_script("openai_emulator")
    from botocore.config import Config
    from botocore.exceptions import ClientError
    from botocore.session import get_session
    clock = FakeClock()
    timings = openai_emulator.Timings(validating=2, in_progress=10, finalizing=1, cancelling=1)
    aws = {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "s3_endpoint": s3_endpoint}
    server = openai_emulator.make_server("127.0.0.1", 0, "sk-test", timings=timings, clock=clock, aws=aws)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    url = "http://127.0.0.1:%d" % server.server_address[1]
    session = get_session()
    options = {"region_name": "us-east-1", "aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY,
               "config": Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"})}
    s3 = session.create_client("s3", endpoint_url=s3_endpoint, **options)
    try:
        s3.create_bucket(Bucket=BUCKET)
    except ClientError:
        pass
    yield Bed(url, clock, s3, session.create_client("bedrock", endpoint_url=url + "/bedrock", **options),
              session.create_client("sagemaker", endpoint_url=url + "/sagemaker", **options))
    server.shutdown()
    server.server_close()
    thread.join()


class Bed:
    def __init__(self, url, clock, s3, bedrock, sagemaker):
        self.url, self.clock, self.s3, self.bedrock, self.sagemaker = url, clock, s3, bedrock, sagemaker
        from botocore.exceptions import ClientError
        self.client_error = ClientError

    def put_lines(self, key, lines):
        self.s3.put_object(Bucket=BUCKET, Key=key, Body="".join(json.dumps(line) + "\n" for line in lines).encode())

    def lines(self, key):
        text = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
        return [json.loads(line) for line in text.splitlines() if line]

    def stats(self):
        return requests.get(self.url + "/openai/_emulator/stats", timeout=10).json()

    def bedrock_job(self, name, prefix, model="amazon.titan-embed-text-v2:0"):
        return self.bedrock.create_model_invocation_job(
            jobName=name, roleArn=ROLE, modelId=model,
            inputDataConfig={"s3InputDataConfig": {"s3Uri": f"s3://{BUCKET}/{prefix}/input.jsonl"}},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/{prefix}/out/"}})["jobArn"]


def records(count):
    return [{"recordId": "r%03d" % number, "modelInput": {"inputText": "text %d" % number}} for number in range(count)]


def signed(method, url, body, service, secret=SECRET_KEY, region="us-east-1", headers=None):
    return requests.request(method, url, data=body, headers=sign(method, url, body, service, secret, region, headers), timeout=10)


def test_bedrock_job_runs_through_its_statuses_and_writes_output_and_manifest(bed):
    bed.put_lines("b1/input.jsonl", records(101))
    arn = bed.bedrock_job("job-one", "b1")
    job_id = arn.rsplit("/", 1)[1]
    assert arn == f"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{job_id}"
    seen = []
    for step in (0, 1.5, 1, 10, 2):
        bed.clock.now += step
        seen.append(bed.bedrock.get_model_invocation_job(jobIdentifier=arn)["status"])
    assert seen == ["Submitted", "Validating", "InProgress", "InProgress", "Completed"]
    job = bed.bedrock.get_model_invocation_job(jobIdentifier=arn)
    assert job["jobName"] == "job-one" and job["roleArn"] == ROLE and "endTime" in job
    assert job["totalRecordCount"] == job["successRecordCount"] == 101
    output = bed.lines(f"b1/out/{job_id}/input.jsonl.out")
    assert [line["recordId"] for line in output] != ["r%03d" % number for number in range(101)]  # not in input order
    assert sorted(line["recordId"] for line in output) == ["r%03d" % number for number in range(101)]
    first = next(line for line in output if line["recordId"] == "r000")
    assert first["modelInput"] == {"inputText": "text 0"}
    assert len(first["modelOutput"]["embedding"]) == 8 and first["modelOutput"]["inputTextTokenCount"] == 2
    manifest = json.loads(bed.s3.get_object(Bucket=BUCKET, Key=f"b1/out/{job_id}/manifest.json.out")["Body"].read())
    assert manifest["totalRecordCount"] == 101 and manifest["errorRecordCount"] == 0
    stats = bed.stats()
    assert stats["bedrock_jobs_created"] == 1
    assert stats["requests"]["POST /model-invocation-job"] == 1
    assert stats["requests"]["GET /model-invocation-job/{jobIdentifier}"] == 6


def test_bedrock_status_url_as_ml_commons_sends_it_with_the_arn_slash_as_percent_2f(bed):
    bed.put_lines("b2/input.jsonl", records(100))
    arn = bed.bedrock_job("job-two", "b2")
    url = bed.url + "/bedrock/model-invocation-job/" + arn.replace("/", "%2F")
    answer = signed("GET", url, b"", "bedrock")
    assert answer.status_code == 200, answer.text
    assert answer.json()["jobArn"] == arn
    stopped = signed("POST", url + "/stop", b"", "bedrock")
    assert stopped.status_code == 200, stopped.text
    assert bed.bedrock.get_model_invocation_job(jobIdentifier=arn)["status"] == "Stopping"
    bed.clock.now += 2
    assert bed.bedrock.get_model_invocation_job(jobIdentifier=arn)["status"] == "Stopped"
    with pytest.raises(bed.client_error, match="ValidationException"):
        bed.bedrock.stop_model_invocation_job(jobIdentifier=arn)


def test_bedrock_refuses_a_second_job_of_the_same_name_and_a_malformed_role(bed):
    bed.put_lines("b3/input.jsonl", records(100))
    bed.bedrock_job("same-name", "b3")
    with pytest.raises(bed.client_error) as refused:
        bed.bedrock_job("same-name", "b3")
    assert refused.value.response["Error"]["Code"] == "ConflictException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(bed.client_error, match="ValidationException"):
        bed.bedrock.create_model_invocation_job(
            jobName="bad-role", roleArn="not-a-role", modelId="m",
            inputDataConfig={"s3InputDataConfig": {"s3Uri": f"s3://{BUCKET}/b3/input.jsonl"}},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/b3/out/"}})
    assert bed.stats()["bedrock_jobs_created"] == 1


def test_bedrock_lists_jobs(bed):
    bed.put_lines("b4/input.jsonl", records(100))
    arns = [bed.bedrock_job(name, "b4") for name in ("list-a", "list-b")]
    listed = bed.bedrock.list_model_invocation_jobs(nameContains="list-")["invocationJobSummaries"]
    assert sorted(job["jobArn"] for job in listed) == sorted(arns)
    assert bed.stats()["requests"]["GET /model-invocation-jobs"] == 1


@pytest.mark.parametrize("lines, message", [
    (None, "No .jsonl input file"),
    (records(99), "fewer than the minimum of 100"),
])
def test_bedrock_job_fails_validation_without_input_or_with_too_few_records(bed, lines, message):
    prefix = "b5-%s" % ("none" if lines is None else len(lines))
    if lines is not None:
        bed.put_lines(f"{prefix}/input.jsonl", lines)
    arn = bed.bedrock_job("job-" + prefix, prefix)
    bed.clock.now += 2.5
    job = bed.bedrock.get_model_invocation_job(jobIdentifier=arn)
    assert job["status"] == "Failed" and message in job["message"]
    assert "Contents" not in bed.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/out/")


def test_bedrock_record_without_input_text_is_an_error_line_and_the_job_partially_completed(bed):
    lines = records(100) + [{"recordId": "bad", "modelInput": {"prompt": "x"}}]
    bed.put_lines("b6/input.jsonl", lines)
    arn = bed.bedrock_job("job-partial", "b6")
    bed.clock.now += 20
    job = bed.bedrock.get_model_invocation_job(jobIdentifier=arn)
    assert job["status"] == "PartiallyCompleted" and job["errorRecordCount"] == 1
    output = bed.lines(f"b6/out/{arn.rsplit('/', 1)[1]}/input.jsonl.out")
    assert next(line for line in output if line["recordId"] == "bad")["error"]["errorCode"] == 400


@pytest.mark.parametrize("service, path", [("bedrock", "/bedrock/model-invocation-jobs"), ("sagemaker", "/sagemaker/")])
def test_a_missing_or_wrong_signature_is_refused_with_403_before_anything_else(bed, service, path):
    body = b"" if service == "bedrock" else b'{"TransformJobName": "x"}'
    method = "GET" if service == "bedrock" else "POST"
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "SageMaker.DescribeTransformJob"}
    missing = requests.request(method, bed.url + path, data=body, headers=headers, timeout=10)
    assert missing.status_code == 403 and "Missing Authentication Token" in missing.text
    wrong = signed(method, bed.url + path, body, service, secret="wrong", headers=headers)
    assert wrong.status_code == 403 and "signature we calculated does not match" in wrong.text
    other_service = signed(method, bed.url + path, body, "es", headers=headers)
    assert other_service.status_code == 403
    if service == "bedrock":
        assert wrong.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    else:
        assert wrong.json()["__type"] == "InvalidSignatureException"


def test_a_changed_body_breaks_the_signature(bed):
    url = bed.url + "/sagemaker/DescribeTransformJob"
    headers = sign("POST", url, b'{"TransformJobName": "a"}', "sagemaker", SECRET_KEY)
    answer = requests.post(url, data=b'{"TransformJobName": "b"}', headers=headers, timeout=10)
    assert answer.status_code == 403


def test_an_old_signature_is_refused(bed):
    bed.clock.now += 16 * 60
    answer = signed("GET", bed.url + "/bedrock/model-invocation-jobs", b"", "bedrock")
    assert answer.status_code == 403 and "Signature expired" in answer.text


def transform_request(name, prefix, processing=None):
    request = {
        "TransformJobName": name, "ModelName": "any-model", "BatchStrategy": "SingleRecord",
        "TransformInput": {"ContentType": "application/json", "SplitType": "Line",
                           "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{prefix}/input.jsonl"}}},
        "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/{prefix}/out", "AssembleWith": "Line", "Accept": "application/json"},
        "TransformResources": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1},
    }
    if processing is not None:
        request["DataProcessing"] = processing
    return request


def test_sagemaker_transform_job_applies_data_processing_and_writes_one_line_per_line(bed):
    bed.put_lines("s1/input.jsonl", [{"id": number, "content": "text %d" % number} for number in range(5)])
    processing = {"InputFilter": "$.content", "JoinSource": "Input", "OutputFilter": "$"}
    arn = bed.sagemaker.create_transform_job(**transform_request("Transform-One", "s1", processing))["TransformJobArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:transform-job/transform-one"
    assert bed.sagemaker.describe_transform_job(TransformJobName="Transform-One")["TransformJobStatus"] == "InProgress"
    bed.clock.now += 14
    job = bed.sagemaker.describe_transform_job(TransformJobName="transform-one")
    assert job["TransformJobStatus"] == "Completed" and "TransformEndTime" in job
    output = bed.lines("s1/out/input.jsonl.out")
    assert [line["id"] for line in output] == list(range(5))
    assert output[0]["content"] == "text 0" and len(output[0]["SageMakerOutput"]) == 8
    assert output[0]["SageMakerOutput"] != output[1]["SageMakerOutput"]


def test_sagemaker_without_join_writes_the_embedding_per_line_and_output_filter_selects(bed):
    bed.put_lines("s2/input.jsonl", [{"content": "a"}, {"content": "b"}])
    processing = {"InputFilter": "$.content", "JoinSource": "Input", "OutputFilter": "$['SageMakerOutput']"}
    bed.sagemaker.create_transform_job(**transform_request("transform-two", "s2", processing))
    bed.clock.now += 14
    assert bed.sagemaker.describe_transform_job(TransformJobName="transform-two")["TransformJobStatus"] == "Completed"
    output = bed.lines("s2/out/input.jsonl.out")
    assert len(output) == 2 and all(isinstance(line, list) and len(line) == 8 for line in output)


def test_sagemaker_blueprint_form_with_the_action_in_the_path(bed):
    bed.put_lines("s3/input.jsonl", [{"content": "a"}])
    body = json.dumps(transform_request("blueprint-form", "s3", {"InputFilter": "$.content", "JoinSource": "Input", "OutputFilter": "$"}))
    created = signed("POST", bed.url + "/sagemaker/CreateTransformJob", body.encode(), "sagemaker")
    assert created.status_code == 200, created.text
    assert created.json() == {"TransformJobArn": "arn:aws:sagemaker:us-east-1:123456789012:transform-job/blueprint-form"}
    described = signed("POST", bed.url + "/sagemaker/DescribeTransformJob", b'{ "TransformJobName" : "blueprint-form"}', "sagemaker")
    assert described.json()["TransformJobStatus"] == "InProgress"
    stopped = signed("POST", bed.url + "/sagemaker/StopTransformJob", b'{ "TransformJobName" : "blueprint-form"}', "sagemaker")
    assert stopped.status_code == 200, stopped.text
    assert bed.sagemaker.describe_transform_job(TransformJobName="blueprint-form")["TransformJobStatus"] == "Stopping"
    bed.clock.now += 2
    assert bed.sagemaker.describe_transform_job(TransformJobName="blueprint-form")["TransformJobStatus"] == "Stopped"
    assert "Contents" not in bed.s3.list_objects_v2(Bucket=BUCKET, Prefix="s3/out/")
    requests_seen = bed.stats()["requests"]
    assert requests_seen["CreateTransformJob"] == 1 and requests_seen["StopTransformJob"] == 1
    assert requests_seen["DescribeTransformJob"] == 3


def test_sagemaker_refuses_a_second_job_of_the_same_name(bed):
    bed.sagemaker.create_transform_job(**transform_request("unique-name", "s4"))
    with pytest.raises(bed.client_error) as refused:
        bed.sagemaker.create_transform_job(**transform_request("Unique-Name", "s4"))
    assert refused.value.response["Error"]["Code"] == "ResourceInUse"
    with pytest.raises(bed.client_error, match="Could not find requested job"):
        bed.sagemaker.describe_transform_job(TransformJobName="no-such-job")


def test_sagemaker_job_fails_on_a_missing_bucket_or_a_record_the_filter_misses(bed):
    request = transform_request("missing-bucket", "s5")
    request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] = "s3://no-such-bucket/input.jsonl"
    bed.sagemaker.create_transform_job(**request)
    bed.put_lines("s6/input.jsonl", [{"content": "a"}, {"text": "b"}])
    bed.sagemaker.create_transform_job(**transform_request("filter-misses", "s6", {"InputFilter": "$.content"}))
    bed.clock.now += 14
    missing = bed.sagemaker.describe_transform_job(TransformJobName="missing-bucket")
    assert missing["TransformJobStatus"] == "Failed" and "no-such-bucket" in missing["FailureReason"]
    filtered = bed.sagemaker.describe_transform_job(TransformJobName="filter-misses")
    assert filtered["TransformJobStatus"] == "Failed" and "record 2" in filtered["FailureReason"]
    assert "Contents" not in bed.s3.list_objects_v2(Bucket=BUCKET, Prefix="s6/out/")


@pytest.mark.parametrize("path, value, expected", [
    ("$", {"a": 1}, {"a": 1}),
    ("$.content", {"content": "x"}, "x"),
    ("$['a','b']", {"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2}),
    ("$[1:]", [1, 2, 3], [2, 3]),
    ("$[0]", [5, 6], 5),
    ("$.a.b[1]", {"a": {"b": [1, 2]}}, 2),
])
def test_jsonpath_subset(path, value, expected):
    assert load_testbed_script("aws_emulator").apply_jsonpath(path, value) == expected


def test_verifier_checks_the_declared_payload_hash(bed):
    sigv4_verify = load_testbed_script("sigv4_verify")
    verifier = sigv4_verify.SigV4Verifier({ACCESS_KEY: SECRET_KEY}, ("es",), bed.clock)
    headers = sign("PUT", "http://127.0.0.1:9200/index?refresh=true", b'{"a": 1}', "es", SECRET_KEY, "eu-west-1",
                   {"X-Amz-Content-SHA256": hashlib.sha256(b'{"a": 1}').hexdigest()})
    headers["Host"] = "127.0.0.1:9200"
    assert verifier.check("PUT", "/index?refresh=true", headers, b'{"a": 1}') == (ACCESS_KEY, "eu-west-1", "es")
    with pytest.raises(sigv4_verify.SignatureRefused) as refused:
        verifier.check("PUT", "/index?refresh=true", headers, b'{"a": 2}')
    assert refused.value.code == "XAmzContentSHA256Mismatch"
