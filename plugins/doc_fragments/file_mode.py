# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The mode option of modules that write local files for the user (plugins/module_utils/files/local.py).
    DOCUMENTATION = r"""
options:
  mode:
    description:
      - The permissions of the files the module writes for the user (the module's description says which), as
        M(ansible.builtin.file) takes them. Give an octal number as a quoted string, such as V('0640'), or a
        symbolic mode, such as V(u=rw,g=r,o=).
      - When not given, a file the module creates is V(0600) whatever the umask, as it may hold whatever the
        documents held, and a file it replaces keeps its permissions. A directory the module creates is V(0700);
        create it beforehand (M(ansible.builtin.file)) to give it others.
      - A run that only changes the permissions reports a change.
    type: raw
"""
