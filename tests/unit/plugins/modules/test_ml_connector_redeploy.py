"""ml_connector's redeploy_models on a cluster of three nodes: undeployed from every node, the connector updated,
deployed again until every eligible node serves the model."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import CONNECTOR
from ansible_collections.opensearch.ml_commons.plugins.modules import ml_connector
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule, hits, writes

pytestmark = pytest.mark.usefixtures("module_test_server")

MODELS = "/_plugins/_ml/models"
CONNECTORS = "/_plugins/_ml/connectors"
NODES = ("n0", "n1", "n2")
IN_USE = (400, {"error": {"type": "illegal_argument_exception",
                          "reason": "1 models are still using this connector, please undeploy the models first: [m1]"}, "status": 400})


def model(state):
    return {"name": "embedder", "algorithm": "REMOTE", "connector_id": "c1", "model_state": state,
            "planning_worker_nodes": list(NODES), "deploy_to_all_nodes": True}


def profile(serving):
    return {"nodes": dict((node_id, {"models": {"m1": {"model_state": "DEPLOYED"}}} if node_id in serving else {}) for node_id in NODES)}


def test_the_models_are_deployed_again_until_every_node_serves_them(server):
    server.answer("PUT", CONNECTORS + "/c1", IN_USE, (200, {"result": "updated"}))
    server.answer("GET", CONNECTORS + "/c1", (200, {"name": "OpenAI", "description": "new"}))
    server.answer("GET", MODELS + "/m1",
                  (200, model("DEPLOYED")),  # the blocking model, read
                  (200, model("UNDEPLOYED")),  # after the undeploy from every node
                  (200, model("UNDEPLOYED")), (200, model("PARTIALLY_DEPLOYED")),  # deployed: n2 failed to load it
                  (200, model("PARTIALLY_DEPLOYED")),  # look again
                  (200, model("PARTIALLY_DEPLOYED")), (200, model("DEPLOYED")))  # deployed again
    server.answer("GET", "/_plugins/_ml/profile/models/m1", (200, profile(("n0", "n1"))), (200, profile(("n0", "n1"))), (200, profile(NODES)))
    server.answer("POST", "/_plugins/_ml/tasks/_search", (200, hits()))  # no deploy task recorded an error
    server.answer("POST", MODELS + "/m1/_undeploy", (200, {}))
    server.answer("POST", MODELS + "/m1/_deploy", (200, {"task_id": "t2", "status": "COMPLETED"}))
    module = FakeModule(ml_connector, connector_id="c1", redeploy_models=True, wait_timeout=60)
    client = Client(server.url, backoff=0)
    writer = ml_connector.ConnectorWriter(client, CONNECTOR)
    updated, redeployed = ml_connector.update_in_place(module, writer, {"connector_id": "c1", "name": "OpenAI"}, {"description": "new"}, None)
    assert redeployed == ["m1"] and updated["description"] == "new"
    assert [(method, path) for method, path, _body in writes(server)] == [
        ("PUT", CONNECTORS + "/c1"), ("POST", MODELS + "/m1/_undeploy"), ("PUT", CONNECTORS + "/c1"),
        ("POST", MODELS + "/m1/_deploy"), ("POST", MODELS + "/m1/_deploy")]
