#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: batch_input_split
short_description: Split a batch input JSONL into parts that each fit one batch job
version_added: 0.1.0
description:
  - Splits a batch input of any size into parts of consecutive requests, in input order, each within O(max_requests)
    requests and O(max_bytes) bytes, so that each part can be uploaded with M(opensearch.ml_commons.openai_file) (or
    M(opensearch.ml_commons.s3_object) for Amazon Bedrock and SageMaker) and run as one batch job.
  - A local file operation, like M(ansible.builtin.copy). It runs where O(src) is and sends no request, so it takes
    no connection options.
  - Before any part is written, the whole input is checked line by line as its provider (O(record_format)) would
    check it. OpenAI's lines as its batch validation checks a batch input, by the rules
    M(opensearch.ml_commons.openai_file) checks an upload with, every C(custom_id) being unique across the whole input,
    not only within a part. A problem fails the task, naming its line; nothing is written then.
  - Where a job takes a least number of requests as well (O(min_requests), Bedrock's 100), an input too large for one
    part is split into parts of equal size, so that none is left with too few.
  - The input is read as a stream and the uniqueness of the C(custom_id)s is checked with temporary files on disk, so
    memory stays flat (under 100 MB) at any input size.
  - The parts are O(dest)/C(<stem>.part-00001.jsonl), O(dest)/C(<stem>.part-00002.jsonl) and so on, where C(<stem>) is
    the name of O(src) without its extension. Blank lines are dropped. Each part is written to a temporary file and
    renamed into place; a part that already holds its content is left as it is. Parts of an earlier split into more
    parts are removed.
  - An input that fits one job as it is (within both limits, without blank lines) is its own single part, RV(parts)
    names O(src) itself and no part file is written, so its upload is the input's own, as it would be unsplit.
  - A manifest, O(dest)/C(<stem>.parts.json), records the SHA-256 and size of O(src), the limits and each part. A
    re-run with the same O(src) and limits reads O(src) once to hash it, finds the parts in place with their sizes,
    and neither checks nor writes anything.
author:
  - opensearch.ml_commons maintainers (!UNKNOWN)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: The parts before and after, by name, requests and bytes; never their content.
options:
  src:
    description:
      - The whole batch input, one JSON request per line.
    type: path
    required: true
  dest:
    description:
      - The directory to write the parts to. It is created when missing.
    type: path
    required: true
  max_requests:
    description:
      - The most requests (lines) a part may hold; V(0) for no limit. OpenAI's limit for a batch input is 50,000, as is
        Bedrock's for a batch inference job.
    type: int
    default: 50000
  min_requests:
    description:
      - The fewest requests a part may hold. An input with fewer fails the task, as does a part cut short by
        O(max_bytes). Bedrock's least for a batch inference job is 100.
    type: int
    default: 1
  max_bytes:
    description:
      - The most bytes a part may hold.
      - OpenAI takes batch inputs of up to 200 MB. The default stays at least 10 MB under that whether a MB is counted
        as 1,000,000 or 1,048,576 bytes, so a part is never refused for a few bytes too many.
      - A single line larger than this fails the task, naming the line. V(0) for no limit.
    type: int
    default: 190000000
  record_format:
    description:
      - Whose batch input O(src) is, which says how each line is checked.
      - V(openai), OpenAI's batch requests (C(custom_id), C(method), C(url), C(body)).
      - V(bedrock), Amazon Bedrock's batch records, each a JSON object with a C(modelInput) object and a C(recordId)
        unique across the input, by which M(opensearch.ml_commons.batch_output_merge) puts the output in input order.
      - V(sagemaker), SageMaker batch transform's lines (C(SplitType) C(Line)), each a JSON object.
    type: str
    choices: [openai, bedrock, sagemaker]
    default: openai
  endpoint:
    description:
      - The batch endpoint every line's C(url) must name, one of the Batch API's, C(/v1/responses),
        C(/v1/chat/completions), C(/v1/embeddings) or C(/v1/completions). When not given, every line must name the
        first line's.
      - It is only checked against the lines, which the parts hold as they are. Only with O(record_format=openai).
    type: str
notes:
  - A part already in place is recognised by its size and SHA-256 when O(src) is split again; a re-run that finds the
    manifest unchanged trusts the size of each part alone, as the parts are written only by this module.
  - The check of the C(custom_id)s (or C(recordId)s) writes 16 bytes per request to the system's temporary directory, removed before the
    task ends (in check mode too).
seealso:
  - module: opensearch.ml_commons.openai_file
"""

EXAMPLES = r"""
- name: Split a large embeddings input into parts of at most 50,000 requests and 190 MB
  opensearch.ml_commons.batch_input_split:
    src: files/corpus.jsonl
    dest: work/parts
    endpoint: /v1/embeddings
  register: split

- name: Upload each part
  opensearch.ml_commons.openai_file:
    src: "{{ item.path }}"
    endpoint: /v1/embeddings
    api_key: "{{ openai_api_key }}"
  loop: "{{ split.parts }}"
  loop_control:
    label: "{{ item.path }} ({{ item.lines }} requests from line {{ item.first_line }})"
  register: uploads

- name: Split for a gateway that takes at most 10,000 requests and 50 MB per batch
  opensearch.ml_commons.batch_input_split:
    src: files/corpus.jsonl
    dest: work/gateway-parts
    max_requests: 10000
    max_bytes: 50000000

- name: Split Bedrock records into jobs of 100 to 50,000 records, of equal size
  opensearch.ml_commons.batch_input_split:
    src: files/records.jsonl
    dest: work/bedrock-parts
    record_format: bedrock
    min_requests: 100
    max_requests: 50000
    max_bytes: 1000000000
"""

RETURN = r"""
parts:
  description: The parts, in input order.
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: The part's number, from 1.
      type: int
      sample: 1
    path:
      description: Where the part is (or would be, in check mode).
      type: str
      sample: work/parts/corpus.part-00001.jsonl
    first_line:
      description: The line number in O(src), from 1, of the part's first request.
      type: int
      sample: 1
    lines:
      description: How many requests the part holds.
      type: int
      sample: 50000
    bytes:
      description: The part's size in bytes.
      type: int
      sample: 11250000
    sha256:
      description: The SHA-256 of the part's content.
      type: str
      sample: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
  sample:
    - index: 1
      path: work/parts/corpus.part-00001.jsonl
      first_line: 1
      lines: 50000
      bytes: 11250000
      sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
    - index: 2
      path: work/parts/corpus.part-00002.jsonl
      first_line: 50001
      lines: 20000
      bytes: 4500000
      sha256: fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9
requests:
  description: How many requests O(src) holds.
  returned: always
  type: int
  sample: 70000
bytes:
  description: The size of O(src) in bytes, blank lines included.
  returned: always
  type: int
  sample: 15750000
sha256:
  description: The SHA-256 of O(src).
  returned: always
  type: str
  sample: 5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03
"""

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import build_diff
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import LocalModule
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.split import Split


def run(module):
    params = module.params
    split = Split(module, params["src"], params["dest"], max_requests=params["max_requests"], max_bytes=params["max_bytes"], endpoint=params["endpoint"],
                  record_format=params["record_format"], min_requests=params["min_requests"])
    changed, before, after, found = split.apply()
    return dict(found, changed=changed, diff=build_diff(before, after))


ARGUMENT_SPEC = dict(
    src=dict(type="path", required=True),
    dest=dict(type="path", required=True),
    max_requests=dict(type="int", default=50000),
    min_requests=dict(type="int", default=1),
    max_bytes=dict(type="int", default=190000000),
    endpoint=dict(type="str"),
    record_format=dict(type="str", choices=["openai", "bedrock", "sagemaker"], default="openai"),
)


def main():
    LocalModule(argument_spec=ARGUMENT_SPEC).execute(run)


if __name__ == "__main__":
    main()
