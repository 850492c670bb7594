"""Deploying a model: waiting with a timeout and the failure reason, and another deploy getting in the way."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils import models
from ansible_collections.opensearch.ml_commons.plugins.module_utils.client import Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.errors import MLCommonsError, WaitTimeoutError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.models import wait_until_deployed


class FakeClient:
    """Model states read in turn (the last one repeats); records the POSTs."""

    def __init__(self, states, task_error=None):
        self.states = list(states)
        self.posts = []
        self.task_error = task_error

    def get(self, path):
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"model_state": state, "name": "m"}

    def request(self, method, path, idempotent=None):
        self.posts.append(path.rsplit("/", 1)[1])
        return {}

    def search(self, path, body):
        hits = [{"_id": "t", "_source": {"error": self.task_error}}] if self.task_error else []
        return {"hits": {"hits": hits}}


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr("ansible_collections.opensearch.ml_commons.plugins.module_utils.wait.time.sleep", lambda seconds: None)


def test_a_plain_deploy():
    client = FakeClient(["REGISTERED", "DEPLOYED"])
    assert models.deploy(client, "m1", 30)["model_state"] == "DEPLOYED"
    assert client.posts == ["_deploy"]


def test_a_deploy_under_way_is_waited_for_not_doubled():
    client = FakeClient(["DEPLOYING", "DEPLOYING", "DEPLOYED"])
    assert models.deploy(client, "m1", 30)["model_state"] == "DEPLOYED"
    assert client.posts == []


def test_a_stuck_duplicate_is_cleared_by_an_undeploy():
    """ML Commons 2.19 after a restart: every deploy fails as a duplicate until an undeploy."""
    states = ["REGISTERED", "DEPLOY_FAILED",  # attempt 1: deploy, fails
              "DEPLOY_FAILED", "DEPLOY_FAILED", "DEPLOY_FAILED",  # look again; attempt 2 fails too
              "DEPLOY_FAILED", "DEPLOY_FAILED", "DEPLOYED"]  # after the undeploy, attempt 3 works
    client = FakeClient(states, task_error='{"node":"Duplicate deploy model task"}')
    assert models.deploy(client, "m1", 300)["model_state"] == "DEPLOYED"
    assert client.posts == ["_deploy", "_deploy", "_undeploy", "_deploy"]


def test_a_real_failure_is_not_retried():
    client = FakeClient(["REGISTERED", "DEPLOY_FAILED"], task_error="Connector not found")
    with pytest.raises(MLCommonsError) as caught:
        models.deploy(client, "m1", 30)
    assert "Connector not found" in str(caught.value)
    assert client.posts == ["_deploy"]


def test_a_deploy_that_lost_the_race_for_the_model_is_tried_again():
    client = FakeClient(["REGISTERED", "DEPLOY_FAILED", "DEPLOY_FAILED", "REGISTERED", "DEPLOYED"],
                        task_error="[m1]: version conflict, required seqNo [353], primary term [17]")
    assert models.deploy(client, "m1", 300)["model_state"] == "DEPLOYED"
    assert client.posts == ["_deploy", "_deploy"]


def test_a_deploy_that_does_not_finish_times_out_naming_the_state(server):
    server.default = (200, {"name": "m", "model_state": "DEPLOYING"})
    with pytest.raises(WaitTimeoutError) as caught:
        wait_until_deployed(Client(server.url), "m1", timeout=0.3)
    assert str(caught.value).startswith("Gave up waiting after 0.3s")
    assert str(caught.value).endswith("last state seen: model m1 is DEPLOYING.")


def test_a_failed_deploy_reports_ml_commons_reason(server):
    server.script((200, {"name": "m", "model_state": "DEPLOY_FAILED"}),
                  (200, {"hits": {"hits": [{"_id": "t1", "_source": {"error": "no eligible node found", "task_type": "DEPLOY_MODEL"}}]}}))
    with pytest.raises(MLCommonsError) as caught:
        wait_until_deployed(Client(server.url), "m1", timeout=5)
    assert str(caught.value) == "Deploying model m1 failed (DEPLOY_FAILED): no eligible node found"
    assert caught.value.details == {"model_state": "DEPLOY_FAILED"}


def profile_of(model_id, node_state):
    """The profile API's answer when one node holds ``model_id`` in ``node_state``."""
    return {"nodes": {"n1": {"models": {model_id: {"model_state": node_state, "worker_nodes": ["n1"]}}}}}


def test_a_deployed_model_a_node_serves_is_served(server):
    server.script((200, profile_of("m1", "DEPLOYED")))
    assert models.is_served(Client(server.url), {"model_id": "m1", "model_state": "DEPLOYED"})
    assert [request["path"] for request in server.received] == ["/_plugins/_ml/profile/models/m1"]


def test_a_stored_deployed_that_no_node_holds_is_not_served(server):
    """Right after a restart: the model index says DEPLOYED, every node's profile is empty."""
    server.script((200, {}))
    assert not models.is_served(Client(server.url), {"model_id": "m1", "model_state": "DEPLOYED"})


def test_a_model_a_node_is_still_loading_is_not_served(server):
    """ML Commons' own redeploy under way, or stuck after it failed ("Fetching master key timed out")."""
    server.script((200, profile_of("m1", "DEPLOYING")))
    assert not models.is_served(Client(server.url), {"model_id": "m1", "model_state": "DEPLOYED"})


def test_only_a_deployed_model_costs_a_profile_request(server):
    assert not models.is_served(Client(server.url), {"model_id": "m1", "model_state": "DEPLOY_FAILED"})
    assert server.received == []
