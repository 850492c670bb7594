#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: index_batch_input
short_description: Write the documents of an index that need a result as a batch input JSONL
version_added: 0.1.0
description:
  - Reads the documents of O(index) that O(query) matches and writes one batch request per document to O(dest), for
    O(endpoint). The document's text (O(text_field)) is the C(input) of a C(/v1/embeddings) request, or goes into
    the O(messages) of a C(/v1/chat/completions) request where they say C({text}).
  - The file feeds M(opensearch.ml_commons.batch_input_split), which checks it as OpenAI checks a batch input and
    cuts it into parts that fit one job each; M(opensearch.ml_commons.index_batch_output) writes the results back.
  - Incremental by default (O(incremental)). Each request has a fingerprint, the SHA-256 of its endpoint and body
    (so of the text, the model and every body parameter). M(opensearch.ml_commons.index_batch_output) stores the
    fingerprint of the request that produced a result in O(fingerprint_field) of the document that holds the result.
    A document whose stored fingerprint equals its request's has a current result and is not sent again, so a re-run
    after nothing changed writes an empty input, and one after N new and M edited documents writes N + M requests.
  - Each request's C(custom_id) is C(<fingerprint>:<_id>), 64 hexadecimal digits, a colon and the document's
    C(_id), so that the output line names both the document and the text its answer is for.
  - Documents without O(text_field), or whose text is empty or not a string, are not sent; RV(skipped_documents)
    names them.
  - The index is read through a scroll sorted by C(_doc), a page at a time, and the file written through a temporary
    file renamed into place, so memory stays flat at any index size. O(dest) is replaced only when its content
    differs.
author:
  - opensearch.ml_commons maintainers (!UNKNOWN)
extends_documentation_fragment:
  - opensearch.ml_commons.connection
  - opensearch.ml_commons.attributes
options:
  index:
    description:
      - The index (or alias) to read the documents from.
    type: str
    required: true
  text_field:
    description:
      - The field that holds each document's text; a dotted path names a field of an object.
    type: str
    required: true
  query:
    description:
      - The query that chooses the documents (the C(query) of a search); every document when not given.
    type: dict
  dest:
    description:
      - The batch input file to write. Its directory must exist.
    type: path
    required: true
  endpoint:
    description:
      - The batch endpoint the requests call, each line's C(url). The batch must be created for the same one
        (M(opensearch.ml_commons.ml_batch_predict)'s C(endpoint) parameter).
      - The Batch API also takes C(/v1/responses) and C(/v1/completions), whose request bodies this module does not write.
    type: str
    choices: [/v1/embeddings, /v1/chat/completions]
    default: /v1/embeddings
  model:
    description:
      - The model every request names, as its C(body.model). In a batch, this chooses the model, not a connector's
        C(model) parameter.
    type: str
    required: true
  body:
    description:
      - More parameters of every request's body, for example C(dimensions) for embeddings or C(temperature) for chat.
    type: dict
  messages:
    description:
      - For O(endpoint=/v1/chat/completions), the messages of each request; the text C({text}) in their C(content) is
        replaced by the document's text, and at least one must hold it.
      - Default, one user message that is the document's text.
    type: list
    elements: dict
  target_index:
    description:
      - The index that holds the results and their fingerprints, when it is not O(index) (results written into
        another index by M(opensearch.ml_commons.index_batch_output)).
    type: str
  target_field:
    description:
      - The field that holds each document's result; it names the default O(fingerprint_field).
    type: str
    required: true
  fingerprint_field:
    description:
      - The field, next to the result, that holds the fingerprint of the request that produced it. The module owns
        it; a keyword field of 64 hexadecimal digits.
      - Default, O(target_field) followed by C(_fingerprint).
    type: str
  incremental:
    description:
      - Whether to leave out the documents whose result is current. V(false) sends every document.
    type: bool
    default: true
  page_size:
    description:
      - How many documents each search page reads.
    type: int
    default: 1000
notes:
  - A document's result counts as current only if its fingerprint was stored by
    M(opensearch.ml_commons.index_batch_output) from an output line of this module's input.
seealso:
  - module: opensearch.ml_commons.batch_input_split
  - module: opensearch.ml_commons.index_batch_output
"""

EXAMPLES = r"""
- name: The documents without a current embedding, as a batch input
  opensearch.ml_commons.index_batch_input:
    url: https://localhost:9200
    index: articles
    text_field: body
    target_field: body_embedding
    dest: work/articles.jsonl
    model: text-embedding-3-small
    body:
      dimensions: 256
  register: exported

- name: A one-line summary of each published article
  opensearch.ml_commons.index_batch_input:
    url: https://localhost:9200
    index: articles
    query:
      term:
        status: published
    text_field: body
    target_field: summary
    dest: work/summaries.jsonl
    endpoint: /v1/chat/completions
    model: gpt-4o-mini
    messages:
      - role: system
        content: Summarise the article in one sentence.
      - role: user
        content: "{text}"
"""

RETURN = r"""
dest:
  description: The batch input's path (O(dest)).
  returned: always
  type: str
  sample: work/articles.jsonl
requests:
  description: How many requests the input holds (the documents sent).
  returned: always
  type: int
  sample: 1200
unchanged:
  description: How many documents were left out because their result is current.
  returned: always
  type: int
  sample: 98800
skipped_count:
  description:
    - How many documents were left out because they have no text. (Not C(skipped), which Ansible reads as the task's
      own skip.)
  returned: always
  type: int
  sample: 2
skipped_documents:
  description: The first 100 documents left out for having no text, with the reason.
  returned: always
  type: list
  elements: dict
  sample:
    - _id: doc-17
      reason: no body
bytes:
  description: The input's size in bytes.
  returned: always
  type: int
  sample: 180000
sha256:
  description: The input's SHA-256.
  returned: always
  type: str
  sample: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
"""

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import build_diff
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import MLCommonsModule
from ansible_collections.opensearch.ml_commons.plugins.module_utils.index.export import Export
from ansible_collections.opensearch.ml_commons.plugins.module_utils.index.fingerprint import default_fingerprint_field


def run(module, client):
    params = module.params
    export = Export(
        module, client, params["index"], params["text_field"], params["dest"], params["endpoint"], params["model"],
        body=params["body"], messages=params["messages"], query=params["query"], target_index=params["target_index"],
        fingerprint_field=params["fingerprint_field"] or default_fingerprint_field(params["target_field"]),
        incremental=params["incremental"], page_size=params["page_size"],
    )
    changed, before, after, found = export.apply()
    return dict(found, changed=changed, diff=build_diff(before, after))


ARGUMENT_SPEC = dict(
    index=dict(type="str", required=True),
    text_field=dict(type="str", required=True),
    query=dict(type="dict"),
    dest=dict(type="path", required=True),
    endpoint=dict(type="str", choices=["/v1/embeddings", "/v1/chat/completions"], default="/v1/embeddings"),
    model=dict(type="str", required=True),
    body=dict(type="dict"),
    messages=dict(type="list", elements="dict"),
    target_index=dict(type="str"),
    target_field=dict(type="str", required=True),
    fingerprint_field=dict(type="str"),
    incremental=dict(type="bool", default=True),
    page_size=dict(type="int", default=1000),
)


def main():
    MLCommonsModule(argument_spec=ARGUMENT_SPEC).execute(run)


if __name__ == "__main__":
    main()
