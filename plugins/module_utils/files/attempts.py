# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A split input's parts with their jobs' attempts, as the merge takes them, from what the chain's modules
returned: batch_input_split's parts, ml_batch_predict's jobs, batch_output_merge's retry inputs and
openai_file's downloads. A job's files are found among the downloads by their file ID, so no file name is
agreed on between the task that downloads and the one that merges."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch.jobs import DONE_STATES
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError

# An attempt's files, by the field of the provider's job that names each.
FILE_FIELDS = (("output", "output_file_id"), ("errors", "error_file_id"))


def downloaded_files(downloads):
    """{file ID: local path} of openai_file's results; a skipped loop item's result names no file."""
    return dict((download["file_id"], download["dest"]) for download in downloads or [] if download.get("file_id") and download.get("dest"))


def attempt_of(job, files, what):
    """A job that has ended as an attempt: its status, reason and downloaded files."""
    status = job.get("status")
    if status not in DONE_STATES:
        raise ConfigurationError(
            "%s has not ended (%s). Merge once every job has ended (ml_batch_predict with wait: true)."
            % (what, "it waits to be submitted" if status is None else status)
        )
    provider_job = job.get("job") or {}
    attempt = {"status": status, "reason": job.get("reason")}
    for key, field in FILE_FIELDS:
        file_id = provider_job.get(field)
        if file_id and file_id not in files:
            raise ConfigurationError(
                "%s (task %s) ended with the %s file %s, which is not among the downloads. Download it (openai_file) and "
                "give its result in downloads." % (what, job.get("task_id"), key, file_id)
            )
        attempt[key] = files[file_id] if file_id else None
    return attempt


def parts_with_attempts(split_parts, jobs, retry_inputs=None, retry_jobs=None, downloads=None):
    """The parts, each with its job's attempt and then its retry jobs', in the order they ran.

    ``jobs`` holds one job per part of ``split_parts``, in the same order; ``retry_jobs`` one per entry of
    ``retry_inputs``, each of which names its part by its 1-based position in ``split_parts``."""
    retry_inputs, retry_jobs = retry_inputs or [], retry_jobs or []
    if len(jobs) != len(split_parts):
        raise ConfigurationError("jobs holds %d job(s) for %d part(s); give one job per part, in the parts' order." % (len(jobs), len(split_parts)))
    if len(retry_jobs) != len(retry_inputs):
        raise ConfigurationError(
            "retry_jobs holds %d job(s) for %d retry input(s); give one job per retry input, in their order." % (len(retry_jobs), len(retry_inputs))
        )
    files = downloaded_files(downloads)
    parts = []
    for number, (part, job) in enumerate(zip(split_parts, jobs), 1):
        if not part.get("path"):
            raise ConfigurationError("split_parts[%d] has no path; give the parts as batch_input_split returned them." % (number - 1))
        parts.append({"input": part["path"], "attempts": [attempt_of(job, files, "The job of part %d" % number)]})
    for retry, job in zip(retry_inputs, retry_jobs):
        number = retry.get("part")
        if not isinstance(number, int) or not 1 <= number <= len(parts):
            raise ConfigurationError(
                "A retry input names part %r, which is not one of the %d parts; give the retry inputs as batch_output_merge "
                "returned them for these parts." % (number, len(parts))
            )
        parts[number - 1]["attempts"].append(attempt_of(job, files, "The retry job of part %d" % number))
    return parts
