# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A batch input split into parts of consecutive requests that each fit one batch job.

One pass checks every line (the ``custom_id``s or ``recordId``s across the whole input), plans the parts
and hashes the input; only then a second pass writes the parts not already in place. Where a job also
takes a least number of requests (Bedrock), parts of equal size are planned in one more pass. A manifest
beside the parts records the input's SHA-256 and size, the limits and each part, so that a re-run writes
nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import itertools
import os
import re

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.batch_input import (
    BatchInput,
    BatchInputError,
    BedrockInput,
    RecordInput,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.local import (
    Replacement,
    count_lines,
    file_digest,
    make_directory,
    open_local,
    read_manifest,
    write_manifest,
)

# Five digits, so that part names sort in input order.
MAX_PARTS = 99999
MANIFEST_FIELDS = {"src", "requests", "limits", "parts"}
PART_FIELDS = {"index", "name", "first_line", "lines", "bytes", "sha256"}


def part_name(stem, index):
    return "%s.part-%05d.jsonl" % (stem, index)


def is_manifest(manifest):
    """Whether ``manifest`` is one a split wrote (else it is written again)."""
    return set(manifest) == MANIFEST_FIELDS and set(manifest["src"]) == {"sha256", "bytes"} and all(
        set(part) == PART_FIELDS and isinstance(part["name"], str) for part in manifest["parts"])


def is_whole(split):
    """Whether the input fits one job as it is: then it is its own single part, and no part file is written (so
    its upload is the one of the input itself, as when it was not split)."""
    return len(split["parts"]) == 1 and split["parts"][0]["sha256"] == split["src"]["sha256"]


def diff_entries(parts):
    return [dict((key, part[key]) for key in ("name", "lines", "bytes")) for part in parts]


def skip(iterator, count):
    """Advance ``iterator`` by ``count`` items."""
    next(itertools.islice(iterator, count, count), None)


class SplitPlan(object):
    """The parts of ``src``: consecutive requests, each part within both limits."""

    def __init__(self, src, limits, stem):
        self.src = src
        self.limits = limits
        self.stem = stem
        self.parts = []
        self._digests = []

    def add(self, number, line):
        # 0: no limit.
        max_requests, max_bytes = self.limits["max_requests"], self.limits["max_bytes"] or float("inf")
        if len(line) > max_bytes:
            raise BatchInputError(
                "Line %d of %s holds %d bytes, more than a part may hold (max_bytes is %d). Shorten that request, or "
                "raise max_bytes if the provider takes larger inputs." % (number, self.src, len(line), max_bytes),
                line=number,
            )
        last = self.parts[-1] if self.parts else None
        if last is None or last["lines"] == max_requests or last["bytes"] + len(line) > max_bytes:
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
                % (self.src, MAX_PARTS, self.limits["max_requests"], self.limits["max_bytes"])
            )
        self.parts.append({"index": index, "name": part_name(self.stem, index), "first_line": number, "lines": 0, "bytes": 0})
        self._digests.append(hashlib.sha256())

    def finish(self):
        for part, digest in zip(self.parts, self._digests):
            part["sha256"] = digest.hexdigest()
        return self.parts


def checker_of(src, limits):
    """What checks each line of ``src``, by the provider whose records it holds."""
    if limits["record_format"] == "bedrock":
        return BedrockInput(src)
    if limits["record_format"] == "sagemaker":
        return RecordInput(src)
    # The whole input's own limits do not apply: they are what the split is for.
    return BatchInput(src, limits["endpoint"], max_requests=0, max_bytes=0)


class Split(object):
    """The split of the batch input ``src`` into parts in the directory ``dest``, each within ``max_requests``
    requests (and at least ``min_requests``) and ``max_bytes`` bytes, every line checked as ``record_format``'s
    (OpenAI's: its url being ``endpoint``, or the first line's)."""

    def __init__(self, module, src, dest, max_requests, max_bytes, endpoint=None, record_format="openai", min_requests=1):
        self.module = module
        self.src = src
        self.dest = dest
        self.limits = {"max_requests": max_requests, "max_bytes": max_bytes, "endpoint": endpoint, "record_format": record_format,
                       "min_requests": min_requests}
        self.stem = os.path.splitext(os.path.basename(src))[0]
        self.manifest_path = os.path.join(dest, "%s.parts.json" % self.stem)

    def apply(self):
        """Split, unless the parts are in place: ``(changed, before, after, split)``, the parts by name before and
        after (for the diff) and what the split found (``parts``, ``requests``, ``bytes``, ``sha256``)."""
        self.check_options()
        manifest = read_manifest(self.manifest_path, is_manifest)
        if manifest is not None and os.path.isfile(self.src) and self.unchanged(manifest):
            return self.outcome(False, manifest, None)
        split = self.checked()
        before = self.parts_before(manifest) if self.module._diff else None
        whole = is_whole(split)
        missing = set() if whole else set(part["index"] for part in split["parts"] if not self.in_place(part))
        stale = self.stale_parts(0 if whole else len(split["parts"]))
        changed = bool(missing or stale or manifest != split)
        if changed and not self.module.check_mode:
            if not os.path.isdir(self.dest):
                try:
                    make_directory(self.dest)
                except OSError as error:
                    raise ConfigurationError("Cannot create the directory %s: %s." % (self.dest, error.strerror))
            self.write_parts(split, missing)
            remove_stale(stale)
            # Last: a manifest stands only for parts that are all in place.
            try:
                write_manifest(self.module, self.manifest_path, split)
            except (IOError, OSError) as error:
                raise ConfigurationError("Cannot write the manifest %s: %s. Run again once that is fixed; the parts are in place."
                                         % (self.manifest_path, error.strerror or error))
        return self.outcome(changed, split, before)

    def check_options(self):
        for name in ("max_requests", "max_bytes"):
            if self.limits[name] < 0:
                raise ConfigurationError("%s is %d; give the most a part may hold, or 0 for no limit." % (name, self.limits[name]))
        if self.limits["min_requests"] < 1 or 0 < self.limits["max_requests"] < self.limits["min_requests"]:
            raise ConfigurationError("min_requests is %d; give at least 1, and no more than max_requests (%d)."
                                     % (self.limits["min_requests"], self.limits["max_requests"]))
        if os.path.exists(self.dest) and not os.path.isdir(self.dest):
            raise ConfigurationError("dest %s is not a directory; give the directory to write the parts to." % self.dest)

    def outcome(self, changed, split, before):
        after = diff_entries(split["parts"])
        if is_whole(split):
            after = [{"name": os.path.basename(self.src), "lines": split["requests"], "bytes": split["src"]["bytes"]}]
        found = {
            "parts": [self.public_part(split, part) for part in split["parts"]],
            "requests": split["requests"],
            "bytes": split["src"]["bytes"],
            "sha256": split["src"]["sha256"],
        }
        return changed, {"parts": after if before is None else before}, {"parts": after}, found

    def part_path(self, split, part):
        return self.src if is_whole(split) else os.path.join(self.dest, part["name"])

    def public_part(self, split, part):
        """A part as the task returns it: with its path instead of its bare name."""
        shown = dict((key, part[key]) for key in ("index", "first_line", "lines", "bytes", "sha256"))
        shown["path"] = self.part_path(split, part)
        return shown

    def listed_parts(self):
        """{index: name} of the part files of ``src`` in ``dest``."""
        if not os.path.isdir(self.dest):
            return {}
        pattern = re.compile(r"^%s\.part-(\d{5,})\.jsonl$" % re.escape(self.stem))
        matches = (pattern.match(name) for name in os.listdir(self.dest))
        return dict((int(match.group(1)), match.group(0)) for match in matches if match)

    def stale_parts(self, count):
        """The paths of part files beyond the ``count`` parts of this split, left by a split into more parts."""
        source = os.path.realpath(self.src)
        paths = [os.path.join(self.dest, name) for index, name in sorted(self.listed_parts().items()) if index > count]
        return [path for path in paths if os.path.realpath(path) != source]

    def parts_before(self, manifest):
        """What the part files in ``dest`` hold now, as the diff's before: requests from the manifest when it
        recorded the file at its size, counted otherwise."""
        recorded = dict((part["name"], part) for part in (manifest or {}).get("parts", []))
        before = []
        for index, name in sorted(self.listed_parts().items()):
            path = os.path.join(self.dest, name)
            size = os.path.getsize(path)
            lines = recorded[name]["lines"] if recorded.get(name, {}).get("bytes") == size else count_lines(path)
            before.append({"name": name, "lines": lines, "bytes": size})
        return before

    def unchanged(self, manifest):
        """Whether ``manifest`` stands for this split as it is: same limits, ``src`` of the recorded size and
        SHA-256 (read once), every part in place at its recorded size, no part beyond them."""
        parts = manifest["parts"]
        if manifest["limits"] != self.limits or manifest["src"]["bytes"] != os.path.getsize(self.src):
            return False
        if [part["name"] for part in parts] != [part_name(self.stem, index) for index in range(1, len(parts) + 1)]:
            return False
        for part in parts:
            path = self.part_path(manifest, part)
            if not os.path.isfile(path) or os.path.getsize(path) != part["bytes"]:
                return False
        written = 0 if is_whole(manifest) else len(parts)
        return not self.stale_parts(written) and file_digest(self.src) == manifest["src"]["sha256"]

    def checked(self):
        """Read ``src`` once: check every request as its provider would (custom_ids or recordIds across the
        whole input), plan the parts and hash ``src``. Returns the manifest of the split; writes nothing."""
        plan = SplitPlan(self.src, self.limits, self.stem)
        source_digest = hashlib.sha256()
        size = 0
        with checker_of(self.src, self.limits) as checker:
            with open_local(self.src) as handle:
                for number, line in enumerate(handle, start=1):
                    source_digest.update(line)
                    size += len(line)
                    if line.strip():
                        checker.add(number, line)
                        plan.add(number, line)
            checker.finish()
        parts = plan.finish()
        if any(part["lines"] < self.limits["min_requests"] for part in parts):
            parts = self.balanced(checker.requests)
        return {
            "src": {"sha256": source_digest.hexdigest(), "bytes": size},
            "requests": checker.requests,
            "limits": self.limits,
            "parts": parts,
        }

    def balanced(self, requests):
        """Parts of equal numbers of requests, so that none holds fewer than ``min_requests``: planned in a
        second pass over ``src``."""
        minimum = self.limits["min_requests"]
        if requests < minimum:
            raise BatchInputError("%s holds %d requests; a job takes at least %d (min_requests). Add requests, or run them with "
                                  "others." % (self.src, requests, minimum))
        count = -(-requests // self.limits["max_requests"]) if self.limits["max_requests"] else 1
        plan = SplitPlan(self.src, dict(self.limits, max_requests=-(-requests // count)), self.stem)
        with open_local(self.src) as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    plan.add(number, line)
        parts = plan.finish()
        for part in parts:
            if part["lines"] < minimum:
                raise BatchInputError(
                    "Part %d of %s would hold %d requests, fewer than a job takes (min_requests %d), because max_bytes (%d) cuts "
                    "the parts short. Raise max_bytes, or shorten the requests."
                    % (part["index"], self.src, part["lines"], minimum, self.limits["max_bytes"]))
        return parts

    def in_place(self, part):
        path = os.path.join(self.dest, part["name"])
        return os.path.isfile(path) and os.path.getsize(path) == part["bytes"] and file_digest(path) == part["sha256"]

    def write_part(self, part, requests):
        """Write the next ``part["lines"]`` of ``requests`` to the part, if they are what the check read (True);
        else leave the part as it was (False)."""
        with Replacement(self.module, os.path.join(self.dest, part["name"])) as replacement:
            digest = hashlib.sha256()
            for line in itertools.islice(requests, part["lines"]):
                replacement.write(line)
                digest.update(line)
            if digest.hexdigest() != part["sha256"]:
                return False
            replacement.commit()
        return True

    def write_parts(self, split, missing):
        """Write the parts whose index is in ``missing``, reading ``src`` once, in order."""
        written = []
        problem = None
        try:
            with open_local(self.src) as handle:
                requests = (line for line in handle if line.strip())
                for part in split["parts"]:
                    if part["index"] not in missing:
                        skip(requests, part["lines"])
                    elif self.write_part(part, requests):
                        written.append(os.path.join(self.dest, part["name"]))
                    else:
                        problem = "%s changed while it was split: part %d is not what the check read" % (self.src, part["index"])
                        break
        except (IOError, OSError) as error:
            problem = "Cannot write the parts of %s to %s: %s" % (self.src, self.dest, error.strerror or error)
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
