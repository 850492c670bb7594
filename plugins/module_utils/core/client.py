# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one HTTP client of the collection: session, authentication (basic, client certificate, AWS
SigV4, Bearer), TLS, timeouts, retries with backoff, typed errors, the server version.

Redirects are never followed: requests would send the credentials (and, on a 307 or 308, the body,
a connector's ``credential`` included) to wherever the server points; a 3xx is an error naming it.

Retries: GET, PUT, DELETE and searches on 429, 502, 503, 504, connection errors and 409 version
conflicts (they cannot create anything, and a conflict was refused whole). A POST that creates only
when it certainly never reached the server; when it may have, :class:`UncertainOutcomeError` lets
the caller look the object up first. Any request refused by a cluster that is still starting (ML Commons'
master key not ready, no shard of its system index available, the state not recovered): it did not run.
Those are waited out for ``not_ready_wait`` seconds, so a cluster created moments ago can be configured.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import time

try:
    import requests

    REQUESTS_IMPORT_ERROR = None
except ImportError as import_error:  # pragma: no cover - exercised by the sanity import test
    requests = None
    REQUESTS_IMPORT_ERROR = import_error

from ansible.module_utils.six.moves.urllib.parse import urljoin, urlsplit, urlunsplit, urlencode, quote

from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons import answers
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import (
    ConfigurationError,
    HTTPError,
    TransportError,
    UncertainOutcomeError,
    UnexpectedAnswerError,
    redact_secrets,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.local import CHUNK_SIZE

RETRY_STATUSES = frozenset((429, 502, 503, 504))
IDEMPOTENT_METHODS = frozenset(("GET", "HEAD", "PUT", "DELETE"))
# The least time a request refused by a starting cluster is sent again for (a module's wait_timeout can give more).
NOT_READY_WAIT_SECONDS = 60
MAX_BACKOFF_SECONDS = 8.0
BROKEN_CONNECTION_SETTLE_SECONDS = 5.0


class ServerVersion(tuple):
    """An OpenSearch version as a comparable tuple, e.g. ``ServerVersion("2.19.6") >= (2, 17)``."""

    def __new__(cls, text):
        numbers = []
        for part in text.split("-")[0].split("."):
            numbers.append(int(part) if part.isdigit() else 0)
        version = super(ServerVersion, cls).__new__(cls, numbers)
        version.text = text
        return version

    def __str__(self):
        return self.text


def quote_id(object_id):
    """An object ID as one URL path segment (IDs are user input: never let them add segments)."""
    return quote(str(object_id), safe="")


def _public_url(url):
    """``url`` without user info, so it can appear in messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = "%s:%s" % (host, parts.port)
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


# What a good base URL looks like, per service, for the message that refuses a bad one.
URL_SHAPES = {
    "OpenSearch": "url must look like https://host:9200",
    "OpenAI": "api_base_url must look like https://api.openai.com/v1",
}


class Client(object):
    """A connection to one OpenSearch cluster, or a provider's API. ``stats`` counts what was sent."""

    def __init__(self, url, auth=None, cert=None, verify=True, timeout=30, retries=3, backoff=0.5, session=None, service="OpenSearch",
                 not_ready_wait=NOT_READY_WAIT_SECONDS):
        if requests is None:
            raise ConfigurationError("The Python library requests is required: pip install requests (%s)." % REQUESTS_IMPORT_ERROR)
        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError("%s; got %r." % (URL_SHAPES.get(service, "url must be an http or https URL"), _public_url(url or "")))
        if parts.username or parts.password:
            raise ConfigurationError("Put credentials in username and password, not in url.")
        self.service = service
        self.base_url = url.rstrip("/")
        self.public_url = _public_url(self.base_url)
        # Messages name the full path, so a URL with a wrong prefix (behind a proxy) shows in them.
        self.base_path = parts.path.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.not_ready_wait = not_ready_wait
        self.session = session or requests.Session()
        self.session.auth = auth
        # Passed with every request: requests lets REQUESTS_CA_BUNDLE override a Session's verify.
        self.verify = verify
        self.cert = cert
        self.session.headers.update({"Content-Type": "application/json", "Accept": "application/json"})
        if service == "OpenSearch":
            # Uncompressed answers, as OpenSearch's own clients ask by default: compressing every search page
            # costs the cluster more CPU than the bytes it saves on a nearby network.
            self.session.headers["Accept-Encoding"] = "identity"
        self.stats = {"requests": 0, "retries": 0}
        # The server's current pace, which sizes how long a create waits for concurrent ones (resource.keep_oldest).
        self.last_answer_seconds = 0.0
        self._server_version = None

    # -- public API -------------------------------------------------------------------------

    def get(self, path, query=None):
        return self.request("GET", path, query=query)

    def put(self, path, body=None):
        return self.request("PUT", path, body=body)

    def delete(self, path, query=None):
        return self.request("DELETE", path, query=query)

    def post(self, path, body=None, query=None):
        """A POST that may create or trigger something: never retried when its outcome is unknown."""
        return self.request("POST", path, body=body, query=query)

    def search(self, path, body):
        """A search (POST to a ``_search`` endpoint): read-only, so retried like a GET."""
        return self.request("POST", path, body=body, idempotent=True)

    @property
    def server_version(self):
        """The cluster's version, read once (GET /) and kept for the rest of the module run."""
        if self._server_version is None:
            info = self.get("/")
            self._server_version = ServerVersion(info.get("version", {}).get("number", "0"))
        return self._server_version

    def request(self, method, path, body=None, query=None, idempotent=None, upload=None, download=None):
        """Send one request, retrying as the module docstring says; return the decoded JSON answer.
        ``upload`` (a :class:`files.MultipartFile`) is read from disk as it is sent; ``download`` (a
        :class:`files.DigestSink`) receives the answer as it arrives, and its size is returned.
        """
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        url = self.base_url + path
        shown_path = self.base_path + path
        if query:
            url += "?" + urlencode(query)
        headers = None
        if upload is not None:
            headers = {"Content-Type": upload.content_type}
        attempt = 0
        not_ready_deadline = None
        while True:
            attempt += 1
            self.stats["requests"] += 1
            if upload is not None:
                data = upload.open()
            else:
                data = None if body is None else json.dumps(body)
            try:
                response = self.session.request(
                    method, url, data=data, headers=headers, timeout=self.timeout, verify=self.verify, cert=self.cert,
                    stream=download is not None, allow_redirects=False,
                )
                self.last_answer_seconds = response.elapsed.total_seconds()
                if 300 <= response.status_code < 400:
                    response.close()
                    raise self._redirect_error(method, shown_path, url, response)
                if response.status_code < 400 and download is not None:
                    return self._receive(response, download)
            except requests.exceptions.RequestException as error:
                failure = self._transport_error(method, path, error)
                retriable = idempotent or not isinstance(failure, UncertainOutcomeError)
                if retriable and attempt <= self.retries:
                    self._pause(attempt)
                    continue
                raise failure
            if response.status_code < 400:
                return self._decode(method, shown_path, response)
            error = self._http_error(method, shown_path, response)
            if answers.is_not_run_yet(error):
                not_ready_deadline = not_ready_deadline or time.time() + self.not_ready_wait
                if time.time() < not_ready_deadline:
                    self._pause(min(attempt, 3))
                    continue
            elif idempotent and _retriable(response.status_code, error) and attempt <= self.retries:
                self._pause(attempt, response.headers.get("Retry-After"))
                continue
            raise error

    # -- helpers ----------------------------------------------------------------------------

    def _pause(self, attempt, retry_after=None):
        self.stats["retries"] += 1
        delay = min(self.backoff * (2 ** (attempt - 1)), MAX_BACKOFF_SECONDS)
        if retry_after and retry_after.isdigit():
            delay = min(max(delay, float(retry_after)), MAX_BACKOFF_SECONDS)
        time.sleep(delay)

    @staticmethod
    def _receive(response, sink):
        """Stream the answer's body into ``sink`` (from its first byte, should this be a retry)."""
        with response:
            sink.restart()
            for chunk in response.iter_content(chunk_size=CHUNK_SIZE):
                sink.write(chunk)
        return sink.size

    def _decode(self, method, path, response):
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise HTTPError(method, path, response.status_code, reason="the answer is not JSON: %s" % response.text[:200], service=self.service)

    def _redirect_error(self, method, path, url, response):
        location = response.headers.get("Location")
        where = redact_secrets(_public_url(urljoin(url, location))) if location else "no Location given"
        return UnexpectedAnswerError(
            "%s answered %s to %s %s, a redirect to %s. Redirects are not followed, as they would carry the credentials "
            "(and the request's body) elsewhere: if the service has moved, give its new address as %s."
            % (self.service, response.status_code, method, path, where, "url" if self.service == "OpenSearch" else "api_base_url"),
            status=response.status_code, location=where,
        )

    def _http_error(self, method, path, response):
        """The error, read from OpenSearch's shape ({"error": {"type", "reason"}}) or a provider's
        ({"error": {"type", "code", "message"}}, as OpenAI answers)."""
        try:
            payload = response.json()
        except ValueError:
            payload = None
        error_type = reason = None
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            error_type = payload["error"].get("type") or payload["error"].get("code")
            reason = payload["error"].get("reason") or payload["error"].get("message")
        elif isinstance(payload, dict) and isinstance(payload.get("error"), str):
            reason = payload["error"]
        elif response.text:
            reason = response.text.strip()[:500]
        if response.status_code == 401 and not reason:
            reason = "authentication failed: check the credentials"
        elif response.status_code == 401 and self.service == "OpenSearch" and not answers.is_from_remote_service(reason):
            # (A 401 that ML Commons passes on from a model provider is about the connector's key, not ours.)
            reason = "%s. Check username and password (or the client certificate)" % reason.rstrip(".")
        return HTTPError(method, path, response.status_code, error_type, reason or response.reason, service=self.service)

    def _transport_error(self, method, path, error):
        where = "%s %s%s" % (method, self.public_url, path)
        if isinstance(error, requests.exceptions.SSLError) and _not_tls(error):
            return TransportError(
                "No TLS handshake with %s: %s. The server does not seem to speak TLS on this port: use an http:// url, "
                "or the port where %s serves HTTPS." % (where, _root_cause(error), self.service)
            )
        if isinstance(error, requests.exceptions.SSLError):
            return TransportError(
                "TLS verification failed for %s: %s. Set ca_path to the CA bundle that signed the server certificate "
                "(or validate_certs: false, not recommended)." % (where, _root_cause(error))
            )
        if isinstance(error, requests.exceptions.ConnectTimeout):
            return TransportError("Could not connect to %s within %ss. Check the URL and that %s is up." % (where, self.timeout, self.service))
        if isinstance(error, requests.exceptions.ReadTimeout):
            # Still queued on a slow server, it can be carried out up to about one more timeout later.
            return UncertainOutcomeError(
                "No answer to %s within %ss (the request may still have been carried out). "
                "Raise timeout or check the cluster's load." % (where, self.timeout),
                settle_seconds=self.timeout,
            )
        if isinstance(error, requests.exceptions.ConnectionError) and _never_sent(error):
            return TransportError("Could not connect to %s: %s. Check the URL and that %s is up." % (where, _root_cause(error), self.service))
        hint = ""
        if self.public_url.startswith("http:"):
            # What a server that expects TLS does to plain HTTP: it closes the connection.
            hint = " If %s serves HTTPS on this port, the url must start with https://." % self.service
        # The server finishes a request whose client went away; give it a few seconds to show.
        return UncertainOutcomeError(
            "The connection broke during %s: %s.%s" % (where, _root_cause(error), hint),
            settle_seconds=min(self.timeout, BROKEN_CONNECTION_SETTLE_SECONDS),
        )


def _innermost(error):
    """What urllib3 says really failed: requests wraps it in a MaxRetryError whose ``reason`` it is."""
    cause = error.args[0] if error.args else error
    return getattr(cause, "reason", None) or cause


def _retriable(status, error):
    """Busy answers, and version conflicts: ML Commons refuses a write that raced another whole (a GET
    of a batch task writes the task too)."""
    if status in RETRY_STATUSES:
        return True
    return answers.is_version_conflict(error)


def _not_tls(error):
    """True when the peer answered the TLS handshake with something that is not TLS (plain HTTP)."""
    text = str(_innermost(error))
    return "WRONG_VERSION_NUMBER" in text or "record layer failure" in text or "http request" in text.lower()


def _never_sent(error):
    """True when the connection failed before any byte of the request left (refused, DNS)."""
    return type(_innermost(error)).__name__ in ("NewConnectionError", "NameResolutionError", "ConnectTimeoutError")


def _root_cause(error):
    """The innermost reason of a requests error, without the connection object's description."""
    text = str(_innermost(error))
    if text.startswith(("<", "HTTPConnection(", "HTTPSConnection(")) and ": " in text:
        return text.split(": ", 1)[1]
    return text


def checked_secret(value, what):
    """``value`` without the whitespace around it (a key pasted or vaulted with its newline), refused with a
    message that does not hold it when whitespace or a control character remains inside: a header cannot
    carry one, and http.client's error would print the whole header."""
    value = (value or "").strip()
    if not value:
        raise ConfigurationError("%s is empty." % what)
    if any(character.isspace() or ord(character) < 32 or ord(character) == 127 for character in value):
        raise ConfigurationError(
            "%s holds whitespace or a control character (a line break, a tab) inside it, which no key has. "
            "Check how it is set (a vault, a YAML block, a pasted value)." % what
        )
    return value


class BearerAuth(object):
    """requests auth that sends an API key as a Bearer token (OpenAI and compatible APIs)."""

    def __init__(self, token):
        self._token = checked_secret(token, "api_key")

    def __call__(self, prepared):
        prepared.headers["Authorization"] = "Bearer %s" % self._token
        return prepared


class SigV4Auth(object):
    """requests auth that signs each request with AWS SigV4; botocore is imported only when it is used."""

    def __init__(self, region, service, profile=None):
        try:
            import botocore.session
            from botocore.auth import SigV4Auth as BotoSigV4Auth
            from botocore.awsrequest import AWSRequest
        except ImportError:
            raise ConfigurationError("auth_type aws_sigv4 needs the Python library botocore: pip install botocore.")
        if not region:
            # Never a default region: a request signed for the wrong one is refused, and AWX's AWS credential sets none.
            raise ConfigurationError(
                "auth_type aws_sigv4 needs the region of the domain or collection: set aws_region (in the task or its "
                "module_defaults), or the AWS_REGION or AWS_DEFAULT_REGION environment variable."
            )
        session = botocore.session.Session(profile=profile)
        credentials = session.get_credentials()
        if credentials is None:
            raise ConfigurationError(
                "auth_type aws_sigv4 found no AWS credentials: set aws_profile, or the AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY environment variables, or run where an instance role is available."
            )
        frozen = credentials.get_frozen_credentials()
        if credentials.method == "env" and os.environ.get("AWS_SESSION_TOKEN"):
            # botocore reads AWS_SECURITY_TOKEN (AWX's AWS credential injects that name) before AWS_SESSION_TOKEN;
            # the current name wins when both are set.
            frozen = frozen._replace(token=os.environ["AWS_SESSION_TOKEN"])
        frozen = frozen._replace(
            access_key=checked_secret(frozen.access_key, "The AWS access key ID"),
            secret_key=checked_secret(frozen.secret_key, "The AWS secret access key"),
            token=checked_secret(frozen.token, "The AWS session token") if frozen.token else frozen.token,
        )
        self._signer = BotoSigV4Auth(frozen, service, region)
        self._request_class = AWSRequest

    def __call__(self, prepared):
        body = prepared.body or b""
        if not isinstance(body, bytes):
            body = body.encode("utf-8")
        # Serverless (aoss) requires the payload hash header; OpenSearch Service accepts it too.
        headers = dict(prepared.headers)
        headers["X-Amz-Content-SHA256"] = _sha256_hex(body)
        aws_request = self._request_class(method=prepared.method, url=prepared.url, data=body, headers=headers)
        self._signer.add_auth(aws_request)
        prepared.headers.update(dict(aws_request.headers.items()))
        return prepared


def _sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def build_auth(params):
    """The requests ``auth`` and ``cert`` for the connection options (see the connection doc fragment)."""
    auth_type = params.get("auth_type") or infer_auth_type(params)
    if auth_type == "basic":
        if not params.get("username") or params.get("password") is None:
            raise ConfigurationError("auth_type basic needs username and password (or OPENSEARCH_USERNAME and OPENSEARCH_PASSWORD).")
        return (params["username"], params["password"]), None
    if auth_type == "cert":
        if not params.get("client_cert"):
            raise ConfigurationError("auth_type cert needs client_cert (and client_key unless the certificate file holds the key).")
        cert = (params["client_cert"], params["client_key"]) if params.get("client_key") else params["client_cert"]
        return None, cert
    if auth_type == "aws_sigv4":
        return SigV4Auth(params.get("aws_region"), params.get("aws_service") or "es", params.get("aws_profile")), None
    return None, None


def infer_auth_type(params):
    """basic with a username, cert with a client certificate, else none; never aws_sigv4, as AWS
    variables are often set for unrelated reasons."""
    if params.get("username"):
        return "basic"
    if params.get("client_cert"):
        return "cert"
    return "none"


def check_readable_files(params):
    """A clear error for a certificate option naming a file that cannot be read (requests raises a
    bare OSError in the middle of the first request otherwise)."""
    for option in ("ca_path", "client_cert", "client_key"):
        path = params.get(option)
        if not path or (option == "ca_path" and not params.get("validate_certs", True)):
            continue
        if not os.path.exists(path):
            raise ConfigurationError("%s %s does not exist." % (option, path))
        if not os.access(path, os.R_OK):
            raise ConfigurationError("%s %s cannot be read by the user that runs the module." % (option, path))


def verify_setting(params):
    """requests' ``verify``: the CA bundle of ``ca_path`` when certificates are verified."""
    verify = params.get("validate_certs", True)
    if verify and params.get("ca_path"):
        return params["ca_path"]
    return verify


def client_from_params(params):
    """A :class:`Client` configured from the module's connection options."""
    if not params.get("url"):
        # (A playbook that passes an unset variable gives an empty url, which passes the required check.)
        raise ConfigurationError("No OpenSearch URL: set url, or the OPENSEARCH_URL environment variable, for example https://search.example.com:9200.")
    check_readable_files(params)
    auth, cert = build_auth(params)
    return Client(
        params["url"], auth=auth, cert=cert, verify=verify_setting(params), timeout=params.get("timeout") or 30, retries=params.get("retries", 3),
        not_ready_wait=max(NOT_READY_WAIT_SECONDS, params.get("wait_timeout") or 0),
    )
