#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: index_batch_output
short_description: Write the answers of a batch output into the documents of an index
version_added: 0.1.0
description:
  - Reads a batch output JSONL (for example the merged output of M(opensearch.ml_commons.batch_output_merge)) line by
    line and writes each answer to the document whose C(_id) its C(custom_id) names, in O(target_field).
  - A C(custom_id) of the form C(<fingerprint>:<_id>), as M(opensearch.ml_commons.index_batch_input) writes it,
    names the document C(_id) and the fingerprint of the request; the fingerprint is stored in O(fingerprint_field)
    next to the result, which is what lets the next export leave the document out. Any other C(custom_id) is the
    C(_id) itself, and no fingerprint is stored.
  - An embeddings answer (C(response.body.data[0].embedding)) goes into a C(knn_vector) field; a chat answer
    (C(response.body.choices[0].message.content)) into a text field, or parsed as JSON with O(parse_json).
  - Before anything is written, the target mapping is checked against the output's first answer. A C(knn_vector)
    field whose dimension differs from the embeddings' fails the task, and nothing is written. A field not mapped yet
    is added as a C(knn_vector) of the embeddings' dimension with O(knn_method). A missing O(target_index) (other
    than O(index)) is created with that field, C(index.knn) on and O(fingerprint_field) as a keyword.
  - In place (no O(target_index)), each write is a C(_bulk) C(update) with a partial C(doc), never an upsert. An
    update does not run the index's default ingest pipeline (C(index.default_pipeline)), so a pipeline that embeds
    documents online does not embed them again; and a document deleted since the export is reported, not created
    again. Into O(target_index), each write is a C(_bulk) C(index) of the O(copy_fields) of the source document and
    the result, with C(pipeline=_none), which skips the target's default pipeline (its C(final_pipeline), if any,
    still runs).
  - Idempotent without a write. The documents of each page of 500 lines are read first (C(_mget)) and only those
    whose result (and fingerprint, and copied fields) differ are written, so a re-run sends no index operation, and the
    index's C(indexing.index_total) does not move.
  - Writes go in C(_bulk) requests of at most O(bulk_bytes) bytes. An item rejected for load (429,
    C(es_rejected_execution_exception)) is sent again after a growing pause, up to O(bulk_retries) times; items that
    still fail, and any other failed item, are reported by C(_id) with the reason (RV(failures)).
  - Lines that failed at the provider (in the output with another status, or in the error file O(errors)) are not
    written and are reported.
  - The indices written to are refreshed before the task returns, so what it wrote is searchable.
  - The output is read a line at a time, so memory stays flat at any output size.
author:
  - opensearch.ml_commons maintainers (!UNKNOWN)
extends_documentation_fragment:
  - opensearch.ml_commons.connection
  - opensearch.ml_commons.attributes
options:
  src:
    description:
      - The batch output, one OpenAI C(BatchRequestOutput) JSON object per line.
    type: path
    required: true
  errors:
    description:
      - The batch error file, whose lines are reported as failed.
    type: path
  index:
    description:
      - The index that holds the documents the requests were made for.
    type: str
    required: true
  target_index:
    description:
      - Another index to write the results into, each as a document of the same C(_id) holding O(copy_fields) and the
        result. Created when missing. Default, the results are written into the documents of O(index).
    type: str
  target_field:
    description:
      - The field to write each result into; a dotted path names a field of an object.
    type: str
    required: true
  fingerprint_field:
    description:
      - The field that receives the fingerprint of the request that produced the result. Default, O(target_field)
        followed by C(_fingerprint). It must be the one M(opensearch.ml_commons.index_batch_input) is given.
    type: str
  copy_fields:
    description:
      - With O(target_index), the fields of each source document to copy next to the result.
    type: list
    elements: str
  parse_json:
    description:
      - Whether a chat answer's content is JSON to store as it is parsed, instead of as text. An answer that is not
        JSON is reported, not written.
    type: bool
    default: false
  knn_method:
    description:
      - The C(method) of a C(knn_vector) field the module maps. The default, lucene HNSW with L2 distance, needs no
        native library.
    type: dict
  bulk_bytes:
    description:
      - The most bytes one C(_bulk) request holds.
    type: int
    default: 5000000
  bulk_retries:
    description:
      - How many times an item rejected for load is sent again.
    type: int
    default: 5
seealso:
  - module: opensearch.ml_commons.index_batch_input
  - module: opensearch.ml_commons.batch_output_merge
"""

EXAMPLES = r"""
- name: The embeddings into the documents they were made for
  opensearch.ml_commons.index_batch_output:
    url: https://localhost:9200
    src: results/articles.output.jsonl
    # The merge's error file, which it writes only when a line failed
    errors: "{{ merged.errors or omit }}"
    index: articles
    target_field: body_embedding
  register: written

- name: Summaries into another index, next to each article's title
  opensearch.ml_commons.index_batch_output:
    url: https://localhost:9200
    src: results/summaries.output.jsonl
    index: articles
    target_index: article-summaries
    target_field: summary
    copy_fields: [title]
"""

RETURN = r"""
target_index:
  description: The index written to.
  returned: always
  type: str
  sample: articles
written:
  description: How many documents were written (would be, in check mode).
  returned: always
  type: int
  sample: 1200
unchanged:
  description: How many documents already held their result.
  returned: always
  type: int
  sample: 98800
failed_documents:
  description: How many answers were not written (failed at the provider, or refused by the index).
  returned: always
  type: int
  sample: 1
failures:
  description: The first 100 answers not written, with the reason; C(_id) is null for a line without a C(custom_id).
  returned: always
  type: list
  elements: dict
  sample:
    - _id: doc-17
      reason: "batch_expired: This request could not be executed before the completion window expired."
created_index:
  description: Whether O(target_index) was created (would be, in check mode).
  returned: always
  type: bool
  sample: false
"""

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import build_diff
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import MLCommonsModule
from ansible_collections.opensearch.ml_commons.plugins.module_utils.index.fingerprint import default_fingerprint_field
from ansible_collections.opensearch.ml_commons.plugins.module_utils.index.write_back import WriteBack


def run(module, client):
    params = module.params
    write_back = WriteBack(
        module, client, params["src"], params["index"], params["target_field"],
        params["fingerprint_field"] or default_fingerprint_field(params["target_field"]), errors=params["errors"],
        target_index=params["target_index"], copy_fields=params["copy_fields"], parse_json=params["parse_json"],
        knn_method=params["knn_method"], bulk_bytes=params["bulk_bytes"], retries=params["bulk_retries"],
    )
    changed, found = write_back.apply()
    after = {"target_index": found["target_index"], "written": found["written"], "created_index": found["created_index"]}
    return dict(found, changed=changed, diff=build_diff({"target_index": found["target_index"]}, after))


ARGUMENT_SPEC = dict(
    src=dict(type="path", required=True),
    errors=dict(type="path"),
    index=dict(type="str", required=True),
    target_index=dict(type="str"),
    target_field=dict(type="str", required=True),
    fingerprint_field=dict(type="str"),
    copy_fields=dict(type="list", elements="str"),
    parse_json=dict(type="bool", default=False),
    knn_method=dict(type="dict"),
    bulk_bytes=dict(type="int", default=5000000),
    bulk_retries=dict(type="int", default=5),
)


def main():
    MLCommonsModule(argument_spec=ARGUMENT_SPEC).execute(run)


if __name__ == "__main__":
    main()
