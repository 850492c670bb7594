"""ml_cluster_info through run(): the version, the plugins once each, the effective ML settings."""

from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import HTTPError, MLCommonsError
from ansible_collections.opensearch.ml_commons.plugins.modules import ml_cluster_info
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule

# A request nothing was scripted for fails at once, and no wait pauses (see tests/unit/conftest.py).
pytestmark = pytest.mark.usefixtures("module_test_server")


ROOT = {"name": "node-1", "cluster_name": "ml-testbed", "cluster_uuid": "u",
        "version": {"distribution": "opensearch", "number": "2.19.6", "build_type": "tar"}, "tagline": "The OpenSearch Project"}
# Two nodes report the same plugins.
PLUGINS = [{"component": "opensearch-security", "version": "2.19.6.0"}, {"component": "opensearch-ml", "version": "2.19.6.0"},
           {"component": "opensearch-ml", "version": "2.19.6.0"}, {"component": "opensearch-security", "version": "2.19.6.0"}]
SETTINGS = {
    "defaults": {"plugins.ml_commons.offline_batch_inference_enabled": "true", "plugins.ml_commons.connector.private_ip_enabled": "false",
                 "plugins.ml_commons.trusted_connector_endpoints_regex": ["^https://api\\.openai\\.com/.*$"],
                 "cluster.name": "ml-testbed"},
    "persistent": {"plugins.ml_commons.connector.private_ip_enabled": "true", "plugins.ml_commons.only_run_on_ml_node": "false",
                   "action.auto_create_index": "true"},
    "transient": {"plugins.ml_commons.only_run_on_ml_node": "true"},
}


def run(server):
    return ml_cluster_info.run(FakeModule(ml_cluster_info), Client(server.url, backoff=0))


def answer(server, *replies):
    """Replies to the root, the plugins and the settings, in that order; a request left out fails."""
    for path, reply in zip(("/", "/_cat/plugins", "/_cluster/settings"), replies):
        server.answer("GET", path, reply)


def sent(request):
    parts = urlsplit(request["path"])
    return request["method"], parts.path, parse_qs(parts.query)


def test_version_plugins_and_settings(server):
    answer(server, (200, ROOT), (200, PLUGINS), (200, SETTINGS))
    result = run(server)
    assert result == {
        "changed": False,
        "version": "2.19.6",
        "distribution": "opensearch",
        "cluster_name": "ml-testbed",
        "ml_commons_version": "2.19.6.0",
        "plugins": [{"component": "opensearch-ml", "version": "2.19.6.0"}, {"component": "opensearch-security", "version": "2.19.6.0"}],
        "ml_settings": {
            "plugins.ml_commons.offline_batch_inference_enabled": "true",
            "plugins.ml_commons.connector.private_ip_enabled": "true",  # persistent over the default
            "plugins.ml_commons.only_run_on_ml_node": "true",  # transient over persistent
            "plugins.ml_commons.trusted_connector_endpoints_regex": ["^https://api\\.openai\\.com/.*$"],
        },
    }
    assert [sent(request) for request in server.received] == [
        ("GET", "/", {}),
        ("GET", "/_cat/plugins", {"format": ["json"], "h": ["component,version"]}),
        ("GET", "/_cluster/settings", {"include_defaults": ["true"], "flat_settings": ["true"]}),
    ]


def test_a_cluster_without_ml_commons_has_no_ml_commons_version(server):
    answer(server, (200, dict(ROOT, version={"distribution": "opensearch", "number": "3.6.0"})),
           (200, [{"component": "opensearch-security", "version": "3.6.0.0"}]), (200, {"defaults": {}}))
    result = run(server)
    assert result["version"] == "3.6.0" and result["ml_commons_version"] is None
    assert result["plugins"] == [{"component": "opensearch-security", "version": "3.6.0.0"}]
    assert result["ml_settings"] == {}


def test_an_error_answer_fails_with_the_servers_reason(server):
    answer(server, (200, ROOT), (403, {"error": {"type": "security_exception", "reason": "no permissions for [cluster:monitor/state]"},
                                       "status": 403}))
    with pytest.raises(HTTPError, match=r"OpenSearch answered 403 to GET /_cat/plugins.*no permissions"):
        run(server)


def test_a_url_that_is_not_opensearch_fails_clearly(server):
    answer(server, (200, {"status": "ok"}))
    with pytest.raises(MLCommonsError, match=r"/ answered without a version, so it is not OpenSearch .* Check url\."):
        run(server)
    assert len(server.received) == 1
