"""Put, list and read objects in the test bed's S3 (moto's server), for integration targets and tests.

    python tests/testbed/s3_object.py put s3://bucket/key < content
    python tests/testbed/s3_object.py list s3://bucket/prefix   -> JSON: [{"key", "size", "lines"}, ...]
    python tests/testbed/s3_object.py get s3://bucket/key       -> the content on stdout
    python tests/testbed/s3_object.py bucket s3://bucket         makes the bucket, if it is not there

The endpoint and key come from AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION, as
.testbed/env gives them. A missing object or bucket exits 1 with S3's answer.
"""

import json
import os
import sys

import botocore.config
import botocore.session
from botocore.exceptions import ClientError


def client(env=None):
    """A client of the test bed's S3, from ``env`` (the environment by default, or .testbed/env's values)."""
    env = os.environ if env is None else env
    return botocore.session.get_session().create_client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name=env.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=botocore.config.Config(s3={"addressing_style": "path"}))


def split(uri):
    if not uri.startswith("s3://"):
        raise SystemExit(f"not an s3:// URI: {uri}")
    bucket, _slash, key = uri[len("s3://"):].partition("/")
    return bucket, key


def main(argv):
    if len(argv) != 2 or argv[0] not in ("put", "list", "get", "bucket"):
        raise SystemExit(__doc__)
    action, (bucket, key) = argv[0], split(argv[1])
    s3 = client()
    try:
        if action == "bucket":
            if bucket not in [found["Name"] for found in s3.list_buckets()["Buckets"]]:
                s3.create_bucket(Bucket=bucket)
        elif action == "put":
            s3.put_object(Bucket=bucket, Key=key, Body=sys.stdin.buffer.read())
        elif action == "get":
            sys.stdout.buffer.write(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        else:
            listed = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
                for item in page.get("Contents", []):
                    body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                    listed.append({"key": item["Key"], "size": item["Size"], "lines": len(body.splitlines())})
            print(json.dumps(listed))
    except ClientError as error:
        raise SystemExit(f"S3 answered {error.response['Error'].get('Code')}: {error.response['Error'].get('Message')}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
