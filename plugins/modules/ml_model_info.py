#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ml_model_info
short_description: List ML Commons models with their state
version_added: 0.1.0
description:
  - Returns models by ID, by exact name, by model group, by connector, or all of them (paging through the search API).
    The filters combine.
  - Each model includes its C(model_state), for example C(DEPLOYED), and C(serving_nodes), the nodes that serve it by
    their own answer to the profile API. On a cluster a C(DEPLOYED) model is served by every eligible node that is in
    the cluster, a C(PARTIALLY_DEPLOYED) one by some of them; the stored state can lag behind the nodes (after a
    restart it still says C(DEPLOYED) while no node holds the model, until ML Commons' sync job catches up), the
    C(serving_nodes) do not.
  - The nodes are read with one profile request and one node-names request, whatever the number of models.
  - Each object the search finds is read again by ID, so what is returned is current (search copies lag up to a second behind changes).
  - Returns an empty list when nothing matches.
author:
  - opensearch.ml_commons maintainers (!UNKNOWN)
extends_documentation_fragment:
  - opensearch.ml_commons.connection
  - opensearch.ml_commons.attributes.INFO
options:
  model_id:
    description:
      - Return only the model with this ID.
    type: str
  name:
    description:
      - Return only models with exactly this name (ML Commons allows several).
    type: str
  model_group_id:
    description:
      - Return only models in this model group.
    type: str
  connector_id:
    description:
      - Return only models that use this connector.
    type: str
"""

EXAMPLES = r"""
- name: The models of a group
  opensearch.ml_commons.ml_model_info:
    model_group_id: "{{ group.model_group_id }}"
  register: in_group

- name: The models that use a connector
  opensearch.ml_commons.ml_model_info:
    connector_id: "{{ connector.connector_id }}"
  register: users

- name: Show which of them are deployed
  ansible.builtin.debug:
    msg: "{{ users.models | selectattr('model_state', 'eq', 'DEPLOYED') | map(attribute='model_id') }}"

- name: Show the names of the nodes that serve the first one
  ansible.builtin.debug:
    msg: "{{ users.models[0].serving_nodes | map(attribute='name') }}"
"""

RETURN = r"""
models:
  description:
    - The matching models, oldest first, each with its ID and state as ML Commons stores them, and C(serving_nodes),
      the nodes serving it (each a dict with C(node_id) and C(name); empty when none does).
  returned: always
  type: list
  elements: dict
  sample:
    - model_id: lyjxwZABNrAVdFa9zrcZ
      name: OpenAI model for realtime embedding and offline batch inference
      algorithm: REMOTE
      model_group_id: IMobmY8B8aiZvtEZeO_i
      connector_id: XU5UiokBpXT9icfOM0vt
      model_state: DEPLOYED
      planning_worker_nodes: [4jKpG2wWRgWz3VJ1xk0wWg, Zp0sIhJUSuCc1j4Jd7Xy2Q]
      serving_nodes:
        - node_id: 4jKpG2wWRgWz3VJ1xk0wWg
          name: ml-testbed-0
        - node_id: Zp0sIhJUSuCc1j4Jd7Xy2Q
          name: ml-testbed-1
"""

from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.models import serving_nodes_of
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import MLCommonsModule
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import MODEL, list_objects, with_values


def run(module, client):
    params = module.params
    filters = []
    if params["model_group_id"]:
        filters.append({"term": {"model_group_id": params["model_group_id"]}})
    if params["connector_id"]:
        # connector_id is a text field in the model index: match it, then keep exact equals.
        filters.append({"match": {"connector_id": params["connector_id"]}})
    models = list_objects(client, MODEL, params["model_id"], params["name"], filters)
    wanted = dict((name, params[name]) for name in ("model_group_id", "connector_id") if params[name])
    matching = with_values(models, wanted)
    serving = serving_nodes_of(client, matching)
    return {"changed": False, "models": [dict(model, serving_nodes=serving[model["model_id"]]) for model in matching]}


ARGUMENT_SPEC = dict(
    model_id=dict(type="str"),
    name=dict(type="str"),
    model_group_id=dict(type="str"),
    connector_id=dict(type="str"),
)


def main():
    MLCommonsModule(argument_spec=ARGUMENT_SPEC).execute(run)


if __name__ == "__main__":
    main()
