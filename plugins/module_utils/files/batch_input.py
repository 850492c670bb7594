# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A batch input JSONL checked as OpenAI's Batch API checks it while a batch is ``validating``.

OpenAI's Files API accepts any ``.jsonl``; a bad line shows only when the batch runs, and fails it
whole. Checked beforehand, in one streamed pass, such an input is refused before it is uploaded or
paid for, naming its line. The checks are OpenAI's documented validation failures
(``invalid_json_line``, ``duplicate_custom_id``, ``url_mismatch``, ``model_mismatch``,
``empty_file``, ``too_many_tasks``) and the shape of ``BatchRequestInput``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import heapq
import json
import os
import shutil
import struct
import tempfile

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.local import open_local

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


class CustomIds(object):
    """Whether any custom_id repeats, in memory that stays flat whatever the number of lines.

    A set of the IDs would grow with the input. Instead each ID's 8-byte hash goes to a temporary
    file with its line number; the file is cut into buckets by hash bytes until each fits in
    :data:`BUCKET_BYTES`, and each bucket is checked in memory on its own. A repeated hash is only a
    candidate (two IDs may share a hash), confirmed by reading the input again and comparing the IDs.
    """

    HASH_BYTES = 8
    RECORD = struct.Struct("=8sQ")  # the hash and the line number, in the machine's own byte order
    BUCKET_BYTES = 2 * 1024 * 1024
    CANDIDATES = 1024

    def __init__(self):
        self._directory = tempfile.mkdtemp(prefix="batch-input-ids.")
        self._records_path = os.path.join(self._directory, "records")
        self._records = open(self._records_path, "wb")

    @classmethod
    def hashed(cls, custom_id):
        # surrogatepass: JSON may hold a lone surrogate (\ud800), which plain UTF-8 cannot encode.
        return hashlib.blake2b(custom_id.encode("utf-8", "surrogatepass"), digest_size=cls.HASH_BYTES).digest()

    def add(self, number, custom_id):
        self._records.write(self.RECORD.pack(self.hashed(custom_id), number))

    def first_repeat(self, custom_ids):
        """``(earlier line, line, custom_id)`` of the earliest repeated custom_id that the candidates
        show, or None when no custom_id repeats. ``custom_ids()`` reads the input again: an iterator
        of (line number, custom_id) of every request."""
        self._records.close()
        after = 0
        while True:
            candidates = self._earliest_repeated_hashes(after)
            if not candidates:
                return None
            repeat = self._confirmed(candidates, custom_ids())
            if repeat is not None:
                return repeat
            # Every candidate was a hash collision: look at the repeats that come later.
            after = max(candidates.values())

    def _earliest_repeated_hashes(self, after):
        """{hash: line of its first repeat} for the CANDIDATES hashes that repeat earliest after ``after``."""
        earliest = []
        for repeats in self._bucket_repeats(self._records_path, 0):
            earliest = heapq.nsmallest(self.CANDIDATES, earliest + [(line, hashed) for line, hashed in repeats if line > after])
        return dict((hashed, line) for line, hashed in earliest)

    def _bucket_repeats(self, path, depth):
        """For each bucket of the records at ``path`` (cut by the hash byte at ``depth``, deeper while
        too large), the (line, hash) of each hash's first repeat."""
        size = os.path.getsize(path)
        if size <= self.BUCKET_BYTES or depth == self.HASH_BYTES:
            yield self._repeats_in(path, size)
            return
        handles = {}
        try:
            with open(path, "rb") as records:
                for chunk in iter(lambda: records.read(self.BUCKET_BYTES), b""):
                    for offset in range(0, len(chunk), self.RECORD.size):
                        bucket = chunk[offset + depth]
                        if bucket not in handles:
                            handles[bucket] = open(self._bucket_path(depth, bucket), "wb")
                        handles[bucket].write(chunk[offset:offset + self.RECORD.size])
        finally:
            for handle in handles.values():
                handle.close()
        for bucket in sorted(handles):
            yield from self._bucket_repeats(self._bucket_path(depth, bucket), depth + 1)
            os.remove(self._bucket_path(depth, bucket))

    def _bucket_path(self, depth, bucket):
        return os.path.join(self._directory, "bucket-%d-%02x" % (depth, bucket))

    def _repeats_in(self, path, size):
        with open(path, "rb") as records:
            if size > self.BUCKET_BYTES:
                # Cut by all 8 hash bytes and still too large: every record holds the same hash,
                # first repeated by the second record.
                records.seek(self.RECORD.size)
                hashed, line = self.RECORD.unpack(records.read(self.RECORD.size))
                return [(line, hashed)]
            data = records.read()
        hashes = memoryview(data).cast("Q")[0::2]
        if len(set(hashes)) == len(hashes):
            return []
        seen = set()
        repeats = {}
        for hashed, line in self.RECORD.iter_unpack(data):
            if hashed in seen:
                repeats.setdefault(hashed, line)
            seen.add(hashed)
        return [(line, hashed) for hashed, line in repeats.items()]

    def _confirmed(self, candidates, custom_ids):
        """The first repeat, in line order, of a custom_id whose hash is a candidate; None if there is none."""
        first_lines = {}
        for number, custom_id in custom_ids:
            if self.hashed(custom_id) in candidates:
                earlier = first_lines.setdefault(custom_id, number)
                if earlier != number:
                    return earlier, number, custom_id
        return None

    def close(self):
        self._records.close()
        shutil.rmtree(self._directory, ignore_errors=True)


class BatchInput(object):
    """What a checked batch input holds: its ``requests``, their ``url`` and ``model``, its ``bytes``.

    Used as a context manager, it removes its temporary files (see :class:`CustomIds`) on the way out.
    """

    def __init__(self, path, endpoint=None, max_requests=MAX_REQUESTS, max_bytes=MAX_BYTES):
        self.path = path
        self.endpoint = endpoint
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.requests = 0
        self.bytes = 0
        self.url = endpoint
        self.model = None
        self._custom_ids = CustomIds()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._custom_ids.close()

    def check(self):
        """Read the file once, line by line; raise :class:`BatchInputError` at the first problem."""
        with self:
            with open_local(self.path) as handle:
                self.bytes = os.fstat(handle.fileno()).st_size
                if self.max_bytes and self.bytes > self.max_bytes:
                    raise BatchInputError(
                        "%s holds %d bytes; a batch input may hold at most %d (max_bytes). Split it into several inputs."
                        % (self.path, self.bytes, self.max_bytes)
                    )
                for number, line in enumerate(handle, start=1):
                    if line.strip():
                        self.add(number, line)
            self.finish()
        return self

    def add(self, number, line):
        """Check the request on line ``number`` (bytes, not blank) against the lines before it."""
        request = _request(self.path, number, line)
        self.requests += 1
        if self.max_requests and self.requests > self.max_requests:
            problem = "is request %d; a batch input may hold at most %d (max_requests). Split it into several inputs" % (self.requests, self.max_requests)
            raise _refusal(self.path, number, problem)
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
        self._custom_ids.add(number, request["custom_id"])

    def finish(self):
        """The checks that need every line: some request at all, and no custom_id twice."""
        if not self.requests:
            raise BatchInputError("%s holds no request; a batch input needs one JSON request per line." % self.path)
        repeat = self._custom_ids.first_repeat(lambda: keys_of(self.path, "custom_id"))
        if repeat is not None:
            earlier, number, custom_id = repeat
            raise _refusal(self.path, number, "repeats the custom_id %r of line %d; every custom_id must be unique" % (custom_id, earlier))


def keys_of(path, field):
    """(line number, ``field``) of every non-blank line of a checked input, read again."""
    with open_local(path) as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, json.loads(line.decode("utf-8"))[field]


class RecordInput(object):
    """A batch input of a provider other than OpenAI, checked before upload: a JSON object per line. Used as a
    context manager, as :class:`BatchInput` is."""

    # Who reads the input, and what it is called.
    provider, name = "SageMaker batch transform", "SageMaker batch input"

    def __init__(self, path):
        self.path = path
        self.requests = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        pass

    def add(self, number, line):
        """Check the record on line ``number`` (bytes, not blank); returns it."""
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise BatchInputError("Line %d of %s is not a JSON record (%s); %s reads one JSON object per line. Fix the input and run "
                                  "again." % (number, self.path, error, self.provider), line=number)
        if not isinstance(record, dict):
            raise BatchInputError("Line %d of %s is not a JSON object; %s reads one JSON object per line. Fix the input and run again."
                                  % (number, self.path, self.provider), line=number)
        self.requests += 1
        return record

    def finish(self):
        if not self.requests:
            raise BatchInputError("%s holds no record; a %s needs one JSON record per line." % (self.path, self.name))


class BedrockInput(RecordInput):
    """Bedrock's records, each also with a ``modelInput`` object and a ``recordId`` unique in the input, by which
    the output is put back in input order."""

    provider, name = "Bedrock", "Bedrock batch input"

    def __init__(self, path):
        super(BedrockInput, self).__init__(path)
        self._record_ids = CustomIds()

    def close(self):
        self._record_ids.close()

    def add(self, number, line):
        record = super(BedrockInput, self).add(number, line)
        if not isinstance(record.get("recordId"), str) or not record["recordId"]:
            raise BatchInputError("Line %d of %s has no recordId; the output is put in input order by it. Give every record a "
                                  "recordId, unique in the input." % (number, self.path), line=number)
        if not isinstance(record.get("modelInput"), dict):
            raise BatchInputError("Line %d of %s has no modelInput object, the model's request Bedrock sends. Fix the input and run again."
                                  % (number, self.path), line=number)
        self._record_ids.add(number, record["recordId"])
        return record

    def finish(self):
        super(BedrockInput, self).finish()
        repeat = self._record_ids.first_repeat(lambda: keys_of(self.path, "recordId"))
        if repeat is not None:
            earlier, number, record_id = repeat
            raise BatchInputError("Line %d of %s repeats the recordId %r of line %d; the output is put in input order by recordId, "
                                  "so each must be unique. Fix the input and run again." % (number, self.path, record_id, earlier), line=number)
