# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Objects of Amazon S3 (or a store that speaks its API) uploaded from and downloaded to local files.

The client is botocore's: it is already the collection's dependency for SigV4, it signs, retries and follows
S3's region redirects as the AWS CLI does, and it reads the credential chain and ``AWS_ENDPOINT_URL_S3``. boto3's
transfer manager would add a dependency and threads for no gain here.

Memory stays flat: an upload is sent a part at a time (one request up to :data:`PART_SIZE`, a multipart upload
beyond), a download is written to disk a chunk at a time. An upload is named after its content's SHA-256 and
carries it as metadata, so a re-run finds it with one HEAD request; a multipart upload that fails, or whose file
changed while it was read, is aborted, so no object ever holds part of a file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError, TransportError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.local import CHUNK_SIZE

# S3's limits (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html): parts of at least 5 MiB but
# the last, at most 10,000 of them. Parts grow beyond PART_SIZE only for files over 80 GiB.
PART_SIZE = 8 * 1024 * 1024
MAX_PARTS = 10000
SHA256_METADATA = "sha256"
NOT_FOUND_CODES = ("404", "NoSuchKey", "NotFound")


def parse_uri(uri, option):
    """``(bucket, key)`` of ``s3://bucket/key``; the key may be empty or end with ``/`` (a prefix)."""
    text = uri if isinstance(uri, str) else ""
    bucket, _slash, key = text[len("s3://"):].partition("/")
    if not text.startswith("s3://") or not bucket:
        raise ConfigurationError("%s must be an S3 URI, s3://bucket/key or s3://bucket/prefix/, not %r." % (option, uri))
    return bucket, key


def object_uri(bucket, key):
    return "s3://%s/%s" % (bucket, key)


def part_size(size):
    """The size of each part of a ``size``-byte upload: PART_SIZE, or more when it would take over MAX_PARTS."""
    return max(PART_SIZE, -(-size // MAX_PARTS))


def client_error(error, action, uri):
    """A botocore error as one clear message: S3's code and message, and what to check."""
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    if isinstance(error, NoCredentialsError):
        return ConfigurationError(
            "No AWS credentials to %s %s: set aws_access_key and aws_secret_key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), "
            "or aws_profile, or run where an instance role is available." % (action, uri))
    if isinstance(error, NoRegionError):
        return ConfigurationError("No AWS region to %s %s: set aws_region, or AWS_REGION or AWS_DEFAULT_REGION." % (action, uri))
    if isinstance(error, ClientError):
        answer = error.response.get("Error") or {}
        code = str(answer.get("Code") or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "error")
        advice = {
            "NoSuchBucket": "The bucket does not exist: create it, or give a bucket that does.",
            "AccessDenied": "The credentials may not %s there: grant s3:GetObject, s3:PutObject and s3:DeleteObject on the prefix." % action,
            "403": "The credentials may not %s there: grant s3:GetObject, s3:PutObject and s3:DeleteObject on the prefix." % action,
        }.get(code, "")
        if not advice and (error.response.get("ResponseMetadata") or {}).get("HTTPStatusCode", 0) >= 500:
            advice = "S3 failed on every attempt; nothing half-done was kept. Run again later, or raise retries."
        return ConfigurationError(("S3 refused to %s %s: %s %s %s" % (action, uri, code, answer.get("Message") or "", advice)).strip())
    return TransportError("Could not %s %s: %s" % (action, uri, error))


class S3(object):
    """An S3 client from the module's options (``aws_region``, ``endpoint_url``, the credentials)."""

    def __init__(self, params):
        try:
            import botocore.session
            from botocore.config import Config
        except ImportError:
            raise ConfigurationError("S3 transfers need the Python library botocore: pip install botocore.")
        if not params.get("aws_region"):
            raise ConfigurationError("S3 transfers need the bucket's region: set aws_region, or the AWS_REGION or AWS_DEFAULT_REGION environment variable.")
        session = botocore.session.Session(profile=params.get("aws_profile") or None)
        # A store at an endpoint of its own (a VPC endpoint, MinIO, the test bed) is addressed by path.
        config = Config(retries={"mode": "standard", "max_attempts": params.get("retries", 3) + 1},
                        s3={"addressing_style": "path"} if params.get("endpoint_url") else {})
        self.client = session.create_client(
            "s3", region_name=params["aws_region"], endpoint_url=params.get("endpoint_url") or None, config=config,
            verify=params.get("validate_certs", True),
            aws_access_key_id=params.get("aws_access_key") or None, aws_secret_access_key=params.get("aws_secret_key") or None,
            aws_session_token=params.get("aws_session_token") or None)

    def call(self, action, uri, operation, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(**kwargs)
        except (BotoCoreError, ClientError) as error:
            raise client_error(error, action, uri)

    def head(self, bucket, key):
        """The object's ``{bytes, sha256, etag}`` (``sha256`` from its metadata, None without), or None when it does not exist."""
        from botocore.exceptions import ClientError

        try:
            answer = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if str((error.response.get("Error") or {}).get("Code")) in NOT_FOUND_CODES:
                return None
            raise client_error(error, "read", object_uri(bucket, key))
        except Exception as error:  # pylint: disable=broad-except
            raise client_error(error, "read", object_uri(bucket, key))
        return {"bytes": answer.get("ContentLength"), "sha256": (answer.get("Metadata") or {}).get(SHA256_METADATA), "etag": answer.get("ETag")}

    def upload(self, path, bucket, key, sha256):
        """Send ``path`` to ``bucket``/``key`` with its ``sha256`` as metadata. The content read must have that
        SHA-256: a file that changes while it is read leaves no object behind (a single request is not sent, a
        multipart upload is aborted) and fails."""
        uri = object_uri(bucket, key)
        size = os.path.getsize(path)
        metadata = {SHA256_METADATA: sha256}
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            if size <= PART_SIZE:
                data = handle.read(PART_SIZE + 1)
                digest.update(data)
                if digest.hexdigest() != sha256:
                    raise changed_while_read(path)
                self.call("upload to", uri, "put_object", Bucket=bucket, Key=key, Body=data, Metadata=metadata)
                return
            upload_id = self.call("upload to", uri, "create_multipart_upload", Bucket=bucket, Key=key, Metadata=metadata)["UploadId"]
            try:
                parts = []
                length = part_size(size)
                while True:
                    data = handle.read(length)
                    if not data:
                        break
                    digest.update(data)
                    answer = self.call("upload to", uri, "upload_part", Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=len(parts) + 1, Body=data)
                    parts.append({"PartNumber": len(parts) + 1, "ETag": answer["ETag"]})
                if digest.hexdigest() != sha256:
                    raise changed_while_read(path)
                self.call("upload to", uri, "complete_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
            except BaseException:
                self.abort(bucket, key, upload_id)
                raise

    def abort(self, bucket, key, upload_id):
        """Drop an unfinished multipart upload's parts; what made it fail is the error told, not this."""
        try:
            self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception:  # pylint: disable=broad-except
            pass

    def download(self, bucket, key, sink):
        """Stream the object into ``sink`` (a :class:`DigestSink`); return the size S3 announced."""
        uri = object_uri(bucket, key)
        answer = self.call("download", uri, "get_object", Bucket=bucket, Key=key)
        body = answer["Body"]
        try:
            for chunk in body.iter_chunks(CHUNK_SIZE):
                sink.write(chunk)
        except Exception as error:  # pylint: disable=broad-except
            raise client_error(error, "download", uri)
        finally:
            body.close()
        return answer.get("ContentLength")

    def delete(self, bucket, key):
        self.call("delete", object_uri(bucket, key), "delete_object", Bucket=bucket, Key=key)


def changed_while_read(path):
    return ConfigurationError("%s changed while it was uploaded; nothing was kept in S3. Run again once the file is complete." % path)
