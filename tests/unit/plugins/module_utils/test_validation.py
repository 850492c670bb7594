"""The 3.1+ name rules, applied on every version."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.validation import check_connector_actions, check_name, check_safe_text


@pytest.mark.parametrize("name", ["openAI_model_group", "OpenAI model (v2): test!", "Modèle d'été 2024", "a/b @c, \"d\"?"])
def test_safe_names_pass(name):
    check_name(name, "model group")


@pytest.mark.parametrize("name, shown", [("bad+name", "'+'"), ("a#b", "'#'"), ("x{y}", "'{' '}'"), ("semi;colon", "';'")])
def test_unsafe_characters_are_named(name, shown):
    with pytest.raises(ConfigurationError) as caught:
        check_name(name, "connector")
    assert "The connector name holds characters ML Commons does not accept (%s)" % shown in str(caught.value)


def test_empty_and_long_names_are_refused():
    with pytest.raises(ConfigurationError, match="must not be empty"):
        check_name("  ", "model")
    with pytest.raises(ConfigurationError, match="257 characters long; at most 256"):
        check_name("a" * 257, "model")


def test_descriptions_follow_the_same_rule():
    check_safe_text("description", None, "model")
    with pytest.raises(ConfigurationError, match="model description"):
        check_safe_text("description", "50% off", "model")


SEED_BODIES = [
    '{ "input": ${parameters.input}, "model": "${parameters.model}" }',
    '{ "input_file_id": "${parameters.input_file_id}", "endpoint": "${parameters.endpoint}", "completion_window": "24h" }',
    "${parameters.input}",
    '{ ${parameters.fields}, "model": "m" }',
    '{"messages": ${parameters.messages}}',
]


@pytest.mark.parametrize("body", SEED_BODIES)
def test_json_templates_pass(body):
    check_connector_actions([{"action_type": "predict", "method": "post", "url": "http://x", "request_body": body}])


def test_a_dict_body_and_no_body_pass():
    check_connector_actions([{"action_type": "predict", "method": "GET", "url": "http://x", "request_body": None}])


@pytest.mark.parametrize("body", ['{ "input": ${parameters.input}, ', '{"a": 1} trailing', "input=${parameters.input}"])
def test_a_body_that_is_no_json_template_is_refused(body):
    with pytest.raises(ConfigurationError) as caught:
        check_connector_actions([{"action_type": "predict", "method": "POST", "url": "http://x", "request_body": body}])
    assert str(caught.value).startswith("Action 1 (predict) has a request_body that is not a JSON template (")


@pytest.mark.parametrize("method", ["FETCH", "PUT", ""])
def test_methods_ml_commons_cannot_send_are_refused(method):
    with pytest.raises(ConfigurationError) as caught:
        check_connector_actions([{"action_type": "predict", "method": method, "url": "http://x"}])
    assert "ML Commons connectors send only POST or GET" in str(caught.value)
