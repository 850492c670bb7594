# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Model operations several modules need: who uses a connector, deploy and undeploy with waiting."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.opensearch.ml_commons.plugins.module_utils import answers
from ansible_collections.opensearch.ml_commons.plugins.module_utils.client import quote_id
from ansible_collections.opensearch.ml_commons.plugins.module_utils.errors import MLCommonsError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.resource import MODEL, TASK, get_by_id, search
from ansible_collections.opensearch.ml_commons.plugins.module_utils.wait import retry, wait_until

# States in which a node holds the model or is loading it; the pre-2.7 names still appear on upgraded clusters.
DEPLOYED_OR_DEPLOYING_STATES = frozenset(("DEPLOYED", "PARTIALLY_DEPLOYED", "DEPLOYING", "LOADED", "PARTIALLY_LOADED", "LOADING"))
DEPLOY_FAILED_STATES = frozenset(("DEPLOY_FAILED", "LOAD_FAILED"))
# First pause between two reads of a model's state while it deploys or undeploys. A remote model is
# deployed within a few hundred milliseconds, so a first pause of a whole second was mostly idle
# (make bench); the pause still grows by half each time, so a long deploy costs only a few reads more.
STATE_POLL_INTERVAL = 0.2
DEPLOYING_STATES = frozenset(("DEPLOYING", "LOADING"))
# How often a deploy is tried when deploys of the model collide (answers.is_deploy_collision).
DEPLOY_ATTEMPTS = 5
# Each node's answer about the models it holds in memory, whatever the model index says.
PROFILE_PATH = "/_plugins/_ml/profile/models"


def describe_models(models):
    return ", ".join("%s (%s)" % (model["model_id"], model.get("name")) for model in models)


def models_using_connector(client, connector_id):
    """Models registered with ``connector_id``.

    ``connector_id`` has no explicit mapping in the model index (a text field), so the query
    is a ``match``, as ML Commons' own check does, and exact equality is checked here.
    """
    candidates = search(client, MODEL, [{"match": {"connector_id": connector_id}}])
    return [model for model in candidates if model.get("connector_id") == connector_id]


def is_deployed_or_deploying(model):
    """Whether a node holds the model, or is loading it, by the stored state (see :func:`is_served`)."""
    return model.get("model_state") in DEPLOYED_OR_DEPLOYING_STATES


def is_served(client, model):
    """Whether the model is DEPLOYED and a node really serves it.

    The stored state outlives the nodes' memory: after a restart the model index still says
    DEPLOYED while no node holds the model, until ML Commons' sync job marks it DEPLOY_FAILED
    (every 10 s) or its own redeploy loads it again, which can fail or come after this run
    (seen on 2.19.6 and 3.6.0 by the reliability suite's restart scenarios). So a DEPLOYED model
    is believed only when a node's profile says so; any other state needs no request.
    """
    if model.get("model_state") != "DEPLOYED":
        return False
    model_id = model["model_id"]
    nodes = client.get("%s/%s" % (PROFILE_PATH, quote_id(model_id))).get("nodes") or {}
    return any(((node.get("models") or {}).get(model_id) or {}).get("model_state") == "DEPLOYED" for node in nodes.values())


def current_model(client, model_id):
    """The model as stored now; one that is gone fails the wait that asked for it."""
    model = get_by_id(client, MODEL, model_id)
    if model is None:
        raise MLCommonsError("Model %s disappeared while waiting for it." % model_id)
    return model


def deploy_failure_reason(client, model_id):
    """The error of the model's latest DEPLOY_MODEL task: what ML Commons says went wrong."""
    tasks = search(client, TASK, [{"term": {"model_id": model_id}}, {"term": {"task_type": "DEPLOY_MODEL"}}])
    errors = [task.get("error") for task in tasks if task.get("error")]
    return errors[-1] if errors else "no reason recorded; see the OpenSearch log"


def wait_until_deployed(client, model_id, timeout):
    """Wait until the model is DEPLOYED; DEPLOY_FAILED or the timeout fail with the model's state and the reason."""
    model, _polls = wait_until(
        lambda: current_model(client, model_id),
        lambda model: model.get("model_state") == "DEPLOYED" or model.get("model_state") in DEPLOY_FAILED_STATES,
        timeout,
        interval=STATE_POLL_INTERVAL,
        describe=lambda model: "model %s is %s" % (model_id, model.get("model_state")),
    )
    if model.get("model_state") in DEPLOY_FAILED_STATES:
        raise MLCommonsError(
            "Deploying model %s failed (%s): %s" % (model_id, model["model_state"], deploy_failure_reason(client, model_id)),
            model_state=model["model_state"],
        )
    return model


def deploy(client, model_id, timeout):
    """Deploy and wait until DEPLOYED.

    Deploying is idempotent (ML Commons deploys a deployed model again, nothing more), so a
    deploy whose answer was lost is retried like a GET instead of failing the run.

    Two deploys of one model get in each other's way: ML Commons answers the second 409 (both
    update the model) or fails it ("Duplicate deploy model task") and marks the model
    DEPLOY_FAILED while the first goes on. That happens when concurrent runs deploy the model they
    converged on, and after a restart, when ML Commons redeploys by itself. So a deploy under way
    (DEPLOYING) is waited for rather than doubled, and a collision is followed by a fresh look at
    the model and, unless it is DEPLOYED by then, another deploy (after an undeploy when the
    collisions go on while the model's state says no deploy runs: see below).
    """
    deadline = time.monotonic() + timeout

    def attempt(number):
        if number > 1:
            model = current_model(client, model_id)
            if model.get("model_state") == "DEPLOYED":
                return model
            if number > 2 and model.get("model_state") in DEPLOY_FAILED_STATES:
                # A node can keep a failed deploy as under way (ML Commons 2.19, after "Fetching master key
                # timed out" following a restart) and refuse every later deploy as a duplicate; no deploy
                # is under way by the model's state, and undeploying clears the node's stale entry.
                client.request("POST", MODEL.path(model_id) + "/_undeploy", idempotent=True)
        if current_model(client, model_id).get("model_state") not in DEPLOYING_STATES:
            client.request("POST", MODEL.path(model_id) + "/_deploy", idempotent=True)
        return wait_until_deployed(client, model_id, max(deadline - time.monotonic(), 1))

    return retry(attempt, answers.is_deploy_collision, DEPLOY_ATTEMPTS, lambda number: number * 2, deadline)


def undeploy(client, model_id, timeout):
    """Undeploy and wait until no node holds the model.

    A 200 answer alone proves nothing (2.19+ answers {} for a model no node holds), so the
    state is read back.
    """
    client.post(MODEL.path(model_id) + "/_undeploy")
    model, _polls = wait_until(
        lambda: current_model(client, model_id),
        lambda model: not is_deployed_or_deploying(model),
        timeout,
        interval=STATE_POLL_INTERVAL,
        describe=lambda model: "model %s is %s" % (model_id, model.get("model_state")),
    )
    return model
