# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Attributes of modules that change the cluster.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  action_group:
    description: Use C(group/opensearch.ml_commons.ml_commons) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - opensearch.ml_commons.ml_commons
"""

    # Attributes of read-only (_info) modules.
    INFO = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: This module only reads, so it runs the same way in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: N/A
    details: This module never changes anything.
  action_group:
    description: Use C(group/opensearch.ml_commons.ml_commons) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - opensearch.ml_commons.ml_commons
"""
