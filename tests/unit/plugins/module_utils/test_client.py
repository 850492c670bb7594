"""The shared client against a local HTTP server: retries, errors, auth, TLS, version."""

import base64
import hashlib
import datetime
import email.parser
import email.policy
import json
import ipaddress
import socket
import ssl
import sys
import time

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core import client as client_module
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import (
    BearerAuth,
    Client,
    ServerVersion,
    build_auth,
    client_from_params,
    infer_auth_type,
    quote_id,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.local import DigestSink, MultipartFile
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import (
    ConfigurationError,
    HTTPError,
    TransportError,
    UncertainOutcomeError,
    UnexpectedAnswerError,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import openai_base_url

SECRET = "s3cr3t-Pa55word"
UNAVAILABLE = (503, {"error": {"type": "unavailable", "reason": "try later"}, "status": 503})


class RecordingTime:
    """Stands in for the client's ``time`` module: records backoff sleeps instead of sleeping."""

    def __init__(self):
        self.slept = []
        self.sleep = self.slept.append
        self.time = time.time


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    """Backoff is real in production; here it would only slow the tests down."""
    recording = RecordingTime()
    monkeypatch.setattr(client_module, "time", recording)
    return recording.slept


def make_client(server, **kwargs):
    kwargs.setdefault("timeout", 2)
    return Client(server.url, **kwargs)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_get_returns_the_decoded_answer(server):
    server.script((200, {"version": {"number": "2.19.6"}}))
    client = make_client(server)
    assert client.get("/") == {"version": {"number": "2.19.6"}}
    assert server.received[0]["method"] == "GET"
    assert client.stats == {"requests": 1, "retries": 0}


def test_opensearch_is_asked_for_uncompressed_answers_and_a_provider_is_not(server):
    server.script((200, {}), (200, {}))
    make_client(server).get("/")
    make_client(server, service="OpenAI").get("/")
    assert server.received[0]["headers"]["Accept-Encoding"] == "identity"
    assert "identity" not in server.received[1]["headers"]["Accept-Encoding"]


def test_reads_are_retried_on_retriable_statuses(server, no_sleep):
    server.script(UNAVAILABLE, (429, {}), (502, {}), (200, {"ok": True}))
    client = make_client(server, retries=3)
    assert client.get("/thing") == {"ok": True}
    assert len(server.received) == 4
    assert client.stats == {"requests": 4, "retries": 3}
    assert no_sleep == [0.5, 1.0, 2.0]  # exponential backoff


def test_retry_after_is_honoured_up_to_the_cap(server, no_sleep):
    server.script((429, {}, {"headers": {"Retry-After": "3"}}), (200, {}))
    make_client(server).get("/")
    assert no_sleep == [3.0]


def test_retries_stop_and_the_last_error_is_raised(server):
    server.script(UNAVAILABLE, UNAVAILABLE, UNAVAILABLE)
    client = make_client(server, retries=2)
    with pytest.raises(HTTPError) as caught:
        client.get("/thing")
    assert caught.value.status == 503
    assert str(caught.value) == "OpenSearch answered 503 to GET /thing: unavailable: try later"
    assert len(server.received) == 3


def test_a_create_is_not_retried_on_503(server):
    server.script(UNAVAILABLE, (200, {"model_group_id": "x"}))
    with pytest.raises(HTTPError):
        make_client(server).post("/_plugins/_ml/model_groups/_register", body={"name": "g"})
    assert len(server.received) == 1


def test_searches_are_retried_although_they_are_posts(server):
    server.script(UNAVAILABLE, (200, {"hits": {"hits": []}}))
    assert make_client(server).search("/_plugins/_ml/connectors/_search", {"query": {"match_all": {}}}) == {"hits": {"hits": []}}
    assert [request["method"] for request in server.received] == ["POST", "POST"]


def test_put_and_delete_are_retried(server):
    server.answer("PUT", "/a", UNAVAILABLE, (200, {}))
    server.answer("DELETE", "/a", (504, {}), (200, {}))
    client = make_client(server)
    client.put("/a", body={"x": 1})
    client.delete("/a")
    assert [request["method"] for request in server.received] == ["PUT", "PUT", "DELETE", "DELETE"]


def test_master_key_not_ready_is_retried_even_for_a_create(server):
    reason = "The ML encryption master key has not been initialized yet. Please retry after waiting for 10 seconds."
    not_ready = (500, {"error": {"type": "m_l_exception", "reason": reason}})
    server.script(not_ready, not_ready, (200, {"connector_id": "c1"}))
    assert make_client(server).post("/_plugins/_ml/connectors/_create", body={"name": "c"}) == {"connector_id": "c1"}
    assert len(server.received) == 3


def test_a_master_key_fetch_that_timed_out_is_retried_like_a_read(server):
    # ML Commons 2.19 right after a restart, on a batch task read that asks the provider.
    timed_out = (500, {"error": {"type": "m_l_exception", "reason": "Fetching master key timed out."}})
    server.script(timed_out, (200, {"state": "RUNNING"}))
    assert make_client(server).get("/_plugins/_ml/tasks/t1") == {"state": "RUNNING"}
    assert len(server.received) == 2


# What a cluster created moments ago answers ML Commons' connector create (OpenSearch 2.19.6, three nodes).
NO_SHARD_REASON = "No shard available for [get [.plugins-ml-config][master_key]: routing [null]]"
NO_SHARD = (503, {"error": {"root_cause": [{"type": "no_shard_available_action_exception", "reason": NO_SHARD_REASON}],
                            "type": "no_shard_available_action_exception", "reason": NO_SHARD_REASON}, "status": 503})
NOT_RECOVERED = (503, {"error": {"type": "cluster_block_exception", "reason": "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];"},
                       "status": 503})


def test_a_create_refused_by_a_cluster_without_shards_yet_is_sent_again_until_it_runs(server, no_sleep):
    server.script(NO_SHARD, NO_SHARD, NO_SHARD, NO_SHARD, NO_SHARD, (200, {"connector_id": "c1"}))
    client = make_client(server, retries=3)
    assert client.post("/_plugins/_ml/connectors/_create", body={"name": "c"}) == {"connector_id": "c1"}
    # More than retries: the wait is bounded by time, not by a count.
    assert [request["method"] for request in server.received] == ["POST"] * 6
    assert len(no_sleep) == 5 and max(no_sleep) <= 2


def test_a_read_refused_while_the_cluster_state_is_not_recovered_is_sent_again(server):
    server.script(NOT_RECOVERED, NOT_RECOVERED, NOT_RECOVERED, NOT_RECOVERED, NOT_RECOVERED, (200, {"ok": True}))
    assert make_client(server, retries=1).get("/_plugins/_ml/connectors/c1") == {"ok": True}
    assert len(server.received) == 6


def test_a_cluster_that_stays_unready_fails_with_its_answer_after_the_wait(server):
    server.script(NO_SHARD, NO_SHARD)
    client = make_client(server, not_ready_wait=0)
    with pytest.raises(HTTPError) as caught:
        client.post("/_plugins/_ml/connectors/_create", body={"name": "c"})
    assert caught.value.status == 503 and NO_SHARD_REASON in str(caught.value)
    assert len(server.received) == 1


def test_another_503_on_a_create_is_still_not_sent_again(server):
    server.script(UNAVAILABLE, (200, {"connector_id": "c1"}))
    with pytest.raises(HTTPError):
        make_client(server).post("/_plugins/_ml/connectors/_create", body={"name": "c"})
    assert len(server.received) == 1


@pytest.mark.parametrize("wait_timeout, expected", [(None, 60), (10, 60), (300, 300), (86400, 86400)])
def test_the_wait_for_a_starting_cluster_is_the_tasks_timeout_and_at_least_a_minute(wait_timeout, expected):
    params = {"url": "https://localhost:9200", "validate_certs": True}
    if wait_timeout is not None:
        params["wait_timeout"] = wait_timeout
    assert client_from_params(params).not_ready_wait == expected


def test_a_refused_connection_is_retried_even_for_a_create_and_then_reported():
    client = Client("http://127.0.0.1:%d" % free_port(), timeout=2, retries=2)
    with pytest.raises(TransportError) as caught:
        client.post("/_plugins/_ml/model_groups/_register", body={"name": "g"})
    assert not isinstance(caught.value, UncertainOutcomeError)
    assert "Could not connect to POST http://127.0.0.1:" in str(caught.value)
    assert "Check the URL and that OpenSearch is up" in str(caught.value)
    assert client.stats["requests"] == 3


def test_a_read_timeout_on_a_create_is_an_uncertain_outcome(server):
    server.script((200, {"model_group_id": "late"}, {"delay": 1.5}))
    client = make_client(server, timeout=0.5)
    with pytest.raises(UncertainOutcomeError) as caught:
        client.post("/_plugins/_ml/model_groups/_register", body={"name": "g"})
    assert "may still have been carried out" in str(caught.value)
    assert len(server.received) == 1


def test_a_read_timeout_on_a_read_is_retried(server):
    server.script((200, {}, {"delay": 1.5}), (200, {"ok": 1}))
    assert make_client(server, timeout=0.5).get("/slow") == {"ok": 1}


def test_errors_carry_status_type_and_reason(server):
    server.script((404, {"error": {"root_cause": [], "type": "status_exception", "reason": "Failed to find model group"}, "status": 404}))
    with pytest.raises(HTTPError) as caught:
        make_client(server).get("/_plugins/_ml/model_groups/nope")
    error = caught.value
    assert (error.status, error.error_type, error.reason) == (404, "status_exception", "Failed to find model group")
    assert error.is_not_found
    assert error.details == {"status": 404, "error_type": "status_exception", "reason": "Failed to find model group"}


@pytest.mark.parametrize("status, error_type, reason, expected", [
    (404, "status_exception", "anything", True),
    (500, "m_l_resource_not_found_exception", "Fail to find model group index", True),
    (500, "m_l_exception", "Fail to find task", True),
    (500, "m_l_exception", "Something else", False),
    (400, "illegal_argument_exception", "bad", False),
])
def test_not_found_across_versions(status, error_type, reason, expected):
    assert HTTPError("GET", "/x", status, error_type, reason).is_not_found is expected


def test_basic_auth_is_sent_and_never_appears_in_errors(server):
    server.script((401, None))
    client = Client(server.url, auth=build_auth({"username": "admin", "password": SECRET})[0], timeout=2)
    with pytest.raises(HTTPError) as caught:
        client.get("/")
    sent = server.received[0]["headers"]["Authorization"]
    assert base64.b64decode(sent.split()[1]).decode() == "admin:" + SECRET
    assert SECRET not in str(caught.value)
    assert SECRET not in json.dumps(caught.value.details)
    assert "authentication failed" in str(caught.value)


def test_a_401_from_opensearch_says_what_to_check(server):
    server.script((401, {"error": "Unauthorized"}))
    client = Client(server.url, auth=("admin", SECRET), timeout=2)
    with pytest.raises(HTTPError) as caught:
        client.get("/")
    assert str(caught.value) == "OpenSearch answered 401 to GET /: Unauthorized. Check username and password (or the client certificate)"


def test_request_bodies_never_appear_in_errors(server):
    server.script((400, {"error": {"type": "illegal_argument_exception", "reason": "bad action"}}))
    with pytest.raises(HTTPError) as caught:
        make_client(server).post("/_plugins/_ml/connectors/_create", body={"credential": {"openAI_key": SECRET}})
    assert SECRET not in str(caught.value)


def test_credentials_in_the_url_are_refused_without_echoing_them():
    with pytest.raises(ConfigurationError) as caught:
        Client("https://admin:%s@localhost:9200" % SECRET)
    assert SECRET not in str(caught.value)
    assert "username and password" in str(caught.value)


@pytest.mark.parametrize("url", ["localhost:9200", "ftp://host", "", None])
def test_urls_must_be_http_or_https(url):
    with pytest.raises(ConfigurationError, match="url must look like"):
        Client(url)


def test_the_server_version_is_read_once(server):
    server.script((200, {"version": {"number": "3.6.0", "distribution": "opensearch"}}))
    client = make_client(server)
    assert client.server_version == (3, 6, 0)
    assert client.server_version >= (3, 1)
    assert str(client.server_version) == "3.6.0"
    assert len(server.received) == 1


def test_version_ordering():
    assert ServerVersion("2.19.6") < ServerVersion("3.0.0") < ServerVersion("3.6.0")
    assert ServerVersion("2.17.0") < (2, 17, 1)
    assert ServerVersion("3.0.0-SNAPSHOT") == (3, 0, 0)


def test_ids_cannot_add_path_segments():
    assert quote_id("../_cluster") == "..%2F_cluster"


@pytest.mark.parametrize("params, expected", [
    ({"username": "u"}, "basic"),
    ({"client_cert": "/c.pem"}, "cert"),
    ({}, "none"),
    ({"aws_region": "us-east-1"}, "none"),
])
def test_auth_type_inference(params, expected):
    assert infer_auth_type(params) == expected


def test_basic_auth_needs_a_password():
    with pytest.raises(ConfigurationError, match="needs username and password"):
        build_auth({"auth_type": "basic", "username": "u"})


def test_cert_auth():
    assert build_auth({"client_cert": "/c.pem", "client_key": "/k.pem"}) == (None, ("/c.pem", "/k.pem"))
    assert build_auth({"client_cert": "/both.pem"}) == (None, "/both.pem")


@pytest.fixture
def aws_keys(monkeypatch, tmp_path):
    """Static keys in the environment, and no config files that could add others."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)


def test_sigv4_signs_every_request_for_the_service(server, aws_keys):
    auth = build_auth({"auth_type": "aws_sigv4", "aws_region": "eu-west-1", "aws_service": "aoss"})[0]
    server.script((200, {"ok": True}))
    Client(server.url, auth=auth).search("/_plugins/_ml/connectors/_search", {"query": {"match_all": {}}})
    headers = server.received[0]["headers"]
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/aoss/aws4_request" in headers["Authorization"]
    assert headers["X-Amz-Content-SHA256"] == hashlib.sha256(server.received[0]["body"]).hexdigest()
    assert SECRET not in json.dumps(headers)


def test_sigv4_needs_a_region_and_says_where_to_set_it(aws_keys):
    with pytest.raises(ConfigurationError) as caught:
        build_auth({"auth_type": "aws_sigv4"})
    for place in ("aws_region", "module_defaults", "AWS_REGION", "AWS_DEFAULT_REGION"):
        assert place in str(caught.value)


@pytest.mark.parametrize("variables, expected", [
    ({"AWS_SECURITY_TOKEN": "token-from-awx"}, "token-from-awx"),
    ({"AWS_SESSION_TOKEN": "session-token"}, "session-token"),
    ({"AWS_SECURITY_TOKEN": "older-name", "AWS_SESSION_TOKEN": "session-token"}, "session-token"),
])
def test_sigv4_takes_aws_security_token_where_aws_session_token_is_absent(server, aws_keys, monkeypatch, variables, expected):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    auth = build_auth({"auth_type": "aws_sigv4", "aws_region": "eu-west-1"})[0]
    server.script((200, {"ok": True}))
    Client(server.url, auth=auth).get("/")
    assert server.received[0]["headers"]["X-Amz-Security-Token"] == expected
    assert "x-amz-security-token" in server.received[0]["headers"]["Authorization"]


def test_sigv4_without_credentials_says_where_they_come_from(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ConfigurationError, match="found no AWS credentials"):
        build_auth({"auth_type": "aws_sigv4", "aws_region": "us-east-1"})


def test_sigv4_without_botocore_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "botocore", None)
    monkeypatch.setitem(sys.modules, "botocore.session", None)
    with pytest.raises(ConfigurationError, match="needs the Python library botocore: pip install botocore"):
        build_auth({"auth_type": "aws_sigv4", "aws_region": "us-east-1"})


def test_ca_path_becomes_the_verify_bundle(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not checked here")
    client = client_from_params({"url": "https://localhost:9200", "validate_certs": True, "ca_path": str(bundle)})
    assert client.verify == str(bundle)
    insecure = client_from_params({"url": "https://localhost:9200", "validate_certs": False, "ca_path": "/missing/ca.pem"})
    assert insecure.verify is False


@pytest.mark.parametrize("option", ["ca_path", "client_cert", "client_key"])
def test_a_missing_certificate_file_is_named_before_any_request(option):
    params = {"url": "https://localhost:9200", "validate_certs": True, "client_cert": None, option: "/missing/file.pem"}
    with pytest.raises(ConfigurationError) as caught:
        client_from_params(params)
    assert str(caught.value) == "%s /missing/file.pem does not exist." % option


@pytest.fixture
def tls_server(tmp_path, scripted_server):
    """An HTTPS server with a certificate signed by a throwaway CA, and that CA's path."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
               .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               # Python 3.13 verifies strictly (VERIFY_X509_STRICT): key usage and key identifiers, as real CAs have them.
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_path), str(key_path))
    return scripted_server(context), str(ca_path)


def test_tls_is_verified_by_default_and_the_error_says_what_to_do(tls_server):
    scripted = tls_server[0]
    with pytest.raises(TransportError) as caught:
        Client(scripted.url, timeout=2, retries=0).get("/")
    assert "TLS verification failed for GET https://127.0.0.1:" in str(caught.value)
    assert "Set ca_path" in str(caught.value)


def test_tls_with_the_right_ca_works(tls_server):
    scripted, ca_path = tls_server
    scripted.script((200, {"ok": True}))
    assert Client(scripted.url, verify=ca_path, timeout=2).get("/") == {"ok": True}


def test_provider_apis_use_their_bearer_key_error_shape_and_name(server):
    server.script((401, {"error": {"message": "Incorrect API key provided: sk-****1234.", "type": "invalid_request_error",
                                   "param": None, "code": "invalid_api_key"}}))
    client = Client(server.url + "/openai/v1", auth=BearerAuth(SECRET), service="OpenAI")
    with pytest.raises(HTTPError) as caught:
        client.get("/files")
    assert server.received[0]["headers"]["Authorization"] == "Bearer " + SECRET
    assert str(caught.value) == "OpenAI answered 401 to GET /openai/v1/files: invalid_request_error: Incorrect API key provided: sk-****1234."
    assert SECRET not in str(caught.value)


def test_uploads_stream_a_multipart_body_with_its_length(server, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"a": 1}\n' * 1000)
    server.script((200, {"id": "file-1"}))
    body = MultipartFile({"purpose": "batch"}, "file", "in.jsonl", str(source))
    assert Client(server.url, service="OpenAI").request("POST", "/files", upload=body) == {"id": "file-1"}
    sent = server.received[0]
    assert sent["headers"]["Content-Type"] == body.content_type
    assert int(sent["headers"]["Content-Length"]) == len(sent["body"])
    assert "Transfer-Encoding" not in sent["headers"]
    envelope = ("Content-Type: %s\r\n\r\n" % body.content_type).encode() + sent["body"]
    parts = {part.get_param("name", header="content-disposition"): part
             for part in email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(envelope).iter_parts()}
    assert parts["purpose"].get_payload(decode=True) == b"batch"
    assert parts["file"].get_filename() == "in.jsonl"
    assert parts["file"].get_payload(decode=True) == source.read_bytes()
    assert body.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()


def test_downloads_stream_into_the_sink_and_a_retry_starts_it_again(server, tmp_path):
    server.script((503, {"error": "busy"}), (200, {"line": 1}))
    target = tmp_path / "out"
    with target.open("wb") as handle:
        sink = DigestSink(handle)
        handle.write(b"left over from an earlier attempt")
        written = Client(server.url, service="OpenAI", backoff=0).request("GET", "/files/file-1/content", download=sink)
    assert written == len(b'{"line": 1}') == sink.size
    assert target.read_bytes() == b'{"line": 1}'
    assert sink.hexdigest("sha256") == hashlib.sha256(b'{"line": 1}').hexdigest()


def test_a_read_that_collides_with_a_concurrent_write_back_is_repeated(server):
    conflict = (409, {"error": {"type": "version_conflict_engine_exception", "reason": "version conflict, required seqNo [82]"}})
    server.script(conflict, (200, {"state": "RUNNING"}))
    assert make_client(server).get("/_plugins/_ml/tasks/t1") == {"state": "RUNNING"}
    assert len(server.received) == 2


def test_an_update_refused_for_a_version_conflict_is_sent_again(server):
    conflict = (409, {"error": {"type": "status_exception", "reason": "Document version conflict updating m1 in index .plugins-ml-model"}})
    server.script(conflict, (200, {"result": "updated"}))
    client = Client(server.url, timeout=2, backoff=0)
    assert client.put("/_plugins/_ml/models/m1", body={"description": "x"}) == {"result": "updated"}
    assert len(server.received) == 2


def test_a_create_refused_for_a_version_conflict_is_not_sent_again(server):
    server.script((409, {"error": {"type": "status_exception", "reason": "Document version conflict"}}))
    client = Client(server.url, timeout=2, backoff=0)
    with pytest.raises(HTTPError):
        client.post("/_plugins/_ml/models/_register", body={})
    assert len(server.received) == 1


def test_a_providers_401_passed_on_by_ml_commons_gets_no_opensearch_login_hint(server):
    reason = 'Error from remote service: {"error": {"message": "Incorrect API key provided: sk-****1234."}}'
    server.answer("POST", "/_plugins/_ml/models/m/_batch_predict", (401, {"error": {"type": "status_exception", "reason": reason}}))
    server.answer("GET", "/", (401, {"error": {"type": "security_exception", "reason": "Unauthorized"}}))
    client = make_client(server)
    with pytest.raises(HTTPError) as provider:
        client.post("/_plugins/_ml/models/m/_batch_predict", body={})
    with pytest.raises(HTTPError) as ours:
        client.get("/")
    assert provider.value.reason == reason
    assert ours.value.reason == "Unauthorized. Check username and password (or the client certificate)"


@pytest.mark.parametrize("url", ["api.openai.com/v1", ""])
def test_a_bad_openai_base_url_is_named_as_such_without_opensearch_port(url):
    with pytest.raises(ConfigurationError) as caught:
        Client(url, service="OpenAI")
    message = str(caught.value)
    assert "api_base_url must look like https://api.openai.com/v1" in message
    assert "9200" not in message and "OpenSearch" not in message


def test_an_empty_openai_base_url_means_the_default():
    # AWX injects an unset credential field as an empty OPENAI_BASE_URL.
    assert openai_base_url({"api_base_url": ""}) == "https://api.openai.com/v1"
    assert openai_base_url({"api_base_url": None}) == "https://api.openai.com/v1"
    assert openai_base_url({"api_base_url": "http://gateway:8080/v1"}) == "http://gateway:8080/v1"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_an_error_naming_its_location_and_nothing_goes_there(scripted_server, status):
    server, elsewhere = scripted_server(), scripted_server()
    location = elsewhere.url + "/_plugins/_ml/connectors/_create?token=tok-0123456789"
    server.script((status, {}, {"headers": {"Location": location}}))
    client = make_client(server, auth=("admin", SECRET))
    with pytest.raises(UnexpectedAnswerError) as caught:
        client.post("/_plugins/_ml/connectors/_create", body={"credential": {"openAI_key": SECRET}})
    message = str(caught.value)
    assert "answered %d to POST /_plugins/_ml/connectors/_create, a redirect to %s/_plugins/_ml/connectors/_create." % (status, elsewhere.url) in message
    assert "tok-0123456789" not in message and "give its new address as url" in message
    assert len(server.received) == 1 and elsewhere.received == []


def test_a_redirected_download_writes_nothing(scripted_server, tmp_path):
    server, elsewhere = scripted_server(), scripted_server()
    server.script((302, {}, {"headers": {"Location": elsewhere.url + "/content"}}))
    target = tmp_path / "out"
    with target.open("wb") as handle:
        with pytest.raises(UnexpectedAnswerError, match="a redirect to .*api_base_url"):
            Client(server.url, auth=BearerAuth("sk-test"), service="OpenAI").request("GET", "/files/f/content", download=DigestSink(handle))
    assert target.read_bytes() == b"" and elsewhere.received == []


@pytest.mark.parametrize("variable", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"])
def test_aws_credentials_with_a_line_break_inside_are_refused_without_showing_them(aws_keys, monkeypatch, variable):
    monkeypatch.setenv(variable, "AKIDEX\nAMPLE-%s" % SECRET)
    with pytest.raises(ConfigurationError, match="holds whitespace or a control character") as caught:
        build_auth({"auth_type": "aws_sigv4", "aws_region": "eu-west-1"})
    assert SECRET not in str(caught.value) and "AKIDEX" not in str(caught.value)


def test_aws_credentials_are_signed_without_the_whitespace_around_them(server, aws_keys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE\n")
    auth = build_auth({"auth_type": "aws_sigv4", "aws_region": "eu-west-1"})[0]
    server.script((200, {"ok": True}))
    Client(server.url, auth=auth).get("/")
    assert server.received[0]["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
