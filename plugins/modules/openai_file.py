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
  - With O(src), uploads the file unless one with the same content and O(purpose) is already there. Content is compared
    byte for byte, so a re-run uploads nothing. Runs that upload the same file at the same moment keep one copy, the oldest;
    each younger run deletes its own copy and returns the oldest, with a warning.
  - With O(file_id) and O(dest), downloads the file to O(dest) unless O(dest) already holds the same content.
  - With O(state=absent), deletes the file given by O(file_id), or the uploaded copy of O(src).
author:
  - opensearch.ml_commons maintainers (@opensearch-ml-commons)
extends_documentation_fragment:
  - opensearch.ml_commons.openai
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
      - Where to download O(file_id) to. Its directory must exist.
    type: path
  purpose:
    description:
      - The purpose of an uploaded file.
    type: str
    choices: [batch, assistants, fine-tune, vision, user_data, evals]
    default: batch
  state:
    description:
      - V(present) uploads O(src) or downloads O(file_id); V(absent) deletes the file in the Files API.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Upload the batch input (once)
  opensearch.ml_commons.openai_file:
    src: files/embeddings.jsonl
    api_key: "{{ openai_api_key }}"
  register: input_file

- name: Download the results when the batch job has completed
  opensearch.ml_commons.openai_file:
    file_id: "{{ batch.job.output_file_id }}"
    dest: results/output.jsonl
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
    filename: embeddings.jsonl
    purpose: batch
dest:
  description: Where the file was downloaded to.
  returned: when O(dest) is given
  type: str
sha256:
  description: The SHA-256 of the file's content.
  returned: when O(src) or O(dest) is given and the content was read
  type: str
"""

import hashlib
import os
import tempfile

from ansible_collections.opensearch.ml_commons.plugins.module_utils.diff import build_diff
from ansible_collections.opensearch.ml_commons.plugins.module_utils.errors import ConfigurationError, HTTPError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.module import OpenAIModule
from ansible_collections.opensearch.ml_commons.plugins.module_utils.resource import Kind, create_once, keep_oldest_of, oldest_of

FILE = Kind("file", "/files", "id", created_field="created_at")


def sha256_of(data):
    return hashlib.sha256(data).hexdigest()


def read_local(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (IOError, OSError) as error:
        raise ConfigurationError("Cannot read %s: %s." % (path, error.strerror))


def remote_file(client, file_id):
    try:
        return client.get(FILE.path(file_id))
    except HTTPError as error:
        if error.status == 404:
            return None
        raise


def uploaded_copies(client, content, purpose):
    """The uploaded files with exactly ``content``: candidates of the same size are downloaded and compared."""
    files = client.get("/files", query={"purpose": purpose}).get("data", [])
    return [
        candidate for candidate in files
        if candidate.get("bytes") == len(content) and client.request("GET", FILE.path(candidate["id"]) + "/content", raw=True) == content
    ]


def uploaded_copy(client, content, purpose):
    """The oldest uploaded file with exactly ``content``, or None."""
    copies = uploaded_copies(client, content, purpose)
    return oldest_of(FILE, copies) if copies else None


def file_result(changed, found, before=None, **extra):
    found = found or {}
    result = {"changed": changed, "file_id": found.get("id"), "file": found, "diff": build_diff(before or {}, found)}
    result.update(extra)
    return result


def upload(module, client):
    params = module.params
    content = read_local(params["src"])
    existing = uploaded_copy(client, content, params["purpose"])
    if existing is not None:
        return file_result(False, existing, existing, sha256=sha256_of(content))
    planned = {"filename": os.path.basename(params["src"]), "bytes": len(content), "purpose": params["purpose"]}
    if module.check_mode:
        return file_result(True, planned, sha256=sha256_of(content))

    def send():
        return client.request("POST", "/files", body={"purpose": params["purpose"]}, files={"file": (planned["filename"], content)})

    uploaded = create_once(send, lambda: uploaded_copy(client, content, params["purpose"]))
    # Runs uploading the same file at once each make a copy, and then each a batch job of its own:
    # the oldest copy stands, as for ML Commons objects; a younger run deletes its copy.
    kept = keep_oldest_of(client, FILE, uploaded["id"], lambda own_id: client.delete(FILE.path(own_id)),
                          lambda: uploaded_copies(client, content, params["purpose"]))
    if kept != uploaded["id"]:
        module.warn("A run at the same moment uploaded this file first; this run deleted its own copy (%s)." % uploaded["id"])
        uploaded = remote_file(client, kept) or uploaded
    return file_result(True, uploaded, sha256=sha256_of(content))


def download(module, client):
    params = module.params
    found = remote_file(client, params["file_id"])
    if found is None:
        raise ConfigurationError("The Files API has no file %s to download." % params["file_id"])
    content = client.request("GET", FILE.path(params["file_id"]) + "/content", raw=True)
    dest = params["dest"]
    current = read_local(dest) if os.path.exists(dest) else None
    extra = {"dest": dest, "sha256": sha256_of(content)}
    if current == content:
        return file_result(False, found, found, **extra)
    if not module.check_mode:
        directory = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(directory):
            raise ConfigurationError("Cannot download to %s: the directory %s does not exist." % (dest, directory))
        handle, temporary = tempfile.mkstemp(dir=directory)
        with os.fdopen(handle, "wb") as partial:
            partial.write(content)
        module.atomic_move(temporary, dest)
    result = file_result(True, found, **extra)
    result["diff"] = build_diff({"dest": dest, "sha256": current and sha256_of(current)}, {"dest": dest, "sha256": extra["sha256"]})
    return result


def delete(module, client):
    params = module.params
    if params["file_id"]:
        found = remote_file(client, params["file_id"])
    else:
        found = uploaded_copy(client, read_local(params["src"]), params["purpose"])
    if found is None:
        return file_result(False, None)
    if not module.check_mode:
        client.delete(FILE.path(found["id"]))
    result = file_result(True, None, found)
    result["file_id"] = None
    return result


def run(module, client):
    params = module.params
    if params["state"] == "absent":
        return delete(module, client)
    if params["src"]:
        return upload(module, client)
    if not params["dest"]:
        raise ConfigurationError("With file_id and state present, give dest to download the file to.")
    return download(module, client)


def main():
    argument_spec = dict(
        src=dict(type="path"),
        file_id=dict(type="str"),
        dest=dict(type="path"),
        purpose=dict(type="str", choices=["batch", "assistants", "fine-tune", "vision", "user_data", "evals"], default="batch"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    module = OpenAIModule(
        argument_spec=argument_spec,
        required_one_of=[("src", "file_id")],
        mutually_exclusive=[("src", "file_id"), ("src", "dest")],
    )
    module.execute(run)


if __name__ == "__main__":
    main()
