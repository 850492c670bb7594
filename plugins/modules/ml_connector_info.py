#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ml_connector_info
short_description: List ML Commons connectors
version_added: 0.1.0
description:
  - Returns connectors by ID, by exact name, or all of them (paging through the search API).
  - Each object the search finds is read again by ID, so what is returned is current (search copies lag up to a second behind changes).
  - Returns an empty list when nothing matches. Credentials are never returned; ML Commons does not give them out.
author:
  - opensearch.ml_commons maintainers (!UNKNOWN)
extends_documentation_fragment:
  - opensearch.ml_commons.connection
  - opensearch.ml_commons.attributes.INFO
options:
  connector_id:
    description:
      - Return only the connector with this ID.
    type: str
  name:
    description:
      - Return only connectors with exactly this name (ML Commons allows several).
    type: str
"""

EXAMPLES = r"""
- name: Find connectors by name
  opensearch.ml_commons.ml_connector_info:
    name: OpenAI Embedding model
  register: found

- name: Fail when the name is used twice
  ansible.builtin.assert:
    that: found.connectors | length <= 1
"""

RETURN = r"""
connectors:
  description: The matching connectors, oldest first, each with its ID and without credentials.
  returned: always
  type: list
  elements: dict
  sample:
    - connector_id: XU5UiokBpXT9icfOM0vt
      name: OpenAI Embedding model
      version: "1"
      protocol: http
      parameters:
        model: text-embedding-ada-002
"""

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import MLCommonsModule
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import CONNECTOR, list_objects


def run(module, client):
    connectors = list_objects(client, CONNECTOR, module.params["connector_id"], module.params["name"])
    for connector in connectors:
        # The search APIs already leave credentials out; this keeps it so whatever the server version.
        connector.pop("credential", None)
    return {"changed": False, "connectors": connectors}


ARGUMENT_SPEC = dict(
    connector_id=dict(type="str"),
    name=dict(type="str"),
)


def main():
    MLCommonsModule(argument_spec=ARGUMENT_SPEC).execute(run)


if __name__ == "__main__":
    main()
