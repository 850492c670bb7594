# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A batch output written into an index: each answer to the document whose ``_id`` its ``custom_id``
names (see :mod:`fingerprint`), a page of lines at a time.

Each page's documents are read first (``_mget``) and only those whose result differs are written, so
a re-run sends no write at all and check mode knows what it would write. In place, a write is a
partial update: it never creates a document (a deleted one is reported) and does not run the index's
default ingest pipeline. Into another index, a write is an index operation with ``pipeline: _none``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import struct

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import quote_id
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError, HTTPError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.local import open_local
from ansible_collections.opensearch.ml_commons.plugins.module_utils.index.bulk import BulkWriter
from ansible_collections.opensearch.ml_commons.plugins.module_utils.index.fingerprint import parse_custom_id
from ansible_collections.opensearch.ml_commons.plugins.module_utils.index.read import field_value, get_many, missing_index

PAGE_LINES = 500
REPORTED = 100
DEFAULT_KNN_METHOD = {"name": "hnsw", "engine": "lucene", "space_type": "l2"}
WRITE_BLOCKS = ("index.blocks.write", "index.blocks.read_only", "index.blocks.read_only_allow_delete")


class LineError(Exception):
    """An output line that cannot be written: the ``reason`` reported for its document."""

    def __init__(self, reason, custom_id=None):
        super(LineError, self).__init__(reason)
        self.reason = reason
        self.doc_id = parse_custom_id(custom_id)[0] if isinstance(custom_id, str) else None


def answer_of(line, parse_json):
    """``(custom_id, value)`` of an output line: the embedding, or the chat answer's content (parsed as
    JSON with ``parse_json``); :class:`LineError` for a line that failed at the provider."""
    try:
        output = json.loads(line.decode("utf-8"))
        custom_id = output["custom_id"]
    except (ValueError, KeyError, TypeError):
        raise LineError("not a batch output line")
    response = output.get("response") or {}
    if output.get("error") or response.get("status_code") != 200:
        error = output.get("error") or (response.get("body") or {}).get("error") or {}
        raise LineError("%s: %s" % (error.get("code") or response.get("status_code"), error.get("message")), custom_id)
    body = response.get("body") or {}
    try:
        if "data" in body:
            value = body["data"][0]["embedding"]
            if not isinstance(value, list):
                raise LineError("the embedding is not a list of numbers (request encoding_format float)", custom_id)
            return custom_id, value
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise LineError("the answer holds neither data[0].embedding nor choices[0].message.content", custom_id)
    if not parse_json:
        return custom_id, content
    try:
        return custom_id, json.loads(content)
    except (TypeError, ValueError):
        raise LineError("the answer is not JSON", custom_id)


def same(stored, wanted):
    """Whether a stored value is the one to write. Vectors compare as float32, which is what a knn_vector keeps
    (OpenSearch 3 gives it back from the vector itself, not as the JSON that was sent)."""
    if isinstance(wanted, list) and isinstance(stored, list) and len(stored) == len(wanted) and wanted and \
            all(isinstance(x, (int, float)) for x in wanted + stored):
        packing = "<%df" % len(wanted)
        return struct.pack(packing, *stored) == struct.pack(packing, *wanted)
    return stored == wanted


def mapped_field(mapping, path):
    """The mapping of the field at the dotted ``path``, or None."""
    properties = mapping.get("properties") or {}
    names = path.split(".")
    for name in names[:-1]:
        properties = (properties.get(name) or {}).get("properties") or {}
    return properties.get(names[-1])


class WriteBack(object):
    """The answers of the output ``src`` (and the failures of the error file ``errors``) for the
    documents of ``index``, written to ``target_field`` of ``target_index`` (default ``index``)."""

    def __init__(self, module, client, src, index, target_field, fingerprint_field, errors=None, target_index=None,
                 copy_fields=None, parse_json=False, knn_method=None, bulk_bytes=5000000, retries=5):
        self.module = module
        self.client = client
        self.src = src
        self.errors = errors
        self.index = index
        self.target_index = target_index or index
        self.in_place = self.target_index == index
        self.target_field = target_field
        self.fingerprint_field = fingerprint_field
        self.copy_fields = copy_fields or []
        self.parse_json = parse_json
        self.knn_method = knn_method or DEFAULT_KNN_METHOD
        self.counts = {"written": 0, "unchanged": 0, "failed_documents": 0}
        self.failures = []
        self.writer = BulkWriter(client, bulk_bytes, self.fail, retries=retries)
        self.created_index = self.added_field = False

    def apply(self):
        """``(changed, found)``."""
        if self.copy_fields and self.in_place:
            raise ConfigurationError("copy_fields applies only when writing into another index (target_index).")
        first = self.first_answer()
        if first is not None:
            self.prepare_target(first)
        pending = []
        with open_local(self.src) as handle:
            for line in handle:
                if line.strip():
                    pending.append(line)
                if len(pending) == PAGE_LINES:
                    self.write_page(pending)
                    pending = []
        self.write_page(pending)
        if not self.module.check_mode:
            self.writer.flush()
            if self.writer.written:
                self.writer.refresh()
            self.counts["written"] = self.writer.written
            self.counts["unchanged"] += self.writer.noops
        self.report_errors()
        changed = bool(self.counts["written"] or self.created_index or self.added_field)
        return changed, dict(self.counts, failures=self.failures, target_index=self.target_index,
                             created_index=self.created_index)

    def fail(self, doc_id, reason):
        self.counts["failed_documents"] += 1
        if len(self.failures) < REPORTED:
            self.failures.append({"_id": doc_id, "reason": reason})

    def first_answer(self):
        """The first answer of the output, which sets the kind and size of what the target must take."""
        with open_local(self.src) as handle:
            for line in handle:
                try:
                    return answer_of(line, self.parse_json)[1]
                except LineError:
                    continue
        return None

    # -- the target -------------------------------------------------------------------------

    def prepare_target(self, first):
        """Check (or create) the target's mapping before anything is written."""
        dimension = len(first) if isinstance(first, list) and all(isinstance(x, (int, float)) for x in first) else None
        try:
            answer = self.client.get("/%s/_mapping" % quote_id(self.target_index))
        except HTTPError as error:
            if error.status != 404:
                raise
            if self.in_place:
                raise missing_index(self.index)
            self.create_target(dimension)
            return
        mapping = list(answer.values())[0]["mappings"] if answer else {}
        field = mapped_field(mapping, self.target_field)
        if dimension is not None and field is not None:
            self.check_field(field, dimension)
        self.check_writable()
        if dimension is not None and field is None:
            self.added_field = True
            if not self.module.check_mode:
                self.client.put("/%s/_mapping" % quote_id(self.target_index), {"properties": self.properties(dimension)})

    def check_field(self, field, dimension):
        if field.get("type") != "knn_vector":
            raise ConfigurationError("%s of %s is mapped as %s, not knn_vector; the output holds embeddings. Nothing was written."
                                     % (self.target_field, self.target_index, field.get("type") or "an object"))
        if field.get("dimension") != dimension:
            raise ConfigurationError("%s of %s is a knn_vector of %s dimensions; the output's embeddings have %d. Nothing was written."
                                     % (self.target_field, self.target_index, field.get("dimension"), dimension))

    def check_writable(self):
        """A write block refuses every item of every bulk: one clear error instead, before anything is sent."""
        answer = self.client.get("/%s/_settings/index.blocks.*" % quote_id(self.target_index), query={"flat_settings": "true"})
        for name, index in sorted((answer or {}).items()):
            settings = index.get("settings") or {}
            blocked = [setting for setting in WRITE_BLOCKS if str(settings.get(setting)).lower() == "true"]
            if blocked:
                raise ConfigurationError("%s is read-only (%s is true); no document can be written. Nothing was written."
                                         % (name, blocked[0]), index=name)

    def properties(self, dimension):
        fields = {self.fingerprint_field: {"type": "keyword"}}
        if dimension is not None:
            fields[self.target_field] = {"type": "knn_vector", "dimension": dimension, "method": self.knn_method}
        return fields

    def create_target(self, dimension):
        self.created_index = True
        if self.module.check_mode:
            return
        settings = {"index": {"knn": True}} if dimension is not None else {}
        self.client.put("/%s" % quote_id(self.target_index), {"settings": settings, "mappings": {"properties": self.properties(dimension)}})

    # -- the answers ------------------------------------------------------------------------

    def write_page(self, lines):
        answers = []
        for line in lines:
            try:
                custom_id, value = answer_of(line, self.parse_json)
            except LineError as error:
                self.fail(error.doc_id, error.reason)
                continue
            doc_id, request_fingerprint = parse_custom_id(custom_id)
            answers.append((doc_id, request_fingerprint, value))
        if not answers:
            return
        ids = [doc_id for doc_id, _fingerprint, _value in answers]
        fields = [self.target_field, self.fingerprint_field] + self.copy_fields
        current = {} if self.created_index else get_many(self.client, self.target_index, ids, fields if self.in_place else True)
        sources = {} if self.in_place else get_many(self.client, self.index, ids, self.copy_fields or [self.fingerprint_field])
        for doc_id, request_fingerprint, value in answers:
            self.write(doc_id, request_fingerprint, value, current, sources)

    def write(self, doc_id, request_fingerprint, value, current, sources):
        result = {self.target_field: value}
        if request_fingerprint is not None:
            result[self.fingerprint_field] = request_fingerprint
        if self.in_place:
            if doc_id not in current:
                return self.fail(doc_id, "the document is missing (deleted since it was read?); it is not created again")
            if all(same(field_value(current[doc_id], name), wanted) for name, wanted in result.items()):
                self.counts["unchanged"] += 1
                return None
            action, source = {"update": {"_index": self.index, "_id": doc_id}}, {"doc": nested(result)}
        else:
            if doc_id not in sources:
                return self.fail(doc_id, "the document is missing from %s; it is not written to %s" % (self.index, self.target_index))
            document = dict((name, sources[doc_id][name]) for name in self.copy_fields if name in sources[doc_id])
            document.update(nested(result))
            stored = current.get(doc_id)
            if stored is not None and set(stored) == set(document) and all(same(stored[name], value) for name, value in document.items()):
                self.counts["unchanged"] += 1
                return None
            action, source = {"index": {"_index": self.target_index, "_id": doc_id, "pipeline": "_none"}}, document
        if self.module.check_mode:
            self.counts["written"] += 1
        else:
            self.writer.add(doc_id, action, source)
        return None

    def report_errors(self):
        """The lines of the error file: requests that failed at the provider, not written."""
        if not self.errors:
            return
        with open_local(self.errors) as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    answer_of(line, self.parse_json)
                except LineError as error:
                    self.fail(error.doc_id, error.reason)


def nested(fields):
    """Dotted field names as the objects of a document."""
    document = {}
    for path, value in fields.items():
        names = path.split(".")
        target = document
        for name in names[:-1]:
            target = target.setdefault(name, {})
        target[names[-1]] = value
    return document
