"""Connector fields compared as ML Commons stores them: what it changes on storage is no difference."""

from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.connectors import differing_fields, removed_parameters, request_actions

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
    assert differing_fields({"actions": [STORED]}, {"actions": request_actions([SENT])}) == []


def test_a_body_that_is_not_text_is_sent_as_json():
    assert request_actions([dict(SENT, request_body=["a", 1])])[0]["request_body"] == '["a", 1]'
    assert "pre_process_function" not in request_actions([SENT])[0]


def test_a_changed_url_is_a_difference():
    wanted = {"actions": request_actions([dict(SENT, url="https://api.openai.com/v2/batches")])}
    assert differing_fields({"actions": [STORED]}, wanted) == ["actions"]


def test_template_bodies_that_are_not_json_compare_as_text():
    template = '{ "input": ${parameters.input}, "model": "${parameters.model}" }'
    stored = {"actions": [dict(STORED, action_type="PREDICT", request_body=template)]}
    sent = dict(SENT, action_type="predict", request_body=template)
    assert differing_fields(stored, {"actions": request_actions([sent])}) == []
    changed = dict(sent, request_body=template.replace("model", "engine"))
    assert differing_fields(stored, {"actions": request_actions([changed])}) == ["actions"]


def test_action_order_does_not_matter():
    predict = dict(STORED, action_type="PREDICT")
    wanted = {"actions": request_actions([dict(SENT, action_type="predict"), SENT])}
    assert differing_fields({"actions": [STORED, predict]}, wanted) == []


def test_parameters_and_version_compare_as_the_strings_ml_commons_stores():
    wanted = {"version": 1, "parameters": {"max_tokens": 100, "stream": False, "model": "m", "nested": {"b": 1, "a": 2}}}
    stored = {"version": "1", "parameters": {"max_tokens": "100", "stream": "false", "model": "m", "nested": '{"a":2,"b":1}'}}
    assert differing_fields(stored, wanted) == []


def test_empty_and_absent_headers_are_equal():
    stored = dict(STORED)
    del stored["headers"]
    assert differing_fields({"actions": [stored]}, {"actions": request_actions([dict(SENT, headers={})])}) == []


def test_only_the_client_config_keys_the_user_set_are_compared():
    stored = {"client_config": {"max_retry_times": 3, "max_connection": 30, "retry_backoff_policy": "constant"}}
    assert differing_fields(stored, {"client_config": {"max_retry_times": 3}}) == []
    assert differing_fields(stored, {"client_config": {"max_retry_times": 5}}) == ["client_config"]


def test_access_is_compared_as_access_mode_and_add_all_backend_roles_never_differs():
    assert differing_fields({"access": "private"}, {"access_mode": "private", "add_all_backend_roles": True}) == []
    assert differing_fields({"access": "private", "backend_roles": ["b", "a"]}, {"backend_roles": ["a", "b"]}) == []


def test_removed_parameter_keys_are_named():
    assert removed_parameters({"parameters": {"model": "m", "input_file_id": "f"}}, {"parameters": {"model": "m"}}) == ["input_file_id"]
    assert removed_parameters({"parameters": {"model": "m"}}, {"description": "d"}) == []
