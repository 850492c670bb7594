# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Documents read out of an index: every match of a query through a scroll sorted by ``_doc`` (one
consistent view, the cheapest order, nothing held but the current page), and documents looked up by
ID a page at a time.

Not a point in time with ``search_after``: that needs a total order, and OpenSearch 2.19 has no
``_shard_doc`` to sort by, while ``_doc`` alone repeats across shards (search_after then skips
documents) and ``_id`` loads every ID into the cluster's heap.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import quote_id
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError, HTTPError

KEEP_ALIVE = "5m"


def missing_index(index):
    return ConfigurationError("The index %s does not exist." % index, index=index)


def pages(client, index, query, source, page_size):
    """Yield lists of ``(_id, _source)``, a page at a time, of every document of ``index`` that ``query`` matches, reading only the
    ``source`` fields; the scroll is cleared at the end (or on an error)."""
    body = {"size": page_size, "query": query, "_source": source, "sort": ["_doc"]}
    try:
        answer = client.request("POST", "/%s/_search" % quote_id(index), body=body, query={"scroll": KEEP_ALIVE}, idempotent=True)
    except HTTPError as error:
        if error.status == 404:
            raise missing_index(index)
        raise
    scroll_id = answer.get("_scroll_id")
    try:
        while True:
            hits = answer["hits"]["hits"]
            if not hits:
                return
            yield [(hit["_id"], hit.get("_source") or {}) for hit in hits]
            answer = client.search("/_search/scroll", {"scroll": KEEP_ALIVE, "scroll_id": scroll_id})
            scroll_id = answer.get("_scroll_id", scroll_id)
    finally:
        if scroll_id:
            client.request("DELETE", "/_search/scroll", body={"scroll_id": [scroll_id]}, idempotent=True)


def get_many(client, index, ids, source):
    """{_id: _source (only the ``source`` fields, or all with True)} of the documents of ``index`` among ``ids``; a
    missing one is absent."""
    if not ids:
        return {}
    try:
        query = None if source is True else {"_source_includes": ",".join(source)}
        answer = client.request("POST", "/%s/_mget" % quote_id(index), body={"ids": list(ids)}, query=query, idempotent=True)
    except HTTPError as error:
        if error.status == 404:
            raise missing_index(index)
        raise
    return dict((doc["_id"], doc.get("_source") or {}) for doc in answer["docs"] if doc.get("found"))


def field_value(source, path):
    """The value at the dotted ``path`` of a document's ``_source``; None when it is absent."""
    value = source
    for name in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value
