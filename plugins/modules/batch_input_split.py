#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: batch_input_split
short_description: Split a batch input JSONL into parts that each fit one batch job
version_added: 0.1.0
description:
  - Splits a batch input of any size into parts of consecutive requests, in input order, each within O(max_requests)
    requests and O(max_bytes) bytes, so that each part can be uploaded with M(opensearch.ml_commons.openai_file) and
    run as one batch job.
  - A local file operation, like M(ansible.builtin.copy). It runs where O(src) is and sends no request, so it takes
    no connection options.
  - Before any part is written, the whole input is checked line by line as OpenAI's batch validation checks a batch
    input, by the rules M(opensearch.ml_commons.openai_file) checks an upload with, every C(custom_id) being unique
    across the whole input, not only within a part. A problem fails the task, naming its line; nothing is written
    then.
  - The input is read as a stream and the uniqueness of the C(custom_id)s is checked with temporary files on disk, so
    memory stays flat (under 100 MB) at any input size.
  - The parts are O(dest)/C(<stem>.part-00001.jsonl), O(dest)/C(<stem>.part-00002.jsonl) and so on, where C(<stem>) is
    the name of O(src) without its extension. Blank lines are dropped. Each part is written to a temporary file and
    renamed into place; a part that already holds its content is left as it is. Parts of an earlier split into more
    parts are removed.
  - An input that fits one job as it is (within both limits, without blank lines) is its own single part, RV(parts)
    names O(src) itself and no part file is written, so its upload is the input's own, as it would be unsplit.
  - A manifest, O(dest)/C(<stem>.parts.json), records the SHA-256 and size of O(src), the limits and each part. A
    re-run with the same O(src) and limits reads O(src) once to hash it, finds the parts in place with their sizes,
    and neither checks nor writes anything.
author:
  - opensearch.ml_commons maintainers (@opensearch-ml-commons)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: The parts before and after, by name, requests and bytes; never their content.
options:
  src:
    description:
      - The whole batch input, one JSON request per line.
    type: path
    required: true
  dest:
    description:
      - The directory to write the parts to. It is created when missing.
    type: path
    required: true
  max_requests:
    description:
      - The most requests (lines) a part may hold. OpenAI's limit for a batch input is 50,000.
    type: int
    default: 50000
  max_bytes:
    description:
      - The most bytes a part may hold.
      - OpenAI takes batch inputs of up to 200 MB. The default stays at least 10 MB under that whether a MB is counted
        as 1,000,000 or 1,048,576 bytes, so a part is never refused for a few bytes too many.
      - A single line larger than this fails the task, naming the line.
    type: int
    default: 190000000
  endpoint:
    description:
      - The batch endpoint every line's C(url) must name, for example C(/v1/embeddings). When not given, every line
        must name the first line's.
    type: str
notes:
  - A part already in place is recognised by its size and SHA-256 when O(src) is split again; a re-run that finds the
    manifest unchanged trusts the size of each part alone, as the parts are written only by this module.
  - The check of the C(custom_id)s writes 16 bytes per request to the system's temporary directory, removed before the
    task ends (in check mode too).
seealso:
  - module: opensearch.ml_commons.openai_file
"""

EXAMPLES = r"""
- name: Split a large embeddings input into parts of at most 50,000 requests and 190 MB
  opensearch.ml_commons.batch_input_split:
    src: files/corpus.jsonl
    dest: work/parts
    endpoint: /v1/embeddings
  register: split

- name: Upload each part
  opensearch.ml_commons.openai_file:
    src: "{{ item.path }}"
    endpoint: /v1/embeddings
    api_key: "{{ openai_api_key }}"
  loop: "{{ split.parts }}"
  loop_control:
    label: "{{ item.path }} ({{ item.lines }} requests from line {{ item.first_line }})"

- name: Split for a gateway that takes at most 10,000 requests and 50 MB per batch
  opensearch.ml_commons.batch_input_split:
    src: files/corpus.jsonl
    dest: work/gateway-parts
    max_requests: 10000
    max_bytes: 50000000
"""

RETURN = r"""
parts:
  description: The parts, in input order.
  returned: always
  type: list
  elements: dict
  contains:
    index:
      description: The part's number, from 1.
      type: int
      sample: 1
    path:
      description: Where the part is (or would be, in check mode).
      type: str
      sample: work/parts/corpus.part-00001.jsonl
    first_line:
      description: The line number in O(src), from 1, of the part's first request.
      type: int
      sample: 1
    lines:
      description: How many requests the part holds.
      type: int
      sample: 50000
    bytes:
      description: The part's size in bytes.
      type: int
      sample: 11250000
    sha256:
      description: The SHA-256 of the part's content.
      type: str
      sample: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
  sample:
    - index: 1
      path: work/parts/corpus.part-00001.jsonl
      first_line: 1
      lines: 50000
      bytes: 11250000
      sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
    - index: 2
      path: work/parts/corpus.part-00002.jsonl
      first_line: 50001
      lines: 20000
      bytes: 4500000
      sha256: fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9
requests:
  description: How many requests O(src) holds.
  returned: always
  type: int
  sample: 70000
bytes:
  description: The size of O(src) in bytes, blank lines included.
  returned: always
  type: int
  sample: 15750000
sha256:
  description: The SHA-256 of O(src).
  returned: always
  type: str
  sample: 5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03
"""

import hashlib
import itertools
import json
import os
import re
import tempfile

from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.batch_input import BatchInput, BatchInputError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import build_diff
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.local import CHUNK_SIZE, file_digest, open_local
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import LocalModule

# Five digits: part names sort in input order, up to 99,999 parts (five billion requests at OpenAI's limit).
MAX_PARTS = 99999
MANIFEST_FIELDS = {"src", "requests", "limits", "parts"}
PART_FIELDS = {"index", "name", "first_line", "lines", "bytes", "sha256"}


def part_name(stem, index):
    return "%s.part-%05d.jsonl" % (stem, index)


def part_pattern(stem):
    return re.compile(r"^%s\.part-(\d{5,})\.jsonl$" % re.escape(stem))


def manifest_path(dest, stem):
    return os.path.join(dest, "%s.parts.json" % stem)


def limits(params):
    return dict((name, params[name]) for name in ("max_requests", "max_bytes", "endpoint"))


def is_whole(split):
    """Whether the input fits one job as it is: then it is its own single part, and no part file is written (so
    its upload is the one of the input itself, as when it was not split)."""
    return len(split["parts"]) == 1 and split["parts"][0]["sha256"] == split["src"]["sha256"]


def part_path(params, split, part):
    return params["src"] if is_whole(split) else os.path.join(params["dest"], part["name"])


def public_part(params, split, part):
    """A part as the task returns it: with its path instead of its bare name."""
    shown = dict((key, part[key]) for key in ("index", "first_line", "lines", "bytes", "sha256"))
    shown["path"] = part_path(params, split, part)
    return shown


def listed_parts(dest, stem):
    """{index: name} of the part files of ``stem`` in ``dest``."""
    if not os.path.isdir(dest):
        return {}
    pattern = part_pattern(stem)
    matches = (pattern.match(name) for name in os.listdir(dest))
    return dict((int(match.group(1)), match.group(0)) for match in matches if match)


def stale_parts(params, stem, count):
    """The paths of part files beyond the ``count`` parts of this split, left by a split into more parts."""
    source = os.path.realpath(params["src"])
    paths = [os.path.join(params["dest"], name) for index, name in sorted(listed_parts(params["dest"], stem).items()) if index > count]
    return [path for path in paths if os.path.realpath(path) != source]


def read_manifest(path):
    """The manifest at ``path``, or None when there is none or it is not one this module wrote."""
    try:
        with open(path) as handle:
            manifest = json.load(handle)
        parts = manifest["parts"]
        if set(manifest) == MANIFEST_FIELDS and set(manifest["src"]) == {"sha256", "bytes"} and all(
                set(part) == PART_FIELDS and isinstance(part["name"], str) for part in parts):
            return manifest
    except (IOError, OSError, ValueError, KeyError, TypeError):
        pass
    return None


def counted_lines(path):
    """The number of lines of a part file, read in chunks (for the diff of parts this module did not record)."""
    count = 0
    last = b"\n"
    with open_local(path) as handle:
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def diff_entries(parts):
    return [dict((key, part[key]) for key in ("name", "lines", "bytes")) for part in parts]


def parts_before(params, stem, manifest):
    """What the part files in ``dest`` hold now, as the diff's before: requests from the manifest when it
    recorded the file at its size, counted otherwise."""
    recorded = dict((part["name"], part) for part in (manifest or {}).get("parts", []))
    before = []
    for index, name in sorted(listed_parts(params["dest"], stem).items()):
        path = os.path.join(params["dest"], name)
        size = os.path.getsize(path)
        lines = recorded[name]["lines"] if recorded.get(name, {}).get("bytes") == size else counted_lines(path)
        before.append({"name": name, "lines": lines, "bytes": size})
    return before


def unchanged_split(params, stem, manifest):
    """Whether ``manifest`` stands for this split as it is: same limits, ``src`` of the recorded size and
    SHA-256 (read once), every part in place at its recorded size, no part beyond them."""
    parts = manifest["parts"]
    if manifest["limits"] != limits(params) or manifest["src"]["bytes"] != os.path.getsize(params["src"]):
        return False
    if [part["name"] for part in parts] != [part_name(stem, index) for index in range(1, len(parts) + 1)]:
        return False
    for part in parts:
        path = part_path(params, manifest, part)
        if not os.path.isfile(path) or os.path.getsize(path) != part["bytes"]:
            return False
    written = 0 if is_whole(manifest) else len(parts)
    return not stale_parts(params, stem, written) and file_digest(params["src"]) == manifest["src"]["sha256"]


class SplitPlan(object):
    """The parts of ``src``: consecutive requests, each part within both limits."""

    def __init__(self, params, stem):
        self.params = params
        self.stem = stem
        self.parts = []
        self._digests = []

    def add(self, number, line):
        params = self.params
        if len(line) > params["max_bytes"]:
            raise BatchInputError(
                "Line %d of %s holds %d bytes, more than a part may hold (max_bytes is %d). Shorten that request, or "
                "raise max_bytes if the provider takes larger inputs." % (number, params["src"], len(line), params["max_bytes"]),
                line=number,
            )
        last = self.parts[-1] if self.parts else None
        if last is None or last["lines"] == params["max_requests"] or last["bytes"] + len(line) > params["max_bytes"]:
            self._start_part(number)
            last = self.parts[-1]
        last["lines"] += 1
        last["bytes"] += len(line)
        self._digests[-1].update(line)

    def _start_part(self, number):
        index = len(self.parts) + 1
        if index > MAX_PARTS:
            raise BatchInputError(
                "%s needs more than %d parts at max_requests %d and max_bytes %d; raise the limits or split it in two first."
                % (self.params["src"], MAX_PARTS, self.params["max_requests"], self.params["max_bytes"])
            )
        self.parts.append({"index": index, "name": part_name(self.stem, index), "first_line": number, "lines": 0, "bytes": 0})
        self._digests.append(hashlib.sha256())

    def finish(self):
        for part, digest in zip(self.parts, self._digests):
            part["sha256"] = digest.hexdigest()
        return self.parts


def checked_split(params, stem):
    """Read ``src`` once: check every request as OpenAI's batch validation would (custom_ids across the
    whole input), plan the parts and hash ``src``. Returns the manifest of the split; writes nothing."""
    plan = SplitPlan(params, stem)
    source_digest = hashlib.sha256()
    size = 0
    # The whole input's own limits do not apply: they are what the split is for.
    with BatchInput(params["src"], params["endpoint"], max_requests=0, max_bytes=0) as checker:
        with open_local(params["src"]) as handle:
            for number, line in enumerate(handle, start=1):
                source_digest.update(line)
                size += len(line)
                if line.strip():
                    checker.add(number, line)
                    plan.add(number, line)
        checker.finish()
    return {
        "src": {"sha256": source_digest.hexdigest(), "bytes": size},
        "requests": checker.requests,
        "limits": limits(params),
        "parts": plan.finish(),
    }


def in_place(dest, part):
    path = os.path.join(dest, part["name"])
    return os.path.isfile(path) and os.path.getsize(path) == part["bytes"] and file_digest(path) == part["sha256"]


def skip(iterator, count):
    """Advance ``iterator`` by ``count`` items."""
    next(itertools.islice(iterator, count, count), None)


def write_part(module, dest, part, requests):
    """Write the next ``part["lines"]`` of ``requests`` to a temporary file beside the part, and rename it
    into place if it holds what the check read (True), else remove it (False)."""
    handle, temporary = tempfile.mkstemp(dir=dest, prefix=".%s." % part["name"], suffix=".tmp")
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as partial:
            for line in itertools.islice(requests, part["lines"]):
                partial.write(line)
                digest.update(line)
        if digest.hexdigest() != part["sha256"]:
            os.remove(temporary)
            return False
        module.atomic_move(temporary, os.path.join(dest, part["name"]))
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return True


def write_parts(module, split, missing):
    """Write the parts whose index is in ``missing``, reading ``src`` once, in order."""
    params = module.params
    written = []
    problem = None
    try:
        with open_local(params["src"]) as handle:
            requests = (line for line in handle if line.strip())
            for part in split["parts"]:
                if part["index"] not in missing:
                    skip(requests, part["lines"])
                elif write_part(module, params["dest"], part, requests):
                    written.append(os.path.join(params["dest"], part["name"]))
                else:
                    problem = "%s changed while it was split: part %d is not what the check read" % (params["src"], part["index"])
                    break
    except (IOError, OSError) as error:
        problem = "Cannot write the parts of %s to %s: %s" % (params["src"], params["dest"], error.strerror or error)
    if problem:
        raise ConfigurationError(
            "%s. Parts written: %s. Run again once that is fixed; parts already in place are kept." % (problem, ", ".join(written) or "none"),
            written=written,
        )


def remove_stale(paths):
    for path in paths:
        try:
            os.remove(path)
        except OSError as error:
            # A run at the same moment may have removed it first.
            if os.path.exists(path):
                raise ConfigurationError("Cannot remove %s, a part of an earlier split: %s." % (path, error.strerror))


def write_manifest(module, path, manifest):
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".%s." % os.path.basename(path), suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as partial:
            json.dump(manifest, partial, indent=1, sort_keys=True)
        module.atomic_move(temporary, path)
    except BaseException as error:
        if os.path.exists(temporary):
            os.remove(temporary)
        if isinstance(error, (IOError, OSError)):
            raise ConfigurationError("Cannot write the manifest %s: %s. Run again once that is fixed; the parts are in place."
                                     % (path, error.strerror or error))
        raise


def split_result(changed, params, split, before):
    after = diff_entries(split["parts"])
    if is_whole(split):
        after = [{"name": os.path.basename(params["src"]), "lines": split["requests"], "bytes": split["src"]["bytes"]}]
    return {
        "changed": changed,
        "parts": [public_part(params, split, part) for part in split["parts"]],
        "requests": split["requests"],
        "bytes": split["src"]["bytes"],
        "sha256": split["src"]["sha256"],
        "diff": build_diff({"parts": after if before is None else before}, {"parts": after}),
    }


def check_limits(params):
    for name in ("max_requests", "max_bytes"):
        if params[name] < 1:
            raise ConfigurationError("%s is %d; give a positive number (the most a part may hold)." % (name, params[name]))
    if os.path.exists(params["dest"]) and not os.path.isdir(params["dest"]):
        raise ConfigurationError("dest %s is not a directory; give the directory to write the parts to." % params["dest"])


def run(module):
    params = module.params
    check_limits(params)
    stem = os.path.splitext(os.path.basename(params["src"]))[0]
    manifest_file = manifest_path(params["dest"], stem)
    manifest = read_manifest(manifest_file)
    if manifest is not None and os.path.isfile(params["src"]) and unchanged_split(params, stem, manifest):
        return split_result(False, params, manifest, None)
    split = checked_split(params, stem)
    before = parts_before(params, stem, manifest) if module._diff else None
    whole = is_whole(split)
    missing = set() if whole else set(part["index"] for part in split["parts"] if not in_place(params["dest"], part))
    stale = stale_parts(params, stem, 0 if whole else len(split["parts"]))
    changed = bool(missing or stale or manifest != split)
    if changed and not module.check_mode:
        if not os.path.isdir(params["dest"]):
            try:
                os.makedirs(params["dest"])
            except OSError as error:
                raise ConfigurationError("Cannot create the directory %s: %s." % (params["dest"], error.strerror))
        write_parts(module, split, missing)
        remove_stale(stale)
        # Last: a manifest stands only for parts that are all in place.
        write_manifest(module, manifest_file, split)
    return split_result(changed, params, split, before)


ARGUMENT_SPEC = dict(
    src=dict(type="path", required=True),
    dest=dict(type="path", required=True),
    max_requests=dict(type="int", default=50000),
    max_bytes=dict(type="int", default=190000000),
    endpoint=dict(type="str"),
)


def main():
    LocalModule(argument_spec=ARGUMENT_SPEC).execute(run)


if __name__ == "__main__":
    main()
