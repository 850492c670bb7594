#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ml_model
short_description: Register, deploy, update, undeploy or delete an ML Commons remote model
version_added: 0.1.0
description:
  - Manages a remote model, a model that ML Commons serves by calling a connector, in a model group.
  - The model is found by O(model_id), or else by its exact O(name) inside O(model_group_id). ML Commons does not keep
    model names unique; when several models match, the module fails and lists them.
  - V(deployed) registers the model when missing and deploys it; V(present) registers it and leaves deployment as it is;
    V(undeployed) registers it if needed and makes sure no node serves it; V(absent) undeploys it if needed and deletes it.
  - With V(deployed), a model counts as deployed only when nodes serve it by their own answer to the profile API, not by
    its stored state alone. After a restart ML Commons still stores C(DEPLOYED) for a model no node holds until its own
    jobs catch up; such a model is deployed again. Which nodes must serve it is O(deployed_on).
  - Fields you set that differ (description, connector, the optional fields) are corrected with the update API, which
    ML Commons applies to a deployed model at once. A run that finds everything as wanted sends no write request.
author:
  - opensearch.ml_commons maintainers (!UNKNOWN)
extends_documentation_fragment:
  - opensearch.ml_commons.connection
  - opensearch.ml_commons.attributes
options:
  name:
    description:
      - The model's name. Required unless O(model_id) is given. With O(model_id), renames the model.
      - At most 256 characters, of letters, digits, spaces and basic punctuation (the rule of ML Commons 3.1 and later,
        applied on every version).
    type: str
  model_id:
    description:
      - The ID of an existing model to manage.
    type: str
  model_group_id:
    description:
      - The model group the model belongs to; required to register a model. The module never lets ML Commons create
        a group on its own (it would, named after the model, when no group is given).
      - With O(model_id), a different group moves the model there.
    type: str
  connector_id:
    description:
      - The connector the model calls; required to register a model. A different one re-points the model.
    type: str
  description:
    description:
      - The model's description.
    type: str
  function_name:
    description:
      - The kind of model. Only remote models are supported.
    type: str
    choices: [remote]
    default: remote
  rate_limiter:
    description:
      - Request rate limit for the model, with the keys C(limit) (for example C(4)) and C(unit) (for example C(MINUTES)).
    type: dict
  interface:
    description:
      - Input and output JSON schemas for the model (C(input), C(output)).
      - Left out, ML Commons may attach a preset one at register (to some Bedrock models), a prediction's schemas. It
        checks batch jobs against it too (the answer on every version, the request before 3.3,
        opensearch-project/ml-commons#4080) and refuses them all, so the module registers a model whose connector has a
        C(batch_predict) action with an empty interface. A registered model's interface cannot be removed (an update with
        V({}) keeps it); one whose C(input) and C(output) are the empty schema V({}) accepts any job.
    type: dict
  guardrails:
    description:
      - Guardrails that check the model's input and output.
    type: dict
  is_enabled:
    description:
      - Whether the model accepts predictions.
    type: bool
  state:
    description:
      - The state the model should be in.
    type: str
    choices: [deployed, present, undeployed, absent]
    default: deployed
  wait:
    description:
      - Wait until a deploy or undeploy has finished. A deploy that ends in C(DEPLOY_FAILED), or does not finish within
        O(wait_timeout), fails with the model's state and ML Commons' reason.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait with O(wait).
    type: int
    default: 300
  deployed_on:
    description:
      - Which nodes must serve the model for V(deployed), on a cluster of several nodes.
      - V(every_node) is what ML Commons itself calls C(DEPLOYED). A deploy goes to every eligible node (nodes with the
        C(data) or C(ml) role, by the setting C(plugins.ml_commons.task_dispatcher.eligible_node_role.remote_model));
        ML Commons keeps their IDs in the model's C(planning_worker_nodes). The model must be served by each of them
        that is in the cluster; a planned node that left does not count. A model deployed to chosen nodes only (with
        the deploy API's C(node_ids)) must be served by those. A model that is C(PARTIALLY_DEPLOYED) (a node
        failed to load it, or came back or joined after the deploy) is deployed again, which loads it on the nodes that
        lack it; when some nodes still do not serve it after a few tries the task fails naming them and ML Commons' reason.
      - V(any_node) accepts a model that at least one node serves, C(PARTIALLY_DEPLOYED) included. ML Commons routes
        predictions to the nodes that serve the model, so it works, with less capacity and no redundancy.
      - On a single node both are the same.
    type: str
    choices: [every_node, any_node]
    default: every_node
notes:
  - "On a cluster: ML Commons' sync job (every C(plugins.ml_commons.sync_up_job_interval_in_seconds), 10 s by default)
    marks a model C(PARTIALLY_DEPLOYED) when fewer nodes serve it than are eligible, and C(DEPLOY_FAILED) when none does.
    When a node joins or comes back, the elected cluster manager redeploys the models by itself
    (C(plugins.ml_commons.model_auto_redeploy.enable)), at most C(plugins.ml_commons.model_auto_redeploy.lifetime_retry_times)
    times per model; a run of this module does not count on it and deploys what it finds missing. A deploy ML Commons
    has under way (the model C(DEPLOYING)) is waited for, not sent again, and is no change of this run. A node that is back
    before the sync job put it in the model's C(planning_worker_nodes) counts as one that must serve the model when ML
    Commons would deploy to it (by its roles and the settings above, and C(plugins.ml_commons.exclude_nodes._name))."
  - V(undeployed) and V(absent) undeploy the model from every node of the cluster.
"""

EXAMPLES = r"""
- name: The remote model of the batch inference blueprint, deployed
  opensearch.ml_commons.ml_model:
    name: OpenAI model for realtime embedding and offline batch inference
    function_name: remote
    model_group_id: "{{ group.model_group_id }}"
    connector_id: "{{ connector.connector_id }}"
    description: OpenAI text embedding model
  register: model

- name: Point it at another connector (applied to the deployed model at once)
  opensearch.ml_commons.ml_model:
    model_id: "{{ model.model_id }}"
    connector_id: "{{ new_connector.connector_id }}"

- name: Undeploy and delete it
  opensearch.ml_commons.ml_model:
    model_id: "{{ model.model_id }}"
    state: absent
"""

RETURN = r"""
model_id:
  description: The model's ID; null when it does not exist (after V(absent), or a register in check mode).
  returned: always
  type: str
  sample: lyjxwZABNrAVdFa9zrcZ
model:
  description: The model as ML Commons stores it, with its ID; empty when it does not exist.
  returned: always
  type: dict
  sample:
    model_id: lyjxwZABNrAVdFa9zrcZ
    name: OpenAI model for realtime embedding and offline batch inference
    algorithm: REMOTE
    model_group_id: IMobmY8B8aiZvtEZeO_i
    connector_id: XU5UiokBpXT9icfOM0vt
    model_state: DEPLOYED
model_state:
  description: The model's state after the task, for example C(DEPLOYED) or C(REGISTERED); null when it does not exist.
  returned: always
  type: str
  sample: DEPLOYED
task_id:
  description: The ID of the register task, when the module registered the model.
  returned: always
  type: str
  sample: rMormY8B8aiZvtEZIO_j
redeployed:
  description: Whether the model was undeployed and deployed again so that an update takes effect.
  returned: always
  type: bool
serving_nodes:
  description:
    - The nodes that serve the model by their own answer to the profile API, after the task; empty when none does or
      the model does not exist. In check mode, the nodes serving it now (none for a predicted undeploy).
  returned: always
  type: list
  elements: dict
  contains:
    node_id:
      description: The node's ID.
      type: str
    name:
      description: The node's name.
      type: str
  sample:
    - node_id: 4jKpG2wWRgWz3VJ1xk0wWg
      name: ml-testbed-0
    - node_id: Zp0sIhJUSuCc1j4Jd7Xy2Q
      name: ml-testbed-1
diff:
  description: The model before and after, in diff mode.
  returned: when diff mode is on
  type: dict
"""

import random

from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons import answers
from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch.identity import connector_action
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import as_server_string, changed_fields
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError, HTTPError, MLCommonsError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.models import (
    DEPLOYING_STATES,
    deploy,
    deployment,
    describe_nodes,
    is_deployed_or_deploying,
    undeploy,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import MLCommonsModule
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import (
    CONNECTOR,
    MODEL,
    MODEL_GROUP,
    Writer,
    find_by_name,
    get_by_id,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.validation import check_name, check_safe_text
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.wait import retry

UPDATABLE_FIELDS = ("name", "description", "model_group_id", "connector_id", "rate_limiter", "interface", "guardrails", "is_enabled")
SERVING_PROTOCOLS = ("http", "aws_sigv4")
SERVING_ACTIONS = ("PREDICT", "BATCH_PREDICT")


# How often a register that lost the race for the group's version is tried.
REGISTER_CONFLICT_ATTEMPTS = 6


def desired_fields(params):
    return dict((name, params[name]) for name in UPDATABLE_FIELDS if params[name] is not None)


def normalize(name, value):
    """ML Commons keeps the rate limiter's values as strings ("4", "MINUTES")."""
    if name == "rate_limiter" and isinstance(value, dict):
        return dict((key, as_server_string(item)) for key, item in value.items())
    return value


def find_model(client, params):
    if params["model_id"]:
        model = get_by_id(client, MODEL, params["model_id"])
        if model is None and params["state"] != "absent":
            raise MLCommonsError("No model has the ID %s. Leave model_id out to register a model by name." % params["model_id"])
        return model
    filters = [{"term": {"model_group_id": params["model_group_id"]}}] if params["model_group_id"] else []
    return find_by_name(client, MODEL, params["name"], filters)


def check_can_register(client, params):
    """Clear failures, before writing, for what ML Commons would refuse with a less helpful message; returns the connector."""
    for required in ("model_group_id", "connector_id"):
        if not params[required]:
            raise ConfigurationError("Registering model %r needs %s." % (params["name"], required))
    if get_by_id(client, MODEL_GROUP, params["model_group_id"]) is None:
        raise MLCommonsError("No model group has the ID %s. Create it first (opensearch.ml_commons.ml_model_group)." % params["model_group_id"])
    return check_connector_serves_models(client, params["connector_id"])


def check_connector_serves_models(client, connector_id):
    connector = get_by_id(client, CONNECTOR, connector_id)
    if connector is None:
        raise MLCommonsError("No connector has the ID %s. Create it first (opensearch.ml_commons.ml_connector)." % connector_id)
    if connector.get("protocol") not in SERVING_PROTOCOLS:
        raise MLCommonsError(
            "Connector %s uses the protocol %s, which cannot serve a model; use an http or aws_sigv4 connector."
            % (connector_id, connector.get("protocol"))
        )
    action_types = set(str(action.get("action_type", "")).upper() for action in connector.get("actions") or [])
    if not action_types & set(SERVING_ACTIONS):
        raise MLCommonsError(
            "Connector %s has no predict or batch_predict action, so no model can use it. Add one (opensearch.ml_commons.ml_connector)."
            % connector_id
        )
    return connector


def register(module, writer, wanted, connector):
    """Register (never with ?deploy=true: a duplicate from a concurrent run must be deletable), once
    however many runs register it at the same moment; returns the model and the register's task ID
    (None when another run's model stands)."""
    client = writer.client
    params = module.params
    body = dict(wanted, function_name=params["function_name"])
    if "interface" not in body and connector_action(connector, "BATCH_PREDICT"):
        # An interface given, even empty, keeps ML Commons from attaching its preset one, which would refuse every batch job.
        body["interface"] = {}

    def register_model():
        # Each register bumps the group's latest_version under optimistic locking: concurrent registers
        # into one group get a 409 before anything is written, and may simply try again (at spread
        # moments, so that they do not collide again).
        return retry(lambda _number: client.post(MODEL.create_path, body=body), answers.is_version_conflict,
                     REGISTER_CONFLICT_ATTEMPTS, lambda number: random.uniform(0.2, 0.6) * number)

    model = writer.create(body, params["name"], [{"term": {"model_group_id": params["model_group_id"]}}], send=register_model)
    answer = writer.answer or {}
    return model, answer.get("task_id") if answer.get("model_id") == model["model_id"] else None


def apply_changes(module, writer, model, changes):
    """Send the changes; returns the model after them and whether it had to be redeployed for them
    to take effect."""
    try:
        return writer.update(model, changes), False
    except HTTPError as error:
        if not answers.is_model_cache_not_updated(error):
            raise
    # Stored, but a node still serves the old version: a redeploy makes every node load the new one.
    timeout = module.params["wait_timeout"]
    undeploy(writer.client, model["model_id"], timeout)
    deploy(writer.client, model["model_id"], timeout, every_node(module))
    return get_by_id(writer.client, MODEL, model["model_id"]), True


def every_node(module):
    return module.params["deployed_on"] == "every_node"


def converge_deployment(module, client, model):
    """Deploy or undeploy as ``state`` asks; returns the model after it, whether anything was done, and
    the IDs of the nodes serving it when they are known without another look (else None)."""
    state = module.params["state"]
    model_id = model["model_id"]
    seen = deployment(client, model) if state == "deployed" else None
    known_serving = seen.serving if seen else None
    if state == "deployed" and not seen.is_served(every_node(module)):
        action, settled = "_deploy", "DEPLOYED"
    elif state == "undeployed" and is_deployed_or_deploying(model):
        action, settled, known_serving = "_undeploy", "UNDEPLOYED", []
    else:
        return model, False, known_serving
    if module.check_mode:
        # A deploy ML Commons has under way (its redeploy after a restart) is only waited for.
        return dict(model, model_state=settled), model.get("model_state") not in DEPLOYING_STATES, known_serving
    timeout = module.params["wait_timeout"]
    if not module.params["wait"]:
        client.post(MODEL.path(model_id) + "/" + action)
        return get_by_id(client, MODEL, model_id), True, None
    if action == "_deploy":
        model, sent = deploy(client, model_id, timeout, every_node(module))
        return model, sent, None
    return undeploy(client, model_id, timeout), True, []


class ModelWriter(Writer):
    def result(self, changed, before, after, task_id=None, redeployed=False, serving=None):
        """The module's result; ``serving`` are the IDs of the nodes serving the model, read here when None."""
        if serving is None:
            serving = deployment(self.client, after).serving if after and after.get("model_id") else []
        return super(ModelWriter, self).result(changed, before, after, model_state=(after or {}).get("model_state"), task_id=task_id,
                                               redeployed=redeployed, serving_nodes=describe_nodes(self.client, serving))


def ensure_absent(module, writer, model):
    if model is None:
        return writer.result(False, None, None)
    if not module.check_mode and is_deployed_or_deploying(model):
        undeploy(writer.client, model["model_id"], module.params["wait_timeout"])
    writer.delete(model)
    return writer.result(True, model, None)


def ensure_present(module, writer, model):
    client = writer.client
    wanted = desired_fields(module.params)
    if model is None:
        # In check mode the group or connector may be one an earlier task only predicted (no ID yet).
        predicted_dependencies = module.check_mode and not (module.params["model_group_id"] and module.params["connector_id"])
        connector = None if predicted_dependencies else check_can_register(client, module.params)
        if module.check_mode:
            state = "DEPLOYED" if module.params["state"] == "deployed" else "REGISTERED"
            return writer.result(True, None, dict(wanted, model_id=None, model_state=state))
        registered, task_id = register(module, writer, wanted, connector)
        created, _sent, serving = converge_deployment(module, client, registered)
        return writer.result(True, None, created, task_id=task_id, serving=serving)

    changes = dict((name, wanted[name]) for name in changed_fields(wanted, model, normalize))
    if "connector_id" in changes:
        check_connector_serves_models(client, changes["connector_id"])
    redeployed = False
    after = model
    if changes:
        after, redeployed = apply_changes(module, writer, model, changes)
    after, deployment_changed, serving = converge_deployment(module, client, after)
    return writer.result(bool(changes) or deployment_changed, model, after, redeployed=redeployed, serving=serving)


def validate(params):
    if params["name"] is not None:
        check_name(params["name"], "model")
    check_safe_text("description", params["description"], "model")


def run(module, client):
    validate(module.params)
    model = find_model(client, module.params)
    writer = ModelWriter(client, MODEL, module.check_mode)
    if module.params["state"] == "absent":
        return ensure_absent(module, writer, model)
    return ensure_present(module, writer, model)


ARGUMENT_SPEC = dict(
    name=dict(type="str"),
    model_id=dict(type="str"),
    model_group_id=dict(type="str"),
    connector_id=dict(type="str"),
    description=dict(type="str"),
    function_name=dict(type="str", choices=["remote"], default="remote"),
    rate_limiter=dict(type="dict"),
    interface=dict(type="dict"),
    guardrails=dict(type="dict"),
    is_enabled=dict(type="bool"),
    state=dict(type="str", choices=["deployed", "present", "undeployed", "absent"], default="deployed"),
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=300),
    deployed_on=dict(type="str", choices=["every_node", "any_node"], default="every_node"),
)


def main():
    MLCommonsModule(argument_spec=ARGUMENT_SPEC, required_one_of=[("name", "model_id")]).execute(run)


if __name__ == "__main__":
    main()
