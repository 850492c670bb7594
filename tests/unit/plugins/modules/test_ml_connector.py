"""ml_connector's comparison (what ML Commons changes on storage must not count as a difference), and its refused deletes."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.client import Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.diff import changed_fields
from ansible_collections.opensearch.ml_commons.plugins.module_utils.errors import MLCommonsError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.resource import CONNECTOR, Writer
from ansible_collections.opensearch.ml_commons.plugins.modules.ml_connector import (
    desired_actions,
    ensure_absent,
    normalize,
    removed_parameters,
    stored_view,
)
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule

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
    ("V2AFLKIBO0H-CT-Oq0jL", "counts m9 (demo model), which use(s) another connector (V2AFLKIBO0H-CT-Oq0jL). No model uses this connector"),
    ("XWAGLKIBO0H-CT-Ok0il", "is still used by 1 model(s): m9 (demo model). Delete those models"),
])
def test_a_refused_delete_names_the_models_and_whether_they_really_use_the_connector(server, users_connector, expected):
    server.script(IN_USE_BY_M9, (200, {"name": "demo model", "connector_id": users_connector}))
    writer = Writer(Client(server.url, backoff=0), CONNECTOR, False)
    with pytest.raises(MLCommonsError) as raised:
        ensure_absent(FakeModule({}, False), writer, {"connector_id": "XWAGLKIBO0H-CT-Ok0il", "name": "run connector"})
    assert expected in str(raised.value)
    assert raised.value.details["model_ids"] == ["m9"]
