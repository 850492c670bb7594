# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A batch input JSONL checked as OpenAI's Batch API checks it while a batch is ``validating``.

OpenAI's Files API accepts any ``.jsonl`` upload; a bad line only shows once a batch runs on it,
which then fails as a whole. Checking beforehand, in one streamed pass, refuses such an input
before anything is uploaded or paid for, with the line that is wrong. The checks are the
validation failures OpenAI documents (``invalid_json_line``, ``duplicate_custom_id``,
``url_mismatch``, ``model_mismatch``, ``empty_file``, ``too_many_tasks``) and the shape of
``BatchRequestInput`` (``custom_id``, ``method`` POST, ``url``, ``body``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.opensearch.ml_commons.plugins.module_utils.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files import open_local

# OpenAI's limits for one batch input file (gateways and other providers have their own).
MAX_REQUESTS = 50000
MAX_BYTES = 200 * 1024 * 1024
REQUIRED_FIELDS = ("custom_id", "method", "url", "body")


class BatchInputError(ConfigurationError):
    """A batch input that OpenAI would refuse; ``line`` is the 1-based line number, when one is to blame."""


def _refusal(path, number, problem):
    return BatchInputError(
        "Line %d of %s %s. OpenAI would fail the whole batch in validation; fix the input and run again."
        % (number, path, problem), line=number,
    )


def _request(path, number, line):
    try:
        request = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise _refusal(path, number, "is not UTF-8 (byte %d)" % (error.start + 1))
    except ValueError as error:
        raise _refusal(path, number, "is not valid JSON (%s)" % error)
    if not isinstance(request, dict):
        raise _refusal(path, number, "is not a JSON object")
    missing = [field for field in REQUIRED_FIELDS if field not in request]
    if missing:
        raise _refusal(path, number, "lacks %s (every line needs custom_id, method, url and body)" % ", ".join(missing))
    if not isinstance(request["custom_id"], str) or not request["custom_id"]:
        raise _refusal(path, number, "has a custom_id that is not a non-empty string")
    if request["method"] != "POST":
        raise _refusal(path, number, "has method %r; the Batch API takes only POST" % (request["method"],))
    if not isinstance(request["body"], dict):
        raise _refusal(path, number, "has a body that is not a JSON object")
    return request


class BatchInput(object):
    """What a checked batch input holds: its ``requests``, their ``url`` and ``model``, its ``bytes``."""

    def __init__(self, path, endpoint=None, max_requests=MAX_REQUESTS, max_bytes=MAX_BYTES):
        self.path = path
        self.endpoint = endpoint
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.requests = 0
        self.bytes = 0
        self.url = endpoint
        self.model = None
        self._custom_ids = {}

    def check(self):
        """Read the file once, line by line; raise :class:`BatchInputError` at the first problem."""
        with open_local(self.path) as handle:
            self.bytes = os.fstat(handle.fileno()).st_size
            if self.max_bytes and self.bytes > self.max_bytes:
                raise BatchInputError(
                    "%s holds %d bytes; a batch input may hold at most %d (max_bytes). Split it into several inputs."
                    % (self.path, self.bytes, self.max_bytes)
                )
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    self._add(number, line)
        if not self.requests:
            raise BatchInputError("%s holds no request; a batch input needs one JSON request per line." % self.path)
        return self

    def _add(self, number, line):
        request = _request(self.path, number, line)
        self.requests += 1
        if self.max_requests and self.requests > self.max_requests:
            problem = "is request %d; a batch input may hold at most %d (max_requests). Split it into several inputs" % (self.requests, self.max_requests)
            raise _refusal(self.path, number, problem)
        earlier = self._custom_ids.setdefault(request["custom_id"], number)
        if earlier != number:
            raise _refusal(self.path, number, "repeats the custom_id %r of line %d; every custom_id must be unique" % (request["custom_id"], earlier))
        if self.url is None:
            self.url = request["url"]
        elif request["url"] != self.url:
            where = "the batch endpoint" if self.endpoint else "the url of the lines before it"
            raise _refusal(self.path, number, "has url %r, not %s %r; every line must call the batch's endpoint" % (request["url"], where, self.url))
        model = request["body"].get("model")
        if self.requests == 1:
            self.model = model
        elif model != self.model:
            raise _refusal(self.path, number, "names the model %r, not %r as the lines before it; a batch runs one model" % (model, self.model))
