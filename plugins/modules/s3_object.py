#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: s3_object
short_description: Upload a batch input to Amazon S3, download a batch output from it, or delete an object
version_added: 0.2.0
description:
  - The S3 steps around offline batch inference with Amazon Bedrock and SageMaker, as M(opensearch.ml_commons.openai_file)
    is for OpenAI. Upload the input JSONL before the batch job, download its output when the job has ended.
  - With a local O(src) and an S3 O(dest), uploads the file. When O(dest) is a prefix (it ends with C(/)), the object
    is named after the file and its SHA-256 under it (C(input.jsonl) becomes C(input.sha256-<hex>.jsonl)) and carries
    the SHA-256 as metadata, so a re-run finds it with one request and uploads nothing.
  - With an S3 O(src) and a local O(dest), downloads the object into a temporary file beside O(dest) that replaces it
    once complete. An existing O(dest) of the object's size (and of its SHA-256, when the object carries one) is kept
    without downloading anything unless O(force=true).
  - With O(state=absent), deletes the object O(dest) names, or the upload of O(src) under the prefix O(dest).
  - Files of any size are streamed a part at a time, so memory stays flat. The client is botocore, the library
    the collection already uses for SigV4. A multipart upload that fails is aborted, so S3 never holds part of a
    file under the upload's name.
author:
  - opensearch.ml_commons maintainers (!UNKNOWN)
extends_documentation_fragment:
  - opensearch.ml_commons.file_mode
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
options:
  src:
    description:
      - A local file to upload, or the C(s3://bucket/key) URI of an object to download.
    type: str
  dest:
    description:
      - For an upload or a delete, the C(s3://bucket/key) URI of the object, or a C(s3://bucket/prefix/) under which
        the object is named after O(src)'s content.
      - For a download, the local file to write; when it is a directory, the object's name is kept.
    type: str
    required: true
  force:
    description:
      - For a download, whether to download the object even when O(dest) already holds a file of its size. O(dest)
        is replaced, and the task reports a change, only if the content differs.
    type: bool
    default: false
  state:
    description:
      - V(present) uploads or downloads; V(absent) deletes the object in S3.
    type: str
    choices: [present, absent]
    default: present
  aws_region:
    description:
      - The bucket's region. Required (or the environment variable), since a request signed for another region is refused.
      - If not set, the environment variable E(AWS_REGION), then E(AWS_DEFAULT_REGION).
    type: str
  aws_access_key:
    description:
      - The AWS access key ID. Without it, botocore's credential chain is used (O(aws_profile), the instance role).
      - If not set, the environment variable E(AWS_ACCESS_KEY_ID).
    type: str
  aws_secret_key:
    description:
      - The AWS secret access key.
      - If not set, the environment variable E(AWS_SECRET_ACCESS_KEY).
    type: str
  aws_session_token:
    description:
      - The session token of temporary credentials.
      - If not set, the environment variable E(AWS_SESSION_TOKEN), then E(AWS_SECURITY_TOKEN) (as AWX's AWS credential
        injects it).
    type: str
  aws_profile:
    description:
      - A profile of the AWS configuration files, when no access key is given.
      - If not set, the environment variable E(AWS_PROFILE).
    type: str
  endpoint_url:
    description:
      - The S3 endpoint, for a VPC endpoint or a store that speaks S3's API; objects are then addressed by path.
      - If not set, the environment variable E(AWS_ENDPOINT_URL_S3), then E(AWS_ENDPOINT_URL); else the regional
        endpoint.
    type: str
  validate_certs:
    description:
      - Whether to verify the endpoint's TLS certificate.
    type: bool
    default: true
  retries:
    description:
      - How many times a request that failed for a reason worth retrying (a throttle, a 5xx, a lost connection) is
        sent again, with botocore's standard back-off.
    type: int
    default: 3
notes:
  - The permissions needed are C(s3:GetObject) (and C(s3:ListBucket), so that a missing object is told as missing)
    on the objects read, C(s3:PutObject) on the prefix written to and C(s3:DeleteObject) for O(state=absent).
  - An upload found by its name and metadata is taken to hold O(src)'s content without reading it back. Whoever
    may write to the prefix is trusted, as the batch job that reads it must trust them.
"""

EXAMPLES = r"""
- name: Upload the batch input under a prefix (once)
  opensearch.ml_commons.s3_object:
    src: files/records.jsonl
    dest: s3://my-bucket/batch/input/
  register: batch_input

- name: Download a job's output
  opensearch.ml_commons.s3_object:
    src: "s3://my-bucket/batch/output/{{ job_id }}/{{ batch_input.key | basename }}.out"
    dest: results/records.out.jsonl

- name: Through a VPC endpoint
  opensearch.ml_commons.s3_object:
    src: files/records.jsonl
    dest: s3://my-bucket/batch/input/
    endpoint_url: https://bucket.vpce-0123456789abcdef0-abcdefgh.s3.us-east-1.vpce.amazonaws.com

- name: Delete the uploaded input
  opensearch.ml_commons.s3_object:
    src: files/records.jsonl
    dest: s3://my-bucket/batch/input/
    state: absent
"""

RETURN = r"""
uri:
  description: The object's C(s3://bucket/key) URI.
  returned: always
  type: str
  sample: s3://my-bucket/batch/input/records.sha256-5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.jsonl
bucket:
  description: The object's bucket.
  returned: always
  type: str
  sample: my-bucket
key:
  description: The object's key.
  returned: always
  type: str
  sample: batch/input/records.sha256-5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.jsonl
exists:
  description: Whether the object exists in S3 after the task (or would, in check mode).
  returned: always
  type: bool
  sample: true
found:
  description: Whether the object was in S3 before the task; for an upload, with O(src)'s content, so nothing was sent.
  returned: always
  type: bool
  sample: true
bytes:
  description: The object's size; null when it does not exist.
  returned: always
  type: int
  sample: 120000
sha256:
  description: The SHA-256 of the content, when it is known (an upload, a downloaded or checked file).
  returned: when known
  type: str
  sample: 5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03
dest:
  description: Where the object was downloaded to, as an absolute path.
  returned: for a download
  type: str
  sample: /srv/batch/results/records.out.jsonl
"""

import os

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import build_diff
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import LocalModule, non_empty_env_fallback
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.local import (
    download_path,
    file_digest,
    fingerprinted_name,
    holds,
    plain_name,
    replace_by_download,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.s3 import S3, object_uri, parse_uri


def is_prefix(key):
    return key == "" or key.endswith("/")


def upload_target(params, sha256=None):
    """(bucket, key) of the upload of ``src``: ``dest``, or the fingerprinted name under the prefix ``dest``."""
    bucket, key = parse_uri(params["dest"], "dest")
    if is_prefix(key):
        key += fingerprinted_name(params["src"], sha256 or file_digest(params["src"]))
    return bucket, key


def object_result(changed, bucket, key, before, after, **extra):
    after = after or {}
    result = {"changed": changed, "uri": object_uri(bucket, key), "bucket": bucket, "key": key, "exists": bool(after), "found": bool(before),
              "bytes": after.get("bytes"), "diff": build_diff(before or {}, after)}
    result.update(extra)
    return result


def described(bucket, key, found):
    """What the diff shows of an object: its URI, size and SHA-256 (never its content)."""
    return None if found is None else {"uri": object_uri(bucket, key), "bytes": found.get("bytes"), "sha256": found.get("sha256")}


def upload(module, s3):
    params = module.params
    path = params["src"]
    if not os.path.isfile(path):
        raise ConfigurationError("src %s is not a file to upload." % path)
    sha256 = file_digest(path)
    bucket, key = upload_target(params, sha256)
    found = s3.head(bucket, key)
    local = {"bytes": os.path.getsize(path), "sha256": sha256}
    if found is not None and found["bytes"] == local["bytes"] and found["sha256"] == sha256:
        return object_result(False, bucket, key, described(bucket, key, found), described(bucket, key, found), sha256=sha256)
    if not module.check_mode:
        s3.upload(path, bucket, key, sha256)
    # An object of the name with other content is not the upload (found is false); it is replaced.
    after = described(bucket, key, local)
    return object_result(True, bucket, key, None, after, sha256=sha256, diff=build_diff(described(bucket, key, found) or {}, after))


def download(module, s3):
    params = module.params
    bucket, key = parse_uri(params["src"], "src")
    if is_prefix(key):
        raise ConfigurationError("src %s names a prefix; give the URI of the object to download." % params["src"])
    found = s3.head(bucket, key)
    if found is None:
        raise ConfigurationError("S3 has no object %s to download." % object_uri(bucket, key))
    dest = download_path(params["dest"], plain_name(key.rsplit("/", 1)[-1], "The object's name"))
    before = {"dest": dest, "bytes": os.path.getsize(dest) if os.path.isfile(dest) else None}
    after = {"dest": dest, "bytes": found["bytes"]}
    # The SHA-256 that an upload by this collection records in the object's metadata.
    expected = ("sha256", found["sha256"]) if found["sha256"] else None
    if holds(dest, found["bytes"], expected, params["force"]):
        changed = module.set_mode_if_different(dest, params["mode"], False)
        return object_result(changed, bucket, key, found, found, dest=dest, diff=build_diff(before, before))
    if module.check_mode:
        return object_result(True, bucket, key, found, found, dest=dest, diff=build_diff(before, after))
    replaced, sha256 = replace_by_download(module, dest, lambda sink: s3.download(bucket, key, sink), object_uri(bucket, key), found["bytes"], expected)
    changed = module.set_mode_if_different(dest, params["mode"], replaced)
    return object_result(changed, bucket, key, found, found, dest=dest, sha256=sha256, diff=build_diff(before, after if replaced else before))


def delete(module, s3):
    params = module.params
    bucket, key = parse_uri(params["dest"], "dest")
    if is_prefix(key):
        if not params["src"] or not os.path.isfile(params["src"]):
            raise ConfigurationError("dest %s is a prefix: give src, the local file whose upload to delete." % params["dest"])
        bucket, key = upload_target(params)
    found = s3.head(bucket, key)
    if found is None:
        return object_result(False, bucket, key, None, None)
    if not module.check_mode:
        s3.delete(bucket, key)
    return object_result(True, bucket, key, described(bucket, key, found), None)


def run(module):
    params = module.params
    s3 = S3(params)
    if params["state"] == "absent":
        return delete(module, s3)
    if not params["src"]:
        raise ConfigurationError("With state present, give src: a local file to upload, or an s3:// URI to download.")
    if params["src"].startswith("s3://"):
        if params["dest"].startswith("s3://"):
            raise ConfigurationError("src and dest are both S3 URIs; one of them must be a local file.")
        return download(module, s3)
    return upload(module, s3)


ARGUMENT_SPEC = dict(
    src=dict(type="str"),
    dest=dict(type="str", required=True),
    force=dict(type="bool", default=False),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    aws_region=dict(type="str", fallback=(non_empty_env_fallback, ["AWS_REGION", "AWS_DEFAULT_REGION"])),
    aws_access_key=dict(type="str", no_log=True, fallback=(non_empty_env_fallback, ["AWS_ACCESS_KEY_ID"])),
    aws_secret_key=dict(type="str", no_log=True, fallback=(non_empty_env_fallback, ["AWS_SECRET_ACCESS_KEY"])),
    aws_session_token=dict(type="str", no_log=True, fallback=(non_empty_env_fallback, ["AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"])),
    aws_profile=dict(type="str", fallback=(non_empty_env_fallback, ["AWS_PROFILE"])),
    endpoint_url=dict(type="str", fallback=(non_empty_env_fallback, ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])),
    validate_certs=dict(type="bool", default=True),
    retries=dict(type="int", default=3),
    mode=dict(type="raw"),
)


def main():
    LocalModule(argument_spec=ARGUMENT_SPEC, required_together=[("aws_access_key", "aws_secret_key")]).execute(run)


if __name__ == "__main__":
    main()
