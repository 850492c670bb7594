#!/usr/bin/env python
"""The bench's reference for the index phase: what opensearch-py 3.2.0 (a dev dependency of the bench only)
does with the same documents, timed inside this process (its start-up and imports left out).

    index_reference.py scan URL INDEX FIELD
    index_reference.py streaming_bulk|parallel_bulk URL INDEX OUTPUT TARGET_FIELD FINGERPRINT_FIELD

``scan`` reads FIELD of every document of INDEX with ``helpers.scan`` (a scroll sorted by ``_doc``, 1,000
a page, as the module reads). The writers send each answer of the merged batch OUTPUT to the document its
``custom_id`` names, as a partial update of TARGET_FIELD and FINGERPRINT_FIELD, with their defaults (500
actions or 100 MB a request; parallel_bulk with 4 threads), then refresh INDEX, so that what was written is
searchable when they end, as it is when the module returns. Prints one JSON object: seconds and counts.
"""

import json
import sys
import time

from opensearchpy import OpenSearch, helpers

TIMEOUT_S = 300


def client(url):
    return OpenSearch(hosts=[url], timeout=TIMEOUT_S, http_compress=False)


def scan(url, index, field):
    search = client(url)
    started = time.monotonic()
    documents = characters = 0
    for hit in helpers.scan(search, index=index, query={"query": {"match_all": {}}, "_source": [field]}, size=1000, scroll="5m"):
        documents += 1
        characters += len(hit["_source"].get(field) or "")
    return {"seconds": round(time.monotonic() - started, 3), "documents": documents, "characters": characters}


def updates(index, output, target_field, fingerprint_field):
    with open(output, encoding="utf-8") as lines:
        for line in lines:
            answer = json.loads(line)
            fingerprint, _colon, doc_id = answer["custom_id"].partition(":")
            embedding = answer["response"]["body"]["data"][0]["embedding"]
            yield {"_op_type": "update", "_index": index, "_id": doc_id, "doc": {target_field: embedding, fingerprint_field: fingerprint}}


def write(kind, url, index, output, target_field, fingerprint_field):
    search = client(url)
    started = time.monotonic()
    actions = updates(index, output, target_field, fingerprint_field)
    if kind == "streaming_bulk":
        results = helpers.streaming_bulk(search, actions, raise_on_error=False, max_retries=5)
    else:
        results = helpers.parallel_bulk(search, actions, raise_on_error=False)
    written = failed = 0
    for ok, _item in results:
        written += ok
        failed += not ok
    search.indices.refresh(index=index)
    return {"seconds": round(time.monotonic() - started, 3), "written": written, "failed": failed}


def main(argv):
    if argv[1:2] == ["scan"] and len(argv) == 5:
        found = scan(*argv[2:])
    elif argv[1:2] in (["streaming_bulk"], ["parallel_bulk"]) and len(argv) == 7:
        found = write(argv[1], *argv[2:])
    else:
        sys.exit(__doc__)
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
