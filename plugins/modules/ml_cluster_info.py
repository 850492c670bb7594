#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ml_cluster_info
short_description: Read an OpenSearch cluster's version, ML Commons plugin and ML settings
version_added: 0.1.0
description:
  - Reads what the other modules of this collection adapt to, so a playbook can check its prerequisites
    before it changes anything. The OpenSearch version, the installed plugins (ML Commons among them),
    and the effective C(plugins.ml_commons.*) settings.
  - Fails with one clear message when the cluster cannot be reached or answers with an error.
author:
  - opensearch.ml_commons maintainers (!UNKNOWN)
extends_documentation_fragment:
  - opensearch.ml_commons.connection
  - opensearch.ml_commons.attributes.INFO
options: {}
"""

EXAMPLES = r"""
- name: Check that the cluster can run offline batch inference
  opensearch.ml_commons.ml_cluster_info:
    url: https://search.example.com:9200
    username: admin
    password: "{{ opensearch_password }}"
  register: cluster

- name: Stop early on a cluster without ML Commons
  ansible.builtin.assert:
    that:
      - cluster.ml_commons_version is not none
      - cluster.ml_settings['plugins.ml_commons.offline_batch_inference_enabled'] | default('true') == 'true'
    fail_msg: The ML Commons plugin is missing or batch inference is disabled on {{ cluster.cluster_name }}.
"""

RETURN = r"""
version:
  description: The OpenSearch version.
  returned: always
  type: str
  sample: 2.19.6
distribution:
  description: The distribution name the cluster reports.
  returned: always
  type: str
  sample: opensearch
cluster_name:
  description: The cluster's name.
  returned: always
  type: str
  sample: ml-testbed
ml_commons_version:
  description: The version of the ML Commons plugin (C(opensearch-ml)), or null when it is not installed.
  returned: always
  type: str
  sample: 2.19.6.0
plugins:
  description: The plugins installed on the cluster's nodes, one entry per component and version.
  returned: always
  type: list
  elements: dict
  contains:
    component:
      description: The plugin's name.
      type: str
      sample: opensearch-ml
    version:
      description: The plugin's version.
      type: str
      sample: 2.19.6.0
ml_settings:
  description:
    - The effective C(plugins.ml_commons.*) settings, flat, as strings or lists of strings.
    - Transient settings win over persistent ones, which win over the node's defaults.
  returned: always
  type: dict
  sample:
    plugins.ml_commons.offline_batch_inference_enabled: "true"
    plugins.ml_commons.connector.private_ip_enabled: "false"
"""

from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.cluster import ML_PLUGIN, effective_ml_settings, installed_plugins
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import MLCommonsError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import MLCommonsModule


def run(module, client):
    info = client.get("/")
    version = info.get("version") if isinstance(info, dict) else None
    if not isinstance(version, dict) or not version.get("number"):
        raise MLCommonsError(
            "%s/ answered without a version, so it is not OpenSearch (a proxy or another service at that URL?). "
            "Check url." % client.public_url
        )
    plugins = installed_plugins(client)
    ml_versions = [plugin["version"] for plugin in plugins if plugin["component"] == ML_PLUGIN]
    return {
        "changed": False,
        "version": version["number"],
        "distribution": version.get("distribution", "elasticsearch"),
        "cluster_name": info.get("cluster_name"),
        "ml_commons_version": ml_versions[0] if ml_versions else None,
        "plugins": plugins,
        "ml_settings": effective_ml_settings(client),
    }


ARGUMENT_SPEC = {}


def main():
    MLCommonsModule(argument_spec=ARGUMENT_SPEC).execute(run)


if __name__ == "__main__":
    main()
