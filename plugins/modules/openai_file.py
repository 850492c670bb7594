#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: openai_file
short_description: Upload, download or delete files of the OpenAI Files API (batch inputs and outputs)
version_added: 0.1.0
description:
  - The provider-side file steps around offline batch inference with OpenAI. Upload the input JSONL before the batch
    job, and download its output and error files when the job has ended.
  - Files of any size are streamed from and to disk, never held in memory, so memory stays flat from a few lines to
    the Batch API's 200 MB inputs and gigabyte outputs.
  - With O(src), uploads the file unless one with the same content and O(purpose) is already there. The upload is named
    after the file and its SHA-256 (C(input.jsonl) becomes C(input.sha256-<hex>.jsonl)), so a re-run finds it from
    the file list (one request, whatever the file's size) and uploads nothing. Runs that upload the same file at the
    same moment keep one copy, the oldest; each younger run deletes its own copy and returns the oldest, with a warning.
    O(reuse=false) uploads every time instead (see the notes on who is trusted).
  - Before a batch input (O(purpose=batch)) is uploaded, it is checked line by line as OpenAI's batch validation
    checks it (see O(check_input)), so an input that would fail the whole batch is refused before it is paid for,
    naming the line.
  - With O(file_id) and O(dest), downloads the file to O(dest) as M(ansible.builtin.get_url) does, into a
    temporary file beside it that replaces O(dest) once complete. An existing O(dest) of the file's size is kept
    without downloading anything unless O(force=true); with O(checksum) it must also have that checksum.
  - A download is stopped as soon as it exceeds the size the Files API announced for the file. O(mode) applies to
    downloads.
  - With O(state=absent), deletes the file given by O(file_id), or the uploaded copy of O(src).
author:
  - opensearch.ml_commons maintainers (!UNKNOWN)
extends_documentation_fragment:
  - opensearch.ml_commons.openai
  - opensearch.ml_commons.file_mode
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  action_group:
    description: Use C(group/opensearch.ml_commons.openai) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - opensearch.ml_commons.openai
options:
  src:
    description:
      - A local file to upload, for example the batch input JSONL. OpenAI's Batch API takes only C(.jsonl) files.
    type: path
  file_id:
    description:
      - The ID of a file in the Files API, for example a batch job's C(output_file_id).
    type: str
  dest:
    description:
      - Where to download O(file_id) to. Its directory must exist. When O(dest) is a directory, the file is saved
        there as C(<file_id><extension>), the extension (such as C(.jsonl)) being that of its name in the Files API,
        never under the name the server gives, which could name any file of the directory. O(file_id) must then be a
        plain file name (no C(/), not C(..)).
    type: path
  force:
    description:
      - For a download, whether to download the file even when O(dest) already holds a file of its size (and of
        O(checksum), when given). O(dest) is replaced, and the task reports a change, only if the content differs.
      - Applies to downloads only.
    type: bool
    default: false
  checksum:
    description:
      - For a download, the checksum the file must have, as C(<algorithm>:<hex digest>), for example
        C(sha256:b5bb9d80...). An existing O(dest) with this checksum is kept; a downloaded file with another one is
        discarded and the task fails.
      - The algorithm is one of Python's guaranteed C(hashlib) algorithms, such as C(sha1), C(sha256) or C(sha512).
    type: str
  purpose:
    description:
      - The purpose of an uploaded file.
    type: str
    choices: [batch, assistants, fine-tune, vision, user_data, evals]
    default: batch
  check_input:
    description:
      - Whether to check a batch input (O(purpose=batch)) before it is uploaded, reading it once, line by line.
      - Every line must be a JSON object with a unique string C(custom_id), C(method) C(POST), the same C(url) (equal
        to O(endpoint) when given), a C(body) object, and the same C(body.model); there must be at most
        O(max_requests) lines and O(max_bytes) bytes. The first line that breaks a rule fails the task, named by its
        number; a repeated C(custom_id) is found once every line has been read, and names the line it repeats.
      - An earlier upload of the same content is found without checking it again.
    type: bool
    default: true
  endpoint:
    description:
      - The batch endpoint every line's C(url) must name, one of the Batch API's, C(/v1/responses),
        C(/v1/chat/completions), C(/v1/embeddings) or C(/v1/completions). When not given, every line must name the
        first line's.
      - It is only checked against the lines, which are uploaded as they are; the batch is created for an endpoint when it
        is submitted (M(opensearch.ml_commons.ml_batch_predict)'s C(endpoint) parameter), which must be the same.
    type: str
  max_requests:
    description:
      - The most requests (lines) a batch input may hold. OpenAI's limit is 50,000; gateways and other providers
        differ. V(0) checks no count.
    type: int
    default: 50000
  max_bytes:
    description:
      - The largest batch input, in bytes. OpenAI's limit is 200 MB (209715200 bytes). V(0) checks no size.
    type: int
    default: 209715200
  reuse:
    description:
      - For an upload, whether a file of the Files API with the upload's name (its content's SHA-256) and size stands
        for O(src), so that nothing is uploaded again.
      - The Files API keeps no checksum, so anyone with a key to the same project could plant a file of that name and
        size, and a batch job would then run on its content. With V(false), O(src) is uploaded on every run (the task
        always reports a change) and no copy found by name is used or deleted.
    type: bool
    default: true
  state:
    description:
      - V(present) uploads O(src) or downloads O(file_id); V(absent) deletes the file in the Files API.
    type: str
    choices: [present, absent]
    default: present
notes:
  - The Files API keeps no checksum of a file, so an existing O(dest) is recognised by its size alone unless
    O(checksum) is given. Files in the Files API never change, and the batch_inference role names each download
    after its job.
  - Who is trusted. The module trusts the provider's project, whose every member with a key to it can list, plant
    and delete its files; an upload found by name and size (O(reuse=true)) is taken to hold O(src)'s content without
    reading it back. It does not trust the server's answers to name local files (a server's file name is never a
    local path), to be as long as they announce, to list without end, or to redirect (a redirect is an error, as it
    would carry the key elsewhere). See the collection's docs/security.md.
"""

EXAMPLES = r"""
- name: Upload the batch input (once)
  opensearch.ml_commons.openai_file:
    src: files/embeddings.jsonl
    endpoint: /v1/embeddings
    api_key: "{{ openai_api_key }}"
  register: input_file

- name: Download the results when the batch job has completed
  opensearch.ml_commons.openai_file:
    file_id: "{{ batch.job.output_file_id }}"
    dest: results/output.jsonl
    api_key: "{{ openai_api_key }}"

- name: Download again, replacing the copy if its content differs
  opensearch.ml_commons.openai_file:
    file_id: "{{ batch.job.output_file_id }}"
    dest: results/output.jsonl
    force: true
    api_key: "{{ openai_api_key }}"

- name: Upload through a gateway that takes at most 10,000 requests per batch
  opensearch.ml_commons.openai_file:
    src: files/embeddings.jsonl
    max_requests: 10000
    api_base_url: https://gateway.example.com/v1
    api_key: "{{ gateway_api_key }}"

- name: Upload without trusting any copy already in the project (uploads on every run)
  opensearch.ml_commons.openai_file:
    src: files/embeddings.jsonl
    reuse: false
    api_key: "{{ openai_api_key }}"

- name: Download a result that a group may read
  opensearch.ml_commons.openai_file:
    file_id: "{{ batch.job.output_file_id }}"
    dest: results/output.jsonl
    mode: "0640"
    api_key: "{{ openai_api_key }}"

- name: Delete the input once it is no longer needed
  opensearch.ml_commons.openai_file:
    file_id: "{{ input_file.file_id }}"
    state: absent
    api_key: "{{ openai_api_key }}"
"""

RETURN = r"""
file_id:
  description: The file's ID in the Files API; null when it does not exist (after V(absent), or an upload in check mode).
  returned: always
  type: str
  sample: file-YbowBByiyVJN89oSZo2Enu9W
file:
  description: The file object of the Files API; empty when it does not exist.
  returned: always
  type: dict
  sample:
    id: file-YbowBByiyVJN89oSZo2Enu9W
    object: file
    bytes: 120000
    filename: embeddings.sha256-5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.jsonl
    purpose: batch
dest:
  description: Where the file was downloaded to, as an absolute path.
  returned: when O(dest) is given
  type: str
  sample: /srv/batch/results/output.jsonl
sha256:
  description:
    - The SHA-256 of the file's content.
    - For a download, returned when the content was read (downloaded, or an existing O(dest) checked against
      O(checksum) or O(force)).
  returned: when O(src) is uploaded or found, or O(dest) is given and the content was read
  type: str
  sample: 5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03
requests:
  description: How many requests the batch input holds, when it was checked (O(check_input)).
  returned: when a batch input was checked before its upload
  type: int
  sample: 50000
"""

import os
import re

from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.batch_input import BatchInput
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import build_diff
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError, UnexpectedAnswerError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.local import (
    MultipartFile,
    download_path,
    file_digest,
    fingerprinted_name,
    holds,
    parse_checksum,
    plain_name,
    replace_by_download,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import OpenAIModule
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import (
    Kind,
    create_once,
    delete_by_id,
    get_by_id,
    keep_oldest_of,
    oldest_of,
)

FILE = Kind("file", "/files", "id", created_field="created_at")
# The Files API's largest page, and the most pages a listing reads: a million files, far more than a project
# keeps, so that a listing whose cursor goes round in circles ends.
LIST_PAGE_SIZE = 10000
MAX_LIST_PAGES = 100
# What of a server's file name a download into a directory keeps: a plain extension.
PLAIN_EXTENSION = re.compile(r"^\.[A-Za-z0-9]{1,16}$")


def listed_files(client, purpose):
    """Every file of ``purpose``, page after page, one page in memory at a time. The listing ends at a page
    without ``has_more``, an empty page or a cursor that does not move on (a gateway that ignores ``after``),
    and fails after MAX_LIST_PAGES."""
    query = {"purpose": purpose, "limit": LIST_PAGE_SIZE}
    for _page in range(MAX_LIST_PAGES):
        page = client.get("/files", query=query)
        data = [listed for listed in page.get("data") or [] if isinstance(listed, dict)]
        yield from data
        cursor = data[-1].get("id") if data else None
        if not page.get("has_more") or not cursor or cursor == query.get("after"):
            return
        query["after"] = cursor
    raise UnexpectedAnswerError(
        "The Files API listed more than %d pages of files of purpose %s without an end; the listing was stopped. "
        "Is api_base_url a gateway whose pages never end? reuse: false uploads without listing." % (MAX_LIST_PAGES, purpose)
    )


def uploaded_copies(client, local):
    """The uploaded files with the content of ``local``: its fingerprinted name and size, from the list alone."""
    copies = {}
    for listed in listed_files(client, local["purpose"]):
        if listed.get("filename") == local["filename"] and listed.get("bytes") == local["bytes"]:
            copies[listed.get("id")] = listed
    return list(copies.values())


def uploaded_copy(client, local):
    """The oldest uploaded file with the content of ``local``, or None."""
    copies = uploaded_copies(client, local)
    return oldest_of(FILE, copies) if copies else None


def local_file(params):
    """What is known of ``src`` before any request: its fingerprinted name, size, purpose and SHA-256."""
    path = params["src"]
    sha256 = file_digest(path)
    return {"filename": fingerprinted_name(path, sha256), "bytes": os.path.getsize(path), "purpose": params["purpose"], "sha256": sha256}


def file_result(changed, before, after, **extra):
    """The module's result: the file object after the run (empty when there is none), its ID, the diff, and ``extra``."""
    after = after or {}
    result = {"changed": changed, "file_id": after.get("id"), "file": after, "diff": build_diff(before or {}, after)}
    result.update(extra)
    return result


def checked_input(params):
    """The batch input's request count, after checking it; None when it is not a checked batch input."""
    if params["purpose"] != "batch" or not params["check_input"]:
        return None
    return BatchInput(params["src"], params["endpoint"], params["max_requests"], params["max_bytes"]).check().requests


def send_upload(module, client, local):
    """POST the file, streamed from disk; an upload of content other than ``local``'s (the file changed
    while it was read) is deleted again and fails the task, since its name would claim the wrong content."""
    body = MultipartFile({"purpose": local["purpose"]}, "file", local["filename"], module.params["src"])
    try:
        uploaded = client.request("POST", "/files", upload=body)
    finally:
        body.close()
    if body.sha256 != local["sha256"]:
        client.delete(FILE.path(uploaded["id"]))
        raise ConfigurationError("%s changed while it was uploaded; the upload was deleted. Run again once the file is complete." % module.params["src"])
    return uploaded


def upload(module, client):
    local = local_file(module.params)
    reuse = module.params["reuse"]
    existing = uploaded_copy(client, local) if reuse else None
    if existing is not None:
        return file_result(False, existing, existing, sha256=local["sha256"])
    extra = {"sha256": local["sha256"]}
    request_count = checked_input(module.params)
    if request_count is not None:
        extra["requests"] = request_count
    planned = dict((key, local[key]) for key in ("filename", "bytes", "purpose"))
    if module.check_mode:
        return file_result(True, None, planned, **extra)
    if not reuse:
        # No copy found by name is trusted: not after an unknown outcome (that fails; the next run uploads
        # again), not as the oldest copy of concurrent runs.
        return file_result(True, None, send_upload(module, client, local), **extra)
    uploaded = create_once(lambda: send_upload(module, client, local), lambda: uploaded_copy(client, local))
    # Runs uploading the same file at once each make a copy, and then each a batch job of its own:
    # the oldest copy stands, as for ML Commons objects; a younger run deletes its copy.
    kept = keep_oldest_of(client, FILE, uploaded["id"], lambda own_id: client.delete(FILE.path(own_id)), lambda: uploaded_copies(client, local))
    if kept != uploaded["id"]:
        module.warn("A run at the same moment uploaded this file first; this run deleted its own copy (%s)." % uploaded["id"])
        uploaded = get_by_id(client, FILE, kept) or uploaded
    return file_result(True, None, uploaded, **extra)


def download_name(file_id, found):
    """``<file_id><extension>``: of the server's file name only a plain extension is kept, as the name itself could
    be any file of the directory, or lead out of it."""
    filename = found.get("filename")
    extension = os.path.splitext(filename)[1] if isinstance(filename, str) else ""
    return plain_name(file_id, "file_id") + (extension if PLAIN_EXTENSION.match(extension) else "")


def download(module, client):
    params = module.params
    expected = parse_checksum(params["checksum"]) if params["checksum"] else None
    found = get_by_id(client, FILE, params["file_id"])
    if found is None:
        raise ConfigurationError("The Files API has no file %s to download." % params["file_id"])
    dest = download_path(params["dest"], download_name(params["file_id"], found))
    before = {"dest": dest, "bytes": os.path.getsize(dest) if os.path.isfile(dest) else None}
    after = {"dest": dest, "bytes": found.get("bytes")}
    if holds(dest, found.get("bytes"), expected, params["force"]):
        changed = module.set_mode_if_different(dest, params["mode"], False)
        return file_result(changed, found, found, dest=dest, diff=build_diff(before, before))
    if module.check_mode:
        return file_result(True, None, found, dest=dest, diff=build_diff(before, after))
    announced = found.get("bytes") if isinstance(found.get("bytes"), int) else None
    replaced, sha256 = replace_by_download(module, dest, lambda sink: client.request("GET", FILE.path(found["id"]) + "/content", download=sink),
                                           found["id"], announced, expected)
    changed = module.set_mode_if_different(dest, params["mode"], replaced)
    return file_result(changed, None if replaced else found, found, dest=dest, sha256=sha256,
                       diff=build_diff(before, after if replaced else before))


def delete(module, client):
    params = module.params
    if params["file_id"]:
        found = get_by_id(client, FILE, params["file_id"])
    else:
        found = uploaded_copy(client, local_file(params))
    if found is None:
        return file_result(False, None, None)
    if not module.check_mode and not delete_by_id(client, FILE, found["id"]):
        # Another run (a host of the same play, sharing the input) deleted it since it was found.
        return file_result(False, None, None)
    return file_result(True, found, None)


def run(module, client):
    params = module.params
    if params["state"] == "absent":
        return delete(module, client)
    if params["src"]:
        return upload(module, client)
    if not params["dest"]:
        raise ConfigurationError("With file_id and state present, give dest to download the file to.")
    return download(module, client)


ARGUMENT_SPEC = dict(
    src=dict(type="path"),
    file_id=dict(type="str"),
    dest=dict(type="path"),
    force=dict(type="bool", default=False),
    checksum=dict(type="str"),
    purpose=dict(type="str", choices=["batch", "assistants", "fine-tune", "vision", "user_data", "evals"], default="batch"),
    check_input=dict(type="bool", default=True),
    endpoint=dict(type="str"),
    max_requests=dict(type="int", default=50000),
    max_bytes=dict(type="int", default=209715200),
    reuse=dict(type="bool", default=True),
    mode=dict(type="raw"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


def main():
    module = OpenAIModule(
        argument_spec=ARGUMENT_SPEC,
        required_one_of=[("src", "file_id")],
        mutually_exclusive=[("src", "file_id"), ("src", "dest")],
        required_by={"checksum": "dest"},
    )
    module.execute(run)


if __name__ == "__main__":
    main()
