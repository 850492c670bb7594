# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Models: which nodes serve one, deploy and undeploy with waiting."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time

from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons import answers
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import quote_id
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.cluster import effective_ml_settings
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import (
    DeployFailedError,
    MLCommonsError,
    PartialDeploymentError,
    WaitTimeoutError,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import MODEL, TASK, get_by_id, search
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.wait import retry, wait_until

# States in which a node holds the model or is loading it; the pre-2.7 names still appear on upgraded clusters.
DEPLOYED_OR_DEPLOYING_STATES = frozenset(("DEPLOYED", "PARTIALLY_DEPLOYED", "DEPLOYING", "LOADED", "PARTIALLY_LOADED", "LOADING"))
DEPLOY_FAILED_STATES = frozenset(("DEPLOY_FAILED", "LOAD_FAILED"))
# A deploy settled with at least one node serving the model (some failed, or a node came back or joined).
SERVED_STATES = frozenset(("DEPLOYED", "PARTIALLY_DEPLOYED"))
STATE_POLL_INTERVAL = 0.2
DEPLOYING_STATES = frozenset(("DEPLOYING", "LOADING"))
DEPLOY_ATTEMPTS = 5
# ML Commons' sync job runs every 10 s by default (plugins.ml_commons.sync_up_job_interval_in_seconds).
SYNC_CATCH_UP_SECONDS = 30
# Each node's own answer about the models it holds in memory, whatever the model index says.
PROFILE_PATH = "/_plugins/_ml/profile/models"
NODES_PATH = "/_nodes"
NODE_NAMES_QUERY = {"filter_path": "nodes.*.name"}
NODE_ROLES_QUERY = {"filter_path": "nodes.*.name,nodes.*.roles,nodes.*.attributes"}
# Which nodes ML Commons deploys a remote model to (DiscoveryNodeHelper.getEligibleNodes): a role of this
# setting, "data" counting only for hot data nodes, and a name not in the excluded ones.
REMOTE_ROLES_SETTING = "plugins.ml_commons.task_dispatcher.eligible_node_role.remote_model"
DEFAULT_REMOTE_ROLES = ("data", "ml")
EXCLUDED_NAMES_SETTING = "plugins.ml_commons.exclude_nodes._name"
# ML Commons checks the answer to a _batch_predict against the model's interface output schema (2.19.6 and 3.6.0 alike),
# and before 3.3 the request against its input schema too (opensearch-project/ml-commons#4080). It attaches a preset
# interface, a prediction's schemas, to some Bedrock models at register. The answer is checked after the provider
# created the job and before ML Commons keeps a task for it: the job runs, and no task in OpenSearch knows it.
FIRST_BATCH_WITHOUT_INPUT_CHECK = (3, 3)


def describe_models(models):
    return ", ".join("%s (%s)" % (model["model_id"], model.get("name")) for model in models)


def interface_parts_refusing_batch(server_version, model):
    """The parts of ``model``'s interface (input, output) against which ML Commons checks a batch job and that
    constrain anything: a batch job's request and answer fit neither of a prediction's schemas."""
    interface = model.get("interface") or {}
    checked = ("input", "output") if server_version < FIRST_BATCH_WITHOUT_INPUT_CHECK else ("output",)
    return [part for part in checked if constrains(interface.get(part))]


def constrains(schema):
    """Whether a JSON schema (as ML Commons keeps it, text) refuses anything; the empty schema accepts all."""
    if not schema:
        return False
    try:
        return json.loads(schema) != {} if isinstance(schema, str) else schema != {}
    except ValueError:
        return True


def is_deployed_or_deploying(model):
    """Whether a node holds the model, or is loading it, by the stored state (see :func:`is_served`)."""
    return model.get("model_state") in DEPLOYED_OR_DEPLOYING_STATES


class Deployment:
    """Which nodes serve a model, by each node's own profile, and which planned nodes do not.

    The stored state outlives the nodes' memory (after a restart it says DEPLOYED until ML Commons' sync
    job or redeploy catches up), so only a node's profile saying DEPLOYED counts as serving. Every live
    node is in the profile's answer (``{}`` when it knows nothing of the model). ``missing``: live planned
    nodes that do not serve it. ``unplanned``: live nodes outside the plan of a model deployed to all
    nodes, which ML Commons' sync job has not added yet (:func:`deployment` checks their eligibility).
    """

    def __init__(self, model, profile_nodes):
        model_id = model.get("model_id")
        self.state = model.get("model_state")
        self.planned = model.get("planning_worker_nodes")
        self.serving = sorted(node_id for node_id, node in profile_nodes.items()
                              if ((node.get("models") or {}).get(model_id) or {}).get("model_state") == "DEPLOYED")
        self.missing = sorted(set(self.planned or ()) & set(profile_nodes) - set(self.serving))
        to_all = self.planned is not None and model.get("deploy_to_all_nodes")
        self.unplanned = sorted(set(profile_nodes) - set(self.planned or ()) - set(self.serving)) if to_all else []

    def is_served(self, every_node=True):
        """Whether the model is deployed: on at least one node, and with ``every_node`` on every live
        planned node (without a plan, the stored state must be DEPLOYED).

        A stored DEPLOYING is believed no more than DEPLOYED: a node restarted while the model deployed
        can keep a deploy task while it serves the model, and the sync job then flips the state between
        the two. A node still loading the model reports it DEPLOYING in its profile.
        """
        if self.state not in SERVED_STATES | DEPLOYING_STATES or not self.serving:
            return False
        if not every_node:
            return True
        if self.planned is None:
            return self.state == "DEPLOYED"
        return not self.missing


def deployment(client, model):
    """The model's :class:`Deployment`; no request for a state in which no node can hold it."""
    if not model.get("model_id") or not is_deployed_or_deploying(model):
        return Deployment(model, {})
    model_id = model["model_id"]
    seen = Deployment(model, client.get("%s/%s" % (PROFILE_PATH, quote_id(model_id))).get("nodes") or {})
    if seen.unplanned and seen.state in SERVED_STATES:
        seen.missing = sorted(set(seen.missing) | set(eligible_among(client, seen.unplanned)))
    return seen


def as_list(value):
    """A list setting as _cluster/settings shows it: a JSON list, or text separated by commas."""
    if isinstance(value, (list, tuple)):
        return [str(item).strip() for item in value]
    return [item.strip() for item in str(value or "").strip("[]").split(",") if item.strip()]


def eligible_among(client, node_ids):
    """Those of ``node_ids`` to which ML Commons deploys a remote model (DiscoveryNodeHelper.getEligibleNodes)."""
    settings = effective_ml_settings(client)
    roles = set(as_list(settings.get(REMOTE_ROLES_SETTING, DEFAULT_REMOTE_ROLES)))
    excluded = set(as_list(settings.get(EXCLUDED_NAMES_SETTING)))
    nodes = client.get(NODES_PATH, query=NODE_ROLES_QUERY).get("nodes") or {}

    def is_eligible(node):
        node_roles = set(node.get("roles") or ())
        hot_data = "data" in node_roles and (node.get("attributes") or {}).get("box_type", "hot") == "hot"
        return node.get("name") not in excluded and (("data" in roles and hot_data) or bool(node_roles & (roles - {"data"})))

    return [node_id for node_id in node_ids if node_id in nodes and is_eligible(nodes[node_id])]


def is_served(client, model, every_node=True):
    """Whether the model is deployed (see :meth:`Deployment.is_served`)."""
    return deployment(client, model).is_served(every_node)


def node_names(client):
    """Node IDs to node names."""
    nodes = client.get(NODES_PATH, query=NODE_NAMES_QUERY).get("nodes") or {}
    return dict((node_id, node.get("name")) for node_id, node in nodes.items())


def with_names(node_ids, names):
    return [{"node_id": node_id, "name": names.get(node_id)} for node_id in node_ids]


def describe_nodes(client, node_ids):
    """``node_ids`` as dicts with ``node_id`` and ``name``; no request when there are none."""
    return with_names(node_ids, node_names(client)) if node_ids else []


def serving_nodes_of(client, models):
    """For each model ID, the nodes serving it (as :func:`describe_nodes`), in two requests at most."""
    candidates = [model for model in models if is_deployed_or_deploying(model)]
    profile_nodes = (client.get(PROFILE_PATH).get("nodes") or {}) if candidates else {}
    serving = dict((model["model_id"], Deployment(model, profile_nodes).serving) for model in models)
    names = node_names(client) if any(serving.values()) else {}
    return dict((model_id, with_names(node_ids, names)) for model_id, node_ids in serving.items())


def current_model(client, model_id):
    """The model as stored now; one that is gone fails the wait that asked for it."""
    model = get_by_id(client, MODEL, model_id)
    if model is None:
        raise MLCommonsError("Model %s disappeared while waiting for it." % model_id)
    return model


def deploy_task_error(client, model_id):
    """The error ML Commons recorded on the model's latest failed DEPLOY_MODEL task; None when none did."""
    tasks = search(client, TASK, [{"term": {"model_id": model_id}}, {"term": {"task_type": "DEPLOY_MODEL"}}])
    errors = [task.get("error") for task in tasks if task.get("error")]
    return errors[-1] if errors else None


def deploy_failure_reason(task_error):
    return task_error or "no reason recorded; see the OpenSearch log"


def wait_until_deployed(client, model_id, timeout):
    """Wait until a deploy of the model has settled: DEPLOYED or PARTIALLY_DEPLOYED (some nodes failed
    or were lost); DEPLOY_FAILED or the timeout fail with the model's state and the reason."""
    model, _polls = wait_until(
        lambda: current_model(client, model_id),
        lambda model: model.get("model_state") in SERVED_STATES or model.get("model_state") in DEPLOY_FAILED_STATES,
        timeout,
        interval=STATE_POLL_INTERVAL,
        describe=lambda model: "model %s is %s" % (model_id, model.get("model_state")),
    )
    if model.get("model_state") in DEPLOY_FAILED_STATES:
        task_error = deploy_task_error(client, model_id)
        raise DeployFailedError(
            "Deploying model %s failed (%s): %s" % (model_id, model["model_state"], deploy_failure_reason(task_error)),
            task_error=task_error, model_state=model["model_state"],
        )
    return model


def check_served(client, model, every_node):
    """Return ``model`` when it is served as wanted, else fail naming the nodes that do not serve it."""
    seen = deployment(client, model)
    if seen.is_served(every_node):
        return model
    model_id = model["model_id"]
    raise PartialDeploymentError(
        "Model %s is %s: served by %s, not by %s: %s. A run after the cause is fixed deploys it again; "
        "deployed_on: any_node accepts a model that some nodes serve."
        % (model_id, model.get("model_state"), ", ".join(seen.serving) or "no node", ", ".join(seen.missing) or "its planned nodes",
           deploy_failure_reason(deploy_task_error(client, model_id))),
        model_state=model.get("model_state"), serving_nodes=seen.serving, missing_nodes=seen.missing,
    )


def is_retriable_deploy_failure(error):
    """Another deploy got in the way (by ML Commons' answer or its task's error), or some nodes do not
    serve the model yet (a node was lost or came back while it deployed): both are worth another deploy."""
    if isinstance(error, DeployFailedError):
        return answers.is_deploy_collision(error.task_error)
    return isinstance(error, PartialDeploymentError) or answers.is_version_conflict(error)


def deploy(client, model_id, timeout, every_node=True):
    """Deploy and wait until the model is served: by every live planned node, or with ``every_node`` false by
    one. Returns the model and whether a deploy or undeploy was sent (one ML Commons had under way is
    only waited for).

    Deploying is idempotent, so a deploy whose answer was lost is sent again. Two deploys of one model
    collide (409, or a task failed as a duplicate, with the model DEPLOY_FAILED while the first goes on):
    a deploy under way is waited for rather than doubled, and a collision or a partial deploy is followed
    by a fresh look and another deploy.
    """
    deadline = time.monotonic() + timeout
    sent = []

    def send(action):
        client.request("POST", MODEL.path(model_id) + "/" + action, idempotent=True)
        sent.append(action)

    def attempt(number):
        if number > 1:
            model = current_model(client, model_id)
            if is_served(client, model, every_node):
                return model
            if number > 2 and model.get("model_state") in DEPLOY_FAILED_STATES | SERVED_STATES:
                # A node can keep a failed deploy as under way and refuse every later one as a duplicate
                # (MLModelCacheHelper.initModelState, 2.19 after a restart); an undeploy clears it.
                send("_undeploy")
        if current_model(client, model_id).get("model_state") not in DEPLOYING_STATES:
            send("_deploy")
        model = wait_until_deployed(client, model_id, max(deadline - time.monotonic(), 1))
        return check_served(client, model, every_node)

    model = retry(attempt, is_retriable_deploy_failure, DEPLOY_ATTEMPTS, lambda number: number * 2, deadline)
    if every_node and model.get("model_state") != "DEPLOYED":
        model = stored_as_deployed(client, model_id, min(deadline - time.monotonic(), SYNC_CATCH_UP_SECONDS))
    return model, bool(sent)


def stored_as_deployed(client, model_id, timeout):
    """The model once its stored state says DEPLOYED, as every planned node serves it: ML Commons' sync job
    can store a state it read while the deploy was under way (PARTIALLY_DEPLOYED, DEPLOYING), and its
    next round corrects it. Past ``timeout`` the model as stored."""
    try:
        return wait_until(lambda: current_model(client, model_id), lambda seen: seen.get("model_state") == "DEPLOYED",
                          max(timeout, 0), interval=STATE_POLL_INTERVAL * 5)[0]
    except WaitTimeoutError as error:
        return error.last


def undeploy(client, model_id, timeout):
    """Undeploy and wait until no node holds the model: 2.19+ answers {} for a model no node holds, so
    the state is read back."""
    client.post(MODEL.path(model_id) + "/_undeploy")
    model, _polls = wait_until(
        lambda: current_model(client, model_id),
        lambda model: not is_deployed_or_deploying(model),
        timeout,
        interval=STATE_POLL_INTERVAL,
        describe=lambda model: "model %s is %s" % (model_id, model.get("model_state")),
    )
    return model
