"""Lookups by ID and exact name, the create that never duplicates, and the writer every resource module writes through."""

import json

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons import resource
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core import wait
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import AmbiguousLookupError, HTTPError, MLCommonsError, UncertainOutcomeError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import (
    CONNECTOR,
    MODEL_GROUP,
    TASK,
    Writer,
    create_once,
    find_by_name,
    get_by_id,
    keep_oldest,
    list_objects,
    search,
    with_values,
)


CONNECTORS = "/_plugins/_ml/connectors"


def hits(*ids):
    return {"hits": {"hits": [{"_id": object_id, "_source": {"name": "n"}} for object_id in ids]}}


def test_get_by_id_adds_the_id(server):
    server.script((200, {"name": "g"}))
    assert get_by_id(Client(server.url), MODEL_GROUP, "abc") == {"name": "g", "model_group_id": "abc"}
    assert server.received[0]["path"] == "/_plugins/_ml/model_groups/abc"


def test_get_by_id_returns_none_when_absent_in_any_version(server):
    server.script((404, {"error": {"type": "status_exception", "reason": "Failed to find"}}),
                  (500, {"error": {"type": "m_l_resource_not_found_exception", "reason": "Fail to find model group index"}}))
    client = Client(server.url)
    assert get_by_id(client, MODEL_GROUP, "a") is None
    assert get_by_id(client, MODEL_GROUP, "b") is None


def test_get_by_id_raises_other_errors(server):
    server.script((403, {"error": {"type": "status_exception", "reason": "no privilege"}}))
    with pytest.raises(HTTPError):
        get_by_id(Client(server.url), MODEL_GROUP, "a")


def test_find_by_name_is_one_term_query_then_a_fresh_read(server):
    server.answer("POST", CONNECTORS + "/_search", (200, hits("c1")))
    server.answer("GET", CONNECTORS + "/c1", (200, {"name": "n", "description": "current"}))
    found = find_by_name(Client(server.url), CONNECTOR, "n")
    assert found == {"connector_id": "c1", "name": "n", "description": "current"}
    sent = json.loads(server.received[0]["body"])
    assert server.received[0]["path"] == "/_plugins/_ml/connectors/_search"
    assert sent["query"] == {"bool": {"filter": [{"term": {"name.keyword": "n"}}]}}
    assert server.received[1]["path"] == "/_plugins/_ml/connectors/c1"
    assert len(server.received) == 2


def test_find_by_name_refuses_to_guess_between_lasting_duplicates(server, monkeypatch):
    monkeypatch.setattr(resource, "DUPLICATE_SETTLE_SECONDS", 0.6)
    server.script(*[(200, hits("c1", "c2"))] * 3)
    with pytest.raises(AmbiguousLookupError) as caught:
        find_by_name(Client(server.url), CONNECTOR, "n")
    assert "2 connectors are called 'n' (IDs: c1, c2)" in str(caught.value)
    assert caught.value.details == {"matching_ids": ["c1", "c2"]}


def test_find_by_name_waits_for_duplicates_of_concurrent_runs_to_go(server):
    server.answer("POST", CONNECTORS + "/_search", (200, hits("c1", "c2")), (200, hits("c1")))
    server.answer("GET", CONNECTORS + "/c1", (200, {"name": "n"}))
    assert find_by_name(Client(server.url), CONNECTOR, "n") == {"connector_id": "c1", "name": "n"}


def test_list_objects_returns_current_copies_and_leaves_out_the_deleted(server):
    not_found = (404, {"error": {"type": "status_exception", "reason": "Failed to find model"}})
    server.answer("POST", "/_plugins/_ml/models/_search", (200, hits("m1", "m2")))
    server.answer("GET", "/_plugins/_ml/models/m1", (200, {"name": "n", "model_state": "DEPLOYED"}))
    server.answer("GET", "/_plugins/_ml/models/m2", not_found)
    found = list_objects(Client(server.url), resource.MODEL, filters=[{"term": {"model_group_id": "g"}}])
    assert found == [{"model_id": "m1", "name": "n", "model_state": "DEPLOYED"}]
    assert [request["path"] for request in server.received[1:]] == ["/_plugins/_ml/models/m1", "/_plugins/_ml/models/m2"]


def test_search_pages_until_a_short_page(server):
    server.script((200, hits("a", "b")), (200, hits("c")))
    found = search(Client(server.url), CONNECTOR, [], size=2)
    assert [item["connector_id"] for item in found] == ["a", "b", "c"]
    assert [json.loads(request["body"])["from"] for request in server.received] == [0, 2]


def test_search_stops_when_the_total_is_reached(server):
    full_page = dict(hits("a", "b"))
    full_page["hits"]["total"] = {"value": 2, "relation": "eq"}
    server.script((200, full_page))
    found = search(Client(server.url), CONNECTOR, [], size=2)
    assert [item["connector_id"] for item in found] == ["a", "b"]
    assert len(server.received) == 1


def test_tasks_sort_by_their_create_time(server):
    server.script((200, hits()))
    search(Client(server.url), TASK, [])
    assert json.loads(server.received[0]["body"])["sort"] == [{"create_time": {"order": "asc", "unmapped_type": "long"}}]


def test_create_once_adopts_what_an_uncertain_create_made():
    calls = []

    def create():
        calls.append("create")
        raise UncertainOutcomeError("timed out")

    assert create_once(create, lambda: "made-anyway") == "made-anyway"
    assert calls == ["create"]


def test_create_once_creates_again_when_nothing_was_made():
    attempts = iter([UncertainOutcomeError("dropped"), "new-id"])

    def create():
        outcome = next(attempts)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert create_once(create, lambda: None) == "new-id"


def test_create_once_waits_for_a_timed_out_create_that_lands_late(monkeypatch):
    """A create that timed out can still be queued on the server: look again before creating anew."""
    monkeypatch.setattr(wait.time, "sleep", lambda seconds: None)
    clock = iter(range(100))
    monkeypatch.setattr(wait.time, "monotonic", lambda: next(clock))
    lookups = iter([None, None, "landed-late"])
    calls = []

    def create():
        calls.append("create")
        raise UncertainOutcomeError("timed out", settle_seconds=30)

    assert create_once(create, lambda: next(lookups)) == "landed-late"
    assert calls == ["create"]


def test_create_once_creates_again_after_the_settle_time(monkeypatch):
    monkeypatch.setattr(wait.time, "sleep", lambda seconds: None)
    clock = iter(range(100))
    monkeypatch.setattr(wait.time, "monotonic", lambda: next(clock))
    attempts = iter([UncertainOutcomeError("timed out", settle_seconds=3), "new-id"])
    lookups = []

    def create():
        outcome = next(attempts)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert create_once(create, lambda: lookups.append(1)) == "new-id"
    assert len(lookups) == 3  # the deadline is 3 s after the failure; the third lookup is at 3 s


def dated_hits(*pairs):
    return {"hits": {"hits": [{"_id": object_id, "_source": {"name": "n", "created_time": created}} for object_id, created in pairs]}}


@pytest.fixture
def no_create_window(monkeypatch):
    monkeypatch.setattr(resource, "MIN_CREATE_WINDOW", 0)


def test_keep_oldest_keeps_a_lone_object(server, no_create_window):
    server.script((200, dated_hits(("mine", 5))), (200, dated_hits(("mine", 5))))
    discarded = []
    assert keep_oldest(Client(server.url), CONNECTOR, "n", "mine", discarded.append) == "mine"
    assert discarded == []


def test_keep_oldest_discards_our_duplicate_and_adopts_the_oldest(server, no_create_window):
    server.script((200, dated_hits(("theirs", 3), ("mine", 5))), (200, dated_hits(("theirs", 3))))
    discarded = []
    assert keep_oldest(Client(server.url), CONNECTOR, "n", "mine", discarded.append) == "theirs"
    assert discarded == ["mine"]
    assert len(server.received) == 2  # the adopted object is looked at once more before it is returned


def test_keep_oldest_does_not_return_an_adopted_object_its_own_run_then_discards(server, no_create_window):
    """Three runs: ours adopts "theirs", whose run then sees the even older "first" (in flight until
    then) and deletes "theirs"; ours must end on "first", not on the deleted ID."""
    server.script((200, dated_hits(("theirs", 3), ("mine", 5))),
                  (200, dated_hits(("first", 1), ("theirs", 3))),
                  (200, dated_hits(("first", 1))))
    discarded = []
    assert keep_oldest(Client(server.url), CONNECTOR, "n", "mine", discarded.append) == "first"
    assert discarded == ["mine"]


def test_keep_oldest_leaves_younger_duplicates_to_their_own_runs(server, no_create_window):
    server.script((200, dated_hits(("mine", 3), ("theirs", 5))), (200, dated_hits(("mine", 3), ("theirs", 5))))
    discarded = []
    assert keep_oldest(Client(server.url), CONNECTOR, "n", "mine", discarded.append) == "mine"
    assert discarded == []


def test_keep_oldest_sees_an_older_create_that_was_still_in_flight(server, no_create_window):
    server.script((200, dated_hits(("mine", 5))), (200, dated_hits(("theirs", 3), ("mine", 5))), (200, dated_hits(("theirs", 3))))
    discarded = []
    assert keep_oldest(Client(server.url), CONNECTOR, "n", "mine", discarded.append) == "theirs"
    assert discarded == ["mine"]


@pytest.mark.parametrize("answer_seconds, window", [(0.01, 0.25), (0.3, 0.6), (10, 3.0)])
def test_keep_oldest_waits_twice_as_long_as_the_create_took_within_bounds(server, monkeypatch, answer_seconds, window):
    slept = []
    monkeypatch.setattr(wait.time, "sleep", slept.append)
    server.script((200, dated_hits(("mine", 5))), (200, dated_hits(("mine", 5))))
    client = Client(server.url)
    client.last_answer_seconds = answer_seconds
    assert keep_oldest(client, CONNECTOR, "n", "mine", [].append) == "mine"
    assert slept == [pytest.approx(window)]


def test_the_client_keeps_how_long_the_last_answer_took(server):
    server.script((200, {}))
    client = Client(server.url)
    client.get("/")
    assert 0 < client.last_answer_seconds < 5


def test_keep_oldest_breaks_ties_by_id(server, no_create_window):
    server.script((200, dated_hits(("b", 3), ("a", 3))), (200, dated_hits(("a", 3))))
    discarded = []
    assert keep_oldest(Client(server.url), CONNECTOR, "n", "b", discarded.append) == "a"
    assert discarded == ["b"]


def test_keep_oldest_settles_after_a_bounded_number_of_looks(server, no_create_window):
    """Objects that keep changing (each look sees a new oldest) do not keep a run looking for ever."""
    server.script(*[(200, dated_hits(("other%d" % look, 5 - look), ("mine", 9))) for look in range(resource.KEEP_OLDEST_LOOKS)])
    discarded = []
    assert keep_oldest(Client(server.url), CONNECTOR, "n", "mine", discarded.append) == "other%d" % (resource.KEEP_OLDEST_LOOKS - 1)
    assert discarded == ["mine"]
    assert len(server.received) == resource.KEEP_OLDEST_LOOKS


def test_the_writer_predicts_in_check_mode_and_sends_nothing(server):
    writer = Writer(Client(server.url), CONNECTOR, check_mode=True)
    assert writer.create({"name": "n", "credential": {"key": "s"}}, "n", predicted={"name": "n"}) == {"name": "n", "connector_id": None}
    assert writer.update({"connector_id": "c1", "name": "n"}, {"description": "d"}) == {"connector_id": "c1", "name": "n", "description": "d"}
    writer.delete({"connector_id": "c1"})
    assert server.received == []


def test_the_writer_creates_at_the_kinds_create_path_and_reads_the_survivor_back(server, no_create_window):
    server.answer("POST", CONNECTORS + "/_create", (200, {"connector_id": "mine"}))
    server.answer("POST", CONNECTORS + "/_search", (200, dated_hits(("mine", 5))))
    server.answer("GET", CONNECTORS + "/mine", (200, {"name": "n", "created_time": 5}))
    writer = Writer(Client(server.url), CONNECTOR)
    assert writer.create({"name": "n"}, "n") == {"name": "n", "created_time": 5, "connector_id": "mine"}
    assert writer.answer == {"connector_id": "mine"}
    assert [(request["method"], request["path"]) for request in server.received] == [
        ("POST", "/_plugins/_ml/connectors/_create"), ("POST", "/_plugins/_ml/connectors/_search"),
        ("POST", "/_plugins/_ml/connectors/_search"), ("GET", "/_plugins/_ml/connectors/mine")]


def test_a_younger_copy_the_writer_cannot_delete_is_named_with_what_to_do(server, no_create_window):
    # ML Commons refuses to delete a connector made a moment ago when its match query counts another connector's model.
    server.answer("POST", CONNECTORS + "/_create", (200, {"connector_id": "mine"}))
    server.answer("POST", CONNECTORS + "/_search", (200, dated_hits(("theirs", 3), ("mine", 5))))
    server.answer("DELETE", CONNECTORS + "/mine", (409, {"error": {"type": "status_exception", "reason": "1 models are still using this "
                                                                   "connector, please delete or update the models first: [m9]"}, "status": 409}))
    writer = Writer(Client(server.url, backoff=0), CONNECTOR)
    with pytest.raises(MLCommonsError) as raised:
        writer.create({"name": "n"}, "n")
    assert str(raised.value).startswith("Another run created connector 'n' at the same moment, so this run deleted its own copy (mine), "
                                        "and the delete failed (OpenSearch answered 409 to DELETE /_plugins/_ml/connectors/mine: ")
    assert str(raised.value).endswith("[m9]). Delete mine, then run again.")
    assert raised.value.details["connector_id"] == "mine" and raised.value.details["status"] == 409


def test_the_writer_updates_and_deletes_by_id_and_shapes_the_result(server):
    server.answer("PUT", "/_plugins/_ml/model_groups/g%2F1", (200, {"result": "updated"}))
    server.answer("GET", "/_plugins/_ml/model_groups/g%2F1", (200, {"name": "n", "description": "d"}))
    server.answer("DELETE", "/_plugins/_ml/model_groups/g%2F1", (200, {"result": "deleted"}))
    writer = Writer(Client(server.url), MODEL_GROUP)
    updated = writer.update({"model_group_id": "g/1", "name": "n"}, {"description": "d"})
    writer.delete(updated)
    assert [(request["method"], request["path"]) for request in server.received] == [
        ("PUT", "/_plugins/_ml/model_groups/g%2F1"), ("GET", "/_plugins/_ml/model_groups/g%2F1"), ("DELETE", "/_plugins/_ml/model_groups/g%2F1")]
    assert writer.result(True, {"name": "n"}, updated, extra=1) == {
        "changed": True, "model_group_id": "g/1", "model_group": updated, "diff": {"before": {"name": "n"}, "after": updated}, "extra": 1}
    assert writer.result(True, updated, None)["model_group"] == {}


def test_with_values_keeps_only_exact_equals():
    found = [{"connector_id": "abc"}, {"connector_id": "abc-2"}, {"connector_id": "abc", "state": "x"}]
    assert with_values(found, {"connector_id": "abc"}) == [found[0], found[2]]
    assert with_values(found, {}) == found
