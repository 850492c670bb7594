"""ml_connector's redeploy_models on a cluster of three nodes: undeployed from every node, the connector updated,
deployed again until every eligible node serves the model."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import CONNECTOR, Writer
from ansible_collections.opensearch.ml_commons.plugins.modules import ml_connector
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule, writes

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
    server.script(IN_USE,
                  (200, model("DEPLOYED")),  # the blocking model, read
                  (200, {}), (200, model("UNDEPLOYED")),  # undeploy from every node, read back
                  (200, {"result": "updated"}), (200, {"name": "OpenAI", "description": "new"}),  # the update
                  (200, model("UNDEPLOYED")), (200, {"task_id": "t2", "status": "COMPLETED"}),  # deploy
                  (200, model("PARTIALLY_DEPLOYED")), (200, profile(("n0", "n1"))),  # n2 failed to load it
                  (200, model("PARTIALLY_DEPLOYED")), (200, profile(("n0", "n1"))),  # look again
                  (200, model("PARTIALLY_DEPLOYED")), (200, {"task_id": "t3", "status": "COMPLETED"}),  # deploy again
                  (200, model("DEPLOYED")), (200, profile(NODES)))
    module = FakeModule({"redeploy_models": True, "wait_timeout": 60}, False)
    client = Client(server.url, backoff=0)
    updated, redeployed = ml_connector.update_in_place(module, Writer(client, CONNECTOR, False), {"connector_id": "c1", "name": "OpenAI"},
                                                       {"description": "new"}, None)
    assert redeployed == ["m1"] and updated["description"] == "new"
    assert [(method, path) for method, path, _body in writes(server)] == [
        ("PUT", CONNECTORS + "/c1"), ("POST", MODELS + "/m1/_undeploy"), ("PUT", CONNECTORS + "/c1"),
        ("POST", MODELS + "/m1/_deploy"), ("POST", MODELS + "/m1/_deploy")]
