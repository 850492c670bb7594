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
  - An input larger than one batch job runs as several parts, each one batch job (and perhaps retries of its failed
    lines). This module merges the parts' downloaded output files into one output file in input order, and
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
  - O(mode) applies to the merged output, the merged error file and the retry inputs.
author:
  - opensearch.ml_commons maintainers (!UNKNOWN)
extends_documentation_fragment:
  - opensearch.ml_commons.file_mode
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
      - Required unless O(split_parts) is given.
    type: list
    elements: dict
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
  record_format:
    description:
      - Whose batch lines the parts hold, which tells how an answer is matched to its input line.
      - V(openai), by C(custom_id); an answer succeeded with C(status_code) 200.
      - V(bedrock), Bedrock's records, by C(recordId) (which every input record needs, unique in its part); an answer
        succeeded with C(modelOutput) and failed with C(error). Bedrock writes its output in an order of its own.
      - V(sagemaker), SageMaker batch transform's lines (C(SplitType) and C(AssembleWith) C(Line)), by place. The
        output's n-th line answers the input's n-th; an output with more lines than the input fails the task, one
        with fewer leaves the rest unanswered.
      - The merged lines are the provider's, as it wrote them.
    type: str
    choices: [openai, bedrock, sagemaker]
    default: openai
  split_parts:
    description:
      - Instead of O(parts), the parts as M(opensearch.ml_commons.batch_input_split) returned them, in input order; each
        one's C(path) is its input. Their attempts are built from O(jobs), O(retry_jobs) and O(downloads).
    type: list
    elements: dict
  jobs:
    description:
      - With O(split_parts), the parts' jobs as M(opensearch.ml_commons.ml_batch_predict) returned them (its C(jobs)),
        one per part in the same order, each the first attempt of its part. Every job must have ended.
    type: list
    elements: dict
  retry_inputs:
    description:
      - With O(split_parts), the retry inputs this module returned (RV(retry_inputs)) that ran as O(retry_jobs); each
        one's C(part) names its part by its 1-based position in O(split_parts).
    type: list
    elements: dict
  retry_jobs:
    description:
      - The jobs of O(retry_inputs) as M(opensearch.ml_commons.ml_batch_predict) returned them, one per retry input in
        the same order, each the next attempt of its part. Every job must have ended.
    type: list
    elements: dict
  downloads:
    description:
      - With O(split_parts), the jobs' downloaded files, as M(opensearch.ml_commons.openai_file) returned them (each
        with C(file_id) and C(dest)), or M(opensearch.ml_commons.s3_object) (each with C(uri) and C(dest)), for example a
        download loop's C(results); results without them (skipped loop items) are left out.
      - A job's output or error file is found here by its file ID, or a Bedrock or SageMaker job's output by its
        C(output_uri); one that is not here fails the task.
    type: list
    elements: dict
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

- name: Merge the results of a split input's jobs, the downloads found by file ID
  opensearch.ml_commons.batch_output_merge:
    split_parts: "{{ split.parts }}"
    jobs: "{{ parts.jobs }}"
    downloads: "{{ downloads.results }}"
    dest: results/corpus.output.jsonl
    errors_dest: results/corpus.errors.jsonl

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
      description: "The line's key, by O(record_format): its C(custom_id), Bedrock's C(recordId), or for SageMaker its line number."
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

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import build_diff
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import LocalModule
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.attempts import parts_with_attempts
from ansible_collections.opensearch.ml_commons.plugins.module_utils.files.merge import Merge


def run(module):
    params = module.params
    if params["split_parts"] is not None:
        params["parts"] = parts_with_attempts(params["split_parts"], params["jobs"], params["retry_inputs"], params["retry_jobs"], params["downloads"])
    merge = Merge(module, params["parts"], dest=params["dest"], errors_dest=params["errors_dest"], retry_dir=params["retry_dir"],
                  mode=params["mode"], record_format=params["record_format"])
    changed, before, after, counts = merge.apply()
    errors = params["errors_dest"] if counts["failed_requests"] else None
    return dict(counts, changed=changed, output=params["dest"], errors=errors, diff=build_diff(before, after))


ATTEMPT_SPEC = dict(output=dict(type="path"), errors=dict(type="path"), status=dict(type="str"), reason=dict(type="str"))
ARGUMENT_SPEC = dict(
    parts=dict(type="list", elements="dict", options=dict(
        input=dict(type="path", required=True),
        attempts=dict(type="list", elements="dict", default=[], options=ATTEMPT_SPEC),
    )),
    record_format=dict(type="str", choices=["openai", "bedrock", "sagemaker"], default="openai"),
    dest=dict(type="path"),
    errors_dest=dict(type="path"),
    retry_dir=dict(type="path"),
    split_parts=dict(type="list", elements="dict"),
    jobs=dict(type="list", elements="dict"),
    retry_inputs=dict(type="list", elements="dict"),
    retry_jobs=dict(type="list", elements="dict"),
    downloads=dict(type="list", elements="dict"),
    mode=dict(type="raw"),
)


def main():
    LocalModule(argument_spec=ARGUMENT_SPEC, required_one_of=[("parts", "split_parts")], mutually_exclusive=[("parts", "split_parts")],
                required_together=[("split_parts", "jobs"), ("retry_inputs", "retry_jobs")],
                required_by={"retry_inputs": "split_parts", "downloads": "split_parts"}).execute(run)


if __name__ == "__main__":
    main()
