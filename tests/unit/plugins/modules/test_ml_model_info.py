"""ml_model_info through run(): by ID, name, group and connector, all, nothing; read again by ID, with the state and
the nodes serving each model."""

import json

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import Client
from ansible_collections.opensearch.ml_commons.plugins.modules import ml_model_info
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule, hits, requests_sent

# A request nothing was scripted for fails at once, and no wait pauses (see tests/unit/conftest.py).
pytestmark = pytest.mark.usefixtures("module_test_server")


MODELS = "/_plugins/_ml/models"
NOT_FOUND = (404, {"error": {"type": "status_exception", "reason": "Failed to find model with the provided model id: m9"}, "status": 404})


def fake_module(check_mode=False, **params):
    return FakeModule(ml_model_info, check_mode, **params)


def model(name, state="DEPLOYED", group="g1", connector="c1"):
    return {"name": name, "algorithm": "REMOTE", "model_group_id": group, "connector_id": connector, "model_state": state,
            "created_time": 1722037257000}


PROFILES = "/_plugins/_ml/profile/models"
NODES = "/_nodes"
PROFILE = (200, {"nodes": {"n1": {"models": {"m1": {"model_state": "DEPLOYED"}, "m2": {"model_state": "DEPLOYED"}}}}})
NODE_NAMES = (200, {"nodes": {"n1": {"name": "ml-testbed-0"}}})
SERVED_BY_N1 = [{"node_id": "n1", "name": "ml-testbed-0"}]


def found(source, model_id="m1", serving=()):
    return dict(source, model_id=model_id, serving_nodes=list(serving))


def answer_models(server, *models):
    """The search finds ``models``: (ID, source) pairs, as the search copy has them."""
    server.answer("POST", MODELS + "/_search", (200, hits(*models)))


def answer_reads(server, **replies):
    """Each model ID's reply to its GET by ID."""
    for model_id, reply in replies.items():
        server.answer("GET", MODELS + "/" + model_id, reply)


def answer_serving(server, profile=PROFILE, names=NODE_NAMES):
    server.answer("GET", PROFILES, profile)
    server.answer("GET", NODES, names)


def run(server, **params):
    return ml_model_info.run(fake_module(**params), Client(server.url, backoff=0))


def search_query(server):
    return json.loads(server.received[0]["body"])["query"]


def test_by_id_is_one_read_with_the_models_state(server):
    answer_reads(server, m1=(200, model("embedder")))
    answer_serving(server)
    result = run(server, model_id="m1")
    assert result == {"changed": False, "models": [found(model("embedder"), serving=SERVED_BY_N1)]}
    assert result["models"][0]["model_state"] == "DEPLOYED"
    assert requests_sent(server) == [("GET", MODELS + "/m1"), ("GET", "/_plugins/_ml/profile/models"),
                                     ("GET", "/_nodes?filter_path=nodes.%2A.name")]


def test_an_unknown_id_is_an_empty_list(server):
    answer_reads(server, m9=NOT_FOUND)
    assert run(server, model_id="m9") == {"changed": False, "models": []}


def test_an_id_outside_the_group_asked_for_is_an_empty_list(server):
    answer_reads(server, m1=(200, model("embedder", group="g2")))
    assert run(server, model_id="m1", model_group_id="g1")["models"] == []


def test_by_name_returns_the_state_read_by_id_not_the_lagging_search_copy(server):
    """Just deployed: the search copy still says DEPLOYING, the model itself DEPLOYED."""
    answer_models(server, ("m1", model("embedder", "DEPLOYING")))
    answer_reads(server, m1=(200, model("embedder", "DEPLOYED")))
    answer_serving(server)
    result = run(server, name="embedder")
    assert result["models"] == [found(model("embedder", "DEPLOYED"), serving=SERVED_BY_N1)]
    assert search_query(server) == {"bool": {"filter": [{"term": {"name.keyword": "embedder"}}]}}
    assert requests_sent(server)[:2] == [("POST", MODELS + "/_search"), ("GET", MODELS + "/m1")]


def test_the_filters_combine_and_the_connector_must_match_exactly(server):
    """connector_id is a text field: the search matches on its words, only an exact match is returned."""
    answer_models(server, ("m1", model("embedder")), ("m2", model("embedder", connector="c1 c2")))
    answer_reads(server, m1=(200, model("embedder")), m2=(200, model("embedder", connector="c1 c2")))
    answer_serving(server)
    result = run(server, name="embedder", model_group_id="g1", connector_id="c1")
    assert result["models"] == [found(model("embedder"), serving=SERVED_BY_N1)]
    assert search_query(server) == {"bool": {"filter": [{"term": {"name.keyword": "embedder"}}, {"term": {"model_group_id": "g1"}},
                                                        {"match": {"connector_id": "c1"}}]}}
    assert requests_sent(server)[1:3] == [("GET", MODELS + "/m1"), ("GET", MODELS + "/m2")]


def test_a_model_moved_to_another_group_since_the_search_is_left_out(server):
    answer_models(server, ("m1", model("a")), ("m2", model("b")))
    answer_reads(server, m1=(200, model("a")), m2=(200, model("b", group="g2")))
    answer_serving(server)
    assert [found["model_id"] for found in run(server, model_group_id="g1")["models"]] == ["m1"]


def test_all_models_are_each_read_by_id_and_one_deleted_meanwhile_is_left_out(server):
    answer_models(server, ("m1", model("a")), ("m2", model("b")), ("m3", model("c")))
    answer_reads(server, m1=(200, model("a", "UNDEPLOYED")), m2=NOT_FOUND, m3=(200, model("c", "REGISTERED")))
    result = run(server)
    assert result["models"] == [found(model("a", "UNDEPLOYED")), found(model("c", "REGISTERED"), model_id="m3")]
    assert search_query(server) == {"match_all": {}}
    assert requests_sent(server)[1:] == [("GET", MODELS + "/m1"), ("GET", MODELS + "/m2"), ("GET", MODELS + "/m3")]


def test_nothing_found_is_an_empty_list_after_one_search(server):
    answer_models(server)
    assert run(server, connector_id="c1") == {"changed": False, "models": []}
    assert requests_sent(server) == [("POST", MODELS + "/_search")]


def test_on_a_cluster_each_model_has_the_nodes_that_serve_it_from_one_profile_request(server):
    """Three nodes: m1 DEPLOYED on all, m2 PARTIALLY_DEPLOYED (n2 came back without it), m3 stored DEPLOYED that
    no node holds any more (all restarted, ML Commons' sync job not yet run)."""
    answer_models(server, ("m1", model("a")), ("m2", model("b", "PARTIALLY_DEPLOYED")), ("m3", model("c")))
    answer_reads(server, m1=(200, model("a")), m2=(200, model("b", "PARTIALLY_DEPLOYED")), m3=(200, model("c")))
    answer_serving(server,
                   (200, {"nodes": {"n0": {"models": {"m1": {"model_state": "DEPLOYED"}, "m2": {"model_state": "DEPLOYED"}}},
                                    "n1": {"models": {"m1": {"model_state": "DEPLOYED"}, "m2": {"model_state": "DEPLOYED"}}},
                                    "n2": {"models": {"m1": {"model_state": "DEPLOYED"}, "m2": {"worker_nodes": ["n0", "n1"]}}}}}),
                   (200, {"nodes": {"n0": {"name": "ml-testbed-0"}, "n1": {"name": "ml-testbed-1"}, "n2": {"name": "ml-testbed-2"}}}))
    result = run(server)
    serving = dict((item["model_id"], [node["name"] for node in item["serving_nodes"]]) for item in result["models"])
    assert serving == {"m1": ["ml-testbed-0", "ml-testbed-1", "ml-testbed-2"], "m2": ["ml-testbed-0", "ml-testbed-1"], "m3": []}
    assert [path for _method, path in requests_sent(server)[4:]] == ["/_plugins/_ml/profile/models", "/_nodes?filter_path=nodes.%2A.name"]
