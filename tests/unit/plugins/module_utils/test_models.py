"""Deploying a model: waiting with a timeout and the failure reason, and another deploy getting in the way."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons import models
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import (
    DeployFailedError,
    HTTPError,
    MLCommonsError,
    PartialDeploymentError,
    WaitTimeoutError,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.models import wait_until_deployed


class FakeClient:
    """Model states read in turn (the last one repeats); records the POSTs. Node n1's profile serves the
    model whenever the state last read says a deploy settled."""

    def __init__(self, states, task_error=None):
        self.states = list(states)
        self.posts = []
        self.task_error = task_error
        self.last_state = None

    def get(self, path):
        if path.startswith(models.PROFILE_PATH):
            return profile_of("m1", "DEPLOYED") if self.last_state in models.SERVED_STATES else {}
        self.last_state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"model_state": self.last_state, "name": "m"}

    def request(self, method, path, idempotent=None):
        self.posts.append(path.rsplit("/", 1)[1])
        return {}

    def search(self, path, body):
        hits = [{"_id": "t", "_source": {"error": self.task_error}}] if self.task_error else []
        return {"hits": {"hits": hits}}


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr("ansible_collections.opensearch.ml_commons.plugins.module_utils.core.wait.time.sleep", lambda seconds: None)


def test_a_plain_deploy():
    client = FakeClient(["REGISTERED", "DEPLOYED"])
    model, sent = models.deploy(client, "m1", 30)
    assert model["model_state"] == "DEPLOYED" and sent
    assert client.posts == ["_deploy"]


def test_a_deploy_under_way_is_waited_for_not_doubled_and_not_counted_as_sent():
    client = FakeClient(["DEPLOYING", "DEPLOYING", "DEPLOYED"])
    model, sent = models.deploy(client, "m1", 30)
    assert model["model_state"] == "DEPLOYED" and not sent
    assert client.posts == []


def test_a_stuck_duplicate_is_cleared_by_an_undeploy():
    """ML Commons 2.19 after a restart: every deploy fails as a duplicate until an undeploy."""
    states = ["REGISTERED", "DEPLOY_FAILED",  # attempt 1: deploy, fails
              "DEPLOY_FAILED", "DEPLOY_FAILED", "DEPLOY_FAILED",  # look again; attempt 2 fails too
              "DEPLOY_FAILED", "DEPLOY_FAILED", "DEPLOYED"]  # after the undeploy, attempt 3 works
    client = FakeClient(states, task_error='{"node":"Duplicate deploy model task"}')
    assert models.deploy(client, "m1", 300)[0]["model_state"] == "DEPLOYED"
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
    assert models.deploy(client, "m1", 300)[0]["model_state"] == "DEPLOYED"
    assert client.posts == ["_deploy", "_deploy"]


def test_a_failed_deploy_whose_task_recorded_no_error_is_tried_again():
    """Two colliding deploys leave no error in the task at times."""
    client = FakeClient(["REGISTERED", "DEPLOY_FAILED", "DEPLOY_FAILED", "REGISTERED", "DEPLOYED"])
    assert models.deploy(client, "m1", 300)[0]["model_state"] == "DEPLOYED"
    assert client.posts == ["_deploy", "_deploy"]


def test_retries_follow_ml_commons_answer_not_the_collections_own_message():
    assert models.is_retriable_deploy_failure(DeployFailedError("Deploying model m1 failed (DEPLOY_FAILED): reworded", task_error=None))
    assert not models.is_retriable_deploy_failure(
        DeployFailedError("Deploying model m1 failed (DEPLOY_FAILED): no reason recorded; see the OpenSearch log", task_error="Connector not found"))
    assert not models.is_retriable_deploy_failure(MLCommonsError("no reason recorded; see the OpenSearch log"))
    assert models.is_retriable_deploy_failure(HTTPError("POST", "/x", 409, "version_conflict_engine_exception", "[m1]: version conflict"))
    assert not models.is_retriable_deploy_failure(HTTPError("POST", "/x", 500, "status_exception", "Duplicate deploy model task"))


def test_a_deploy_that_does_not_finish_times_out_naming_the_state(server):
    server.default = (200, {"name": "m", "model_state": "DEPLOYING"})
    with pytest.raises(WaitTimeoutError) as caught:
        wait_until_deployed(Client(server.url), "m1", timeout=0.3)
    assert str(caught.value).startswith("Gave up waiting after 0.3s")
    assert str(caught.value).endswith("last state seen: model m1 is DEPLOYING.")


def test_a_failed_deploy_reports_ml_commons_reason(server):
    server.answer("GET", "/_plugins/_ml/models/m1", (200, {"name": "m", "model_state": "DEPLOY_FAILED"}))
    server.answer("POST", "/_plugins/_ml/tasks/_search",
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


# A cluster of three nodes, as ML Commons 2.19/3.x answers: GET /models/<id> carries the nodes a deploy planned
# (planning_worker_nodes), and the profile API lists every node that answered, serving or not: a node that
# only knows the model's routing has worker_nodes and no model_state, one that knows nothing of it answers {}.
NODES = ("n0", "n1", "n2")


def cluster_model(state, planned=NODES, **fields):
    model = {"model_id": "m1", "name": "m", "model_state": state, "planning_worker_nodes": list(planned),
             "planning_worker_node_count": len(planned), "deploy_to_all_nodes": True}
    model.update(fields)
    return model


def cluster_profile(serving, live=NODES, loading=()):
    def node(node_id):
        if node_id in serving:
            return {"models": {"m1": {"model_state": "DEPLOYED", "predictor": "RemoteModel", "target_worker_nodes": list(live),
                                      "worker_nodes": list(serving)}}}
        if node_id in loading:
            return {"models": {"m1": {"model_state": "DEPLOYING", "target_worker_nodes": list(live)}}}
        return {"models": {"m1": {"target_worker_nodes": list(live), "worker_nodes": list(serving)}}} if serving else {}
    return {"nodes": dict((node_id, node(node_id)) for node_id in live)}


def served(model, profile, every_node=True):
    return models.Deployment(model, profile["nodes"]).is_served(every_node)


def test_deployed_on_every_planned_node_is_served_both_ways():
    profile = cluster_profile(serving=NODES)
    assert served(cluster_model("DEPLOYED"), profile)
    assert served(cluster_model("DEPLOYED"), profile, every_node=False)
    assert models.Deployment(cluster_model("DEPLOYED"), profile["nodes"]).serving == ["n0", "n1", "n2"]


def test_partially_deployed_is_served_by_some_nodes_only():
    """A node failed to load the model, or came back after the deploy: ML Commons says PARTIALLY_DEPLOYED."""
    profile = cluster_profile(serving=("n0", "n1"))
    model = cluster_model("PARTIALLY_DEPLOYED")
    assert not served(model, profile)
    assert served(model, profile, every_node=False)
    assert models.Deployment(model, profile["nodes"]).missing == ["n2"]


def test_a_planned_node_that_left_the_cluster_is_not_missing():
    """Node n2 was killed: it no longer answers the profile API, and the sync job has not yet shrunk the plan."""
    profile = cluster_profile(serving=("n0", "n1"), live=("n0", "n1"))
    deployment = models.Deployment(cluster_model("DEPLOYED"), profile["nodes"])
    assert deployment.is_served(True) and deployment.missing == []


def test_a_stored_deployed_is_not_believed_for_a_live_planned_node_that_does_not_serve():
    """Right after n2 restarted: the index still says DEPLOYED, n2's memory is empty."""
    profile = cluster_profile(serving=("n0", "n1"))
    assert not served(cluster_model("DEPLOYED"), profile)
    assert served(cluster_model("DEPLOYED"), profile, every_node=False)


def test_a_node_still_loading_does_not_serve():
    profile = cluster_profile(serving=("n0", "n1"), loading=("n2",))
    assert not served(cluster_model("DEPLOYED"), profile)


def test_a_model_without_a_plan_is_served_everywhere_only_when_stored_deployed():
    profile = cluster_profile(serving=("n0",))
    assert served({"model_id": "m1", "model_state": "DEPLOYED"}, profile)
    assert not served({"model_id": "m1", "model_state": "PARTIALLY_DEPLOYED"}, profile)
    assert served({"model_id": "m1", "model_state": "PARTIALLY_DEPLOYED"}, profile, every_node=False)


def test_a_deploy_under_way_is_not_served_on_every_node_while_a_node_loads_it():
    loading = cluster_profile(serving=("n0", "n1"), loading=("n2",))
    assert not served(cluster_model("DEPLOYING"), loading)
    assert served(cluster_model("DEPLOYING"), loading, every_node=False)


def test_a_stored_deploying_that_every_node_serves_is_served():
    """2.19.6, a node restarted while the model deployed: it serves the model but keeps a deploy task, and the
    sync job stores DEPLOYING and DEPLOYED in turn every 10 s."""
    assert served(cluster_model("DEPLOYING"), cluster_profile(serving=NODES))


class ClusterClient:
    """(stored state, serving nodes) read in turn (the last repeats); the profile shows the serving nodes of the
    state last read; records the POSTs."""

    def __init__(self, steps, task_error=None):
        self.steps = list(steps)
        self.serving = ()
        self.posts = []
        self.task_error = task_error

    def get(self, path, query=None):
        if path.startswith(models.PROFILE_PATH):
            return cluster_profile(serving=self.serving)
        state, self.serving = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        return cluster_model(state)

    def request(self, method, path, idempotent=None):
        self.posts.append(path.rsplit("/", 1)[1])
        return {}

    def search(self, path, body):
        hits = [{"_id": "t", "_source": {"error": self.task_error}}] if self.task_error else []
        return {"hits": {"hits": hits}}


def test_a_partial_deploy_is_deployed_again_until_every_node_serves():
    client = ClusterClient([("REGISTERED", ()), ("PARTIALLY_DEPLOYED", ("n0", "n1")),  # attempt 1: n2 failed
                            ("PARTIALLY_DEPLOYED", ("n0", "n1")),  # look again before attempt 2
                            ("PARTIALLY_DEPLOYED", ("n0", "n1")), ("DEPLOYING", ("n0", "n1")), ("DEPLOYED", NODES)])
    assert models.deploy(client, "m1", 300)[0]["model_state"] == "DEPLOYED"
    assert client.posts == ["_deploy", "_deploy"]


def test_a_state_the_sync_job_stored_mid_deploy_is_waited_out_once_every_node_serves():
    """3.6.0, three nodes: the deploy ends DEPLOYED, then the sync job stores the PARTIALLY_DEPLOYED it read
    while a node still loaded the model; its next round stores DEPLOYED."""
    client = ClusterClient([("REGISTERED", ()), ("PARTIALLY_DEPLOYED", NODES), ("PARTIALLY_DEPLOYED", NODES),
                            ("PARTIALLY_DEPLOYED", NODES), ("DEPLOYED", NODES)])
    assert models.deploy(client, "m1", 300)[0]["model_state"] == "DEPLOYED"
    assert client.posts == ["_deploy"]


def test_a_stored_state_that_never_catches_up_is_reported_as_stored(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(models.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(models.time, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds))
    client = ClusterClient([("REGISTERED", ()), ("PARTIALLY_DEPLOYED", NODES)])
    assert models.deploy(client, "m1", 300)[0]["model_state"] == "PARTIALLY_DEPLOYED"
    assert client.posts == ["_deploy"]
    assert clock[0] >= models.SYNC_CATCH_UP_SECONDS


def test_a_partial_deploy_is_enough_with_any_node():
    client = ClusterClient([("REGISTERED", ()), ("PARTIALLY_DEPLOYED", ("n0", "n1"))])
    assert models.deploy(client, "m1", 300, every_node=False)[0]["model_state"] == "PARTIALLY_DEPLOYED"
    assert client.posts == ["_deploy"]


def test_a_node_that_never_loads_the_model_fails_the_deploy_naming_it_and_the_reason():
    client = ClusterClient([("REGISTERED", ()), ("PARTIALLY_DEPLOYED", ("n0", "n1"))],
                           task_error='{"n2":"Connection refused"}')
    with pytest.raises(PartialDeploymentError) as caught:
        models.deploy(client, "m1", 300)
    assert str(caught.value) == (
        'Model m1 is PARTIALLY_DEPLOYED: served by n0, n1, not by n2: {"n2":"Connection refused"}. A run after the cause '
        "is fixed deploys it again; deployed_on: any_node accepts a model that some nodes serve.")
    assert caught.value.details == {"model_state": "PARTIALLY_DEPLOYED", "serving_nodes": ["n0", "n1"], "missing_nodes": ["n2"]}
    assert client.posts == ["_deploy", "_deploy"] + ["_undeploy", "_deploy"] * (models.DEPLOY_ATTEMPTS - 2)


def test_a_node_stuck_on_a_duplicate_deploy_is_cleared_by_an_undeploy_from_every_node():
    """Seen on 2.19.6 (reliability, node restarted while the model deployed): the restarted node refuses every
    deploy as "Duplicate deploy model task" until the model is undeployed."""
    client = ClusterClient([("REGISTERED", ()), ("PARTIALLY_DEPLOYED", ("n0", "n1")),  # attempt 1: n2 refuses
                            ("PARTIALLY_DEPLOYED", ("n0", "n1")), ("PARTIALLY_DEPLOYED", ("n0", "n1")),  # attempt 2: so does it
                            ("PARTIALLY_DEPLOYED", ("n0", "n1")), ("PARTIALLY_DEPLOYED", ("n0", "n1")),  # attempt 3 undeploys
                            ("UNDEPLOYED", ()), ("DEPLOYING", ()), ("DEPLOYED", NODES)],
                           task_error='{"n2":"Duplicate deploy model task"}')
    assert models.deploy(client, "m1", 300)[0]["model_state"] == "DEPLOYED"
    assert client.posts == ["_deploy", "_deploy", "_undeploy", "_deploy"]


def test_a_deploy_is_not_sent_when_every_node_serves_by_the_time_of_the_next_attempt():
    """ML Commons' own redeploy (a node came back) finished while this run waited to try again."""
    client = ClusterClient([("REGISTERED", ()), ("PARTIALLY_DEPLOYED", ("n0", "n1")), ("DEPLOYED", NODES)])
    assert models.deploy(client, "m1", 300)[0]["model_state"] == "DEPLOYED"
    assert client.posts == ["_deploy"]


def test_the_nodes_serving_each_model_cost_one_profile_and_one_names_request(server):
    server.answer("GET", models.PROFILE_PATH,
                  (200, {"nodes": {"n0": {"models": {"m1": {"model_state": "DEPLOYED"}, "m2": {"model_state": "DEPLOYED"}}},
                                   "n1": {"models": {"m1": {"model_state": "DEPLOYED"}, "m2": {"worker_nodes": ["n0"]}}},
                                   "n2": {}}}))
    server.answer("GET", "/_nodes", (200, {"nodes": {"n0": {"name": "ml-testbed-0"}, "n1": {"name": "ml-testbed-1"}, "n2": {"name": "ml-testbed-2"}}}))
    found = models.serving_nodes_of(Client(server.url), [cluster_model("DEPLOYED", model_id="m1"),
                                                         cluster_model("PARTIALLY_DEPLOYED", model_id="m2"),
                                                         cluster_model("REGISTERED", model_id="m3")])
    assert found == {"m1": [{"node_id": "n0", "name": "ml-testbed-0"}, {"node_id": "n1", "name": "ml-testbed-1"}],
                     "m2": [{"node_id": "n0", "name": "ml-testbed-0"}], "m3": []}
    assert [request["path"] for request in server.received] == ["/_plugins/_ml/profile/models", "/_nodes?filter_path=nodes.%2A.name"]


def test_models_no_node_can_hold_cost_no_request(server):
    assert models.serving_nodes_of(Client(server.url), [cluster_model("REGISTERED"), cluster_model("UNDEPLOYED", model_id="m2")]) == {
        "m1": [], "m2": []}
    assert server.received == []


def came_back_profile():
    """n2 was lost, the sync job shrank the plan to n0 and n1, and n2 is back, knowing nothing of the model yet."""
    return {"nodes": {"n0": {"models": {"m1": {"model_state": "DEPLOYED"}}}, "n1": {"models": {"m1": {"model_state": "DEPLOYED"}}},
                      "n2": {}}}


def node_roles(**overrides):
    nodes = dict((node_id, {"name": "ml-testbed-%s" % node_id[1], "roles": ["cluster_manager", "data", "ingest"]}) for node_id in NODES)
    nodes.update(overrides)
    return {"nodes": nodes}


@pytest.mark.parametrize("settings, nodes, eligible", [
    ({}, node_roles(), True),  # the defaults: data and ml nodes
    ({"plugins.ml_commons.task_dispatcher.eligible_node_role.remote_model": ["ml"]}, node_roles(), False),
    ({"plugins.ml_commons.exclude_nodes._name": "ml-testbed-2"}, node_roles(), False),
    ({}, node_roles(n2={"name": "ml-testbed-2", "roles": ["data"], "attributes": {"box_type": "warm"}}), False),
    ({}, node_roles(n2={"name": "ml-testbed-2", "roles": ["ml"]}), True),
])
def test_a_node_back_before_the_sync_job_planned_it_counts_when_ml_commons_would_deploy_to_it(server, settings, nodes, eligible):
    server.answer("GET", models.PROFILE_PATH + "/m1", (200, came_back_profile()))
    server.answer("GET", "/_cluster/settings", (200, {"persistent": {}, "transient": {}, "defaults": settings}))
    server.answer("GET", "/_nodes", (200, nodes))
    seen = models.deployment(Client(server.url), cluster_model("DEPLOYED", planned=("n0", "n1")))
    assert seen.missing == (["n2"] if eligible else [])
    assert seen.is_served(True) is not eligible
    assert [request["path"].split("?")[0] for request in server.received] == ["/_plugins/_ml/profile/models/m1", "/_cluster/settings", "/_nodes"]


def test_nodes_outside_a_custom_plan_are_not_asked_about(server):
    """A model deployed to chosen nodes (deploy_to_all_nodes false) is not expected on the others."""
    server.script((200, came_back_profile()))
    seen = models.deployment(Client(server.url), cluster_model("DEPLOYED", planned=("n0", "n1"), deploy_to_all_nodes=False))
    assert seen.is_served(True)
    assert len(server.received) == 1
