# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What makes a result current: the fingerprint of the request that produced it, and the ``custom_id``
that carries it from the batch input to the write-back.

The fingerprint is the SHA-256 of the request's endpoint and body (the document's text and every
parameter that shapes the answer: model, dimensions, messages). The ``custom_id`` of a document's
request is ``<fingerprint>:<_id>``, so each output line says which document it is for and which text
produced it, with nothing kept on the side and nothing held in memory.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import re

FINGERPRINT_LENGTH = 64
_CUSTOM_ID = re.compile(r"^([0-9a-f]{%d}):(.+)$" % FINGERPRINT_LENGTH, re.DOTALL)


def default_fingerprint_field(target_field):
    return "%s_fingerprint" % target_field


def canonical(value):
    """``value`` as JSON with sorted keys and no spaces: equal values, equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def encoded(text):
    # surrogatepass: JSON may hold a lone surrogate (\ud800), which plain UTF-8 cannot encode.
    return text.encode("utf-8", "surrogatepass")


class RequestFingerprint(object):
    """Fingerprints of requests to ``url``: the SHA-256 of the canonical ``{"body": ..., "url": ...}``, hashed
    around the body's encoded canonical text so that text is not encoded again."""

    def __init__(self, url):
        self.head = hashlib.sha256(b'{"body":')
        self.tail = encoded(',"url":%s}' % canonical(url))

    def of(self, canonical_body):
        """The fingerprint of the request whose body is ``canonical_body`` (:func:`canonical`, encoded)."""
        digest = self.head.copy()
        digest.update(canonical_body)
        digest.update(self.tail)
        return digest.hexdigest()


def custom_id(doc_id, request_fingerprint):
    return "%s:%s" % (request_fingerprint, doc_id)


def parse_custom_id(value):
    """``(_id, fingerprint)`` of a ``custom_id``; one that carries no fingerprint is the ``_id`` itself."""
    match = _CUSTOM_ID.match(value)
    if match:
        return match.group(2), match.group(1)
    return value, None
