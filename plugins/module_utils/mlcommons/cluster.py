# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Facts about the cluster that modules adapt to: installed plugins and ML Commons settings."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError

ML_PLUGIN = "opensearch-ml"
SECURITY_PLUGIN = "opensearch-security"
ML_SETTINGS_PREFIX = "plugins.ml_commons."


def installed_plugins(client):
    """One entry per plugin and version; the nodes of one cluster normally all report the same."""
    rows = client.get("/_cat/plugins", query={"format": "json", "h": "component,version"})
    unique = set((row["component"], row["version"]) for row in rows)
    return [{"component": component, "version": version} for component, version in sorted(unique)]


def effective_ml_settings(client):
    """The ``plugins.ml_commons.*`` settings in force: transient over persistent over the node's own."""
    settings = client.get("/_cluster/settings", query={"include_defaults": "true", "flat_settings": "true"})
    effective = {}
    for layer in ("defaults", "persistent", "transient"):
        for name, value in settings.get(layer, {}).items():
            if name.startswith(ML_SETTINGS_PREFIX):
                effective[name] = value
    return effective


def access_control_enabled(client, setting):
    """Whether ML Commons enforces access control of ``setting`` (``model`` or ``connector``): it needs the
    Security plugin and the setting, or it refuses any access-control field."""
    plugins = set(plugin["component"] for plugin in installed_plugins(client))
    if SECURITY_PLUGIN not in plugins:
        return False
    value = effective_ml_settings(client).get("%s%s_access_control_enabled" % (ML_SETTINGS_PREFIX, setting), "false")
    return str(value).lower() == "true"


# The access-control fields model groups and connectors share.
ACCESS_FIELDS = ("access_mode", "backend_roles", "add_all_backend_roles")


def require_access_control(client, wanted, kind):
    """Fail before writing when ``wanted`` sets access-control fields the cluster would refuse (``kind``:
    ``model`` for model groups, or ``connector``)."""
    if any(name in wanted for name in ACCESS_FIELDS) and not access_control_enabled(client, kind):
        raise ConfigurationError(
            "access_mode, backend_roles and add_all_backend_roles need %s access control, which is off on this cluster "
            "(it needs the Security plugin and plugins.ml_commons.%s_access_control_enabled: true). Leave them out here." % (kind, kind)
        )


def with_access_mode(stored):
    """A stored object with its ``access`` also under ``access_mode``, the name the write APIs use."""
    view = dict(stored)
    if "access" in view:
        view["access_mode"] = view["access"]
    return view
