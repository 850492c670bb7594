"""The connection options an AWX credential injects, read from the environment by a real AnsibleModule;
the message for a missing URL; openai_file's CA bundle; the credential type against the options."""

import os

import pytest
import yaml

import ansible_collections.opensearch.ml_commons as collection
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import client_from_params
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import (
    CONNECTION_ARGUMENT_SPEC,
    OPENAI_ARGUMENT_SPEC,
    MLCommonsModule,
    OpenAIModule,
)
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import exit_output, module_args

COLLECTION_ROOT = os.path.dirname(collection.__file__) if getattr(collection, "__file__", None) else list(collection.__path__)[0]
CONNECTION_VARIABLES = ("OPENSEARCH_URL", "OPENSEARCH_USERNAME", "OPENSEARCH_PASSWORD", "OPENSEARCH_VALIDATE_CERTS", "OPENSEARCH_AUTH_TYPE",
                        "OPENSEARCH_CA_PATH", "OPENSEARCH_CLIENT_CERT", "OPENSEARCH_CLIENT_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in CONNECTION_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def built(module_class, args=None):
    with module_args(dict(args or {})):
        return module_class(argument_spec={})


def test_tls_and_authentication_options_come_from_the_environment(monkeypatch, tmp_path):
    files = {}
    for option in ("ca_path", "client_cert", "client_key"):
        files[option] = str(tmp_path / ("%s.pem" % option))
        monkeypatch.setenv("OPENSEARCH_%s" % option.upper(), files[option])
    monkeypatch.setenv("OPENSEARCH_URL", "https://search.example.com:9200")
    monkeypatch.setenv("OPENSEARCH_AUTH_TYPE", "cert")
    module = built(MLCommonsModule)
    assert {option: module.params[option] for option in files} == files
    assert module.params["auth_type"] == "cert"
    assert module.params["url"] == "https://search.example.com:9200"


def test_options_given_to_the_task_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("OPENSEARCH_CA_PATH", "/from/the/environment.pem")
    monkeypatch.setenv("OPENSEARCH_AUTH_TYPE", "cert")
    module = built(MLCommonsModule, {"url": "https://localhost:9200", "ca_path": "/from/the/task.pem", "auth_type": "none"})
    assert module.params["ca_path"] == "/from/the/task.pem"
    assert module.params["auth_type"] == "none"


def test_empty_variables_are_unset_as_awx_injects_an_unset_field(monkeypatch):
    for name in ("OPENSEARCH_AUTH_TYPE", "OPENSEARCH_CA_PATH", "OPENSEARCH_CLIENT_CERT", "OPENSEARCH_CLIENT_KEY"):
        monkeypatch.setenv(name, "")
    module = built(MLCommonsModule, {"url": "https://localhost:9200"})
    assert [module.params[option] for option in ("auth_type", "ca_path", "client_cert", "client_key")] == [None] * 4
    # Without them, a client is built as with nothing set (no "file does not exist" for an empty path).
    assert module.client.verify is True and module.client.cert is None


def test_a_missing_certificate_from_the_environment_is_named(monkeypatch):
    monkeypatch.setenv("OPENSEARCH_CA_PATH", "/missing/ca.pem")
    module = built(MLCommonsModule, {"url": "https://localhost:9200"})
    with pytest.raises(ConfigurationError, match="^ca_path /missing/ca.pem does not exist.$"):
        module.build_client()


def test_an_auth_type_from_the_environment_is_checked_like_the_option(monkeypatch, capsys):
    monkeypatch.setenv("OPENSEARCH_AUTH_TYPE", "kerberos")
    _printed, output = exit_output(capsys, built, MLCommonsModule, {"url": "https://localhost:9200"})
    assert output["failed"] is True
    assert "auth_type" in output["msg"] and "kerberos" in output["msg"]


def test_no_url_at_all_names_the_environment_variable(capsys):
    _printed, output = exit_output(capsys, built, MLCommonsModule)
    assert output["failed"] is True
    assert output["msg"] == "missing required arguments: url (or the OPENSEARCH_URL environment variable)"


def test_no_openai_key_names_the_environment_variable(capsys):
    _printed, output = exit_output(capsys, built, OpenAIModule)
    assert output["msg"] == "missing required arguments: api_key (or the OPENAI_API_KEY environment variable)"


def test_an_empty_url_names_the_environment_variable():
    # What a playbook gives that passes an unset variable on: the required check lets it through.
    with pytest.raises(ConfigurationError) as caught:
        client_from_params({"url": "", "validate_certs": True})
    assert "OPENSEARCH_URL" in str(caught.value) and "https://search.example.com:9200" in str(caught.value)


def test_openai_file_takes_a_ca_bundle(tmp_path):
    bundle = tmp_path / "gateway-ca.pem"
    bundle.write_text("not checked here")
    module = built(OpenAIModule, {"api_key": "sk-test", "api_base_url": "https://gateway.example.com/v1", "ca_path": str(bundle)})
    assert module.client.verify == str(bundle)
    unverified = built(OpenAIModule, {"api_key": "sk-test", "ca_path": str(bundle), "validate_certs": False})
    assert unverified.build_client().verify is False
    missing = built(OpenAIModule, {"api_key": "sk-test", "ca_path": str(tmp_path / "missing.pem")})
    with pytest.raises(ConfigurationError, match="^ca_path .*missing.pem does not exist.$"):
        missing.build_client()


def environment_options(spec):
    """{environment variable: option} of the options ``spec`` reads from the environment."""
    found = {}
    for option, settings in spec.items():
        for name in (settings.get("fallback") or (None, ()))[1]:
            found[name] = option
    return found


def test_the_awx_credential_type_injects_what_the_options_read():
    with open(os.path.join(COLLECTION_ROOT, "docs", "awx-credential-type.yml")) as handle:
        credential_type = yaml.safe_load(handle)
    injected = set(credential_type["injectors"]["env"])
    readable = dict(environment_options(OPENAI_ARGUMENT_SPEC), **environment_options(CONNECTION_ARGUMENT_SPEC))
    assert injected - set(readable) == set(), "injected, read by no option"
    # Every OpenSearch connection option AWX can inject is injected; the AWS ones come from AWX's own AWS credential.
    opensearch = {name for name in environment_options(CONNECTION_ARGUMENT_SPEC) if name.startswith("OPENSEARCH_")}
    assert opensearch == {"OPENSEARCH_URL", "OPENSEARCH_USERNAME", "OPENSEARCH_PASSWORD", "OPENSEARCH_VALIDATE_CERTS",
                          "OPENSEARCH_AUTH_TYPE", "OPENSEARCH_CA_PATH", "OPENSEARCH_CLIENT_CERT", "OPENSEARCH_CLIENT_KEY"}
    assert opensearch - injected == set()
    # The PEM fields reach the modules as files, whose paths the environment names.
    files = credential_type["injectors"]["file"]
    for field, variable in (("ca_cert", "OPENSEARCH_CA_PATH"), ("client_cert", "OPENSEARCH_CLIENT_CERT"), ("client_key", "OPENSEARCH_CLIENT_KEY")):
        assert files["template.%s" % field] == "{{ opensearch_%s }}" % field
        assert "tower.filename.%s" % field in credential_type["injectors"]["env"][variable]
    secret_fields = {field["id"] for field in credential_type["inputs"]["fields"] if field.get("secret")}
    assert {"opensearch_password", "opensearch_client_key", "openai_api_key"} <= secret_fields
