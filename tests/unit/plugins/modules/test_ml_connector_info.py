"""ml_connector_info through run(): by ID, by name, all, nothing; read again by ID; never a credential."""

import json

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import Client
from ansible_collections.opensearch.ml_commons.plugins.modules import ml_connector_info
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule, hits, requests_sent

# A request nothing was scripted for fails at once, and no wait pauses (see tests/unit/conftest.py).
pytestmark = pytest.mark.usefixtures("module_test_server")


CONNECTORS = "/_plugins/_ml/connectors"
NOT_FOUND = (404, {"error": {"type": "status_exception", "reason": "Failed to find connector with the provided connector id: c9"}, "status": 404})


def fake_module(check_mode=False, **params):
    return FakeModule(ml_connector_info, check_mode, **params)


def connector(name, version="1", **fields):
    stored = {"name": name, "version": version, "protocol": "http", "parameters": {"model": "text-embedding-ada-002"},
              "created_time": 1722037257000}
    stored.update(fields)
    return stored


def run(server, **params):
    return ml_connector_info.run(fake_module(**params), Client(server.url, backoff=0))


def test_by_id_is_one_read_and_a_credential_in_the_answer_is_dropped(server):
    server.answer("GET", CONNECTORS + "/c1", (200, connector("OpenAI", credential={"openAI_key": "sk-secret"})))
    result = run(server, connector_id="c1")
    assert result == {"changed": False, "connectors": [dict(connector("OpenAI"), connector_id="c1")]}
    assert "sk-secret" not in json.dumps(result)
    assert requests_sent(server) == [("GET", CONNECTORS + "/c1")]


def test_an_unknown_id_is_an_empty_list(server):
    server.answer("GET", CONNECTORS + "/c9", NOT_FOUND)
    assert run(server, connector_id="c9") == {"changed": False, "connectors": []}


def test_by_name_returns_every_connector_of_the_name_as_read_by_id(server):
    """ML Commons allows several connectors of one name; each is returned in its current state."""
    server.answer("POST", CONNECTORS + "/_search", (200, hits(("c1", connector("OpenAI")), ("c2", connector("OpenAI")))))
    server.answer("GET", CONNECTORS + "/c1", (200, connector("OpenAI", version="2", credential={"openAI_key": "sk-secret"})))
    server.answer("GET", CONNECTORS + "/c2", (200, connector("OpenAI", version="3")))
    result = run(server, name="OpenAI")
    assert result["connectors"] == [dict(connector("OpenAI", version="2"), connector_id="c1"),
                                    dict(connector("OpenAI", version="3"), connector_id="c2")]
    assert json.loads(server.received[0]["body"])["query"] == {"bool": {"filter": [{"term": {"name.keyword": "OpenAI"}}]}}
    assert requests_sent(server) == [("POST", CONNECTORS + "/_search"), ("GET", CONNECTORS + "/c1"), ("GET", CONNECTORS + "/c2")]


def test_all_connectors_leave_out_one_deleted_between_search_and_read(server):
    server.answer("POST", CONNECTORS + "/_search", (200, hits(("c1", connector("a")), ("c2", connector("b")))))
    server.answer("GET", CONNECTORS + "/c1", NOT_FOUND)
    server.answer("GET", CONNECTORS + "/c2", (200, connector("b")))
    result = run(server)
    assert result["connectors"] == [dict(connector("b"), connector_id="c2")]
    assert json.loads(server.received[0]["body"])["query"] == {"match_all": {}}
    assert requests_sent(server)[1:] == [("GET", CONNECTORS + "/c1"), ("GET", CONNECTORS + "/c2")]


def test_nothing_found_is_an_empty_list_after_one_search(server):
    server.answer("POST", CONNECTORS + "/_search", (200, hits()))
    assert run(server, name="nobody") == {"changed": False, "connectors": []}
    assert requests_sent(server) == [("POST", CONNECTORS + "/_search")]
