#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ml_model_group
short_description: Create, update or delete an ML Commons model group
version_added: 0.1.0
description:
  - Manages a model group, the container that ML Commons registers models into, identified by its exact name.
  - V(present) creates the group when no group has that name, and otherwise updates only the fields you set
    that differ. A run that finds everything as wanted sends no write request.
  - V(absent) deletes the group. ML Commons refuses to delete a group that still holds models, so the module
    fails first and lists those models.
author:
  - opensearch.ml_commons maintainers (!UNKNOWN)
extends_documentation_fragment:
  - opensearch.ml_commons.connection
  - opensearch.ml_commons.attributes
options:
  name:
    description:
      - The group's name, unique among model groups.
      - At most 256 characters, of letters, digits, spaces and basic punctuation (period, comma, exclamation and
        question marks, parentheses, colon, at sign, hyphen, underscore, slash and quotes). ML Commons 3.1 and later
        refuse other characters; the module applies that rule on every version.
    type: str
    required: true
  description:
    description:
      - The group's description. Same characters as O(name).
      - ML Commons cannot clear a description once set; setting it to an empty string fails with a message.
    type: str
  access_mode:
    description:
      - Who may use the group's models. Needs the Security plugin with model access control enabled.
      - The module fails before writing anything when the cluster has access control off.
    type: str
    choices: [public, private, restricted]
  backend_roles:
    description:
      - Backend roles that may use the group, with O(access_mode=restricted). Needs model access control.
    type: list
    elements: str
  add_all_backend_roles:
    description:
      - Give access to all backend roles of the calling user. Needs model access control.
    type: bool
  state:
    description:
      - Whether the group should exist.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Register the model group for OpenAI models
  opensearch.ml_commons.ml_model_group:
    url: https://search.example.com:9200
    username: admin
    password: "{{ opensearch_password }}"
    name: openAI_model_group
    description: Your openAI model group
  register: group

- name: Use its ID in the next task
  ansible.builtin.debug:
    msg: "Model group {{ group.model_group_id }}"

- name: Restrict the group to two backend roles (needs the Security plugin)
  opensearch.ml_commons.ml_model_group:
    name: openAI_model_group
    access_mode: restricted
    backend_roles: [ml_team, data_team]

- name: Delete the group (fails, listing them, while models remain in it)
  opensearch.ml_commons.ml_model_group:
    name: openAI_model_group
    state: absent
"""

RETURN = r"""
model_group_id:
  description: The group's ID; null when it does not exist (after V(absent), or a create in check mode).
  returned: always
  type: str
  sample: IMobmY8B8aiZvtEZeO_i
model_group:
  description: The group as ML Commons stores it (after the change), with its ID; empty when it does not exist.
  returned: always
  type: dict
  sample:
    model_group_id: IMobmY8B8aiZvtEZeO_i
    name: openAI_model_group
    description: Your openAI model group
    latest_version: 1
    access: public
    created_time: 1722037257000
    last_updated_time: 1722037257000
diff:
  description: The group before and after, in diff mode.
  returned: when diff mode is on
  type: dict
"""

from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons import answers
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.cluster import ACCESS_FIELDS, require_access_control, with_access_mode
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import changed_fields
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError, HTTPError, MLCommonsError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.models import describe_models
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import MLCommonsModule
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import MODEL, MODEL_GROUP, Writer, find_by_name, search
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.validation import check_name, check_safe_text


def desired_fields(params):
    """What the user asks for, in the field names of the register and update APIs."""
    return dict((name, params[name]) for name in ("name", "description") + ACCESS_FIELDS if params[name] is not None)


def normalize(name, value):
    if name == "backend_roles":
        return sorted(value or [])
    return value


def validate(params):
    check_name(params["name"], "model group")
    check_safe_text("description", params["description"], "model group")


def models_in_group(client, model_group_id):
    return search(client, MODEL, [{"term": {"model_group_id": model_group_id}}])


def ensure_absent(writer, group):
    if group is None:
        return writer.result(False, None, None)
    group_id = group["model_group_id"]
    models = models_in_group(writer.client, group_id)
    if models:
        raise MLCommonsError(
            "Model group %r (%s) still holds %d model(s): %s. Delete them first (opensearch.ml_commons.ml_model with "
            "state: absent), then the group." % (group["name"], group_id, len(models), describe_models(models)),
            model_ids=[model["model_id"] for model in models],
        )
    writer.delete(group)
    return writer.result(True, group, None)


def register(client, wanted):
    try:
        return client.post(MODEL_GROUP.create_path, body=wanted)
    except HTTPError as error:
        # A concurrent run registered the name between our lookup and this request.
        taken_by = answers.model_group_taking_name(error)
        if taken_by:
            return {"model_group_id": taken_by}
        raise


def ensure_present(writer, group, wanted):
    if group is None:
        return writer.result(True, None, writer.create(wanted, wanted["name"], send=lambda: register(writer.client, wanted)))
    # add_all_backend_roles is an instruction applied at creation, not a stored field: it cannot drift.
    comparable = dict((name, value) for name, value in wanted.items() if name != "add_all_backend_roles")
    changes = dict((name, wanted[name]) for name in changed_fields(comparable, with_access_mode(group), normalize))
    if not changes:
        return writer.result(False, group, group)
    if changes.get("description") == "":
        raise ConfigurationError(
            "ML Commons cannot clear the description of model group %r; set a new description instead." % group["name"]
        )
    predicted = dict(group, **changes)
    if "access_mode" in changes:
        predicted["access"] = predicted.pop("access_mode")
    return writer.result(True, group, writer.update(group, changes, predicted))


def run(module, client):
    params = module.params
    validate(params)
    writer = Writer(client, MODEL_GROUP, module.check_mode)
    group = find_by_name(client, MODEL_GROUP, params["name"])
    if params["state"] == "absent":
        return ensure_absent(writer, group)
    wanted = desired_fields(params)
    require_access_control(client, wanted, "model")
    return ensure_present(writer, group, wanted)


ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    description=dict(type="str"),
    access_mode=dict(type="str", choices=["public", "private", "restricted"]),
    backend_roles=dict(type="list", elements="str"),
    add_all_backend_roles=dict(type="bool"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


def main():
    MLCommonsModule(argument_spec=ARGUMENT_SPEC, mutually_exclusive=[("backend_roles", "add_all_backend_roles")]).execute(run)


if __name__ == "__main__":
    main()
