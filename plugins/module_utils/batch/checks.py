# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What must hold before a batch job is sent, each refused with what to do about it: a remote model
with a batch_predict action, batch inference enabled, a model ML Commons can deploy, a task to follow."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch.identity import connector_action
from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch.jobs import BATCH_TASK_TYPE, FIRST_BATCH_VERSION, FIRST_TASK_VERSION
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError, HTTPError, MLCommonsError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.cluster import effective_ml_settings
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.models import interface_parts_refusing_batch, is_deployed_or_deploying
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import CONNECTOR, MODEL, get_by_id

BATCH_ENABLED_SETTING = "plugins.ml_commons.offline_batch_inference_enabled"
AUTO_DEPLOY_SETTING = "plugins.ml_commons.model_auto_deploy.enable"


def load_model(client, model_id):
    """The model and its connector; clear failures for what cannot run a batch job."""
    if client.server_version < FIRST_BATCH_VERSION:
        raise ConfigurationError("Offline batch inference needs OpenSearch 2.16 or later; this cluster runs %s." % (client.server_version,))
    model = get_by_id(client, MODEL, model_id)
    if model is None:
        raise MLCommonsError("No model has the ID %s." % model_id)
    if str(model.get("algorithm", "")).upper() != "REMOTE":
        raise MLCommonsError("Model %s is a %s model; batch inference needs a remote model." % (model_id, model.get("algorithm")))
    connector = model.get("connector")
    if connector is None:
        connector = get_by_id(client, CONNECTOR, model.get("connector_id"))
        if connector is None:
            raise MLCommonsError("Model %s uses connector %s, which does not exist." % (model_id, model.get("connector_id")))
    return model, connector


def cluster_settings(client):
    """The ML Commons settings, or {} when this user may not read cluster settings (the server then says what is wrong)."""
    try:
        return effective_ml_settings(client)
    except HTTPError as error:
        if error.status in (401, 403):
            return {}
        raise


def check_can_submit(module, client, model, connector):
    model_id = model["model_id"]
    batch_action = connector_action(connector, "BATCH_PREDICT")
    if batch_action is None:
        raise MLCommonsError(
            "Model %s's connector %s has no batch_predict action, so ML Commons cannot submit a batch job for it. "
            "Add one (opensearch.ml_commons.ml_connector)." % (model_id, connector.get("connector_id") or model.get("connector_id"))
        )
    refusing = interface_parts_refusing_batch(client.server_version, model)
    if refusing:
        raise MLCommonsError(
            "ML Commons %s would refuse every batch job of model %s: it checks a batch job against the %s schema of the "
            "model's interface, which are a prediction's, and answers 'Error validating ... schema'. The output check comes "
            "after the provider created the job, which then runs with no task in OpenSearch to find it by; the input check "
            "is opensearch-project/ml-commons#4080, fixed in 3.3. ML Commons attached that interface at register, as it does "
            "for some Bedrock models. Give the model empty schemas (opensearch.ml_commons.ml_model with interface: "
            "{input: '{}', output: '{}'}), or register it again with opensearch.ml_commons.ml_model, which gives a model with "
            "a batch_predict action an empty interface." % (client.server_version, model_id, " and ".join(refusing))
        )
    predict_action = connector_action(connector, "PREDICT") or {}
    if batch_action.get("headers") and batch_action.get("headers") != predict_action.get("headers"):
        module.warn(
            "ML Commons sends the predict action's headers with every call to the provider, batch_predict included, not the "
            "batch_predict action's own: give model %s's connector a predict action with the same headers, or the provider "
            "may refuse the job (for example a 401 without the Authorization header)." % model_id
        )
    settings = cluster_settings(client)
    if str(settings.get(BATCH_ENABLED_SETTING, "true")).lower() == "false":
        raise MLCommonsError(
            "Batch inference is disabled on this cluster: set the cluster setting %s to true." % BATCH_ENABLED_SETTING
        )
    if not is_deployed_or_deploying(model):
        if str(settings.get(AUTO_DEPLOY_SETTING, "true")).lower() == "false":
            raise MLCommonsError(
                "Model %s is not deployed (%s), and ML Commons deploys models on first use only when %s is true. "
                "Deploy it first (opensearch.ml_commons.ml_model, state: deployed)." % (model_id, model.get("model_state"), AUTO_DEPLOY_SETTING)
            )
        module.warn("Model %s is not deployed (%s); ML Commons deploys it for this job (%s)." % (model_id, model.get("model_state"), AUTO_DEPLOY_SETTING))


def check_keeps_tasks(client):
    if client.server_version < FIRST_TASK_VERSION:
        raise ConfigurationError(
            "ML Commons %s keeps no task for batch jobs, so it cannot tell them apart, wait for them or cancel them: use "
            "task-less single jobs, and cancel them at the provider." % (client.server_version,)
        )


def check_is_batch_task_of(task, task_id, model_id):
    if task is None:
        raise MLCommonsError("No task has the ID %s." % task_id)
    if task.get("task_type") != BATCH_TASK_TYPE:
        raise MLCommonsError("Task %s is a %s task, not a batch job." % (task_id, task.get("task_type")))
    if task.get("model_id") != model_id:
        raise MLCommonsError("Task %s is a batch job of model %s, not of model %s." % (task_id, task.get("model_id"), model_id))
