# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Deciding what to change: only what the user set is compared, after each module's ``normalize``
maps ML Commons' stored shapes (values as strings, upper-cased types, empty as absent)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json


def is_empty(value):
    """Absent and empty are the same to ML Commons: None, "", [] and {}."""
    return value is None or value == "" or value == [] or value == {}


def as_server_string(value):
    """A value as ML Commons stores a parameter: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def changed_fields(desired, actual, normalize=None):
    """The names of the fields the user set (not None) whose ``normalize(name, value)`` differs from ``actual``'s."""
    normalize = normalize or (lambda name, value: value)
    changed = []
    for name, wanted in sorted(desired.items()):
        if wanted is None:
            continue
        current = (actual or {}).get(name)
        if is_empty(wanted) and is_empty(current):
            continue
        if normalize(name, wanted) != normalize(name, current):
            changed.append(name)
    return changed


def build_diff(before, after):
    """The ``diff`` return value Ansible shows under ``--diff``: whole objects, secrets already removed."""
    return {"before": before or {}, "after": after or {}}
