"""Secrets never shown: keys with whitespace refused or stripped, every failure and warning of the module
base redacted of every no_log value in every form, and what looks like a key in a server's text."""

import json

import pytest
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import BearerAuth, Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError, redact_secrets
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import LocalModule, OpenAIModule, secret_forms
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import exit_output, module_args

KEY = "sk-proj-Zq81x0Wm3\n"
INNER = "sk-proj-Zq81\tx0Wm3 "


def forms_of(secret):
    """The forms a leak would take, each long enough to mean something."""
    found = set()
    for text in (secret, secret.strip()):
        found.update((text, repr(text)[1:-1], json.dumps(text)[1:-1], repr(text.encode())[2:-1]))
    found.update(piece for piece in secret.split() if len(piece) >= 6)
    return found


def assert_nowhere(printed, secret):
    for form in forms_of(secret):
        assert form not in printed, form


def openai_args(api_key, **extra):
    return module_args(dict({"api_key": api_key, "api_base_url": "http://127.0.0.1:9/v1"}, **extra))


def openai_module():
    return OpenAIModule(argument_spec=dict(probe=dict(type="str")))


def local_module():
    return LocalModule(argument_spec=dict(secret=dict(type="str", no_log=True)))


def test_secret_forms_cover_the_value_stripped_escaped_and_json():
    forms = secret_forms([KEY])
    assert {"sk-proj-Zq81x0Wm3\n", "sk-proj-Zq81x0Wm3", "sk-proj-Zq81x0Wm3\\n"} <= forms
    assert json.dumps("k\"é")[1:-1] in secret_forms(['k"é'])


def test_a_key_with_a_newline_inside_is_refused_without_showing_it(capsys):
    with openai_args("sk-proj-Zq81\nx0Wm3"):
        printed, result = exit_output(capsys, openai_module().execute, lambda module, client: {"changed": False})
    assert result["failed"] and "api_key holds whitespace or a control character" in result["msg"]
    assert_nowhere(printed, "sk-proj-Zq81\nx0Wm3")


@pytest.mark.parametrize("token", ["sk-a\x00b", "sk-a\x7fb", "sk-a b", "  "])
def test_a_key_with_a_control_character_or_blank_is_refused(token):
    with pytest.raises(ConfigurationError) as caught:
        BearerAuth(token)
    assert token.strip() == "" or token not in str(caught.value)


def test_a_key_with_whitespace_around_it_is_sent_without_it(server):
    server.script((200, {"data": []}))
    Client(server.url, auth=BearerAuth(KEY), service="OpenAI").get("/files")
    assert server.received[0]["headers"]["Authorization"] == "Bearer sk-proj-Zq81x0Wm3"


def test_an_unexpected_exception_is_one_failure_redacted_in_every_form(capsys):
    def run(module, client):
        # What http.client raises for a header it cannot send: the bytes' repr of the whole header.
        header = ("Bearer " + module.params["api_key"] + "\n").encode()
        raise ValueError("Invalid header value %r, JSON %s" % (header, json.dumps(module.params["api_key"])))

    with openai_args(INNER.strip() + "x"):
        module = openai_module()
        module.build_client = lambda: None
        printed, result = exit_output(capsys, module.execute, run)
    assert result["failed"] and result["msg"].startswith("Unexpected ValueError: Invalid header value b'Bearer ********")
    assert "exception" not in result or "ValueError" in result["exception"]
    assert_nowhere(printed, INNER.strip() + "x")


def test_a_failure_and_its_details_are_redacted(capsys):
    with module_args({"secret": INNER}):
        printed, result = exit_output(capsys, lambda: local_module().fail_json(msg="failed with %r" % INNER, reason=json.dumps(INNER)))
    assert result["msg"] == "failed with '********'" and result["reason"] == '"********"'
    assert_nowhere(printed, INNER)


def test_warnings_are_redacted_of_every_form_and_of_keys_a_server_echoed(monkeypatch):
    # What reaches ansible-core's warn(), which masks nothing (and, once a controller is loaded, prints at once).
    passed_on = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda module, warning, **kwargs: passed_on.append(warning))
    with module_args({"secret": INNER}):
        module = local_module()
        module.warn("cancel failed: %s / %r / %s / %s" % (INNER, INNER, json.dumps(INNER), INNER.strip()))
        module.warn("provider said: Incorrect API key provided: sk-live-abcdef123456. (token=tok-0123456789)")
    assert passed_on == [
        "cancel failed: ******** / '********' / \"********\" / ********",
        "provider said: Incorrect API key provided: ********. (token=********)",
    ]


@pytest.mark.parametrize("text, secret", [
    ("GET https://generativelanguage.googleapis.com/v1/models?key=AIzaSyA-1234567890&alt=json", "AIzaSyA-1234567890"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ('{"session_token": "FwoGZXIvYXdzEJr"}', "FwoGZXIvYXdzEJr"),
    ("refresh token=rt-abcdef0123", "rt-abcdef0123"),
    ("Bearer sk-abc123def456", "sk-abc123def456"),
])
def test_redaction_patterns_find_keys_in_query_strings_tokens_and_basic_credentials(text, secret):
    redacted = redact_secrets(text)
    assert secret not in redacted and "********" in redacted


@pytest.mark.parametrize("text", [
    "auth_type basic needs username and password (or OPENSEARCH_USERNAME and OPENSEARCH_PASSWORD).",
    "Basic authentication failed",
    "max_tokens: 100 is too many",
])
def test_redaction_leaves_plain_sentences_alone(text):
    assert redact_secrets(text) == text
