# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""An index's documents as a batch input: one request line per document whose text has no current
result (see :mod:`fingerprint`), read page by page and written through a temporary file, so memory
stays flat at any index size."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import uuid
from json.encoder import encode_basestring

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.local import Replacement, count_lines, file_digest
from ansible_collections.opensearch.ml_commons.plugins.module_utils.index.fingerprint import RequestFingerprint, canonical, custom_id, encoded
from ansible_collections.opensearch.ml_commons.plugins.module_utils.index.read import field_value, get_many, pages

EMBEDDINGS = "/v1/embeddings"
CHAT = "/v1/chat/completions"
PLACEHOLDER = "{text}"
REPORTED = 100


def request_body(endpoint, model, body, messages, text):
    """The body of a document's request: the user's ``body`` with the ``model``, and the text as the
    embeddings' ``input``, or put into the chat ``messages`` where they say :data:`PLACEHOLDER`."""
    built = dict(body or {}, model=model)
    if endpoint == EMBEDDINGS:
        built["input"] = text
    else:
        built["messages"] = [dict(message, content=message["content"].replace(PLACEHOLDER, text)) for message in messages]
    return built


def check_messages(endpoint, messages):
    if endpoint != CHAT:
        if messages:
            raise ConfigurationError("messages apply to endpoint %s only." % CHAT)
        return
    if not any(isinstance(message.get("content"), str) and PLACEHOLDER in message["content"] for message in messages):
        raise ConfigurationError("No message holds %s, where each document's text goes: put it in the content of one." % PLACEHOLDER)


class RequestLines(object):
    """The request line of each document's text. Every body is one template with the text in its place: JSON
    escapes character by character, so the text's JSON, put between the template's pieces, is the canonical body
    (:func:`canonical`), and per document only the text is encoded."""

    def __init__(self, endpoint, model, body, messages):
        # No value of the user's can hold a random slot.
        slot = "\x00%s\x00" % uuid.uuid4().hex
        template = canonical(request_body(endpoint, model, body, messages, slot))
        self.pieces = [encoded(piece) for piece in template.split(encode_basestring(slot)[1:-1])]
        self.fingerprint = RequestFingerprint(endpoint)
        self.url = encoded(canonical(endpoint))

    def body(self, text):
        """The canonical body of the request for ``text``, encoded."""
        return encoded(encode_basestring(text)[1:-1]).join(self.pieces)

    def line(self, doc_id, request_fingerprint, body):
        return b'{"custom_id":%s,"method":"POST","url":%s,"body":%s}\n' % (
            encoded(encode_basestring(custom_id(doc_id, request_fingerprint))), self.url, body)


class DigestWriter(object):
    """Counts and hashes what is written, and passes it on to ``target`` (a :class:`Replacement`) if any."""

    def __init__(self, target=None):
        self.target = target
        self.digest = hashlib.sha256()
        self.bytes = 0

    def write(self, data):
        self.digest.update(data)
        self.bytes += len(data)
        if self.target is not None:
            self.target.write(data)


class Export(object):
    """The documents of ``index`` that ``query`` matches, as batch requests to ``endpoint`` in ``dest``."""

    def __init__(self, module, client, index, text_field, dest, endpoint, model, body=None, messages=None, query=None,
                 target_index=None, fingerprint_field=None, incremental=True, page_size=1000):
        self.module = module
        self.client = client
        self.index = index
        self.text_field = text_field
        self.dest = dest
        self.endpoint = endpoint
        self.model = model
        self.body = body or {}
        self.messages = messages if messages is not None else ([{"role": "user", "content": PLACEHOLDER}] if endpoint == CHAT else [])
        self.query = query or {"match_all": {}}
        self.target_index = target_index or index
        self.fingerprint_field = fingerprint_field
        self.incremental = incremental
        self.page_size = page_size
        self.lines = None
        self.counts = {"requests": 0, "unchanged": 0, "skipped_count": 0}
        self.skipped_documents = []

    def apply(self):
        """``(changed, before, after, found)``: the file before and after (for the diff) and what was found."""
        check_messages(self.endpoint, self.messages)
        self.lines = RequestLines(self.endpoint, self.model, self.body, self.messages)
        if os.path.isdir(self.dest):
            raise ConfigurationError("dest %s is a directory; give the path of the batch input file to write." % self.dest)
        before = self.described(self.dest) if os.path.isfile(self.dest) else {}
        if self.module.check_mode:
            written = self.write(DigestWriter())
            changed = written.digest.hexdigest() != before.get("sha256")
        else:
            with Replacement(self.module, self.dest) as replacement:
                written = self.write(DigestWriter(replacement))
                changed = written.digest.hexdigest() != before.get("sha256")
                if changed:
                    replacement.commit()
        after = {"requests": self.counts["requests"], "bytes": written.bytes, "sha256": written.digest.hexdigest()}
        found = dict(self.counts, skipped_documents=self.skipped_documents, bytes=written.bytes, sha256=after["sha256"], dest=self.dest)
        return changed, before, after, found

    @staticmethod
    def described(path):
        return {"requests": count_lines(path), "bytes": os.path.getsize(path), "sha256": file_digest(path)}

    def write(self, writer):
        source = [self.text_field]
        same_index = self.target_index == self.index
        if self.incremental and same_index:
            source.append(self.fingerprint_field)
        for page in pages(self.client, self.index, self.query, source, self.page_size):
            results = {}
            if self.incremental and not same_index:
                results = get_many(self.client, self.target_index, [doc_id for doc_id, _source in page], [self.fingerprint_field])
            for doc_id, document in page:
                result = document if same_index else results.get(doc_id, {})
                line = self.request_line(doc_id, document, field_value(result, self.fingerprint_field) if self.incremental else None)
                if line is not None:
                    writer.write(line)
        return writer

    def request_line(self, doc_id, document, current):
        """The request line of a document, or None when it is skipped or its result is current."""
        text = field_value(document, self.text_field)
        if not isinstance(text, str) or not text.strip():
            self.skip(doc_id, "no %s" % self.text_field if text is None else
                      "%s is empty" % self.text_field if isinstance(text, str) else "%s is not text" % self.text_field)
            return None
        body = self.lines.body(text)
        request_fingerprint = self.lines.fingerprint.of(body)
        if current == request_fingerprint:
            self.counts["unchanged"] += 1
            return None
        self.counts["requests"] += 1
        return self.lines.line(doc_id, request_fingerprint, body)

    def skip(self, doc_id, reason):
        self.counts["skipped_count"] += 1
        if len(self.skipped_documents) < REPORTED:
            self.skipped_documents.append({"_id": doc_id, "reason": reason})
