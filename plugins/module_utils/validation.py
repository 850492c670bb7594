# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Client-side checks that make every server version behave like the strictest one."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.opensearch.ml_commons.plugins.module_utils.errors import ConfigurationError

# ML Commons 3.1+ accepts only letters, digits, white space and this punctuation in names and
# descriptions (StringUtils.SAFE_INPUT_PATTERN); 2.x accepts anything. Checking here makes a
# playbook that works on 2.x keep working after an upgrade.
SAFE_PUNCTUATION = frozenset(".,!?():@-_/'\"")

# name.keyword has ignore_above 256: a longer name is stored but can never be found by the exact-name
# lookup, so a re-run would create a duplicate.
MAX_NAME_LENGTH = 256


def _unsafe_characters(text):
    return sorted(set(char for char in text if not (char.isalnum() or char.isspace() or char in SAFE_PUNCTUATION)))


def check_safe_text(field, text, kind):
    """Raise a clear error when ``text`` holds characters ML Commons 3.1+ refuses in a ``kind``'s ``field``."""
    if text is None:
        return
    unsafe = _unsafe_characters(text)
    if unsafe:
        raise ConfigurationError(
            "The %s %s holds characters ML Commons does not accept (%s). Use only letters, digits, spaces and %s"
            % (kind, field, " ".join(repr(char) for char in unsafe), " ".join(sorted(SAFE_PUNCTUATION)))
        )


def check_name(name, kind):
    """Names identify objects across runs: non-empty, safe characters, short enough to be looked up."""
    if not name or not name.strip():
        raise ConfigurationError("The %s name must not be empty." % kind)
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigurationError(
            "The %s name is %d characters long; at most %d can be looked up again, so use a shorter one."
            % (kind, len(name), MAX_NAME_LENGTH)
        )
    check_safe_text("name", name, kind)
