# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A split input's parts with their jobs' attempts, as the merge takes them, from what the chain's modules
returned: batch_input_split's parts, ml_batch_predict's jobs, batch_output_merge's retry inputs and
openai_file's or s3_object's downloads. A job's files are found among the downloads by their file ID or S3
URI, so no file name is agreed on between the task that downloads and the one that merges."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch.jobs import DONE_STATES
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError


def downloaded_files(downloads):
    """{file ID or S3 URI: local path} of openai_file's or s3_object's results; a skipped loop item's result names no file."""
    files = {}
    for download in downloads or []:
        source = download.get("file_id") or download.get("uri")
        if source and download.get("dest"):
            files[source] = download["dest"]
    return files


def job_files(job):
    """What names each of an attempt's files: OpenAI's output and error file IDs, or the S3 object of a Bedrock or
    SageMaker job's output."""
    provider_job = job.get("job") or {}
    return (("output", provider_job.get("output_file_id") or job.get("output_uri")), ("errors", provider_job.get("error_file_id")))


def attempt_of(job, files, what):
    """A job that has ended as an attempt: its status, reason and downloaded files."""
    status = job.get("status")
    if status not in DONE_STATES:
        raise ConfigurationError(
            "%s has not ended (%s). Merge once every job has ended (ml_batch_predict with wait: true)."
            % (what, "it waits to be submitted" if status is None else status)
        )
    attempt = {"status": status, "reason": job.get("reason")}
    for key, source in job_files(job):
        if source and source not in files:
            raise ConfigurationError(
                "%s (task %s) ended with the %s file %s, which is not among the downloads. Download it (openai_file, or s3_object "
                "from S3) and give its result in downloads." % (what, job.get("task_id"), key, source)
            )
        attempt[key] = files[source] if source else None
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
