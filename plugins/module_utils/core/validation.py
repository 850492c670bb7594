# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Client-side checks that make every server version behave like the strictest one."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError

# ML Commons 3.1+ accepts only letters, digits, white space and these in names and descriptions
# (StringUtils.SAFE_INPUT_PATTERN); checked on every version, so a playbook survives an upgrade.
SAFE_PUNCTUATION = frozenset(".,!?():@-_/'\"")

# name.keyword has ignore_above 256: a longer name can never be looked up, so a re-run would duplicate it.
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


# ML Commons' HTTP connector sends only these; any other fails at predict time.
CONNECTOR_METHODS = ("POST", "GET")
# ${parameters.x}, ${credential.y}: filled in by ML Commons when it calls the model.
PLACEHOLDER = re.compile(r"\$\{[^}]*\}")
# What a placeholder may stand for, tried in turn: a value, a member of an object, nothing.
PLACEHOLDER_STANDINS = ("0", '"placeholder": 0', "")


def template_error(text):
    """None when ``text`` reads as JSON once its placeholders hold values of some shape, else why not."""
    first_error = None
    for standin in PLACEHOLDER_STANDINS:
        try:
            json.loads(PLACEHOLDER.sub(standin, text))
            return None
        except ValueError as error:
            first_error = first_error or str(error)
    return first_error


def check_connector_actions(actions):
    """Clear errors for connector actions ML Commons accepts at creation but cannot run later."""
    for number, action in enumerate(actions or [], 1):
        where = "Action %d (%s)" % (number, action.get("action_type"))
        method = str(action.get("method") or "")
        if method.upper() not in CONNECTOR_METHODS:
            raise ConfigurationError(
                "%s has method %r; ML Commons connectors send only %s." % (where, method, " or ".join(CONNECTOR_METHODS))
            )
        body = action.get("request_body")
        error = template_error(body) if isinstance(body, str) and body.strip() else None
        if error:
            raise ConfigurationError(
                "%s has a request_body that is not a JSON template (%s), so every call of the model would fail. "
                "Write it as JSON with ${parameters.name} placeholders, or give it as a dict." % (where, error)
            )
