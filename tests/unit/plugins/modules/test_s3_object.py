"""s3_object and module_utils/files/s3 against an S3 double that keeps objects in memory: uploads named after their
content and found again, multipart uploads that leave nothing behind when they fail, streamed downloads, deletes."""

import hashlib
import io
import json

import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files import s3
from ansible_collections.opensearch.ml_commons.plugins.modules import s3_object
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule, exit_output, module_args

CONTENT = b'{"recordId": "r1", "modelInput": {"inputText": "x"}}\n'
SHA256 = hashlib.sha256(CONTENT).hexdigest()


def client_error(code, operation, message="", status=400):
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


class FakeS3Client(object):
    """The calls of botocore's S3 client that module_utils/files/s3 makes, on objects kept in memory."""

    def __init__(self, buckets=("bucket",)):
        self.buckets = set(buckets)
        self.objects = {}
        self.uploads = {}
        self.calls = []
        self.fail_part = None

    def _bucket(self, bucket, operation):
        if bucket not in self.buckets:
            raise client_error("NoSuchBucket", operation, "The specified bucket does not exist")

    def head_object(self, Bucket, Key):
        self.calls.append(("head_object", Key))
        self._bucket(Bucket, "HeadObject")
        if (Bucket, Key) not in self.objects:
            raise client_error("404", "HeadObject", "Not Found")
        data, metadata = self.objects[(Bucket, Key)]
        return {"ContentLength": len(data), "Metadata": metadata, "ETag": '"%s"' % hashlib.md5(data).hexdigest()}

    def put_object(self, Bucket, Key, Body, Metadata):
        self.calls.append(("put_object", Key))
        self._bucket(Bucket, "PutObject")
        self.objects[(Bucket, Key)] = (bytes(Body), dict(Metadata))

    def create_multipart_upload(self, Bucket, Key, Metadata):
        self.calls.append(("create_multipart_upload", Key))
        self._bucket(Bucket, "CreateMultipartUpload")
        upload_id = "upload-%d" % len(self.uploads)
        self.uploads[upload_id] = {"parts": {}, "metadata": dict(Metadata)}
        return {"UploadId": upload_id}

    def upload_part(self, Bucket, Key, UploadId, PartNumber, Body):
        self.calls.append(("upload_part", PartNumber))
        if self.fail_part == PartNumber:
            raise client_error("ServiceUnavailable", "UploadPart", "Please reduce your request rate.", 503)
        self.uploads[UploadId]["parts"][PartNumber] = bytes(Body)
        return {"ETag": "etag-%d" % PartNumber}

    def complete_multipart_upload(self, Bucket, Key, UploadId, MultipartUpload):
        self.calls.append(("complete_multipart_upload", Key))
        upload = self.uploads.pop(UploadId)
        data = b"".join(upload["parts"][part["PartNumber"]] for part in MultipartUpload["Parts"])
        self.objects[(Bucket, Key)] = (data, upload["metadata"])

    def abort_multipart_upload(self, Bucket, Key, UploadId):
        self.calls.append(("abort_multipart_upload", Key))
        self.uploads.pop(UploadId, None)

    def get_object(self, Bucket, Key):
        self.calls.append(("get_object", Key))
        data = self.objects[(Bucket, Key)][0]
        return {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentLength": len(data)}

    def delete_object(self, Bucket, Key):
        self.calls.append(("delete_object", Key))
        self.objects.pop((Bucket, Key), None)

    def writes(self):
        return [call for call in self.calls if call[0] not in ("head_object", "get_object")]


@pytest.fixture
def fake(monkeypatch):
    client = FakeS3Client()

    def with_fake_client(params):
        store = s3.S3(params)
        store.client = client
        return store

    monkeypatch.setattr(s3_object, "S3", with_fake_client)
    return client


def module(check_mode=False, **params):
    params.setdefault("aws_region", "us-east-1")
    return FakeModule(s3_object, check_mode, **params)


def source(tmp_path, content=CONTENT):
    path = tmp_path / "input.jsonl"
    path.write_bytes(content)
    return str(path)


def test_uris_are_bucket_and_key():
    assert s3.parse_uri("s3://bucket/a/b.jsonl", "dest") == ("bucket", "a/b.jsonl")
    assert s3.parse_uri("s3://bucket", "dest") == ("bucket", "")
    for wrong in ("bucket/key", "s3:///key", "https://bucket/key", None):
        with pytest.raises(ConfigurationError, match="dest must be an S3 URI"):
            s3.parse_uri(wrong, "dest")


def test_parts_stay_within_s3s_limit_of_ten_thousand():
    assert s3.part_size(1) == s3.PART_SIZE
    assert s3.part_size(s3.PART_SIZE * s3.MAX_PARTS * 3) == s3.PART_SIZE * 3


def test_an_upload_under_a_prefix_is_named_after_its_content_and_found_again(fake, tmp_path):
    src = source(tmp_path)
    result = s3_object.run(module(src=src, dest="s3://bucket/batch/input/"))
    key = "batch/input/input.sha256-%s.jsonl" % SHA256
    assert result["changed"] and not result["found"] and result["exists"]
    assert result["uri"] == "s3://bucket/" + key and result["sha256"] == SHA256 and result["bytes"] == len(CONTENT)
    assert fake.objects[("bucket", key)] == (CONTENT, {"sha256": SHA256})
    fake.calls = []
    again = s3_object.run(module(src=src, dest="s3://bucket/batch/input/"))
    assert not again["changed"] and again["found"] and again["uri"] == result["uri"]
    assert fake.calls == [("head_object", key)]


def test_check_mode_uploads_nothing(fake, tmp_path):
    result = s3_object.run(module(True, src=source(tmp_path), dest="s3://bucket/in/"))
    assert result["changed"] and not result["found"] and fake.writes() == [] and fake.objects == {}
    assert result["diff"]["before"] == {} and result["diff"]["after"]["sha256"] == SHA256


def test_an_object_of_the_name_with_other_content_is_replaced(fake, tmp_path):
    src = source(tmp_path)
    fake.objects[("bucket", "in/exact.jsonl")] = (b"other\n", {})
    result = s3_object.run(module(src=src, dest="s3://bucket/in/exact.jsonl"))
    assert result["changed"] and not result["found"]
    assert fake.objects[("bucket", "in/exact.jsonl")][0] == CONTENT


def test_a_large_file_goes_in_parts_with_flat_memory(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(s3, "PART_SIZE", 16)
    content = b"".join(b"line %03d\n" % number for number in range(20))
    result = s3_object.run(module(src=source(tmp_path, content), dest="s3://bucket/in/"))
    assert fake.objects[("bucket", result["key"])] == (content, {"sha256": hashlib.sha256(content).hexdigest()})
    assert [call[0] for call in fake.calls].count("upload_part") == -(-len(content) // 16)
    assert ("complete_multipart_upload", result["key"]) in fake.calls


def test_a_part_refused_aborts_the_upload_and_leaves_no_object(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(s3, "PART_SIZE", 16)
    fake.fail_part = 2
    with pytest.raises(ConfigurationError, match="S3 refused to upload to s3://bucket/in/input.sha256-.*ServiceUnavailable Please reduce "
                                                 "your request rate. S3 failed on every attempt; nothing half-done was kept. Run again later"):
        s3_object.run(module(src=source(tmp_path, b"x" * 40), dest="s3://bucket/in/"))
    assert fake.objects == {} and fake.uploads == {}
    assert fake.calls[-1][0] == "abort_multipart_upload"


def test_a_file_that_changes_while_it_is_sent_leaves_no_object(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(s3, "PART_SIZE", 16)
    src = source(tmp_path, b"x" * 40)
    store = s3.S3({"aws_region": "us-east-1"})
    store.client = fake
    with pytest.raises(ConfigurationError, match="changed while it was uploaded; nothing was kept"):
        store.upload(src, "bucket", "in/key", hashlib.sha256(b"y" * 40).hexdigest())
    assert fake.objects == {} and fake.uploads == {}
    with pytest.raises(ConfigurationError, match="changed while it was uploaded"):
        store.upload(source(tmp_path, b"small"), "bucket", "in/small", SHA256)
    assert fake.objects == {}


def test_a_missing_bucket_is_told_clearly(fake, tmp_path):
    with pytest.raises(ConfigurationError, match="S3 refused to read s3://nowhere/in/.*NoSuchBucket.*The bucket does not exist"):
        s3_object.run(module(src=source(tmp_path), dest="s3://nowhere/in/"))


def test_a_prefix_without_permission_is_told_with_s3s_answer(fake, tmp_path, monkeypatch):
    def refused(**_kwargs):
        raise client_error("AccessDenied", "PutObject", "Access Denied")

    monkeypatch.setattr(fake, "put_object", refused)
    with pytest.raises(ConfigurationError, match="S3 refused to upload to s3://bucket/locked/.*AccessDenied Access Denied .*s3:PutObject"):
        s3_object.run(module(src=source(tmp_path), dest="s3://bucket/locked/"))


def test_a_download_is_streamed_and_kept_on_a_rerun(fake, tmp_path):
    fake.objects[("bucket", "out/job/input.jsonl.out")] = (CONTENT * 3, {})
    dest = tmp_path / "output.jsonl"
    result = s3_object.run(module(src="s3://bucket/out/job/input.jsonl.out", dest=str(dest)))
    assert result["changed"] and dest.read_bytes() == CONTENT * 3 and result["dest"] == str(dest)
    assert result["sha256"] == hashlib.sha256(CONTENT * 3).hexdigest()
    fake.calls = []
    again = s3_object.run(module(src="s3://bucket/out/job/input.jsonl.out", dest=str(dest)))
    assert not again["changed"] and fake.calls == [("head_object", "out/job/input.jsonl.out")]
    forced = s3_object.run(module(src="s3://bucket/out/job/input.jsonl.out", dest=str(dest), force=True))
    assert not forced["changed"] and ("get_object", "out/job/input.jsonl.out") in fake.calls


def test_a_download_into_a_directory_keeps_the_objects_name_and_check_mode_writes_nothing(fake, tmp_path):
    fake.objects[("bucket", "out/input.jsonl.out")] = (CONTENT, {})
    result = s3_object.run(module(True, src="s3://bucket/out/input.jsonl.out", dest=str(tmp_path)))
    assert result["changed"] and result["dest"] == str(tmp_path / "input.jsonl.out")
    assert not (tmp_path / "input.jsonl.out").exists()


def test_a_download_that_is_not_the_sha256_of_its_metadata_fails_and_keeps_dest(fake, tmp_path):
    fake.objects[("bucket", "out/input.jsonl.out")] = (CONTENT, {"sha256": "0" * 64})
    dest = tmp_path / "output.jsonl"
    dest.write_bytes(b"old")
    with pytest.raises(ConfigurationError, match="The checksum of s3://bucket/out/input.jsonl.out did not match: sha256:0{64} was expected, "
                                                 "the file has sha256:%s" % SHA256):
        s3_object.run(module(src="s3://bucket/out/input.jsonl.out", dest=str(dest)))
    assert dest.read_bytes() == b"old" and [path.name for path in tmp_path.iterdir()] == ["output.jsonl"]


def test_a_missing_object_and_a_prefix_cannot_be_downloaded(fake, tmp_path):
    with pytest.raises(ConfigurationError, match="S3 has no object s3://bucket/out/none to download"):
        s3_object.run(module(src="s3://bucket/out/none", dest=str(tmp_path / "x")))
    with pytest.raises(ConfigurationError, match="names a prefix"):
        s3_object.run(module(src="s3://bucket/out/", dest=str(tmp_path / "x")))


def test_the_upload_of_a_file_is_deleted_and_a_second_delete_changes_nothing(fake, tmp_path):
    src = source(tmp_path)
    uploaded = s3_object.run(module(src=src, dest="s3://bucket/in/"))
    checked = s3_object.run(module(True, src=src, dest="s3://bucket/in/", state="absent"))
    assert checked["changed"] and checked["found"] and ("bucket", uploaded["key"]) in fake.objects
    deleted = s3_object.run(module(src=src, dest="s3://bucket/in/", state="absent"))
    assert deleted["changed"] and not deleted["exists"] and fake.objects == {}
    assert not s3_object.run(module(dest=uploaded["uri"], state="absent"))["changed"]


def test_credentials_never_show_in_the_output(capsys, monkeypatch):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    with module_args({"src": "s3://bucket/key", "dest": "/nonexistent/dir/file", "aws_access_key": "AKIAEXAMPLE", "aws_secret_key": secret}):
        printed, result = exit_output(capsys, s3_object.main)
    assert result["failed"] and "region" in result["msg"] and secret not in printed


def test_the_session_token_is_taken_from_awxs_variable(monkeypatch):
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "token-from-awx")
    spec = s3_object.ARGUMENT_SPEC["aws_session_token"]
    assert spec["no_log"] and spec["fallback"][0](*spec["fallback"][1]) == "token-from-awx"
    assert json.dumps(sorted(name for name, option in s3_object.ARGUMENT_SPEC.items() if option.get("no_log"))) == json.dumps(
        ["aws_access_key", "aws_secret_key", "aws_session_token"])
