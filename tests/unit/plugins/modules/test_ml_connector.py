"""ml_connector's refused updates and deletes: the models ML Commons names, and whether they really use the connector."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import MLCommonsError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import CONNECTOR
from ansible_collections.opensearch.ml_commons.plugins.modules import ml_connector
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule, hits, writes

# A request nothing was scripted for fails at once, and no wait pauses (see tests/unit/conftest.py).
pytestmark = pytest.mark.usefixtures("module_test_server")

CONNECTORS = "/_plugins/_ml/connectors"
MODELS = "/_plugins/_ml/models"
IN_USE_BY_M9 = (409, {"error": {"type": "status_exception", "reason": "1 models are still using this connector, please delete or update the "
                                "models first: [m9]"}, "status": 409})
# Two IDs made on one node within a minute: ML Commons' match query on connector_id finds one from the other.
RUN_CONNECTOR = {"connector_id": "i7-WLKIBGtvevjX-RSWe", "name": "run connector"}
OTHER_CONNECTOR_ID = "jb-WLKIBGtvevjX-R1cA"
UPDATE_BLOCKED_BY_M9 = (400, {"error": {"type": "status_exception", "reason": "1 models are still using this connector, please undeploy "
                                        "the models first: [m9]"}, "status": 400})


def fake_module(check_mode=False, **params):
    return FakeModule(ml_connector, check_mode, **dict({"name": "run connector", "wait_timeout": 60}, **params))


def writer(server, check_mode=False):
    return ml_connector.ConnectorWriter(Client(server.url, backoff=0), CONNECTOR, check_mode)


def other_connectors_model(state="DEPLOYED"):
    return {"name": "role model", "connector_id": OTHER_CONNECTOR_ID, "model_state": state}


@pytest.mark.parametrize("users_connector, expected", [
    # ML Commons' match query on the models' connector_id finds IDs that share a part between hyphens.
    ("V2AFLKIBO0H-CT-Oq0jL", "m9 (demo model) use(s) another connector (V2AFLKIBO0H-CT-Oq0jL); ML Commons counts them"),
    ("XWAGLKIBO0H-CT-Ok0il", "is still used by 1 model(s): m9 (demo model). Delete those models"),
])
def test_a_refused_delete_names_the_models_and_whether_they_really_use_the_connector(server, users_connector, expected):
    server.answer("DELETE", CONNECTORS + "/XWAGLKIBO0H-CT-Ok0il", IN_USE_BY_M9)
    server.answer("GET", MODELS + "/m9", (200, {"name": "demo model", "connector_id": users_connector}))
    with pytest.raises(MLCommonsError) as raised:
        ml_connector.ensure_absent(fake_module(), writer(server), {"connector_id": "XWAGLKIBO0H-CT-Ok0il", "name": "run connector"})
    assert expected in str(raised.value)
    assert raised.value.details["model_ids"] == ["m9"]


def test_a_check_mode_delete_predicts_the_refusal_for_a_model_of_another_connector(server):
    server.answer("POST", MODELS + "/_search", (200, hits(("m9", other_connectors_model()))))
    with pytest.raises(MLCommonsError) as raised:
        ml_connector.ensure_absent(fake_module(True), writer(server, True), RUN_CONNECTOR)
    assert "No model uses this connector" in str(raised.value)
    assert "m9 (role model) use(s) another connector (%s)" % OTHER_CONNECTOR_ID in str(raised.value)
    assert writes(server) == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_an_update_refused_for_a_model_of_another_connector_says_so(server, check_mode):
    server.answer("POST", MODELS + "/_search", (200, hits(("m9", other_connectors_model()))))
    server.answer("PUT", CONNECTORS + "/" + RUN_CONNECTOR["connector_id"], UPDATE_BLOCKED_BY_M9)
    server.answer("GET", MODELS + "/m9", (200, other_connectors_model()))
    with pytest.raises(MLCommonsError) as raised:
        ml_connector.update_in_place(fake_module(check_mode), writer(server, check_mode), RUN_CONNECTOR, {"description": "new"}, None)
    message = str(raised.value)
    assert message.startswith("ML Commons refuses to update connector 'run connector' (i7-WLKIBGtvevjX-RSWe) while 1 deployed model(s) "
                              "count as its users: m9 (role model). m9 (role model) use(s) another connector (%s)" % OTHER_CONNECTOR_ID)
    assert message.endswith("set redeploy_models: true to have the module undeploy, update and redeploy them.")
    assert raised.value.details["model_ids"] == ["m9"]
    assert [method for method, _path, _body in writes(server)] == ([] if check_mode else ["PUT"])


def test_redeploy_models_cycles_a_model_of_another_connector_with_a_warning(server):
    connector_path = CONNECTORS + "/" + RUN_CONNECTOR["connector_id"]
    server.answer("PUT", connector_path, UPDATE_BLOCKED_BY_M9, (200, {"result": "updated"}))
    server.answer("GET", connector_path, (200, {"name": "run connector", "description": "new"}))
    # Read as the refusal names it, after the undeploy, before and after the deploy.
    server.answer("GET", MODELS + "/m9", (200, other_connectors_model()), (200, other_connectors_model("UNDEPLOYED")),
                  (200, other_connectors_model("UNDEPLOYED")), (200, other_connectors_model()))
    server.answer("POST", MODELS + "/m9/_undeploy", (200, {}))
    server.answer("POST", MODELS + "/m9/_deploy", (200, {"task_id": "t2", "status": "COMPLETED"}))
    server.answer("GET", "/_plugins/_ml/profile/models/m9", (200, {"nodes": {"n0": {"models": {"m9": {"model_state": "DEPLOYED"}}}}}))
    module = fake_module(redeploy_models=True)
    updated, redeployed = ml_connector.update_in_place(module, writer(server), RUN_CONNECTOR, {"description": "new"}, None)
    assert updated["description"] == "new" and redeployed == ["m9"]
    assert len(module.warnings) == 1 and "m9 (role model) use(s) another connector (%s)" % OTHER_CONNECTOR_ID in module.warnings[0]
    assert [(method, path) for method, path, _body in writes(server)] == [
        ("PUT", connector_path), ("POST", MODELS + "/m9/_undeploy"), ("PUT", connector_path), ("POST", MODELS + "/m9/_deploy")]


def test_a_recreate_whose_old_connector_is_refused_for_another_model_fails_at_once_naming_the_replacement(server):
    stored = dict(RUN_CONNECTOR, version="1", protocol="http", parameters={"model": "m", "dropped": "x"})
    replacement = dict(stored, parameters={"model": "m"})
    server.answer("POST", MODELS + "/_search", (200, hits(("m1", {"name": "own model", "connector_id": RUN_CONNECTOR["connector_id"]}),
                                                          ("m9", other_connectors_model()))))  # the old connector's users
    server.answer("POST", CONNECTORS + "/_create", (200, {"connector_id": "new1"}))
    server.answer("POST", CONNECTORS + "/_search", (200, hits(("new1", replacement))))  # the only replacement
    server.answer("GET", CONNECTORS + "/new1", (200, replacement))
    server.answer("PUT", MODELS + "/m1", (200, {"result": "updated"}))
    server.answer("GET", MODELS + "/m1", (200, {"name": "own model", "connector_id": "new1"}))
    server.answer("DELETE", CONNECTORS + "/" + RUN_CONNECTOR["connector_id"],
                  (409, {"error": {"type": "status_exception", "reason": "2 models are still using this connector, please delete or "
                                   "update the models first: [m1, m9]"}, "status": 409}))
    server.answer("GET", MODELS + "/m9", (200, other_connectors_model()))
    module = fake_module(credential={"openAI_key": "k"})
    with pytest.raises(MLCommonsError) as raised:
        ml_connector.recreate(module, writer(server), stored, {"parameters": {"model": "m"}}, None)
    message = str(raised.value)
    assert message.startswith("Connector 'run connector' was replaced by new1 and its models moved to it (m1), but the old one "
                              "(i7-WLKIBGtvevjX-RSWe) remains: ML Commons refuses to delete connector")
    assert "m9 (role model), which use(s) another connector" not in message and "m9 (role model) use(s) another connector" in message
    assert raised.value.details["model_ids"] == ["m9"]
    assert [(method, path) for method, path, _body in writes(server)] == [
        ("POST", CONNECTORS + "/_create"), ("PUT", MODELS + "/m1"), ("DELETE", CONNECTORS + "/" + RUN_CONNECTOR["connector_id"])]


def test_a_rerun_that_finds_the_connector_as_wanted_only_reads_and_returns_every_field(server):
    stored = {"name": "run connector", "version": "1", "protocol": "http", "parameters": {"model": "m", "max_tokens": "100"},
              "actions": [{"action_type": "PREDICT", "method": "POST", "url": "https://api.openai.com/v1/embeddings"}]}
    server.answer("POST", CONNECTORS + "/_search", (200, hits(("c1", stored))))
    server.answer("GET", CONNECTORS + "/c1", (200, stored))
    module = fake_module(version="1", protocol="http", parameters={"model": "m", "max_tokens": 100}, credential={"openAI_key": "k"},
                         actions=[{"action_type": "predict", "method": "post", "url": "https://api.openai.com/v1/embeddings"}])
    result = ml_connector.run(module, Client(server.url, backoff=0))
    assert result == {"changed": False, "connector_id": "c1", "connector": dict(stored, connector_id="c1"),
                      "diff": {"before": dict(stored, connector_id="c1"), "after": dict(stored, connector_id="c1")},
                      "redeployed_models": [], "repointed_models": []}
    assert writes(server) == []
