# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Writes through ``_bulk``, sized in bytes. An item the cluster rejected for load (429,
``es_rejected_execution_exception``) is sent again, alone with the others rejected, after a growing
pause; any other failure, or a rejection that outlasts the retries, is reported by ``_id``."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import quote_id

RETRIED_TYPES = frozenset(("es_rejected_execution_exception",))
MAX_PAUSE_SECONDS = 30.0


class NDJSON(bytes):
    """A request body of JSON lines, as the client's ``upload`` takes it."""

    content_type = "application/x-ndjson"

    def open(self):
        return self


def is_rejection(item):
    return item.get("status") == 429 or (item.get("error") or {}).get("type") in RETRIED_TYPES


def reason(item):
    error = item.get("error") or {}
    return "%s: %s" % (error.get("type"), error.get("reason")) if isinstance(error, dict) else str(error)


def action_lines(action, source):
    return (json.dumps(action, separators=(",", ":")) + "\n" + json.dumps(source, separators=(",", ":")) + "\n").encode("utf-8")


class BulkWriter(object):
    """Collects ``(_id, action, source)`` operations and sends them once they reach ``max_bytes``;
    ``failed(_id, reason)`` hears of each item that could not be written, ``written`` counts the items
    written and ``noops`` those OpenSearch found unchanged."""

    def __init__(self, client, max_bytes, failed, retries=5, backoff=1.0, sleep=None):
        self.client = client
        self.max_bytes = max_bytes
        self.failed = failed
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep or time.sleep
        self.pending = []
        self.pending_bytes = 0
        self.written = 0
        self.noops = 0
        self.indices = set()

    def add(self, doc_id, action, source):
        lines = action_lines(action, source)
        if self.pending and self.pending_bytes + len(lines) > self.max_bytes:
            self.flush()
        self.pending.append((doc_id, lines))
        self.pending_bytes += len(lines)
        self.indices.add(list(action.values())[0]["_index"])

    def flush(self):
        operations, self.pending, self.pending_bytes = self.pending, [], 0
        attempt = 0
        while operations:
            answer = self.client.request("POST", "/_bulk", upload=NDJSON(b"".join(lines for _id, lines in operations)), idempotent=True)
            rejected = []
            for (doc_id, lines), entry in zip(operations, answer["items"]):
                item = list(entry.values())[0]
                if "error" not in item and item.get("result") == "noop":
                    self.noops += 1
                elif "error" not in item:
                    self.written += 1
                elif is_rejection(item) and attempt < self.retries:
                    rejected.append((doc_id, lines))
                else:
                    self.failed(doc_id, reason(item))
            operations = rejected
            if rejected:
                attempt += 1
                self.sleep(min(self.backoff * 2 ** (attempt - 1), MAX_PAUSE_SECONDS))

    def refresh(self):
        """Make what was written searchable."""
        for index in sorted(self.indices):
            self.client.request("POST", "/%s/_refresh" % quote_id(index), idempotent=True)
