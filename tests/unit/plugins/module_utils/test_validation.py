"""The 3.1+ name rules, applied on every version."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.validation import check_name, check_safe_text


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
