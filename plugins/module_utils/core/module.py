# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The module base: the connection options merged into the module's own, the client built on first
use, every exception turned into one ``fail_json`` message. A module writes ``run(module, client)``
(``run(module)`` on :class:`LocalModule`) and a two-line ``main()``.

Failures and warnings are redacted of every ``no_log`` value in every form it can take in a message
(as given, stripped, escaped as ``repr`` and JSON write it), and of what looks like a key or token:
ansible-core masks only the exact value, and not in warnings.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import traceback
import warnings

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib
from ansible.module_utils.errors import AnsibleFallbackNotFound

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import (
    REQUESTS_IMPORT_ERROR, BearerAuth, Client, check_readable_files, client_from_params, verify_setting,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import REDACTED, MLCommonsError, redact_secrets


def non_empty_env_fallback(*names):
    """``env_fallback`` that takes an empty variable as unset: AWX injects an unset credential field as an
    empty string, which would otherwise be a choice no option accepts or a file that does not exist."""
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    raise AnsibleFallbackNotFound


CONNECTION_ARGUMENT_SPEC = dict(
    url=dict(type="str", required=True, fallback=(env_fallback, ["OPENSEARCH_URL"])),
    auth_type=dict(type="str", choices=["none", "basic", "cert", "aws_sigv4"], fallback=(non_empty_env_fallback, ["OPENSEARCH_AUTH_TYPE"])),
    username=dict(type="str", fallback=(env_fallback, ["OPENSEARCH_USERNAME"])),
    password=dict(type="str", no_log=True, fallback=(env_fallback, ["OPENSEARCH_PASSWORD"])),
    client_cert=dict(type="path", fallback=(non_empty_env_fallback, ["OPENSEARCH_CLIENT_CERT"])),
    client_key=dict(type="path", no_log=False, fallback=(non_empty_env_fallback, ["OPENSEARCH_CLIENT_KEY"])),
    ca_path=dict(type="path", fallback=(non_empty_env_fallback, ["OPENSEARCH_CA_PATH"])),
    validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["OPENSEARCH_VALIDATE_CERTS"])),
    timeout=dict(type="float", default=30),
    retries=dict(type="int", default=3),
    aws_region=dict(type="str", fallback=(env_fallback, ["AWS_REGION", "AWS_DEFAULT_REGION"])),
    aws_service=dict(type="str", choices=["es", "aoss"], default="es"),
    aws_profile=dict(type="str", fallback=(env_fallback, ["AWS_PROFILE"])),
)

# The options of modules that talk to OpenAI's API (or a compatible one) instead of OpenSearch;
# documented in the opensearch.ml_commons.openai doc fragment.
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
OPENAI_ARGUMENT_SPEC = dict(
    api_base_url=dict(type="str", default=OPENAI_DEFAULT_BASE_URL, fallback=(env_fallback, ["OPENAI_BASE_URL"])),
    api_key=dict(type="str", required=True, no_log=True, fallback=(env_fallback, ["OPENAI_API_KEY"])),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    timeout=dict(type="float", default=60),
    retries=dict(type="int", default=3),
)


MISSING_REQUIRED = "missing required arguments: "


def clearer_argument_error(module, msg):
    """The argument error that names its option: for a list of dicts given something else, ansible-core's
    no_log scan fails first without naming it; the type check's error after it does. A missing option that
    the environment can set names its variable."""
    result = getattr(module, "validation_result", None)
    errors = list(getattr(result, "errors", None) or [])
    if errors and msg == errors[0].msg and type(errors[0]).__name__ == "NoLogError":
        specific = [error.msg for error in errors[1:] if type(error).__name__ != "NoLogError"]
        if specific:
            return specific[0]
    if isinstance(msg, str) and msg.startswith(MISSING_REQUIRED):
        spec = getattr(module, "argument_spec", None) or {}
        names = msg[len(MISSING_REQUIRED):].split(", ")
        return MISSING_REQUIRED + ", ".join(with_environment(name, spec.get(name)) for name in names)
    return msg


def with_environment(name, option):
    """``name``, followed by the environment variables that can set it, if any."""
    fallback = (option or {}).get("fallback") or ()
    variables = list(fallback[1]) if len(fallback) > 1 else []
    if not variables:
        return name
    return "%s (or the %s environment variable)" % (name, " or ".join(variables))


def secret_forms(values):
    """Every form the secrets ``values`` can take in a message: each as given and stripped (a key given with
    its newline is sent without it), and each of those as ``repr`` (of the text and of its UTF-8 bytes) and
    JSON escape it: a newline becomes ``\\n``, which exact masking would miss."""
    forms = set()
    for value in values:
        value = value if isinstance(value, str) else str(value)
        for text in (value, value.strip()):
            forms.update((
                text, repr(text)[1:-1], repr(text.encode("utf-8", "surrogateescape"))[2:-1],
                json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1],
            ))
    forms.discard("")
    return forms


def redacted(text, secrets):
    """``text`` without any form of ``secrets`` (longest first) nor anything that looks like a key or token."""
    text = text if isinstance(text, str) else str(text)
    for form in sorted(secret_forms(secrets), key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return redact_secrets(text)


class LocalModule(AnsibleModule):
    """An AnsibleModule for local work (no connection options, no client) with uniform failures."""

    def __init__(self, argument_spec, **kwargs):
        kwargs.setdefault("supports_check_mode", True)
        super(LocalModule, self).__init__(argument_spec=argument_spec, **kwargs)
        # ansible-core then masks these forms too, wherever they appear in the result.
        self.no_log_values.update(secret_forms(self.no_log_values))

    def redacted(self, text):
        return redacted(text, getattr(self, "no_log_values", ()))

    def warn(self, warning, **kwargs):
        super(LocalModule, self).warn(self.redacted(warning), **kwargs)

    def fail_json(self, msg=None, **kwargs):
        for key, value in kwargs.items():
            if isinstance(value, str):
                kwargs[key] = self.redacted(value)
        msg = clearer_argument_error(self, msg)
        super(LocalModule, self).fail_json(msg=None if msg is None else self.redacted(msg), **kwargs)

    def call(self, run):
        return run(self)

    def execute(self, run):
        """Call ``run`` and exit with its result, or fail with one clear message, whatever it raises."""
        # fail_json is called once the exception is handled: ansible-core would add its traceback, unredacted.
        result = failure = None
        try:
            result = self.call(run)
        except MLCommonsError as error:
            failure = dict(error.details, msg=str(error))
        except Exception as error:  # pylint: disable=broad-except
            # Left to ansible-core, it would be printed unmasked (http.client's error holds a whole header).
            failure = {"msg": "Unexpected %s: %s" % (type(error).__name__, error), "exception": traceback.format_exc()}
        if failure is not None:
            self.fail_json(**failure)
        if not self._diff:
            result.pop("diff", None)
        self.exit_json(**result)


class MLCommonsModule(LocalModule):
    """A module with the connection options and a lazily built client: ``run(module, client)``."""

    connection_argument_spec = CONNECTION_ARGUMENT_SPEC

    def __init__(self, argument_spec, **kwargs):
        spec = dict(self.connection_argument_spec)
        spec.update(argument_spec)
        super(MLCommonsModule, self).__init__(spec, **kwargs)
        if REQUESTS_IMPORT_ERROR is not None:
            self.fail_json(msg=missing_required_lib("requests"), exception=str(REQUESTS_IMPORT_ERROR))
        self._client = None

    @property
    def client(self):
        if self._client is None:
            if not self.params["validate_certs"]:
                # One clear warning from us instead of urllib3's per-request InsecureRequestWarning.
                warnings.filterwarnings("ignore", message="Unverified HTTPS request")
                self.warn("validate_certs is false: the server's TLS certificate is not verified, so the connection can be intercepted.")
            self._client = self.build_client()
        return self._client

    def build_client(self):
        return client_from_params(self.params)

    def call(self, run):
        return run(self, self.client)


def openai_base_url(params):
    """The API base URL to use: an empty one (as AWX injects an unset credential field) means the default."""
    return params.get("api_base_url") or OPENAI_DEFAULT_BASE_URL


class OpenAIModule(MLCommonsModule):
    """A module that talks to OpenAI's API, or one that follows it, with the same client and failures."""

    connection_argument_spec = OPENAI_ARGUMENT_SPEC

    def build_client(self):
        params = self.params
        check_readable_files(params)
        return Client(
            openai_base_url(params), auth=BearerAuth(params["api_key"]), verify=verify_setting(params),
            timeout=params["timeout"], retries=params["retries"], service="OpenAI",
        )
