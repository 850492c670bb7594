"""ml_model_group_info through run(): by ID, by name, all, nothing; every group found is read again by ID."""

import json

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import Client
from ansible_collections.opensearch.ml_commons.plugins.modules import ml_model_group_info
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule, hits, requests_sent

# A request nothing was scripted for fails at once, and no wait pauses (see tests/unit/conftest.py).
pytestmark = pytest.mark.usefixtures("module_test_server")


GROUPS = "/_plugins/_ml/model_groups"
NOT_FOUND = (404, {"error": {"type": "status_exception", "reason": "Failed to find model group with the provided model group id: g9"},
                   "status": 404})


def fake_module(check_mode=False, **params):
    return FakeModule(ml_model_group_info, check_mode, **params)


def group(name, description="d", version=0):
    return {"name": name, "description": description, "latest_version": version, "access": "public", "created_time": 1722037257000}


def run(server, **params):
    return ml_model_group_info.run(fake_module(**params), Client(server.url, backoff=0))


def search_query(server):
    return json.loads(server.received[0]["body"])["query"]


def test_by_id_is_one_read(server):
    server.answer("GET", GROUPS + "/g1", (200, group("team_group")))
    result = run(server, model_group_id="g1")
    assert result == {"changed": False, "model_groups": [dict(group("team_group"), model_group_id="g1")]}
    assert requests_sent(server) == [("GET", GROUPS + "/g1")]


def test_an_unknown_id_is_an_empty_list(server):
    server.answer("GET", GROUPS + "/g9", NOT_FOUND)
    assert run(server, model_group_id="g9") == {"changed": False, "model_groups": []}


def test_an_id_whose_group_has_another_name_is_an_empty_list(server):
    server.answer("GET", GROUPS + "/g1", (200, group("other_group")))
    assert run(server, model_group_id="g1", name="team_group")["model_groups"] == []


def test_by_name_returns_the_current_copy_of_what_the_search_found(server):
    """The search copy lags behind (latest_version 0); the group returned is the one read by ID (1)."""
    server.answer("POST", GROUPS + "/_search", (200, hits(("g1", group("team_group", version=0)))))
    server.answer("GET", GROUPS + "/g1", (200, group("team_group", version=1)))
    result = run(server, name="team_group")
    assert result["model_groups"] == [dict(group("team_group", version=1), model_group_id="g1")]
    assert search_query(server) == {"bool": {"filter": [{"term": {"name.keyword": "team_group"}}]}}
    assert requests_sent(server) == [("POST", GROUPS + "/_search"), ("GET", GROUPS + "/g1")]


def test_all_groups_are_each_read_by_id_oldest_first_and_one_deleted_meanwhile_is_left_out(server):
    server.answer("POST", GROUPS + "/_search", (200, hits(("g1", group("a")), ("g2", group("b")), ("g3", group("c")))))
    server.answer("GET", GROUPS + "/g1", (200, group("a", "now")))
    server.answer("GET", GROUPS + "/g2", NOT_FOUND)
    server.answer("GET", GROUPS + "/g3", (200, group("c", "now")))
    result = run(server)
    assert result["model_groups"] == [dict(group("a", "now"), model_group_id="g1"), dict(group("c", "now"), model_group_id="g3")]
    assert search_query(server) == {"match_all": {}}
    assert json.loads(server.received[0]["body"])["sort"] == [{"created_time": {"order": "asc", "unmapped_type": "long"}}]
    assert requests_sent(server)[1:] == [("GET", GROUPS + "/g1"), ("GET", GROUPS + "/g2"), ("GET", GROUPS + "/g3")]


def test_nothing_found_is_an_empty_list_after_one_search(server):
    server.answer("POST", GROUPS + "/_search", (200, hits()))
    assert run(server, name="nobody") == {"changed": False, "model_groups": []}
    assert requests_sent(server) == [("POST", GROUPS + "/_search")]
