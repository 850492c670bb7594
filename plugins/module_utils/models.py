# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Model operations several modules need: who uses a connector, deploy and undeploy with waiting."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.opensearch.ml_commons.plugins.module_utils.errors import MLCommonsError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.resource import MODEL, TASK, get_by_id, search
from ansible_collections.opensearch.ml_commons.plugins.module_utils.wait import wait_until

# States in which a node holds the model; the pre-2.7 names still appear on upgraded clusters.
DEPLOYED_STATES = frozenset(("DEPLOYED", "PARTIALLY_DEPLOYED", "DEPLOYING", "LOADED", "PARTIALLY_LOADED", "LOADING"))
DEPLOY_FAILED_STATES = frozenset(("DEPLOY_FAILED", "LOAD_FAILED"))


def describe_models(models):
    return ", ".join("%s (%s)" % (model["model_id"], model.get("name")) for model in models)


def models_using_connector(client, connector_id):
    """Models registered with ``connector_id``.

    ``connector_id`` has no explicit mapping in the model index (a text field), so the query
    is a ``match``, as ML Commons' own check does, and exact equality is checked here.
    """
    candidates = search(client, MODEL, [{"match": {"connector_id": connector_id}}])
    return [model for model in candidates if model.get("connector_id") == connector_id]


def is_deployed(model):
    return model.get("model_state") in DEPLOYED_STATES


def model_state(client, model_id):
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
        lambda: model_state(client, model_id),
        lambda model: model.get("model_state") == "DEPLOYED" or model.get("model_state") in DEPLOY_FAILED_STATES,
        timeout,
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
    """
    client.request("POST", MODEL.path(model_id) + "/_deploy", idempotent=True)
    return wait_until_deployed(client, model_id, timeout)


def undeploy(client, model_id, timeout):
    """Undeploy and wait until no node holds the model.

    A 200 answer alone proves nothing (2.19+ answers {} for a model no node holds), so the
    state is read back.
    """
    client.post(MODEL.path(model_id) + "/_undeploy")
    model, _polls = wait_until(
        lambda: model_state(client, model_id),
        lambda model: not is_deployed(model),
        timeout,
        describe=lambda model: "model %s is %s" % (model_id, model.get("model_state")),
    )
    return model
