# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Writes through ``_bulk``, sized in bytes. An item the cluster rejected for load (429,
``es_rejected_execution_exception``) is sent again, alone with the others rejected, after a growing
pause; any other failure, or a rejection that outlasts the retries, is reported by ``_id``.

Up to ``IN_FLIGHT`` bulks are sent at once, in threads, while the caller prepares the next: a shard
indexes concurrent bulks side by side, and the caller's reading and parsing overlap the cluster's work.
Outcomes are counted in the caller's thread."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import quote_id

RETRIED_TYPES = frozenset(("es_rejected_execution_exception",))
MAX_PAUSE_SECONDS = 30.0
IN_FLIGHT = 2


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
    written and ``noops`` those OpenSearch found unchanged. ``finish()`` waits for the bulks in flight."""

    def __init__(self, client, max_bytes, failed, retries=5, backoff=1.0, sleep=None, in_flight=IN_FLIGHT):
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
        self.in_flight = in_flight
        self.sending = []
        self.pool = None

    def add(self, doc_id, action, source):
        lines = action_lines(action, source)
        if self.pending and self.pending_bytes + len(lines) > self.max_bytes:
            self.flush()
        self.pending.append((doc_id, lines))
        self.pending_bytes += len(lines)
        self.indices.add(list(action.values())[0]["_index"])

    def flush(self):
        """Send what is pending, once fewer than ``in_flight`` bulks are on their way."""
        operations, self.pending, self.pending_bytes = self.pending, [], 0
        if not operations:
            return
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=self.in_flight)
        while len(self.sending) >= self.in_flight:
            self.settle(self.sending.pop(0).result())
        self.sending.append(self.pool.submit(self.send, operations))

    def finish(self):
        """Send what is pending and wait until every bulk is answered."""
        self.flush()
        while self.sending:
            self.settle(self.sending.pop(0).result())
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None

    def send(self, operations):
        """``[(outcome, _id, reason)]`` of the operations, rejected ones sent again; runs in a thread of the pool."""
        outcomes = []
        attempt = 0
        while operations:
            answer = self.client.request("POST", "/_bulk", upload=NDJSON(b"".join(lines for _id, lines in operations)), idempotent=True)
            rejected = []
            for (doc_id, lines), entry in zip(operations, answer["items"]):
                item = list(entry.values())[0]
                if "error" not in item:
                    outcomes.append(("noop" if item.get("result") == "noop" else "written", doc_id, None))
                elif is_rejection(item) and attempt < self.retries:
                    rejected.append((doc_id, lines))
                else:
                    outcomes.append(("failed", doc_id, reason(item)))
            operations = rejected
            if rejected:
                attempt += 1
                self.sleep(min(self.backoff * 2 ** (attempt - 1), MAX_PAUSE_SECONDS))
        return outcomes

    def settle(self, outcomes):
        for outcome, doc_id, why in outcomes:
            if outcome == "noop":
                self.noops += 1
            elif outcome == "written":
                self.written += 1
            else:
                self.failed(doc_id, why)

    def refresh(self):
        """Make what was written searchable."""
        for index in sorted(self.indices):
            self.client.request("POST", "/%s/_refresh" % quote_id(index), idempotent=True)
