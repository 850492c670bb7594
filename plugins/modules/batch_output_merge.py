#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: batch_output_merge
short_description: Merge the results of a batch input's parts into one output file in input order
version_added: 0.1.0
description:
  - An input larger than one batch job runs as several parts, each one OpenAI batch job (and perhaps retries of its
    failed lines). This module merges the parts' downloaded output files into one output file in input order, and
    their error files into one error file; it reports the lines that failed and writes their input lines for a retry.
  - A local file operation; it sends no request.
  - A line's answer is the first successful one (C(status_code) 200) among its part's attempts. A line without one
    failed, for the reason given by the last attempt that said anything about it. An attempt speaks of a line with
    a line of its output or error file; a job that did not end V(COMPLETED) speaks, by its status and reason, of
    every line it held that its files do not mention. An attempt holds the lines no earlier attempt answered, so a
    line absent from the files of a V(COMPLETED) job was not in it.
  - Memory stays flat whatever the size of the outputs. The module works part by part, indexes each output line by
    its position in its file (reading only the start of the line to find its C(custom_id) and status), and copies
    the answers' bytes as they are, in input order; no line is parsed as a whole or written again differently.
  - A re-run with the same files writes nothing. A manifest beside the merged output (O(dest) with C(.merge.json)
    appended, or beside O(errors_dest), or in O(retry_dir), whichever is given first) records each source file's
    size and modification time and what was written; when all of them still match, nothing is read. Otherwise the
    merge runs again and replaces only the files whose content differs, each through a temporary file renamed into
    place.
author:
  - opensearch.ml_commons maintainers (@opensearch-ml-commons)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: In check mode the merge reads the files and compares what it would write with what is there.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: The diff shows the paths, sizes and line counts of the written files, never their content.
options:
  parts:
    description:
      - The parts of the input, in input order.
    type: list
    elements: dict
    required: true
    suboptions:
      input:
        description:
          - The part's input JSONL, as it was uploaded. Every line needs a C(custom_id), unique within the part.
        type: path
        required: true
      attempts:
        description:
          - The part's batch jobs, in the order they ran; the first one holds every line, each later one the lines
            the earlier ones did not answer.
        type: list
        elements: dict
        default: []
        suboptions:
          output:
            description:
              - The job's downloaded output file; null when the job has none.
            type: path
          errors:
            description:
              - The job's downloaded error file; null when the job has none.
            type: path
          status:
            description:
              - The job's final state as ML Commons reports it, for example V(COMPLETED), V(FAILED), V(EXPIRED) or
                V(CANCELLED); null when no job ran.
            type: str
          reason:
            description:
              - Why the job ended unsuccessfully, reported for the lines it left unanswered.
            type: str
  dest:
    description:
      - Where to write the merged output, one answer per successful input line, in input order.
      - When not given, nothing is merged; the failed lines are still reported, and written to O(errors_dest) and
        O(retry_dir) when given.
    type: path
  errors_dest:
    description:
      - Where to write the merged error file, one line per failed input line, in input order. Each is the provider's
        error line as it came when there is one, else a line in the same shape, C(response) null and C(error) with a
        C(code) (V(batch_failed), V(batch_expired), V(batch_cancelled), V(not_submitted) or V(no_answer)) and a
        C(message).
      - When no line failed, O(errors_dest) is removed if it exists.
    type: path
  retry_dir:
    description:
      - A directory where, for each part with failed lines, C(<input stem>.retry.jsonl) receives those lines of
        the part's input, as they are and in order (the input of a retry job). The retry file of a part without
        failed lines is removed.
      - Created when needed.
    type: path
notes:
  - The merged output holds the answers' lines byte for byte as the provider wrote them.
seealso:
  - module: opensearch.ml_commons.openai_file
  - module: opensearch.ml_commons.ml_batch_predict
"""

EXAMPLES = r"""
- name: Merge two parts' results into one output and one error file
  opensearch.ml_commons.batch_output_merge:
    parts:
      - input: work/corpus.part-00001.jsonl
        attempts:
          - output: work/corpus.part-00001.output.jsonl
            errors: work/corpus.part-00001.errors.jsonl
            status: COMPLETED
      - input: work/corpus.part-00002.jsonl
        attempts:
          - output: work/corpus.part-00002.output.jsonl
            errors: work/corpus.part-00002.errors.jsonl
            status: EXPIRED
            reason: The batch expired after 24h
    dest: results/corpus.output.jsonl
    errors_dest: results/corpus.errors.jsonl
    retry_dir: work/retry
  register: merged

- name: Show the lines that failed
  ansible.builtin.debug:
    msg: "{{ merged.failed_requests }} of {{ merged.requests }} lines failed: {{ merged.failed_lines }}"
  when: merged.failed_requests > 0

- name: After a retry job of part 2's failed lines, merge again with its answers in place
  opensearch.ml_commons.batch_output_merge:
    parts:
      - input: work/corpus.part-00001.jsonl
        attempts:
          - output: work/corpus.part-00001.output.jsonl
            status: COMPLETED
      - input: work/corpus.part-00002.jsonl
        attempts:
          - output: work/corpus.part-00002.output.jsonl
            errors: work/corpus.part-00002.errors.jsonl
            status: EXPIRED
          - output: work/corpus.part-00002.retry-1.output.jsonl
            status: COMPLETED
    dest: results/corpus.output.jsonl
    errors_dest: results/corpus.errors.jsonl
    retry_dir: work/retry

- name: Only report which lines failed (nothing is written)
  opensearch.ml_commons.batch_output_merge:
    parts:
      - input: work/corpus.part-00001.jsonl
        attempts:
          - status: FAILED
            reason: The connector's credentials were refused
"""

RETURN = r"""
output:
  description: The merged output's path (O(dest)); null when O(dest) is not given.
  returned: always
  type: str
  sample: results/corpus.output.jsonl
errors:
  description: The merged error file's path (O(errors_dest)); null when not given or when no line failed.
  returned: always
  type: str
  sample: results/corpus.errors.jsonl
requests:
  description: How many lines the parts' inputs hold.
  returned: always
  type: int
  sample: 100000
succeeded:
  description: How many lines have an answer.
  returned: always
  type: int
  sample: 99990
failed_requests:
  description: How many lines have no answer. (Not C(failed), which Ansible reads as the task's own failure.)
  returned: always
  type: int
  sample: 10
failed_lines:
  description: The first 100 failed lines, in input order.
  returned: always
  type: list
  elements: dict
  contains:
    part:
      description: The part's 1-based index in O(parts).
      type: int
    line:
      description: The 1-based line number in the part's input.
      type: int
    custom_id:
      description: The line's C(custom_id).
      type: str
    code:
      description: The error code, from the provider's error line or the job's end (V(batch_expired), ...).
      type: str
    reason:
      description: The error message.
      type: str
  sample:
    - part: 2
      line: 25001
      custom_id: doc-75001
      code: batch_expired
      reason: This request could not be executed before the completion window expired.
failed_lines_truncated:
  description: Whether more lines failed than RV(failed_lines) lists.
  returned: always
  type: bool
  sample: false
retry_inputs:
  description: The retry inputs written to O(retry_dir), one per part with failed lines.
  returned: always
  type: list
  elements: dict
  contains:
    part:
      description: The part's 1-based index.
      type: int
    path:
      description: The retry input's path.
      type: str
    lines:
      description: How many input lines it holds.
      type: int
  sample:
    - part: 2
      path: work/retry/corpus.part-00002.retry.jsonl
      lines: 10
"""

import json
import os
import re
import tempfile
from array import array

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import build_diff
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.local import CHUNK_SIZE, open_local
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import LocalModule

# The start of an answer line as OpenAI writes it ({"id": ..., "custom_id": ..., "response": {"status_code": ...),
# read without parsing the rest of the line; a custom_id with escapes, or another key order, is parsed as JSON.
ANSWER_START = re.compile(
    br'\{\s*(?:"id"\s*:\s*"[^"\\]*"\s*,\s*)?"custom_id"\s*:\s*"([^"\\]*)"\s*,\s*"response"\s*:\s*(?:\{\s*"status_code"\s*:\s*(\d+)|null\b)'
)
REQUEST_START = re.compile(br'\{\s*"custom_id"\s*:\s*"([^"\\]*)"')
SUCCESS = 200
# How many bytes of adjacent answers are read and written at once.
COPY_SIZE = 8 * CHUNK_SIZE
MAX_REPORTED = 100
JOB_END_CODES = {"FAILED": "batch_failed", "EXPIRED": "batch_expired", "CANCELLED": "batch_cancelled"}
MANIFEST_VERSION = 1
# Linux, Python 3.8+: a copy between files that never leaves the kernel.
COPY_FILE_RANGE = getattr(os, "copy_file_range", None)


def failure(path, number, role, problem, advice):
    return ConfigurationError("Line %d of %s (%s) %s. %s" % (number, path, role, problem, advice))


def parsed(path, number, line, role, no_custom_id, advice):
    """A line the quick match could not read, parsed whole: a JSON object with a string ``custom_id``."""
    try:
        value = json.loads(line)
    except ValueError as error:
        raise failure(path, number, role, "is not JSON (%s)" % error, advice)
    if not isinstance(value, dict) or not isinstance(value.get("custom_id"), str):
        raise failure(path, number, role, no_custom_id, advice)
    return value


def custom_id_of_request(path, number, line, role):
    match = REQUEST_START.match(line)
    if match:
        return match.group(1).decode("utf-8", "replace")
    return parsed(path, number, line, role, "has no custom_id", "Give each part the input it was submitted with.")["custom_id"]


def key_of_answer(path, number, line, role):
    """The ``custom_id`` and response status (None without a response) of an output or error line."""
    match = ANSWER_START.match(line)
    if match and line[-3:].rstrip().endswith(b"}"):
        status = match.group(2)
        return match.group(1).decode("utf-8", "replace"), int(status) if status else None
    answer = parsed(path, number, line, role, "has no custom_id, so it answers no request",
                    "Is it the job's output or error file, downloaded whole? Download it again (openai_file with force: true) and run again.")
    response = answer.get("response")
    status = response.get("status_code") if isinstance(response, dict) else None
    return answer["custom_id"], status if isinstance(status, int) else None


def lines_of(path):
    """(number, offset, line) of each non-blank line of the file at ``path``, read sequentially."""
    with open_local(path) as handle:
        offset = 0
        for number, line in enumerate(handle, 1):
            if not line.isspace():
                yield number, offset, line
            offset += len(line)


def error_of(line):
    """The (code, message) an error line gives, as the provider wrote it."""
    answer = json.loads(line)
    error = answer.get("error")
    if isinstance(error, dict):
        return str(error.get("code") or "error"), str(error.get("message") or "")
    response = answer.get("response") if isinstance(answer.get("response"), dict) else {}
    body = response.get("body") if isinstance(response.get("body"), dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    status = response.get("status_code")
    return str(error.get("code") or error.get("type") or "http_%s" % status), str(error.get("message") or "status %s" % status)


def job_statement(attempt):
    """What a job that did not complete says of the lines its files do not mention: (code, message), or None."""
    status = (attempt.get("status") or "").upper()
    if status == "COMPLETED":
        return None
    if not status:
        return "not_submitted", attempt.get("reason") or "No batch job ran for this part."
    code = JOB_END_CODES.get(status, "batch_" + status.lower())
    return code, attempt.get("reason") or "The batch job ended %s without answering this line." % status


class Part(object):
    """One part's lines: where each one's input, answer and last error are, as (file, offset, length)."""

    def __init__(self, number, spec):
        self.number = number
        self.input = spec["input"]
        self.attempts = spec.get("attempts") or []
        self.files = [self.input]
        self.custom_ids = []
        self.starts = array("q")
        self.lengths = array("q")
        self.answers = []
        self.statements = []
        self.handles = {}

    def read_input(self):
        if not os.path.isfile(self.input):
            raise ConfigurationError("The input of part %d, %s, does not exist. Give the path of the part's input JSONL." % (self.number, self.input))
        positions = {}
        role = "the input of part %d" % self.number
        for number, offset, line in lines_of(self.input):
            custom_id = custom_id_of_request(self.input, number, line, role)
            if custom_id in positions:
                raise failure(self.input, number, role, "repeats the custom_id %r" % custom_id,
                              "A batch input's custom_ids are unique; give the part the input it was submitted with.")
            positions[custom_id] = len(self.custom_ids)
            self.custom_ids.append(custom_id)
            self.starts.append(offset)
            self.lengths.append(len(line))
        self.answers = [None] * len(self.custom_ids)
        self.statements = [None] * len(self.custom_ids)
        return positions

    def read_attempts(self, positions):
        for attempt_number, attempt in enumerate(self.attempts, 1):
            mentioned = bytearray(len(self.custom_ids))
            for kind in ("output", "errors"):
                if attempt.get(kind):
                    self.read_answers(positions, attempt[kind], "the %s file of attempt %d of part %d" % (kind, attempt_number, self.number), mentioned)
            statement = job_statement(attempt)
            if statement is not None:
                for position, answer in enumerate(self.answers):
                    if answer is None and not mentioned[position]:
                        self.statements[position] = statement

    def read_answers(self, positions, path, role, mentioned):
        if not os.path.isfile(path):
            raise ConfigurationError("%s, %s, does not exist. Download it first (openai_file), or give null when the job has none." % (role.capitalize(), path))
        file_index = len(self.files)
        self.files.append(path)
        for number, offset, line in lines_of(path):
            custom_id, status = key_of_answer(path, number, line, role)
            position = positions.get(custom_id)
            if position is None:
                raise failure(path, number, role, "answers the custom_id %r, which the part's input %s does not hold" % (custom_id, self.input),
                              "Give each part the output and error files of its own jobs.")
            mentioned[position] = 1
            span = (file_index, offset, len(line))
            if status == SUCCESS:
                if self.answers[position] is None:
                    self.answers[position] = span
            else:
                self.statements[position] = span

    def failed_positions(self):
        return [position for position, answer in enumerate(self.answers) if answer is None]

    def error(self, position):
        """(code, message) of a failed line."""
        statement = self.statements[position]
        if statement is None:
            return "no_answer", "No attempt answered this line."
        if len(statement) == 2:
            return statement
        return error_of(self.read(*statement))

    def error_line(self, position):
        statement = self.statements[position]
        if statement is not None and len(statement) == 3:
            return self.read(*statement)
        code, message = self.error(position)
        return (json.dumps({"custom_id": self.custom_ids[position], "response": None, "error": {"code": code, "message": message}}) + "\n").encode("utf-8")

    def handle(self, file_index):
        handle = self.handles.get(file_index)
        if handle is None:
            handle = self.handles[file_index] = open_local(self.files[file_index])
        return handle

    def read(self, file_index, offset, length):
        handle = self.handle(file_index)
        handle.seek(offset)
        data = handle.read(length)
        return data if data.endswith(b"\n") else data + b"\n"

    def copy_answers(self, sink):
        """Write the answers in input order, each run of adjacent ones of a file at once."""
        run = None
        for span in self.answers:
            if span is None:
                continue
            if run and run[0] == span[0] and run[1] + run[2] == span[1]:
                run[2] += span[2]
                run[3] += 1
                continue
            if run:
                sink.copy(self.handle(run[0]), *run[1:])
            run = [span[0], span[1], span[2], 1]
        if run:
            sink.copy(self.handle(run[0]), *run[1:])

    def copy_inputs(self, sink, positions):
        for position in positions:
            sink.write(self.read(0, self.starts[position], self.lengths[position]), 1)

    def close(self):
        """Close the part's files and drop its per-line index: parts are merged one after the other, so memory holds
        one part's index at a time (a job's lines at most), whatever the number of parts."""
        for handle in self.handles.values():
            handle.close()
        self.handles = {}
        self.custom_ids, self.answers, self.statements = [], [], []
        self.starts, self.lengths = array("q"), array("q")


def chunks(source, length):
    """The next ``length`` bytes of the open file ``source``, COPY_SIZE bytes at a time (fewer at its end)."""
    while length > 0:
        chunk = source.read(min(COPY_SIZE, length))
        if not chunk:
            return
        length -= len(chunk)
        yield chunk


class Sink(object):
    """What is written to ``path``, compared on the way with what ``path`` holds: as long as it is the same, nothing
    is written; from the first difference on (or from the start, when there is no ``path``), it goes into a
    temporary file beside ``path`` (none in check mode) that :meth:`Written.commit` moves into place."""

    def __init__(self, path, write):
        self.path = path
        self.writes = write
        self.size = 0
        self.lines = 0
        self.handle = self.temporary = None
        self.unchanged = None
        self.directory = os.path.dirname(os.path.abspath(path))
        self.existing = open_local(path) if os.path.exists(path) else None
        if self.existing is None:
            self.diverge()

    def diverge(self):
        """Start the temporary file with the bytes found the same so far."""
        existing, self.existing = self.existing, None
        if self.writes:
            handle, self.temporary = tempfile.mkstemp(dir=self.directory, prefix=".%s." % os.path.basename(self.path), suffix=".part")
            self.handle = os.fdopen(handle, "wb")
        if existing is not None:
            self.transfer(existing, 0, self.size)
            existing.close()

    def write(self, data, lines):
        if self.existing is not None and self.existing.read(len(data)) != data:
            self.diverge()
        self.size += len(data)
        self.lines += lines
        if self.handle is not None:
            self.handle.write(data)

    def copy(self, source, offset, length, lines):
        """Write ``length`` bytes of the open file ``source`` from ``offset`` on, ending with a newline: compared
        COPY_SIZE bytes at a time while ``path`` holds the same, else appended by :meth:`transfer`."""
        source.seek(offset + length - 1)
        newline = b"" if source.read(1) == b"\n" else b"\n"
        if self.existing is None:
            self.transfer(source, offset, length)
            self.size += length
        else:
            source.seek(offset)
            for chunk in chunks(source, length):
                self.write(chunk, 0)
        self.write(newline, lines)

    def transfer(self, source, offset, length):
        """Append ``length`` bytes of the open file ``source`` from ``offset`` on to the temporary file (none in check
        mode): copied by the kernel (os.copy_file_range) where the system can, which costs a fraction of reading and
        writing them, else read and written COPY_SIZE bytes at a time."""
        if self.handle is None:
            return
        done = self.kernel_copy(source, offset, length)
        source.seek(offset + done)
        for chunk in chunks(source, length - done):
            self.handle.write(chunk)

    def kernel_copy(self, source, offset, length):
        """How many bytes os.copy_file_range appended to the temporary file (0 where the system has none)."""
        if COPY_FILE_RANGE is None:
            return 0
        self.handle.flush()
        done = 0
        try:
            while done < length:
                copied = COPY_FILE_RANGE(source.fileno(), self.handle.fileno(), length - done, offset + done)
                if not copied:
                    break
                done += copied
        except OSError:
            pass  # a file system or kernel without it: the rest is read and written
        return done

    def finish(self):
        """Close the files; return whether ``path`` already holds exactly what was written."""
        if self.unchanged is None:
            self.unchanged = self.existing is not None and self.existing.read(1) == b""
            if self.existing is not None and not self.unchanged:
                self.diverge()
        if self.existing is not None:
            self.existing.close()
            self.existing = None
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        return self.unchanged

    def discard(self):
        self.finish()
        if self.temporary and os.path.exists(self.temporary):
            os.remove(self.temporary)
        self.temporary = None

    def state(self):
        return {"path": self.path, "bytes": self.size, "lines": self.lines}


def stat_of(path):
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def count_lines(path):
    with open_local(path) as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""))


class Written(object):
    """The files this merge writes: what they hold before, from the manifest when it still describes them."""

    def __init__(self, module, manifest):
        self.module = module
        self.recorded = dict((entry["path"], entry) for entry in (manifest or {}).get("outputs", []))
        self.changed = False
        self.outputs = []

    def recorded_entry(self, path):
        entry = self.recorded.get(path)
        if entry and stat_of(path) == entry["stat"]:
            return entry
        return None

    def before(self, path):
        if not os.path.isfile(path):
            return None
        entry = self.recorded_entry(path)
        lines = entry["lines"] if entry else (count_lines(path) if self.module._diff else None)
        return {"path": path, "bytes": os.path.getsize(path), "lines": lines}

    def commit(self, sink):
        if sink.finish():
            sink.discard()
        else:
            self.changed = True
            if sink.temporary:
                # atomic_move needs an absolute path to create a file (it looks at the directory's own attributes).
                self.module.atomic_move(sink.temporary, os.path.abspath(sink.path))
                sink.temporary = None
        self.outputs.append({"path": sink.path, "lines": sink.lines, "stat": stat_of(sink.path)})

    def remove(self, path):
        if os.path.lexists(path):
            self.changed = True
            if not self.module.check_mode:
                os.remove(path)
        self.outputs.append({"path": path, "lines": 0, "stat": None})


def manifest_path(params):
    if params["dest"]:
        return params["dest"] + ".merge.json"
    if params["errors_dest"]:
        return params["errors_dest"] + ".merge.json"
    if params["retry_dir"]:
        return os.path.join(params["retry_dir"], ".batch_output_merge.json")
    return None


def request_of(params):
    """What the result depends on besides the files' content: the options, normalised."""
    parts = [{"input": part["input"], "attempts": [dict((key, attempt.get(key)) for key in ("output", "errors", "status", "reason"))
                                                   for attempt in part.get("attempts") or []]} for part in params["parts"]]
    return {"version": MANIFEST_VERSION, "parts": parts, "dest": params["dest"], "errors_dest": params["errors_dest"], "retry_dir": params["retry_dir"]}


def source_paths(params):
    paths = []
    for part in params["parts"]:
        paths.append(part["input"])
        for attempt in part.get("attempts") or []:
            paths.extend(attempt[kind] for kind in ("output", "errors") if attempt.get(kind))
    return paths


def load_manifest(path):
    if not path or not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            manifest = json.load(handle)
    except (IOError, OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("request", {}).get("version") == MANIFEST_VERSION else None


def check_destinations(params, sources):
    for option in ("dest", "errors_dest"):
        path = params[option]
        if not path:
            continue
        if os.path.abspath(path) in set(os.path.abspath(source) for source in sources):
            raise ConfigurationError("%s is %s, which is also one of the files to merge. Give %s a path of its own." % (option, path, option))
        if os.path.isdir(path):
            raise ConfigurationError("%s is %s, a directory. Give the path of a file to write." % (option, path))
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise ConfigurationError("Cannot write %s %s: the directory %s does not exist. Create it first." % (option, path, directory))
    if params["retry_dir"] and os.path.exists(params["retry_dir"]) and not os.path.isdir(params["retry_dir"]):
        raise ConfigurationError("retry_dir is %s, which is not a directory. Give a directory for the retry inputs." % params["retry_dir"])


def still_valid(manifest, request, sources):
    """Whether the manifest describes this very merge and every file it read and wrote is as it left them."""
    if manifest is None or manifest.get("request") != request:
        return False
    if manifest.get("sources") != sources:
        return False
    return all(stat_of(entry["path"]) == entry["stat"] for entry in manifest.get("outputs", []))


def retry_path(retry_dir, part):
    stem = os.path.splitext(os.path.basename(part.input))[0]
    return os.path.join(retry_dir, "%s.retry.jsonl" % stem)


def check_retry_names(params, parts):
    if not params["retry_dir"]:
        return
    seen = {}
    for part in parts:
        path = retry_path(params["retry_dir"], part)
        if path in seen:
            raise ConfigurationError(
                "Parts %d and %d have inputs of the same name, so their retry inputs would both be %s. Give the parts' inputs distinct names."
                % (seen[path], part.number, path)
            )
        seen[path] = part.number


def merge(module, parts, written):
    """Go through the parts one by one; return the result's counts, failed lines and retry inputs."""
    params = module.params
    write = not module.check_mode
    output = Sink(params["dest"], write) if params["dest"] else None
    errors = Sink(params["errors_dest"], write) if params["errors_dest"] else None
    if params["retry_dir"] and write and not os.path.isdir(params["retry_dir"]):
        os.makedirs(params["retry_dir"])
    result = {"requests": 0, "succeeded": 0, "failed_requests": 0, "failed_lines": [], "retry_inputs": []}
    retry_sinks = []
    try:
        for part in parts:
            try:
                part.read_attempts(part.read_input())
                failed = part.failed_positions()
                result["requests"] += len(part.custom_ids)
                result["failed_requests"] += len(failed)
                if output:
                    part.copy_answers(output)
                for position in failed:
                    if len(result["failed_lines"]) < MAX_REPORTED:
                        code, reason = part.error(position)
                        result["failed_lines"].append({"part": part.number, "line": position + 1, "custom_id": part.custom_ids[position],
                                                       "code": code, "reason": reason})
                    if errors:
                        errors.write(part.error_line(position), 1)
                if params["retry_dir"]:
                    path = retry_path(params["retry_dir"], part)
                    if failed:
                        sink = Sink(path, write)
                        retry_sinks.append(sink)
                        part.copy_inputs(sink, failed)
                        sink.finish()
                        result["retry_inputs"].append({"part": part.number, "path": path, "lines": len(failed)})
                    else:
                        written.remove(path)
            finally:
                part.close()
        result["succeeded"] = result["requests"] - result["failed_requests"]
        for sink in [output] + retry_sinks:
            if sink:
                written.commit(sink)
        if errors:
            if result["failed_requests"]:
                written.commit(errors)
            else:
                errors.discard()
                written.remove(errors.path)
    finally:
        for sink in [output, errors] + retry_sinks:
            if sink:
                sink.discard()
    result["failed_lines_truncated"] = result["failed_requests"] > len(result["failed_lines"])
    result["states"] = {"output": output.state() if output else None, "errors": errors.state() if errors and result["failed_requests"] else None,
                        "retry_inputs": [sink.state() for sink in retry_sinks]}
    return result


def write_manifest(module, path, request, sources, written, result):
    manifest = {"request": request, "sources": sources, "outputs": written.outputs, "result": result}
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".%s." % os.path.basename(path), suffix=".part")
    with os.fdopen(handle, "w") as stream:
        json.dump(manifest, stream, sort_keys=True)
    module.atomic_move(temporary, os.path.abspath(path))


def states_before(params, parts, written):
    retry_paths = [retry_path(params["retry_dir"], part) for part in parts] if params["retry_dir"] else []
    return {
        "output": written.before(params["dest"]) if params["dest"] else None,
        "errors": written.before(params["errors_dest"]) if params["errors_dest"] else None,
        "retry_inputs": [state for state in (written.before(path) for path in retry_paths) if state],
    }


def returned(params, result, changed, before, after):
    answer = dict((key, result[key]) for key in ("requests", "succeeded", "failed_requests", "failed_lines", "failed_lines_truncated", "retry_inputs"))
    answer.update(changed=changed, output=params["dest"], errors=params["errors_dest"] if result["failed_requests"] and params["errors_dest"] else None,
                  diff=build_diff(before, after))
    return answer


def run(module):
    params = module.params
    request = request_of(params)
    # Stated before anything is read, so that a source that changes during the merge is merged again next time.
    sources = [[path, stat_of(path)] for path in source_paths(params)]
    check_destinations(params, source_paths(params))
    manifest_file = manifest_path(params)
    manifest = load_manifest(manifest_file)
    if still_valid(manifest, request, sources):
        states = manifest["result"]["states"]
        return returned(params, manifest["result"], False, states, states)
    parts = [Part(number, spec) for number, spec in enumerate(params["parts"], 1)]
    check_retry_names(params, parts)
    written = Written(module, manifest)
    before = states_before(params, parts, written)
    result = merge(module, parts, written)
    if manifest_file and not module.check_mode:
        write_manifest(module, manifest_file, request, sources, written, result)
    return returned(params, result, written.changed, before, result["states"])


ATTEMPT_SPEC = dict(output=dict(type="path"), errors=dict(type="path"), status=dict(type="str"), reason=dict(type="str"))
ARGUMENT_SPEC = dict(
    parts=dict(type="list", elements="dict", required=True, options=dict(
        input=dict(type="path", required=True),
        attempts=dict(type="list", elements="dict", default=[], options=ATTEMPT_SPEC),
    )),
    dest=dict(type="path"),
    errors_dest=dict(type="path"),
    retry_dir=dict(type="path"),
)


def main():
    LocalModule(argument_spec=ARGUMENT_SPEC).execute(run)


if __name__ == "__main__":
    main()
