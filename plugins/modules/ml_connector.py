#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ml_connector
short_description: Create, update or delete an ML Commons connector to a remote model
version_added: 0.1.0
description:
  - Manages a standalone connector, which tells ML Commons how to call a remote model service (OpenAI, Amazon Bedrock,
    SageMaker, Cohere, ...) for real-time C(predict) and offline C(batch_predict) requests.
  - The connector is found by O(connector_id), or else by its exact O(name). ML Commons does not keep connector names
    unique; when several connectors have the name and no O(connector_id) is given, the module fails and lists their IDs.
  - V(present) creates the connector when missing and otherwise updates it only when a field you set differs, after
    normalising what ML Commons changes on storage (action types upper-cased, parameter values stored as strings,
    absent and empty treated alike). A run that finds everything as wanted sends no write request.
  - V(absent) deletes the connector; while models still use it, the module fails and lists them.
author:
  - opensearch.ml_commons maintainers (!UNKNOWN)
extends_documentation_fragment:
  - opensearch.ml_commons.connection
  - opensearch.ml_commons.attributes
options:
  name:
    description:
      - The connector's name. Required unless O(connector_id) is given.
      - At most 256 characters, of letters, digits, spaces and basic punctuation (period, comma, exclamation and
        question marks, parentheses, colon, at sign, hyphen, underscore, slash and quotes), the rule of ML Commons 3.1
        and later, applied on every version.
    type: str
  connector_id:
    description:
      - The ID of an existing connector to manage. With it, O(name) may change the connector's name.
    type: str
  description:
    description:
      - The connector's description. Same characters as O(name).
    type: str
  version:
    description:
      - The connector's version, stored as a string. Required to create a connector.
    type: str
  protocol:
    description:
      - How ML Commons calls the remote service. V(aws_sigv4) signs requests with the credential's AWS keys.
      - Required to create a connector.
    type: str
    choices: [http, aws_sigv4]
  parameters:
    description:
      - Values the actions' C(${parameters.*}) placeholders use. ML Commons stores every value as a string
        (numbers, booleans and objects as JSON text); the comparison does the same.
      - ML Commons (2.16 and later) merges parameters on update, so a key cannot be removed in place. When the
        connector holds keys that O(parameters) no longer has, the module fails and names them, unless
        O(recreate_on_parameter_removal=true).
    type: dict
  credential:
    description:
      - Secrets the actions use as C(${credential.*}), such as C(openAI_key), or C(access_key) and C(secret_key)
        for V(aws_sigv4). ML Commons encrypts them and never returns them.
      - Because they cannot be read back, they never cause a change with O(update_credential=on_create);
        with O(update_credential=always) they are sent on every run and the task reports a change.
      - Never logged, returned or shown in a diff.
    type: dict
  update_credential:
    description:
      - V(on_create) sends O(credential) only when the connector is created.
      - V(always) sends it on every run, so a rotated key reaches the server; the task then always reports a change.
    type: str
    choices: [on_create, always]
    default: on_create
  actions:
    description:
      - The requests ML Commons sends to the remote service, one per action type. They replace the stored list whole.
    type: list
    elements: dict
    suboptions:
      action_type:
        description:
          - What the action serves. V(predict) and V(batch_predict) answer the C(_predict) and C(_batch_predict) APIs;
            V(batch_predict_status) and V(cancel_batch_predict) let ML Commons follow and cancel batch jobs.
        type: str
        required: true
        choices: [predict, batch_predict, batch_predict_status, cancel_batch_predict]
      method:
        description:
          - The HTTP method, for example C(POST) or C(GET).
        type: str
        required: true
      url:
        description:
          - The URL to call; may hold C(${parameters.*}) placeholders. It must match the cluster's
            C(plugins.ml_commons.trusted_connector_endpoints_regex).
        type: str
        required: true
      headers:
        description:
          - HTTP headers; reference secrets as C(${credential.name}), never literally.
        type: dict
      request_body:
        description:
          - The request body template. A string is sent as it is (it may hold unquoted C(${parameters.input}));
            a dict is serialised to JSON by the module.
        type: raw
      pre_process_function:
        description:
          - A built-in function such as C(connector.pre_process.openai.embedding), or a Painless script.
        type: str
      post_process_function:
        description:
          - A built-in function such as C(connector.post_process.openai.embedding), or a Painless script.
        type: str
  client_config:
    description:
      - HTTP client settings for the remote calls, for example C(max_connection), C(connection_timeout),
        C(read_timeout), C(max_retry_times). Only the keys you set are compared.
    type: dict
  access_mode:
    description:
      - Who may use the connector. Needs the Security plugin with connector access control enabled; the module fails
        before writing when it is off.
    type: str
    choices: [public, private, restricted]
  backend_roles:
    description:
      - Backend roles that may use the connector. Needs connector access control.
    type: list
    elements: str
  add_all_backend_roles:
    description:
      - Give access to all backend roles of the calling user. Needs connector access control.
    type: bool
  redeploy_models:
    description:
      - ML Commons refuses to update a connector while a deployed model uses it.
      - With V(false), the module fails and lists those models. With V(true), it undeploys them, updates the
        connector, deploys them again and waits until they are C(DEPLOYED), and returns them in RV(redeployed_models).
      - On a cluster the models are undeployed from every node and deployed again to every eligible node; the wait ends
        when each eligible node in the cluster serves them by its own profile, as with O(opensearch.ml_commons.ml_model#module:deployed_on=every_node).
      - ML Commons may also count deployed models of other connectors as users (see the notes). It refuses the update
        while they are deployed, so with V(true) they are cycled too, and a warning names them.
    type: bool
    default: false
  recreate_on_parameter_removal:
    description:
      - When O(parameters) drops a key the connector holds, which ML Commons cannot remove in place, create a new
        connector, point every model that used the old one at it, and delete the old one.
      - The connector ID changes; models keep their IDs.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for each model to undeploy or deploy during O(redeploy_models).
    type: int
    default: 300
  state:
    description:
      - Whether the connector should exist.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Credentials are write-only in ML Commons, so O(update_credential) decides when they are sent; the diff never
    shows them.
  - Before it updates or deletes a connector, ML Commons (2.19 to 3.6) looks for the models that use it with a match
    query on the models' C(connector_id), which matches any part of an ID between hyphens. IDs made on one node within
    a minute or so can share such a part, so ML Commons may refuse because of models of another connector. The module
    names those models and their connectors in its message, and check mode predicts the same refusal.
"""

EXAMPLES = r"""
- name: The OpenAI connector of the batch inference blueprint
  opensearch.ml_commons.ml_connector:
    name: OpenAI Embedding model
    description: OpenAI embedding model for testing offline batch
    version: "1"
    protocol: http
    parameters:
      model: text-embedding-ada-002
      input_file_id: file-YbowBByiyVJN89oSZo2Enu9W
      endpoint: /v1/embeddings
    credential:
      openAI_key: "{{ openai_api_key }}"
    actions:
      - action_type: predict
        method: POST
        url: https://api.openai.com/v1/embeddings
        headers:
          Authorization: Bearer ${credential.openAI_key}
        request_body: '{ "input": ${parameters.input}, "model": "${parameters.model}" }'
        pre_process_function: connector.pre_process.openai.embedding
        post_process_function: connector.post_process.openai.embedding
      - action_type: batch_predict
        method: POST
        url: https://api.openai.com/v1/batches
        headers:
          Authorization: Bearer ${credential.openAI_key}
        request_body:
          input_file_id: ${parameters.input_file_id}
          endpoint: ${parameters.endpoint}
          completion_window: 24h
  register: connector

- name: Rotate the key (sent every run, so this task always reports a change)
  opensearch.ml_commons.ml_connector:
    connector_id: "{{ connector.connector_id }}"
    credential:
      openAI_key: "{{ new_openai_api_key }}"
    update_credential: always
    redeploy_models: true

- name: Delete it (fails, listing them, while models use it)
  opensearch.ml_commons.ml_connector:
    name: OpenAI Embedding model
    state: absent
"""

RETURN = r"""
connector_id:
  description: The connector's ID; null when it does not exist (after V(absent), or a create in check mode).
  returned: always
  type: str
  sample: XU5UiokBpXT9icfOM0vt
connector:
  description: The connector as ML Commons stores it, with its ID and without credentials; empty when it does not exist.
  returned: always
  type: dict
  sample:
    connector_id: XU5UiokBpXT9icfOM0vt
    name: OpenAI Embedding model
    version: "1"
    protocol: http
    parameters:
      model: text-embedding-ada-002
    actions:
      - action_type: PREDICT
        method: POST
        url: https://api.openai.com/v1/embeddings
redeployed_models:
  description:
    - The IDs of the models undeployed and deployed again around the update (O(redeploy_models)), including models of
      other connectors that ML Commons counted as users.
  returned: always
  type: list
  elements: str
  sample: [lyjxwZABNrAVdFa9zrcZ]
repointed_models:
  description: The IDs of the models moved to the new connector (O(recreate_on_parameter_removal)).
  returned: always
  type: list
  elements: str
diff:
  description: The connector before and after, without credentials, in diff mode.
  returned: when diff mode is on
  type: dict
"""

from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.cluster import ACCESS_FIELDS, require_access_control
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.connectors import (
    delete_refused,
    differing_fields,
    false_match_reason,
    false_users,
    models_matching_connector,
    models_named_in,
    models_using_connector,
    removed_parameters,
    replacement_body,
    request_actions,
    update_refused,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError, HTTPError, MLCommonsError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.models import deploy, is_deployed_or_deploying, undeploy
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import MLCommonsModule
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import CONNECTOR, MODEL, Writer, find_by_name, get_by_id, not_the_object
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.validation import check_connector_actions, check_name, check_safe_text
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.wait import wait_until


class ConnectorWriter(Writer):
    def result(self, changed, before, after, redeployed_models=(), repointed_models=()):
        return super(ConnectorWriter, self).result(changed, before, after, redeployed_models=list(redeployed_models),
                                                   repointed_models=list(repointed_models))


def desired_fields(params):
    """What the user asks for, in the field names of the create and update APIs (credential excluded)."""
    wanted = dict((name, params[name]) for name in ("name", "description", "version", "protocol", "parameters", "client_config") + ACCESS_FIELDS
                  if params[name] is not None)
    if params["actions"] is not None:
        wanted["actions"] = request_actions(params["actions"])
    return wanted


def validate(params):
    if params["name"] is not None:
        check_name(params["name"], "connector")
    check_safe_text("description", params["description"], "connector")
    check_connector_actions(params["actions"])


def find_connector(client, params):
    if params["connector_id"]:
        connector = get_by_id(client, CONNECTOR, params["connector_id"])
        if connector is None and params["state"] == "present":
            raise MLCommonsError(
                "No connector has the ID %s. Leave connector_id out to create a connector by name." % params["connector_id"]
            )
        return connector
    return find_by_name(client, CONNECTOR, params["name"])


def create_body(params, wanted):
    body = dict(wanted)
    for required in ("version", "protocol", "actions"):
        if required not in body:
            raise ConfigurationError("Creating connector %r needs %s." % (params["name"], required))
    body["credential"] = params["credential"] or {}
    return body


def update_in_place(module, writer, connector, changes, predicted):
    """Send the changes; when deployed models block them, cycle the models around the update if
    allowed, else fail naming them. Returns the connector after it and the IDs of the models redeployed.

    ML Commons' refusal names the blocking models: a search could miss one deployed a moment ago.
    With redeploy_models, models of other connectors it counts (:func:`false_users`) are cycled too,
    since it refuses the update while they are deployed.
    """
    client = writer.client
    redeploy = module.params["redeploy_models"]
    connector_id = connector["connector_id"]
    if module.check_mode:
        blocking = [model for model in models_matching_connector(client, connector_id) if is_deployed_or_deploying(model)]
        if blocking and not redeploy:
            raise update_refused(connector, blocking)
        return writer.update(connector, changes, predicted), [model["model_id"] for model in blocking]
    try:
        return writer.update(connector, changes), []
    except HTTPError as error:
        blocking = models_named_in(client, error)
        if not blocking:
            raise
    if not redeploy:
        raise update_refused(connector, blocking)
    others = false_users(connector_id, blocking)
    if others:
        module.warn("Undeploying and redeploying models of other connectors to update connector %s: %s." % (connector_id, false_match_reason(others)))
    blocking_ids = [model["model_id"] for model in blocking]
    timeout = module.params["wait_timeout"]
    for model_id in blocking_ids:
        undeploy(client, model_id, timeout)
    updated = writer.update(connector, changes)
    for model_id in blocking_ids:
        deploy(client, model_id, timeout)
    return updated, blocking_ids


def delete_when_unused(writer, connector, moved, timeout):
    """Delete a connector whose models (IDs ``moved``) were just moved away.

    ML Commons' check of its users is a search, which sees the models' new connector only after the
    next refresh: until then the delete is refused naming moved models, and is tried again. A refusal
    that names another model cannot pass by waiting, and fails at once.
    """
    def try_delete():
        try:
            writer.delete(connector)
        except HTTPError as error:
            if error.status != 409:
                raise
            strangers = models_named_in(writer.client, error, excluding=moved)
            if strangers:
                raise delete_refused(connector, strangers)
            return False
        return True

    wait_until(try_delete, bool, timeout, describe=lambda deleted: "connector %s still reported in use" % connector["connector_id"])


def recreate(module, writer, connector, wanted, predicted):
    """Replace a connector whose parameters lost keys: a new connector of the same name, its
    models re-pointed, the old one deleted. Returns the new connector and the IDs of the models moved.

    The new connector is created as any other, so concurrent runs that replace the same connector
    keep one replacement; the original, called the same, is left out of that comparison."""
    client = writer.client
    users = models_using_connector(client, connector["connector_id"])
    moved = [model["model_id"] for model in users]
    if not module.check_mode and not module.params["credential"]:
        raise ConfigurationError(
            "Recreating connector %r needs credential: ML Commons never returns the old one." % connector.get("name")
        )
    body = replacement_body(connector, wanted, module.params["credential"])
    replacement = writer.create(body, body["name"], [not_the_object(connector["connector_id"])], predicted=predicted)
    models = Writer(client, MODEL, module.check_mode)
    for model in users:
        models.update(model, {"connector_id": replacement["connector_id"]})
    if not module.check_mode:
        try:
            delete_when_unused(writer, connector, moved, module.params["wait_timeout"])
        except MLCommonsError as error:
            raise MLCommonsError("Connector %r was replaced by %s and its models moved to it (%s), but the old one (%s) remains: %s"
                                 % (connector.get("name"), replacement["connector_id"], ", ".join(moved) or "none", connector["connector_id"], error),
                                 **error.details)
    return replacement, moved


def ensure_present(module, writer, connector):
    params = module.params
    wanted = desired_fields(params)
    require_access_control(writer.client, wanted, "connector")
    if connector is None:
        return writer.result(True, None, writer.create(create_body(params, wanted), wanted["name"], predicted=wanted))

    removed = removed_parameters(connector, wanted)
    if removed and not params["recreate_on_parameter_removal"]:
        raise MLCommonsError(
            "Connector %r (%s) has parameters that the task no longer sets: %s. ML Commons cannot remove parameter keys "
            "from a connector, so add them back, or set recreate_on_parameter_removal: true to replace the connector "
            "(its models are moved to the new one)." % (connector.get("name"), connector["connector_id"], ", ".join(removed))
        )
    changes = dict((name, wanted[name]) for name in differing_fields(connector, wanted))
    if params["update_credential"] == "always" and params["credential"]:
        changes["credential"] = params["credential"]
    if not changes:
        return writer.result(False, connector, connector)
    predicted = dict(connector, **dict((name, value) for name, value in changes.items() if name != "credential"))
    if removed:
        replacement, repointed_ids = recreate(module, writer, connector, wanted, predicted)
        return writer.result(True, connector, replacement, repointed_models=repointed_ids)
    updated, redeployed_ids = update_in_place(module, writer, connector, changes, predicted)
    return writer.result(True, connector, updated, redeployed_models=redeployed_ids)


def ensure_absent(module, writer, connector):
    if connector is None:
        return writer.result(False, None, None)
    if module.check_mode:
        users = models_matching_connector(writer.client, connector["connector_id"])
        if users:
            raise delete_refused(connector, users)
        return writer.result(True, connector, None)
    try:
        writer.delete(connector)
    except HTTPError as error:
        users = models_named_in(writer.client, error)
        if not users:
            raise
        raise delete_refused(connector, users)
    return writer.result(True, connector, None)


def run(module, client):
    validate(module.params)
    connector = find_connector(client, module.params)
    writer = ConnectorWriter(client, CONNECTOR, module.check_mode)
    if module.params["state"] == "absent":
        return ensure_absent(module, writer, connector)
    return ensure_present(module, writer, connector)


ACTION_SPEC = dict(
    action_type=dict(type="str", required=True, choices=["predict", "batch_predict", "batch_predict_status", "cancel_batch_predict"]),
    method=dict(type="str", required=True),
    url=dict(type="str", required=True),
    headers=dict(type="dict"),
    request_body=dict(type="raw"),
    pre_process_function=dict(type="str"),
    post_process_function=dict(type="str"),
)

ARGUMENT_SPEC = dict(
    name=dict(type="str"),
    connector_id=dict(type="str"),
    description=dict(type="str"),
    version=dict(type="str"),
    protocol=dict(type="str", choices=["http", "aws_sigv4"]),
    parameters=dict(type="dict"),
    credential=dict(type="dict", no_log=True),
    update_credential=dict(type="str", choices=["on_create", "always"], default="on_create"),
    actions=dict(type="list", elements="dict", options=ACTION_SPEC),
    client_config=dict(type="dict"),
    access_mode=dict(type="str", choices=["public", "private", "restricted"]),
    backend_roles=dict(type="list", elements="str"),
    add_all_backend_roles=dict(type="bool"),
    redeploy_models=dict(type="bool", default=False),
    recreate_on_parameter_removal=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=300),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


def main():
    module = MLCommonsModule(
        argument_spec=ARGUMENT_SPEC,
        required_one_of=[("name", "connector_id")],
        mutually_exclusive=[("backend_roles", "add_all_backend_roles")],
    )
    module.execute(run)


if __name__ == "__main__":
    main()
