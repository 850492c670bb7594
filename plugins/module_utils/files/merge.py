# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The outputs of a batch input's parts merged in input order, with their failed lines and retry inputs.

A part's lines are indexed by position (their key, where the line is in the input), each answer
by the file and place it is in. The key is the provider's: OpenAI's ``custom_id`` (only the start of
a line is read to find it and the status), Bedrock's ``recordId``, or for SageMaker's batch transform,
which writes a line per input line in order, the line's place. Parts are merged one after the other, so memory holds one part's index, whatever the
input's size, and the answers' bytes are copied as the provider wrote them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
from array import array

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.local import (
    CHUNK_SIZE,
    Replacement,
    count_lines,
    make_directory,
    open_local,
    read_manifest,
    write_manifest,
)

# The start of an answer line as OpenAI writes it ({"id": ..., "custom_id": ..., "response": {"status_code": ...),
# read without parsing the rest of the line; a custom_id with escapes, or another key order, is parsed as JSON.
ANSWER_START = re.compile(
    br'\{\s*(?:"id"\s*:\s*"[^"\\]*"\s*,\s*)?"custom_id"\s*:\s*"([^"\\]*)"\s*,\s*"response"\s*:\s*(?:\{\s*"status_code"\s*:\s*(\d+)|null\b)'
)
REQUEST_START = re.compile(br'\{\s*"custom_id"\s*:\s*"([^"\\]*)"')
SUCCESS = 200
MAX_REPORTED = 100
JOB_END_CODES = {"FAILED": "batch_failed", "EXPIRED": "batch_expired", "CANCELLED": "batch_cancelled"}
MANIFEST_VERSION = 1


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


class OpenAIRecords(object):
    """OpenAI's batch lines: requests and answers keyed by ``custom_id``, an answer's status its ``status_code``."""

    name = "openai"
    key_field = "custom_id"

    @staticmethod
    def request_key(path, number, line, role, index):
        return custom_id_of_request(path, number, line, role)

    @staticmethod
    def answer_key(path, number, line, role, index):
        return key_of_answer(path, number, line, role)


def bedrock_record(path, number, line, role, advice):
    try:
        record = json.loads(line)
    except ValueError as error:
        raise failure(path, number, role, "is not JSON (%s)" % error, advice)
    if not isinstance(record, dict) or not isinstance(record.get("recordId"), str) or not record["recordId"]:
        raise failure(path, number, role, "has no recordId", advice)
    return record


class BedrockRecords(object):
    """Bedrock's batch records: keyed by ``recordId``; an answer holds ``modelOutput``, or ``error`` when it failed."""

    name = "bedrock"
    key_field = "recordId"

    @staticmethod
    def request_key(path, number, line, role, index):
        advice = "Bedrock's output is put in input order by recordId: give every record of the input a recordId, unique in the input."
        return bedrock_record(path, number, line, role, advice)["recordId"]

    @staticmethod
    def answer_key(path, number, line, role, index):
        advice = "Is it the job's output, downloaded whole? Download it again (s3_object with force: true) and run again."
        record = bedrock_record(path, number, line, role, advice)
        return record["recordId"], SUCCESS if "modelOutput" in record and not record.get("error") else None


class SageMakerRecords(object):
    """SageMaker batch transform's lines (SplitType Line, AssembleWith Line): the output's n-th line answers the
    input's n-th; a failed record fails the whole job, so every line written is an answer."""

    name = "sagemaker"
    key_field = "line"

    @staticmethod
    def request_key(path, number, line, role, index):
        return str(index + 1)

    @staticmethod
    def answer_key(path, number, line, role, index):
        return str(index + 1), SUCCESS


RECORD_FORMATS = dict((records.name, records) for records in (OpenAIRecords, BedrockRecords, SageMakerRecords))


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
        # Bedrock writes errorCode and errorMessage.
        return str(error.get("code") or error.get("errorCode") or "error"), str(error.get("message") or error.get("errorMessage") or "")
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

    def __init__(self, number, spec, records=OpenAIRecords):
        self.number = number
        self.records = records
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
        key_field = self.records.key_field
        for number, offset, line in lines_of(self.input):
            custom_id = self.records.request_key(self.input, number, line, role, len(self.custom_ids))
            if custom_id in positions:
                raise failure(self.input, number, role, "repeats the %s %r" % (key_field, custom_id),
                              "A batch input's %ss are unique; give the part the input it was submitted with." % key_field)
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
        for index, (number, offset, line) in enumerate(lines_of(path)):
            custom_id, status = self.records.answer_key(path, number, line, role, index)
            position = positions.get(custom_id)
            if position is None:
                raise failure(path, number, role,
                              "answers the %s %r, which the part's input %s does not hold" % (self.records.key_field, custom_id, self.input),
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
        line = {self.records.key_field: self.custom_ids[position], "response": None, "error": {"code": code, "message": message}}
        return (json.dumps(line) + "\n").encode("utf-8")

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

    def copy_answers(self, output):
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
                output.copy(self.handle(run[0]), *run[1:])
            run = [span[0], span[1], span[2], 1]
        if run:
            output.copy(self.handle(run[0]), *run[1:])

    def copy_inputs(self, output, positions):
        for position in positions:
            output.write(self.read(0, self.starts[position], self.lengths[position]), 1)

    def close(self):
        """Close the part's files and drop its index: memory holds one part's at a time."""
        for handle in self.handles.values():
            handle.close()
        self.handles = {}
        self.custom_ids, self.answers, self.statements = [], [], []
        self.starts, self.lengths = array("q"), array("q")


def chunks(source, length):
    """The next ``length`` bytes of the open file ``source``, a chunk at a time."""
    while length > 0:
        chunk = source.read(min(CHUNK_SIZE, length))
        if not chunk:
            return
        length -= len(chunk)
        yield chunk


class Output(object):
    """A file the merge writes: into a :class:`Replacement` beside ``path`` (none in check mode), and compared
    on the way with what ``path`` holds, so that a merge that comes out the same replaces nothing."""

    def __init__(self, module, path):
        self.path = path
        self.size = 0
        self.lines = 0
        self.existing = open_local(path) if os.path.exists(path) else None
        self.same = self.existing is not None
        self.replacement = None if module.check_mode else Replacement(module, path)

    def write(self, data, lines=0):
        if self.same and self.existing.read(len(data)) != data:
            self.same = False
        if self.replacement is not None:
            self.replacement.write(data)
        self.size += len(data)
        self.lines += lines

    def copy(self, source, offset, length, lines):
        """Write ``length`` bytes of the open file ``source`` from ``offset`` on, ending with a newline."""
        source.seek(offset)
        last = b""
        for chunk in chunks(source, length):
            self.write(chunk)
            last = chunk[-1:]
        self.write(b"" if last == b"\n" else b"\n", lines)

    def finish(self):
        """Close the files; ``same`` then tells whether ``path`` already holds exactly what was written."""
        if self.existing is not None:
            self.same = self.same and self.existing.read(1) == b""
            self.existing.close()
            self.existing = None
        if self.replacement is not None:
            self.replacement.close()

    def commit(self):
        """Put what was written in place unless ``path`` holds it already; return whether ``path`` changed."""
        self.finish()
        if not self.same and self.replacement is not None:
            self.replacement.commit()
        self.discard()
        return not self.same

    def discard(self):
        self.finish()
        if self.replacement is not None:
            self.replacement.discard()
            self.replacement = None

    def state(self):
        return {"path": self.path, "bytes": self.size, "lines": self.lines}


def stat_of(path):
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


class Written(object):
    """The files a merge writes: what they held before (from the manifest while it still describes them),
    whether any changed, and what the next manifest records of them."""

    def __init__(self, module, manifest):
        self.module = module
        self.recorded = dict((entry["path"], entry) for entry in (manifest or {}).get("outputs", []))
        self.changed = False
        self.outputs = []

    def before(self, path):
        if not os.path.isfile(path):
            return None
        entry = self.recorded.get(path)
        if entry and stat_of(path) == entry["stat"]:
            lines = entry["lines"]
        else:
            lines = count_lines(path) if self.module._diff else None
        return {"path": path, "bytes": os.path.getsize(path), "lines": lines}

    def commit(self, output):
        if output.commit():
            self.changed = True
        self.outputs.append({"path": output.path, "lines": output.lines, "stat": stat_of(output.path)})

    def remove(self, path):
        if os.path.lexists(path):
            self.changed = True
            if not self.module.check_mode:
                os.remove(path)
        self.outputs.append({"path": path, "lines": 0, "stat": None})


def is_manifest(manifest):
    return manifest["request"]["version"] == MANIFEST_VERSION


class Merge(object):
    """The merge of ``parts`` (each a dict of ``input`` and ``attempts``, in input order) into the merged output
    ``dest``, the merged error file ``errors_dest`` and the retry inputs in ``retry_dir``, each optional, with the
    permissions ``mode`` (the ``mode`` option's form) when given."""

    def __init__(self, module, parts, dest=None, errors_dest=None, retry_dir=None, mode=None, record_format="openai"):
        self.module = module
        self.records = RECORD_FORMATS[record_format]
        self.specs = parts
        self.dest = dest
        self.errors_dest = errors_dest
        self.retry_dir = retry_dir
        self.mode = mode

    def manifest_path(self):
        if self.dest:
            return self.dest + ".merge.json"
        if self.errors_dest:
            return self.errors_dest + ".merge.json"
        if self.retry_dir:
            return os.path.join(self.retry_dir, ".batch_output_merge.json")
        return None

    def request(self):
        """What the result depends on besides the files' content: the options, normalised."""
        parts = [{"input": part["input"], "attempts": [dict((key, attempt.get(key)) for key in ("output", "errors", "status", "reason"))
                                                       for attempt in part.get("attempts") or []]} for part in self.specs]
        return {"version": MANIFEST_VERSION, "parts": parts, "dest": self.dest, "errors_dest": self.errors_dest, "retry_dir": self.retry_dir,
                "record_format": self.records.name}

    def source_paths(self):
        paths = []
        for part in self.specs:
            paths.append(part["input"])
            for attempt in part.get("attempts") or []:
                paths.extend(attempt[kind] for kind in ("output", "errors") if attempt.get(kind))
        return paths

    def check_destinations(self, sources):
        for option, path in (("dest", self.dest), ("errors_dest", self.errors_dest)):
            if not path:
                continue
            if os.path.abspath(path) in set(os.path.abspath(source) for source in sources):
                raise ConfigurationError("%s is %s, which is also one of the files to merge. Give %s a path of its own." % (option, path, option))
            if os.path.isdir(path):
                raise ConfigurationError("%s is %s, a directory. Give the path of a file to write." % (option, path))
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                raise ConfigurationError("Cannot write %s %s: the directory %s does not exist. Create it first." % (option, path, directory))
        if self.retry_dir and os.path.exists(self.retry_dir) and not os.path.isdir(self.retry_dir):
            raise ConfigurationError("retry_dir is %s, which is not a directory. Give a directory for the retry inputs." % self.retry_dir)

    def retry_path(self, part):
        stem = os.path.splitext(os.path.basename(part.input))[0]
        return os.path.join(self.retry_dir, "%s.retry.jsonl" % stem)

    def check_retry_names(self, parts):
        if not self.retry_dir:
            return
        seen = {}
        for part in parts:
            path = self.retry_path(part)
            if path in seen:
                raise ConfigurationError(
                    "Parts %d and %d have inputs of the same name, so their retry inputs would both be %s. Give the parts' inputs distinct names."
                    % (seen[path], part.number, path)
                )
            seen[path] = part.number

    def states_before(self, parts, written):
        retry_paths = [self.retry_path(part) for part in parts] if self.retry_dir else []
        return {
            "output": written.before(self.dest) if self.dest else None,
            "errors": written.before(self.errors_dest) if self.errors_dest else None,
            "retry_inputs": [state for state in (written.before(path) for path in retry_paths) if state],
        }

    def apply(self):
        """Merge, unless the manifest shows it done: ``(changed, before, after, counts)``, with the written files'
        states before and after (for the diff) and the lines' counts, failed lines and retry inputs."""
        request = self.request()
        # Stated before anything is read, so that a source that changes during the merge is merged again next time.
        sources = [[path, stat_of(path)] for path in self.source_paths()]
        self.check_destinations(self.source_paths())
        manifest_file = self.manifest_path()
        manifest = read_manifest(manifest_file, is_manifest) if manifest_file else None
        if self.still_valid(manifest, request, sources):
            states = manifest["result"]["states"]
            return self.with_mode(False, states), states, states, counts_of(manifest["result"])
        parts = [Part(number, spec, self.records) for number, spec in enumerate(self.specs, 1)]
        self.check_retry_names(parts)
        written = Written(self.module, manifest)
        before = self.states_before(parts, written)
        result = self.merge(parts, written)
        if manifest_file and not self.module.check_mode:
            write_manifest(self.module, manifest_file, {"request": request, "sources": sources, "outputs": written.outputs, "result": result})
        return self.with_mode(written.changed, result["states"]), before, result["states"], counts_of(result)

    def with_mode(self, changed, states):
        """``changed``, or True when ``mode`` changes the permissions of a file the merge wrote."""
        for state in [states["output"], states["errors"]] + states["retry_inputs"]:
            if state and os.path.isfile(state["path"]):
                changed = self.module.set_mode_if_different(state["path"], self.mode, changed)
        return changed

    @staticmethod
    def still_valid(manifest, request, sources):
        """Whether the manifest describes this very merge and every file it read and wrote is as it left them."""
        if manifest is None or manifest.get("request") != request or manifest.get("sources") != sources:
            return False
        return all(stat_of(entry["path"]) == entry["stat"] for entry in manifest.get("outputs", []))

    def merge(self, parts, written):
        """Go through the parts one by one; return the counts, failed lines, retry inputs and the files' states."""
        module = self.module
        output = Output(module, self.dest) if self.dest else None
        errors = Output(module, self.errors_dest) if self.errors_dest else None
        if self.retry_dir and not module.check_mode and not os.path.isdir(self.retry_dir):
            make_directory(self.retry_dir)
        result = {"requests": 0, "succeeded": 0, "failed_requests": 0, "failed_lines": [], "retry_inputs": []}
        retries = []
        try:
            for part in parts:
                try:
                    self.merge_part(part, output, errors, retries, result, written)
                finally:
                    part.close()
            result["succeeded"] = result["requests"] - result["failed_requests"]
            for each in [output] + retries:
                if each:
                    written.commit(each)
            if errors and result["failed_requests"]:
                written.commit(errors)
            elif errors:
                errors.discard()
                written.remove(errors.path)
        finally:
            for each in [output, errors] + retries:
                if each:
                    each.discard()
        result["failed_lines_truncated"] = result["failed_requests"] > len(result["failed_lines"])
        result["states"] = {"output": output.state() if output else None, "errors": errors.state() if errors and result["failed_requests"] else None,
                            "retry_inputs": [retry.state() for retry in retries]}
        return result

    def merge_part(self, part, output, errors, retries, result, written):
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
        if not self.retry_dir:
            return
        path = self.retry_path(part)
        if not failed:
            written.remove(path)
            return
        retry = Output(self.module, path)
        retries.append(retry)
        part.copy_inputs(retry, failed)
        # Closed now, moved into place with the rest at the end: open files stay few whatever the number of parts.
        retry.finish()
        result["retry_inputs"].append({"part": part.number, "path": path, "lines": len(failed)})


COUNTS = ("requests", "succeeded", "failed_requests", "failed_lines", "failed_lines_truncated", "retry_inputs")


def counts_of(result):
    return dict((key, result[key]) for key in COUNTS)
