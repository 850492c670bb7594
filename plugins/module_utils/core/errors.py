# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Typed errors: ``str(error)`` is the one message the user reads, ``error.details`` are secret-free keys
for ``fail_json``. Messages hold only the method, the path and what the server answered, never
request headers, auth or bodies.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons import answers

# What a server may echo back in an error or a warning: a provider's key (not every provider masks it), a
# bearer or basic credential, a key in a query string (Google's ?key=), a named secret or token.
_SECRET_PATTERNS = (
    re.compile(r"(API key provided:\s*)[A-Za-z0-9_*.~+/=-]+?(?=[.,;]?(?:\s|$|[\"']))", re.IGNORECASE),
    re.compile(r"(Bearer\s+)(?!YOUR_KEY\b)[A-Za-z0-9_*.~+/=-]+", re.IGNORECASE),
    # As in a header (case and base64 alphabet with a digit or padding): "Basic authentication" is no credential.
    re.compile(r"(Basic\s+)(?=[A-Za-z+/]*[0-9+/=])[A-Za-z0-9+/]{8,}=*"),
    re.compile(r"([?&](?:key|api[_-]?key|token|access[_-]?token|sig|signature|x-amz-signature|x-amz-security-token)=)[^&#\s\"']+", re.IGNORECASE),
    re.compile(
        r"((?:api[_-]?key|openai[_-]?key|secret[_-]?(?:access[_-]?)?key|access[_-]?key(?:[_-]?id)?|token|password|secret)"
        r"[\"']?\s*[:=]\s*[\"']?)[^\"'\s,;}&)\]]+",
        re.IGNORECASE,
    ),
)
REDACTED = "********"


def redact_secrets(text):
    """``text`` with anything that looks like a key, token or password replaced by asterisks."""
    if not text:
        return text
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + REDACTED, text)
    return text


class MLCommonsError(Exception):
    """Base class: anything a module turns into one ``fail_json`` message."""

    def __init__(self, message, **details):
        super(MLCommonsError, self).__init__(message)
        self.details = details


class ConfigurationError(MLCommonsError):
    """The options cannot work together, or a required library is missing."""


class TransportError(MLCommonsError):
    """OpenSearch could not be reached or did not answer (refused, timeout, TLS)."""


class UncertainOutcomeError(TransportError):
    """The request left, but no answer came back: the server may have acted on it, so a create is looked
    for before it is sent again (``resource.create_once``). ``settle_seconds``: how long the request
    may still take to be carried out.
    """

    def __init__(self, message, settle_seconds=0, **details):
        super(UncertainOutcomeError, self).__init__(message, **details)
        self.settle_seconds = settle_seconds


class HTTPError(MLCommonsError):
    """The server (OpenSearch, or a model provider's API) answered with an error status."""

    def __init__(self, method, path, status, error_type=None, reason=None, service="OpenSearch"):
        self.method = method
        self.path = path
        self.status = status
        self.error_type = error_type
        self.reason = reason
        what = "%s: %s" % (error_type, reason) if error_type and reason else (reason or "no reason given")
        super(HTTPError, self).__init__(
            "%s answered %s to %s %s: %s" % (service, status, method, path, what),
            status=status, error_type=error_type, reason=reason,
        )

    @property
    def is_not_found(self):
        """True when the answer means "no such object", across ML Commons versions."""
        return answers.is_not_found(self)


class UnexpectedAnswerError(MLCommonsError):
    """A server answered what the collection does not follow: a redirect, a download longer than announced,
    a listing that does not end."""


class AmbiguousLookupError(MLCommonsError):
    """An exact-name lookup matched more than one object."""


class WaitTimeoutError(MLCommonsError):
    """A wait ran out of time; carries the last state seen."""


class DeployFailedError(MLCommonsError):
    """A deploy settled as failed. ``task_error`` is the error ML Commons recorded on the model's
    deploy task, None when it recorded none."""

    def __init__(self, message, task_error=None, **details):
        super(DeployFailedError, self).__init__(message, **details)
        self.task_error = task_error


class PartialDeploymentError(MLCommonsError):
    """A deploy settled while some of the nodes ML Commons planned for the model do not serve it."""
