"""What the batch_inference role is given: ansible-doc shows each default that defaults/main.yml sets, and
before anything is written the role names the variables it does not know (read from its argument spec, so a
new option is known once documented) and those a provider needs that are empty."""

import os
import shutil

import pytest
import yaml
from ansible.plugins.loader import lookup_loader

from ansible_collections.opensearch.ml_commons.tests.unit.roles.test_batch_inference_connectors import ROLE, rendered


def load(part):
    with open(os.path.join(ROLE, part)) as handle:
        return yaml.safe_load(handle)


OPTIONS = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
DEFAULTS = load("defaults/main.yml")


@pytest.fixture(autouse=True)
def builtin_lookups(monkeypatch):
    """ansible.builtin's lookups by their short names: no collection loader runs in unit tests."""
    get = lookup_loader.get
    monkeypatch.setattr(lookup_loader, "get", lambda name, *args, **kwargs: get(name.replace("ansible.builtin.", ""), *args, **kwargs))


# ansible-core templates the argument spec when it validates the role's variables, and prints it when they are
# refused: a secret's default (an environment lookup) would show the secret. Their descriptions name the variable.
SECRETS = set(name for name, option in OPTIONS.items() if option.get("no_log"))


def test_every_default_is_in_the_argument_spec_with_its_value():
    assert sorted(DEFAULTS) == sorted(OPTIONS)
    assert {name: OPTIONS[name].get("default") for name in set(DEFAULTS) - SECRETS} == dict(
        (name, value) for name, value in DEFAULTS.items() if name not in SECRETS)


def test_no_secret_has_a_default_in_the_argument_spec_and_each_names_its_environment_variable():
    assert SECRETS == {"batch_inference_openai_api_key", "batch_inference_aws_access_key", "batch_inference_aws_secret_key",
                       "batch_inference_aws_session_token"}
    for name in SECRETS:
        assert "default" not in OPTIONS[name]
        environment_variable = DEFAULTS[name].split("'")[3]
        assert "E(%s)" % environment_variable in str(OPTIONS[name]["description"]), name


def test_the_waits_fit_openais_completion_window_and_back_off_to_a_ceiling():
    assert DEFAULTS["batch_inference_wait_timeout"] >= 86400
    assert DEFAULTS["batch_inference_poll_interval"] < DEFAULTS["batch_inference_max_poll_interval"]


def unknown(role_path, **given):
    return rendered("__batch_inference_unknown", role_path=role_path, **given)


def test_unknown_variables_are_named_and_the_roles_own_facts_are_not():
    given = dict(batch_inference_inputfile="corpus.jsonl", batch_inference_result={}, batch_inference_results={})
    assert unknown(ROLE, **given) == ["batch_inference_inputfile"]
    assert unknown(ROLE) == []


def test_a_variable_is_known_once_the_argument_spec_documents_it(tmp_path):
    role = str(tmp_path / "batch_inference")
    shutil.copytree(os.path.join(ROLE, "meta"), os.path.join(role, "meta"))
    specs = load("meta/argument_specs.yml")
    specs["argument_specs"]["main"]["options"]["batch_inference_new_option"] = {"type": "str", "description": "x"}
    with open(os.path.join(role, "meta", "argument_specs.yml"), "w") as handle:
        yaml.safe_dump(specs, handle)
    assert unknown(ROLE, batch_inference_new_option="docs") == ["batch_inference_new_option"]
    assert unknown(role, batch_inference_new_option="docs") == []


def empty(provider, **given):
    keys = dict(batch_inference_openai_api_key="sk-test", batch_inference_aws_access_key="AKIA", batch_inference_aws_secret_key="secret")
    keys.update(given)
    return rendered("__batch_inference_empty", batch_inference_provider=provider, **keys)


def test_each_provider_names_what_it_needs_that_is_empty():
    assert empty("openai") == []
    assert empty("openai", batch_inference_openai_api_key="") == ["batch_inference_openai_api_key"]
    assert empty("bedrock") == ["batch_inference_bedrock_role_arn", "batch_inference_bedrock_input_s3_uri", "batch_inference_bedrock_output_s3_uri"]
    assert empty("bedrock", batch_inference_submit=False, batch_inference_aws_secret_key="") == ["batch_inference_aws_secret_key"]
    assert empty("sagemaker", batch_inference_sagemaker_model_name="m", batch_inference_sagemaker_input_s3_uri="s3://b/in",
                 batch_inference_sagemaker_output_s3_uri="s3://b/out") == []
    assert empty("custom") == ["batch_inference_connector"]


PLAYBOOK_VARS = os.path.join(ROLE, "..", "..", "playbooks", "vars")


@pytest.mark.parametrize("name", sorted(os.listdir(PLAYBOOK_VARS)))
def test_each_shipped_variable_file_sets_only_known_options_and_all_a_run_needs(name):
    with open(os.path.join(PLAYBOOK_VARS, name)) as handle:
        given = yaml.safe_load(handle)
    assert set(given) <= set(OPTIONS), name
    for option, value in given.items():
        assert value in OPTIONS[option].get("choices", [value]), option
        assert not isinstance(value, str) or not value.startswith("./"), "%s: %s is read from the playbook's directory" % (name, option)
    # The AWS and OpenAI keys come from the environment.
    assert empty(given.pop("batch_inference_provider"), **given) == []
