"""ml_connector's comparison (what ML Commons changes on storage must not count as a difference), and its refused
updates and deletes."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import changed_fields
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import MLCommonsError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import CONNECTOR, Writer
from ansible_collections.opensearch.ml_commons.plugins.modules.ml_connector import (
    desired_actions,
    ensure_absent,
    normalize,
    recreate,
    removed_parameters,
    stored_view,
    update_in_place,
)
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule, hits, writes

SENT = {
    "action_type": "batch_predict",
    "method": "post",
    "url": "https://api.openai.com/v1/batches",
    "headers": {"Authorization": "Bearer ${credential.openAI_key}"},
    "request_body": {"input_file_id": "${parameters.input_file_id}", "endpoint": "${parameters.endpoint}", "completion_window": "24h"},
    "pre_process_function": None,
}
STORED = {
    "action_type": "BATCH_PREDICT",
    "method": "POST",
    "url": "https://api.openai.com/v1/batches",
    "headers": {"Authorization": "Bearer ${credential.openAI_key}"},
    "request_body": '{ "input_file_id": "${parameters.input_file_id}", "completion_window": "24h", "endpoint": "${parameters.endpoint}" }',
}


def test_actions_compare_after_case_json_and_absent_fields_are_normalised():
    wanted = {"actions": desired_actions([SENT])}
    assert changed_fields(wanted, {"actions": [STORED]}, normalize) == []


def test_a_changed_url_is_a_difference():
    wanted = {"actions": desired_actions([dict(SENT, url="https://api.openai.com/v2/batches")])}
    assert changed_fields(wanted, {"actions": [STORED]}, normalize) == ["actions"]


def test_template_bodies_that_are_not_json_compare_as_text():
    template = '{ "input": ${parameters.input}, "model": "${parameters.model}" }'
    stored = dict(STORED, action_type="PREDICT", request_body=template)
    sent = dict(SENT, action_type="predict", request_body=template)
    assert changed_fields({"actions": desired_actions([sent])}, {"actions": [stored]}, normalize) == []
    changed = dict(sent, request_body=template.replace("model", "engine"))
    assert changed_fields({"actions": desired_actions([changed])}, {"actions": [stored]}, normalize) == ["actions"]


def test_action_order_does_not_matter():
    predict = dict(STORED, action_type="PREDICT")
    wanted = {"actions": desired_actions([dict(SENT, action_type="predict"), SENT])}
    assert changed_fields(wanted, {"actions": [STORED, predict]}, normalize) == []


def test_parameters_and_version_compare_as_the_strings_ml_commons_stores():
    wanted = {"version": 1, "parameters": {"max_tokens": 100, "stream": False, "model": "m", "nested": {"b": 1, "a": 2}}}
    stored = {"version": "1", "parameters": {"max_tokens": "100", "stream": "false", "model": "m", "nested": '{"a":2,"b":1}'}}
    assert changed_fields(wanted, stored, normalize) == []


def test_empty_and_absent_headers_are_equal():
    sent = dict(SENT, headers={})
    stored = dict(STORED)
    del stored["headers"]
    assert changed_fields({"actions": desired_actions([sent])}, {"actions": [stored]}, normalize) == []


def test_only_the_client_config_keys_the_user_set_are_compared():
    wanted = {"client_config": {"max_retry_times": 3}}
    stored = {"client_config": {"max_retry_times": 3, "max_connection": 30, "retry_backoff_policy": "constant"}}
    assert changed_fields(wanted, stored_view(stored, wanted), normalize) == []


def test_access_is_compared_as_access_mode():
    assert changed_fields({"access_mode": "private"}, stored_view({"access": "private"}, {}), normalize) == []


def test_removed_parameter_keys_are_named():
    assert removed_parameters({"parameters": {"model": "m", "input_file_id": "f"}}, {"parameters": {"model": "m"}}) == ["input_file_id"]
    assert removed_parameters({"parameters": {"model": "m"}}, {"description": "d"}) == []


IN_USE_BY_M9 = (409, {"error": {"type": "status_exception", "reason": "1 models are still using this connector, please delete or update the "
                                "models first: [m9]"}, "status": 409})


@pytest.mark.usefixtures("module_test_server")
@pytest.mark.parametrize("users_connector, expected", [
    # ML Commons' match query on the models' connector_id finds IDs that share a part between hyphens.
    ("V2AFLKIBO0H-CT-Oq0jL", "m9 (demo model) use(s) another connector (V2AFLKIBO0H-CT-Oq0jL); ML Commons counts them"),
    ("XWAGLKIBO0H-CT-Ok0il", "is still used by 1 model(s): m9 (demo model). Delete those models"),
])
def test_a_refused_delete_names_the_models_and_whether_they_really_use_the_connector(server, users_connector, expected):
    server.script(IN_USE_BY_M9, (200, {"name": "demo model", "connector_id": users_connector}))
    writer = Writer(Client(server.url, backoff=0), CONNECTOR, False)
    with pytest.raises(MLCommonsError) as raised:
        ensure_absent(FakeModule({}, False), writer, {"connector_id": "XWAGLKIBO0H-CT-Ok0il", "name": "run connector"})
    assert expected in str(raised.value)
    assert raised.value.details["model_ids"] == ["m9"]


# Two IDs made on one node within a minute: ML Commons' match query on connector_id finds one from the other.
RUN_CONNECTOR = {"connector_id": "i7-WLKIBGtvevjX-RSWe", "name": "run connector"}
OTHER_CONNECTOR_ID = "jb-WLKIBGtvevjX-R1cA"
UPDATE_BLOCKED_BY_M9 = (400, {"error": {"type": "status_exception", "reason": "1 models are still using this connector, please undeploy "
                                        "the models first: [m9]"}, "status": 400})


def other_connectors_model(state="DEPLOYED"):
    return {"name": "role model", "connector_id": OTHER_CONNECTOR_ID, "model_state": state}


@pytest.mark.usefixtures("module_test_server")
def test_a_check_mode_delete_predicts_the_refusal_for_a_model_of_another_connector(server):
    server.script((200, hits(("m9", other_connectors_model()))))
    writer = Writer(Client(server.url, backoff=0), CONNECTOR, True)
    with pytest.raises(MLCommonsError) as raised:
        ensure_absent(FakeModule({}, True), writer, RUN_CONNECTOR)
    assert "No model uses this connector" in str(raised.value)
    assert "m9 (role model) use(s) another connector (%s)" % OTHER_CONNECTOR_ID in str(raised.value)
    assert writes(server) == []


@pytest.mark.usefixtures("module_test_server")
@pytest.mark.parametrize("check_mode", [False, True])
def test_an_update_refused_for_a_model_of_another_connector_says_so(server, check_mode):
    if check_mode:
        server.script((200, hits(("m9", other_connectors_model()))))
    else:
        server.script(UPDATE_BLOCKED_BY_M9, (200, other_connectors_model()))
    module = FakeModule({"redeploy_models": False, "wait_timeout": 60}, check_mode)
    with pytest.raises(MLCommonsError) as raised:
        update_in_place(module, Writer(Client(server.url, backoff=0), CONNECTOR, check_mode), RUN_CONNECTOR, {"description": "new"}, None)
    message = str(raised.value)
    assert message.startswith("ML Commons refuses to update connector 'run connector' (i7-WLKIBGtvevjX-RSWe) while 1 deployed model(s) "
                              "count as its users: m9 (role model). m9 (role model) use(s) another connector (%s)" % OTHER_CONNECTOR_ID)
    assert message.endswith("set redeploy_models: true to have the module undeploy, update and redeploy them.")
    assert raised.value.details["model_ids"] == ["m9"]
    assert [method for method, _path, _body in writes(server)] == ([] if check_mode else ["PUT"])


@pytest.mark.usefixtures("module_test_server")
def test_redeploy_models_cycles_a_model_of_another_connector_with_a_warning(server):
    server.script(UPDATE_BLOCKED_BY_M9, (200, other_connectors_model()),
                  (200, {}), (200, other_connectors_model("UNDEPLOYED")),  # undeploy, read back
                  (200, {"result": "updated"}), (200, {"name": "run connector", "description": "new"}),  # the update
                  (200, other_connectors_model("UNDEPLOYED")), (200, {"task_id": "t2", "status": "COMPLETED"}),  # deploy
                  (200, other_connectors_model()), (200, {"nodes": {"n0": {"models": {"m9": {"model_state": "DEPLOYED"}}}}}))
    module = FakeModule({"redeploy_models": True, "wait_timeout": 60}, False)
    updated, redeployed = update_in_place(module, Writer(Client(server.url, backoff=0), CONNECTOR, False), RUN_CONNECTOR,
                                          {"description": "new"}, None)
    assert updated["description"] == "new" and redeployed == ["m9"]
    assert len(module.warnings) == 1 and "m9 (role model) use(s) another connector (%s)" % OTHER_CONNECTOR_ID in module.warnings[0]


@pytest.mark.usefixtures("module_test_server")
def test_a_recreate_whose_old_connector_is_refused_for_another_model_fails_at_once_naming_the_replacement(server):
    stored = dict(RUN_CONNECTOR, version="1", protocol="http", parameters={"model": "m", "dropped": "x"})
    replacement = dict(stored, parameters={"model": "m"})
    server.script((200, hits(("m1", {"name": "own model", "connector_id": RUN_CONNECTOR["connector_id"]}),
                             ("m9", other_connectors_model()))),  # the old connector's users
                  (200, {"connector_id": "new1"}),  # created
                  (200, hits(("new1", replacement))), (200, hits(("new1", replacement))),  # the only replacement, twice
                  (200, replacement),  # read back
                  (200, {"result": "updated"}), (200, {"name": "own model", "connector_id": "new1"}),  # m1 moved
                  (409, {"error": {"type": "status_exception", "reason": "2 models are still using this connector, please delete or "
                                   "update the models first: [m1, m9]"}, "status": 409}),
                  (200, other_connectors_model()))
    module = FakeModule({"credential": {"openAI_key": "k"}, "wait_timeout": 60}, False)
    with pytest.raises(MLCommonsError) as raised:
        recreate(module, Writer(Client(server.url, backoff=0), CONNECTOR, False), stored, {"parameters": {"model": "m"}}, None)
    message = str(raised.value)
    assert message.startswith("Connector 'run connector' was replaced by new1 and its models moved to it (m1), but the old one "
                              "(i7-WLKIBGtvevjX-RSWe) remains: ML Commons refuses to delete connector")
    assert "m9 (role model), which use(s) another connector" not in message and "m9 (role model) use(s) another connector" in message
    assert raised.value.details["model_ids"] == ["m9"]
