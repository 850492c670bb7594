#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ml_model_group_info
short_description: List ML Commons model groups
version_added: 0.1.0
description:
  - Returns model groups by ID, by exact name, or all of them (paging through the search API).
  - Each object the search finds is read again by ID, so what is returned is current (search copies lag up to a second behind changes).
  - Returns an empty list when nothing matches.
author:
  - opensearch.ml_commons maintainers (!UNKNOWN)
extends_documentation_fragment:
  - opensearch.ml_commons.connection
  - opensearch.ml_commons.attributes.INFO
options:
  model_group_id:
    description:
      - Return only the group with this ID.
    type: str
  name:
    description:
      - Return only groups with exactly this name.
    type: str
"""

EXAMPLES = r"""
- name: Find a group by name
  opensearch.ml_commons.ml_model_group_info:
    name: openAI_model_group
  register: found

- name: List every model group
  opensearch.ml_commons.ml_model_group_info:
  register: all_groups
"""

RETURN = r"""
model_groups:
  description: The matching groups, oldest first, each with its ID.
  returned: always
  type: list
  elements: dict
  sample:
    - model_group_id: IMobmY8B8aiZvtEZeO_i
      name: openAI_model_group
      description: Your openAI model group
      latest_version: 1
      access: public
"""

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import MLCommonsModule
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import MODEL_GROUP, list_objects


def run(module, client):
    return {"changed": False, "model_groups": list_objects(client, MODEL_GROUP, module.params["model_group_id"], module.params["name"])}


ARGUMENT_SPEC = dict(
    model_group_id=dict(type="str"),
    name=dict(type="str"),
)


def main():
    MLCommonsModule(argument_spec=ARGUMENT_SPEC).execute(run)


if __name__ == "__main__":
    main()
