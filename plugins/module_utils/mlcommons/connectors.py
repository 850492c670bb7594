# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Connectors: their fields compared in the form ML Commons stores them, and the models it counts as
their users when it refuses to change or delete one."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons import answers
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.cluster import with_access_mode
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import as_server_string, changed_fields, is_empty
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import MLCommonsError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.models import describe_models
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import MODEL, get_by_id, search

# The stored fields a replacement connector copies from the one it replaces.
STORED_FIELDS = ("name", "description", "version", "protocol", "parameters", "actions", "client_config", "backend_roles")
ACTION_FIELDS = ("action_type", "method", "url", "headers", "request_body", "pre_process_function", "post_process_function")


# -- fields -----------------------------------------------------------------------------------


def request_actions(actions):
    """``actions`` as the create and update APIs take them: unset fields left out, a body that is not text as JSON."""
    if actions is None:
        return None
    sent = []
    for action in actions:
        entry = dict((name, action[name]) for name in ACTION_FIELDS if action.get(name) is not None)
        if not isinstance(entry.get("request_body", ""), str):
            entry["request_body"] = json.dumps(entry["request_body"])
        sent.append(entry)
    return sent


def comparable_body(body):
    """Bodies compare as JSON when both parse (key order and spacing do not matter), else as text."""
    try:
        return json.loads(body)
    except ValueError:
        return body


def comparable_action(action):
    view = {}
    for name in ACTION_FIELDS:
        value = action.get(name)
        if is_empty(value):
            continue
        if name in ("action_type", "method"):
            value = value.upper()
        elif name == "headers":
            value = dict((key, as_server_string(item)) for key, item in value.items())
        elif name == "request_body":
            value = comparable_body(value)
        view[name] = value
    return view


def comparable_parameter(value):
    """A parameter as compact JSON with sorted keys when it holds an object or a list: ML Commons keeps the
    JSON text of an object parameter with its keys in an order of its own."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return as_server_string(parsed) if isinstance(parsed, (dict, list)) else value
    return as_server_string(value)


def normalize(name, value):
    """One comparable form for a wanted and a stored value of a connector field."""
    if is_empty(value):
        return None
    if name == "version":
        return as_server_string(value)
    if name == "parameters":
        return dict((key, comparable_parameter(item)) for key, item in value.items())
    if name == "actions":
        return sorted((comparable_action(action) for action in value), key=lambda action: json.dumps(action, sort_keys=True))
    if name == "backend_roles":
        return sorted(value)
    return value


def differing_fields(connector, wanted):
    """The fields of ``wanted`` that the stored ``connector`` holds otherwise.

    ``client_config`` is compared on the keys set only: ML Commons fills in the others. And
    ``add_all_backend_roles`` is an instruction at creation, not a stored field."""
    stored = with_access_mode(connector)
    if "client_config" in wanted and isinstance(stored.get("client_config"), dict):
        stored["client_config"] = dict((key, stored["client_config"].get(key)) for key in wanted["client_config"])
    comparable = dict((name, value) for name, value in wanted.items() if name != "add_all_backend_roles")
    return changed_fields(comparable, stored, normalize)


def removed_parameters(connector, wanted):
    """The parameter keys the connector holds and ``wanted`` drops: ML Commons merges parameters on update."""
    if "parameters" not in wanted:
        return []
    return sorted(set(connector.get("parameters") or {}) - set(wanted["parameters"]))


def replacement_body(connector, wanted, credential):
    """A new connector like ``connector``, with ``wanted`` applied."""
    body = dict((name, value) for name, value in connector.items() if name in STORED_FIELDS)
    body.update(wanted)
    body["credential"] = credential
    return body


# -- users ------------------------------------------------------------------------------------


def models_matching_connector(client, connector_id):
    """The models ML Commons counts as users of ``connector_id``, by its own query: a ``match`` on the
    models' ``connector_id``, a text field, so models of another connector may be among them
    (:func:`false_users`)."""
    return search(client, MODEL, [{"match": {"connector_id": connector_id}}])


def false_users(connector_id, models):
    """Those of ``models`` that use another connector than ``connector_id``."""
    return [model for model in models if model.get("connector_id") not in (None, connector_id)]


def models_using_connector(client, connector_id):
    return [model for model in models_matching_connector(client, connector_id) if model.get("connector_id") == connector_id]


def models_named_in(client, error, excluding=()):
    """The models a refused connector update or delete names, but ``excluding`` (IDs), as stored (by ID
    only when gone since)."""
    return [get_by_id(client, MODEL, model_id) or {"model_id": model_id}
            for model_id in answers.models_blocking_connector_change(error) if model_id not in excluding]


def false_match_reason(others):
    """Why ML Commons names ``others``, models of other connectors, as users of a connector."""
    return (
        "%s use(s) another connector (%s); ML Commons counts them because its check is a match query on the models' "
        "connector_id, which matches any part of an ID between hyphens, and IDs made on one node within a minute or so can share one"
        % (describe_models(others), ", ".join(sorted(set(model["connector_id"] for model in others))))
    )


def update_refused(connector, blocking):
    """The failure of an update that the deployed models ``blocking`` prevent."""
    others = false_users(connector["connector_id"], blocking)
    if others:
        message = "ML Commons refuses to update connector %r (%s) while %d deployed model(s) count as its users: %s. %s." % (
            connector.get("name"), connector["connector_id"], len(blocking), describe_models(blocking), false_match_reason(others))
    else:
        message = "Connector %r (%s) cannot be updated while %d deployed model(s) use it: %s." % (
            connector.get("name"), connector["connector_id"], len(blocking), describe_models(blocking))
    return MLCommonsError(
        message + " Undeploy them first, or set redeploy_models: true to have the module undeploy, update and redeploy them.",
        model_ids=[model["model_id"] for model in blocking],
    )


def delete_refused(connector, users):
    """The failure of a delete that the models ``users`` prevent; those of other connectors are named as such."""
    connector_id = connector["connector_id"]
    others = false_users(connector_id, users)
    own = [model for model in users if model not in others]
    if own:
        message = "Connector %r (%s) is still used by %d model(s): %s. Delete those models or point them at another connector first." % (
            connector.get("name"), connector_id, len(own), describe_models(own))
        if others:
            message += " Also counted: %s." % false_match_reason(others)
    else:
        message = ("ML Commons refuses to delete connector %r (%s): %s. No model uses this connector; ML Commons deletes it once "
                   "those models are deleted. It is left in place." % (connector.get("name"), connector_id, false_match_reason(others)))
    return MLCommonsError(message, model_ids=[model["model_id"] for model in users])
