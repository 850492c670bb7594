# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Finding ML Commons objects (by ID, by exact name, or all) and writing them, the same way for every
kind; creating one once, however many runs try at the same moment.

Lookups use the ML ``_search`` APIs, which apply access control and strip credentials. An exact name is
a ``term`` query on ``name.keyword``, the query of ML Commons' own uniqueness check. The words used for
convergence (earlier, known, standing, held, adopt, settled, ...) are defined in docs/design.md, "Words".
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import quote_id
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import build_diff
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import (
    AmbiguousLookupError,
    HTTPError,
    MLCommonsError,
    UncertainOutcomeError,
    WaitTimeoutError,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.wait import spaced, wait_until

# Duplicates made by concurrent runs disappear within this long: each run deletes its own.
DUPLICATE_SETTLE_SECONDS = 3.0
DUPLICATE_POLL_SECONDS = 0.5
# How long an older, concurrent create may take to become searchable after ours (see keep_oldest_of).
CREATE_WINDOW_FACTOR = 2.0
MIN_CREATE_WINDOW = 0.25
MAX_CREATE_WINDOW = 3.0
KEEP_OLDEST_LOOKS = 5
SETTLE_POLL_SECONDS = 1.0
# ML Commons' search APIs refuse more than the index's max_result_window (10000).
PAGE_SIZE = 1000
MAX_RESULTS = 10000


class Kind(object):
    """One kind of ML Commons object: its paths, its name in messages and results, and its creation-time
    field (``create_time`` for tasks)."""

    def __init__(self, label, base_path, id_field, created_field="created_time", create_action=None):
        self.label = label
        self.base_path = base_path
        self.id_field = id_field
        self.created_field = created_field
        self.create_action = create_action

    def path(self, object_id):
        return "%s/%s" % (self.base_path, quote_id(object_id))

    @property
    def create_path(self):
        return "%s/%s" % (self.base_path, self.create_action)

    @property
    def result_key(self):
        """The name of the object in a module's result (``model_group``, ``connector``, ...)."""
        return self.label.replace(" ", "_")

    @property
    def search_path(self):
        return self.base_path + "/_search"


MODEL_GROUP = Kind("model group", "/_plugins/_ml/model_groups", "model_group_id", create_action="_register")
CONNECTOR = Kind("connector", "/_plugins/_ml/connectors", "connector_id", create_action="_create")
MODEL = Kind("model", "/_plugins/_ml/models", "model_id", create_action="_register")
TASK = Kind("task", "/_plugins/_ml/tasks", "task_id", created_field="create_time")


def get_by_id(client, kind, object_id):
    """The object with ``object_id`` (with its ID added under ``kind.id_field``), or None when absent."""
    try:
        found = client.get(kind.path(object_id))
    except HTTPError as error:
        if error.is_not_found:
            return None
        raise
    found[kind.id_field] = object_id
    return found


def delete_by_id(client, kind, object_id):
    """Delete the object; False when it was gone already (another run deleted it since it was found)."""
    try:
        client.delete(kind.path(object_id))
    except HTTPError as error:
        if error.is_not_found:
            return False
        raise
    return True


def search(client, kind, filters, size=PAGE_SIZE):
    """Objects matching all ``filters`` (query clauses), oldest first, each with its ID added."""
    hits = []
    while len(hits) < MAX_RESULTS:
        body = {
            "query": {"bool": {"filter": list(filters)}} if filters else {"match_all": {}},
            "size": min(size, MAX_RESULTS - len(hits)),
            "from": len(hits),
            "sort": [{kind.created_field: {"order": "asc", "unmapped_type": "long"}}],
        }
        answer = client.search(kind.search_path, body).get("hits", {})
        page = answer.get("hits", [])
        for hit in page:
            found = dict(hit.get("_source") or {})
            found[kind.id_field] = hit["_id"]
            hits.append(found)
        total = answer.get("total") or {}
        if len(page) < body["size"] or (total.get("relation") == "eq" and len(hits) >= total.get("value", 0)):
            break
    return hits


def name_filter(name):
    return {"term": {"name.keyword": name}}


def settled_matches(client, kind, query):
    """Objects matching ``query``; several are looked at again for a few seconds, as concurrent runs
    that created the same object delete their extra copies within moments."""
    try:
        matches, _polls = wait_until(lambda: search(client, kind, query, size=20), lambda found: len(found) <= 1,
                                     DUPLICATE_SETTLE_SECONDS, interval=DUPLICATE_POLL_SECONDS, factor=1)
    except WaitTimeoutError as error:
        matches = error.last
    return matches


def find_by_name(client, kind, name, filters=()):
    """The one object called exactly ``name`` (within ``filters``), read by ID; None if there is none.
    Several raise :class:`AmbiguousLookupError`: guessing could change or delete the wrong object."""
    matches = settled_matches(client, kind, [name_filter(name)] + list(filters))
    if len(matches) > 1:
        ids = ", ".join(match[kind.id_field] for match in matches)
        raise AmbiguousLookupError(
            "%d %ss are called %r (IDs: %s). Give the ID of the one you mean, or delete the extra ones."
            % (len(matches), kind.label, name, ids),
            matching_ids=[match[kind.id_field] for match in matches],
        )
    if not matches:
        return None
    # Search is near-real-time; GET by ID is real-time, so the object is compared as it is now.
    return get_by_id(client, kind, matches[0][kind.id_field])


def list_objects(client, kind, object_id=None, name=None, filters=()):
    """What an ``_info`` module returns: the object with ``object_id``, else those called ``name`` (within
    ``filters``), else all; each read by ID, as a search copy can lag behind. One deleted meanwhile is left out."""
    if object_id:
        found = get_by_id(client, kind, object_id)
        return [found] if found and name in (None, found.get("name")) else []
    matches = search(client, kind, ([name_filter(name)] if name else []) + list(filters))
    current = (get_by_id(client, kind, match[kind.id_field]) for match in matches)
    return [found for found in current if found is not None]


def with_values(objects, wanted):
    """The ``objects`` whose fields equal every value in ``wanted`` exactly (a text field's ``match``
    query, or a search copy, can let others through)."""
    return [found for found in objects if all(found.get(name) == value for name, value in wanted.items())]


def oldest_of(kind, matches):
    """The oldest of ``matches``: by creation time, then by ID, so every run picks the same one."""
    return min(matches, key=lambda found: (found.get(kind.created_field) or 0, found[kind.id_field]))


def keep_oldest(client, kind, name, own_id, discard, filters=()):
    """After creating ``own_id``: when concurrent runs created the same object, the oldest wins
    (see :func:`keep_oldest_of`); the same object is one with the same name, within ``filters``."""
    return keep_oldest_of(client, kind, own_id, discard, lambda: search(client, kind, [name_filter(name)] + list(filters), size=20))


def keep_oldest_of(client, kind, own_id, discard, find_same):
    """After creating ``own_id``: when concurrent runs created the same object (``find_same()`` lists
    them, own included), the oldest wins, and a run whose own copy is younger calls ``discard(own_id)``.
    Returns the ID that won.

    ML Commons keeps neither connector nor model names unique, and its model-group check is not atomic.
    A run returns the object it holds only once a later look finds it still the oldest: an older create
    may still be in flight, and an adopted copy may be about to be discarded for an older one. The looks
    are CREATE_WINDOW_FACTOR times our create's answer time apart (``client.last_answer_seconds``: the
    create must be the last request before this call), within the bounds (docs/design.md, "The oldest
    copy wins").
    """
    window = min(MAX_CREATE_WINDOW, max(MIN_CREATE_WINDOW, CREATE_WINDOW_FACTOR * client.last_answer_seconds))
    held = own_id
    for look in spaced(KEEP_OLDEST_LOOKS, window):
        matches = find_same()
        oldest = oldest_of(kind, matches)[kind.id_field] if matches else held
        if oldest != own_id and held == own_id:
            discard(own_id)
        if look > 0 and oldest == held:
            return held
        held = oldest
    return held


def create_once(create, find_existing):
    """Run ``create()`` and return what it returns; if its outcome is unknown, return what
    ``find_existing()`` finds (the same shape), or create again when it finds nothing.

    A create that timed out may still be carried out, so it is never repeated blindly, and the lookup
    goes on for the error's ``settle_seconds`` first.
    """
    try:
        return create()
    except UncertainOutcomeError as error:
        settle_seconds = getattr(error, "settle_seconds", 0)
    try:
        existing, _polls = wait_until(find_existing, lambda found: found is not None, settle_seconds, interval=SETTLE_POLL_SECONDS, factor=1)
    except WaitTimeoutError:
        return create()
    return existing


def not_the_object(object_id):
    """A filter clause for every object but ``object_id`` (a replacement called like the original)."""
    return {"bool": {"must_not": [{"ids": {"values": [object_id]}}]}}


class Writer(object):
    """Every write of one module run to one kind of object, and the result it returns: writes are read
    back as stored and, in check mode, predicted instead of sent. ``answer`` is the last create's own
    answer (a model register's holds its task ID), None when the object was found by name instead.
    """

    def __init__(self, client, kind, check_mode=False):
        self.client = client
        self.kind = kind
        self.check_mode = check_mode
        self.answer = None

    def create(self, body, name, filters=(), send=None, predicted=None):
        """The object created with ``body`` and called ``name`` (unique within ``filters``), as stored; in
        check mode ``predicted`` (``body`` by default) without an ID. ``send()`` posts it (by default to
        the kind's create path) and returns the answer. A lost answer is looked for by name before a new
        create (:func:`create_once`); of concurrent runs' copies the oldest stands (:func:`keep_oldest`).
        """
        kind = self.kind
        if self.check_mode:
            return dict(body if predicted is None else predicted, **{kind.id_field: None})
        send = send or (lambda: self.client.post(kind.create_path, body=body))
        self.answer = None

        def sent():
            self.answer = send()
            return self.answer[kind.id_field]

        def created_meanwhile():
            found = find_by_name(self.client, kind, name, filters)
            return found and found[kind.id_field]

        def discard(own_id):
            # A copy left behind would make every later run refuse the name as ambiguous: say which.
            try:
                self.delete_id(own_id)
            except MLCommonsError as error:
                raise MLCommonsError(
                    "Another run created %s %r at the same moment, so this run deleted its own copy (%s), and the delete "
                    "failed (%s). Delete %s, then run again." % (kind.label, name, own_id, error, own_id),
                    **dict(error.details, **{kind.id_field: own_id}))

        own_id = create_once(sent, created_meanwhile)
        kept = keep_oldest(self.client, kind, name, own_id, discard, filters)
        return get_by_id(self.client, kind, kept)

    def update(self, current, changes, predicted=None):
        """``current`` after ``changes`` (sent to its path), as stored; in check mode ``predicted``
        (``current`` with ``changes``, by default)."""
        if self.check_mode:
            return dict(current, **changes) if predicted is None else predicted
        object_id = current[self.kind.id_field]
        self.client.put(self.kind.path(object_id), body=changes)
        return get_by_id(self.client, self.kind, object_id)

    def delete(self, current):
        if not self.check_mode:
            self.delete_id(current[self.kind.id_field])

    def delete_id(self, object_id):
        delete_by_id(self.client, self.kind, object_id)

    def result(self, changed, before, after, **extra):
        """A resource module's result: whether it changed anything, the object's ID and the object
        after the run (empty when it does not exist), the diff, and ``extra``."""
        after = after or {}
        result = {
            "changed": changed,
            self.kind.id_field: after.get(self.kind.id_field),
            self.kind.result_key: after,
            "diff": build_diff(before or {}, after),
        }
        result.update(extra)
        return result
