# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""One batch job as ML Commons keeps it: one shape on every version, its states, and the requests
that submit, read, find and cancel it.

The answer to ``POST /_plugins/_ml/models/<id>/_batch_predict`` changed twice:

* 2.16 ran it synchronously and answered like a prediction, with the provider's batch object in
  ``inference_results[0].output[0].dataAsMap``; no task exists.
* 2.17 writes a ``BATCH_PREDICTION`` task and answers ``{"task_id", "status": "CREATED"}``.
* 2.18 and later add the provider's batch object as ``remote_job``.

:func:`from_batch_answer` and :func:`from_task` turn each into ``{task_id, job, status, raw}``.

Every ``GET /_plugins/_ml/tasks/<id>`` of a batch task makes ML Commons ask the provider for the
job's status, merge the answer into the task's ``remote_job``, derive the task ``state`` from it,
and write the task back with an immediate refresh.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time

from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons import answers
from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch.identity import dig
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import as_server_string
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import (
    HTTPError,
    MLCommonsError,
    WaitTimeoutError,
    redact_secrets,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import MODEL, TASK, create_once, search
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.wait import retry, wait_until

BATCH_TASK_TYPE = "BATCH_PREDICTION"
FIRST_BATCH_VERSION = (2, 16)
FIRST_TASK_VERSION = (2, 17)

# ML task states (MLTaskState). ML Commons stores a new batch task as RUNNING and moves it on
# only when it reads the provider's status (a GET of the task, or the 2.19+ poller every minute).
ACTIVE_STATES = frozenset(("CREATED", "RUNNING"))
DONE_STATES = frozenset(("COMPLETED", "COMPLETED_WITH_ERROR", "FAILED", "CANCELLED", "EXPIRED", "UNREACHABLE"))
# A job in one of these states is never given back to a re-run: it has not produced, and will
# not produce, its results. Every other state (created, running, completed, and unreachable, whose
# job may well have run at the provider) counts as the job a re-run is asking for.
NOT_REUSABLE_STATES = frozenset(("FAILED", "CANCELLING", "CANCELLED", "EXPIRED"))
# A job cancelled, or on its way there.
CANCELLED_STATES = frozenset(("CANCELLING", "CANCELLED"))
UNSUCCESSFUL_STATES = frozenset(("FAILED", "CANCELLED", "EXPIRED", "UNREACHABLE"))
# A job stored in one of these states has its results and never changes again, so a re-run takes
# it as stored, without asking the provider.
FINISHED_STATES = frozenset(("COMPLETED", "COMPLETED_WITH_ERROR"))
# The fields ML Commons reads the provider's status from (remote_job.status_field, by default).
PROVIDER_STATUS_FIELDS = ("status", "Status", "TransformJobStatus")
# Keys ML Commons adds to remote_job itself; they are not part of the provider's job.
ML_COMMONS_JOB_KEYS = ("dlq", "num_of_retries")

# Each status check makes ML Commons call the provider: checks of a long job space out to this
# fraction of the time waited so far, at most MAX_POLL_INTERVAL apart.
POLL_FRACTION_OF_WAIT = 0.1
MAX_POLL_INTERVAL = 300
# How long a run that submitted a job waits, at most, for the new task to be searchable.
VISIBILITY_TIMEOUT = 10
# How often a submit is sent whose batch task limit check failed on a cluster (answers.is_batch_limit_check_failed).
LIMIT_CHECK_ATTEMPTS = 6


# -- one shape ------------------------------------------------------------------------------


def integral_numbers(value):
    """``value`` with every float that holds a whole number turned into an int.

    ML Commons parses the provider's JSON with Gson, which makes every number a double: the
    request counts and timestamps come back as 3.0 and 1714000000.0.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return dict((key, integral_numbers(item)) for key, item in value.items())
    if isinstance(value, list):
        return [integral_numbers(item) for item in value]
    return value


def provider_job(remote_job):
    """The provider's job object as ML Commons keeps it, without ML Commons' own keys."""
    job = dict(remote_job or {})
    for key in ML_COMMONS_JOB_KEYS:
        job.pop(key, None)
    return integral_numbers(job)


def provider_status(job):
    for field in PROVIDER_STATUS_FIELDS:
        if isinstance((job or {}).get(field), str):
            return job[field]
    return None


def output_uri(job, status):
    """The S3 object a completed Bedrock or SageMaker job wrote its input object's results to: Bedrock's
    ``<output>/<job ID>/<input name>.out``, SageMaker's ``<output>/<input name>.out``; None for other jobs."""
    if status not in FINISHED_STATES:
        return None
    bedrock_output = dig(job, "outputDataConfig", "s3OutputDataConfig", "s3Uri")
    bedrock_input = dig(job, "inputDataConfig", "s3InputDataConfig", "s3Uri")
    if isinstance(bedrock_output, str) and isinstance(bedrock_input, str) and isinstance(dig(job, "jobArn"), str):
        return "%s/%s/%s.out" % (bedrock_output.rstrip("/"), job["jobArn"].rsplit("/", 1)[-1], bedrock_input.rsplit("/", 1)[-1])
    sagemaker_output = dig(job, "TransformOutput", "S3OutputPath")
    sagemaker_input = dig(job, "TransformInput", "DataSource", "S3DataSource", "S3Uri")
    if isinstance(sagemaker_output, str) and isinstance(sagemaker_input, str):
        return "%s/%s.out" % (sagemaker_output.rstrip("/"), sagemaker_input.rsplit("/", 1)[-1])
    return None


def job_shape(task_id, job, status, raw):
    return {"task_id": task_id, "job": provider_job(job), "status": status, "raw": raw}


def synchronous_job(answer):
    """The provider's job in a 2.16 answer: the first output's ``dataAsMap``."""
    for inference in answer.get("inference_results") or []:
        for output in inference.get("output") or []:
            if isinstance(output.get("dataAsMap"), dict):
                return output["dataAsMap"]
    return {}


def from_batch_answer(answer):
    """The ``_batch_predict`` answer of any version as ``{task_id, job, status, raw}``.

    On 2.16 there is no task: ``task_id`` is None and ``status`` is the provider's own status.
    On 2.17 the answer has no job yet (``job`` is empty until the task is read).
    """
    answer = answer or {}
    if "inference_results" in answer:
        job = synchronous_job(answer)
        return job_shape(None, job, provider_status(job), answer)
    return job_shape(answer.get("task_id"), answer.get("remote_job"), answer.get("status"), answer)


def from_task(task_id, task):
    """A batch task (as GET or search returns it) as ``{task_id, job, status, raw}``."""
    return job_shape(task_id, task.get("remote_job"), task.get("state"), task)


def summary(shape):
    """What diff mode shows of a job: its task and states, not the whole provider object."""
    if not shape or not shape.get("task_id"):
        return {}
    return {"task_id": shape["task_id"], "status": shape["status"], "provider_status": provider_status(shape["job"])}


def describe_task(task_id, task):
    job = provider_job((task or {}).get("remote_job"))
    text = "task %s is %s" % (task_id, (task or {}).get("state"))
    status = provider_status(job)
    if status:
        text += " (provider status %s" % status
        counts = job.get("request_counts")
        if isinstance(counts, dict) and counts.get("total"):
            text += ", %s of %s requests done" % ((counts.get("completed") or 0) + (counts.get("failed") or 0), counts["total"])
        text += ")"
    return text


def _failure_texts(task):
    """What the provider, then ML Commons, said of a job that ended badly: ``(text, input line or None)``."""
    job = provider_job((task or {}).get("remote_job"))
    errors = job.get("errors")
    if isinstance(errors, dict):
        for entry in errors.get("data") or []:
            yield entry.get("message") or entry.get("code"), entry.get("line")
    for key in ("FailureReason", "message"):
        if isinstance(job.get(key), str) and job[key]:
            yield job[key], None
    if (task or {}).get("error"):
        yield task["error"], None


def failure_reason(task):
    """Why a job ended unsuccessfully, in the provider's words when it gave any."""
    reasons = ["%s%s" % (text, " (line %s)" % line if line is not None else "") for text, line in _failure_texts(task)]
    return redact_secrets("; ".join(reasons)) if reasons else "no reason given"


def failed_for_full_queue(task):
    """The provider failed the job only because its queue was full (OpenAI's token_limit_exceeded):
    the same job may be submitted again once others have ended."""
    return (task or {}).get("state") == "FAILED" and any(answers.is_provider_queue_full(text) for text, _line in _failure_texts(task))


# -- when a running job should end ----------------------------------------------------------


def seconds_to_end(task, now):
    """Seconds until a running job should end, from the progress its provider reports (OpenAI's
    ``request_counts`` and ``in_progress_at``): the time it ran times the requests left over those done.
    While the provider finalizes (every request ran) for a time it does not foretell, the job is due again
    after a tenth of the time it has finalized (0 until ``finalizing_at`` is known): a short finalization
    is seen within the poll interval, a long one costs few checks. None when the provider does not say."""
    job = provider_job((task or {}).get("remote_job"))
    counts = job.get("request_counts")
    started = job.get("in_progress_at")
    if not isinstance(counts, dict) or not isinstance(started, (int, float)) or not counts.get("total"):
        return None
    done = (counts.get("completed") or 0) + (counts.get("failed") or 0)
    if done >= counts["total"]:
        finalizing = job.get("finalizing_at")
        return max(now - finalizing, 0) * POLL_FRACTION_OF_WAIT if isinstance(finalizing, (int, float)) else 0
    if done <= 0:
        return None
    return max(now - started, 0) * (counts["total"] - done) / float(done)


def seconds_to_first_end(tasks, now=None):
    """The soonest :func:`seconds_to_end` of ``tasks`` that still run (None when none can tell)."""
    now = time.time() if now is None else now
    due = [seconds_to_end(task, now) for task in tasks if task is not None and task.get("state") not in DONE_STATES]
    due = [seconds for seconds in due if seconds is not None]
    return min(due) if due else None


def poll_pace(poll_interval, max_poll_interval=MAX_POLL_INTERVAL):
    """How :func:`wait_until` spaces the status checks of batch jobs: ``poll_interval`` apart, then a tenth of
    the time waited so far, at most ``max_poll_interval`` (or ``poll_interval``, when longer)."""
    return dict(interval=poll_interval, max_interval=max(poll_interval, max_poll_interval), factor=1 + POLL_FRACTION_OF_WAIT)


# -- ML Commons' refusals -------------------------------------------------------------------


class NoRoomForJob(MLCommonsError):
    """ML Commons or the provider refused a job only for want of room now; nothing was created, so
    the same request may be sent again once other jobs have ended."""


class TaskLimitReached(NoRoomForJob):
    """As many batch tasks as ML Commons allows are created or running."""


def explain(error, doing, model_id=None):
    """An :class:`HTTPError` from a batch call as one clear, secret-free :class:`MLCommonsError`.

    ``doing`` completes "while trying to ...", e.g. "submit the batch job".
    """
    if not isinstance(error, HTTPError):
        return error
    reason = redact_secrets(error.reason or "")
    details = dict(status=error.status, error_type=error.error_type, reason=reason)
    if answers.is_batch_disabled(error):
        message = ("Batch inference is disabled on this cluster, so ML Commons refused to %s. Set the cluster setting "
                   "plugins.ml_commons.offline_batch_inference_enabled to true." % doing)
    elif answers.is_batch_task_limit(error):
        return TaskLimitReached(
            "ML Commons refused to %s: as many batch jobs as plugins.ml_commons.max_batch_inference_tasks allows are "
            "already created or running (HTTP %s). Wait for some to finish or cancel them, or raise that setting."
            % (doing, error.status), **details)
    elif answers.is_batch_limit_check_failed(error):
        message = ("ML Commons could not %s: its check of plugins.ml_commons.max_batch_inference_tasks failed (%s). ML Commons "
                   "2.19 fails that check on a cluster when it searches the task index on another node (fixed in 3.0); the "
                   "module tried several times. Run it again, or give the .plugins-ml-task index a copy on every node."
                   % (doing, reason))
    elif answers.is_from_remote_service(reason):
        message = "The provider refused to %s (HTTP %s): %s" % (doing, error.status, provider_reason(reason))
        if answers.is_provider_queue_full(error.reason):
            return NoRoomForJob(message, **details)
    elif answers.is_private_ip_refused(error):
        message = ("ML Commons could not %s: %s. ML Commons reads and cancels batch jobs without honouring "
                   "plugins.ml_commons.connector.private_ip_enabled, so the provider must be at a public address." % (doing, reason))
    elif answers.is_model_not_ready(error):
        message = ("Model %s is not deployed, and ML Commons did not deploy it for the batch job "
                   "(plugins.ml_commons.model_auto_deploy.enable is off). Deploy it first (opensearch.ml_commons.ml_model, "
                   "state: deployed)." % model_id)
    elif answers.is_batch_action_missing(error):
        message = ("Model %s's connector has no batch_predict action, so ML Commons cannot submit a batch job for it. "
                   "Add one (opensearch.ml_commons.ml_connector)." % model_id)
    elif answers.is_job_undescribed(error):
        message = ("ML Commons could not %s: the provider's answer did not describe a batch job (%s). ML Commons 2.17.0 "
                   "expects an id (OpenAI) or TransformJobArn (SageMaker) in it." % (doing, reason))
    elif answers.is_task_model_gone(error):
        message = ("ML Commons could not %s: the task's model no longer exists, and ML Commons needs it (and its "
                   "connector) to ask the provider." % doing)
    else:
        return MLCommonsError(redact_secrets(str(error)), **details)
    return MLCommonsError(message, **details)


def provider_reason(reason):
    """The provider's own message out of ML Commons' "Error from remote service: <body>"."""
    body = answers.remote_service_body(reason)
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and error.get("message"):
        extras = ["%s %s" % (name, error[name]) for name in ("code", "param") if error.get(name)]
        return "%s%s" % (error["message"], " (%s)" % ", ".join(extras) if extras else "")
    if isinstance(parsed, dict):
        for key in ("message", "Message", "error"):
            if isinstance(parsed.get(key), str):
                return parsed[key]
    return body


# -- requests -------------------------------------------------------------------------------


def read_task(client, task_id, doing="read the batch job's status"):
    """The task with its provider status refreshed (a live call through the connector), or None
    when no task has that ID."""
    try:
        task = client.get(TASK.path(task_id))
    except HTTPError as error:
        if error.is_not_found and not answers.is_task_model_gone(error):
            return None
        raise explain(error, doing)
    task["task_id"] = task_id
    return task


def read_waited_task(client, task_id, label=None):
    """The task of a job being waited for, which must still exist; ``label`` tells the job apart in the error."""
    task = read_task(client, task_id)
    if task is None:
        raise MLCommonsError("Batch task %s%s disappeared while waiting for it." % (task_id, " (%s)" % label if label else ""), task_id=task_id)
    return task


def stored_task(client, task_id):
    """The task as last stored, without asking the provider (a search by ID); None when absent."""
    found = search(client, TASK, [{"ids": {"values": [task_id]}}], size=1)
    return found[0] if found else None


def find_jobs(client, model_id, identity):
    """Batch tasks of ``model_id`` whose job is ``identity``, newest first, as stored. A task stored without the
    identity's field (OpenSearch stopped before the first status read that adds it) is read, which stores it."""
    filters = [{"term": {"task_type": BATCH_TASK_TYPE}}, {"term": {"model_id": model_id}},
               {"bool": {"minimum_should_match": 1, "should": [identity.clause, identity.unread_clause]}}]
    matching = []
    for task in search(client, TASK, filters):
        if identity.is_unread(task.get("remote_job")):
            task = read_task(client, task["task_id"]) or task
        if identity.matches(task.get("remote_job")):
            matching.append(task)
    return list(reversed(matching))


def reusable_job(client, candidates):
    """The newest of ``candidates`` that a re-run should get back, current; None if none is.

    The stored state can be behind (RUNNING while the provider has finished), so each candidate
    is read before it is chosen, unless its stored state is final: a stored COMPLETED is taken as
    it is, a stored FAILED, CANCELLED or EXPIRED is passed over.
    """
    for candidate in candidates:
        if candidate.get("state") in NOT_REUSABLE_STATES:
            continue
        if candidate.get("state") in FINISHED_STATES:
            return candidate
        task = read_task(client, candidate["task_id"])
        if task is not None and task.get("state") not in NOT_REUSABLE_STATES:
            return task
    return None


def submit(client, model_id, parameters, identity, known_ids):
    """POST ``_batch_predict`` once and return the answer. When its outcome is unknown (a timeout), a
    job of ``identity`` whose task is not among ``known_ids`` is taken as this request's."""
    path = MODEL.path(model_id) + "/_batch_predict"
    body = {"parameters": dict((key, as_server_string(value)) for key, value in (parameters or {}).items())}

    def send():
        try:
            return retry(lambda _number: client.post(path, body=body), answers.is_batch_limit_check_failed, LIMIT_CHECK_ATTEMPTS,
                         lambda number: number * 0.5)
        except HTTPError as error:
            raise explain(error, "submit the batch job", model_id)

    if identity is None:
        return send()

    def submitted_meanwhile():
        for task in find_jobs(client, model_id, identity):
            if task["task_id"] not in known_ids:
                return {"task_id": task["task_id"], "status": task.get("state"), "remote_job": task.get("remote_job")}
        return None

    return create_once(send, submitted_meanwhile)


def read_new_task(client, task_id):
    """Read a task just created, so that a re-run right after this one finds it by what the answer lacked
    (SageMaker's and Bedrock's job names come with the first status read; 2.17's answer has no job): the
    read makes ML Commons store them, with an immediate refresh. Returns ``(task or None, warning or None)``.
    Should the read fail, the search is polled for the task for at most VISIBILITY_TIMEOUT seconds, in case
    a version indexes it lazily.
    """
    try:
        task = read_task(client, task_id)
        if task is not None:
            return task, None
        warning = "ML Commons did not find the batch task %s it had just created." % task_id
    except MLCommonsError as error:
        warning = "Submitted batch job %s, but could not read its status yet: %s" % (task_id, error)
    try:
        wait_until(lambda: stored_task(client, task_id), lambda found: found is not None, VISIBILITY_TIMEOUT, interval=0.5, max_interval=2)
    except WaitTimeoutError:
        warning += " The task is not searchable yet either, so a re-run in the next seconds may submit a second job."
    return None, warning


def cancel_path(version, task_id):
    """The cancel route: ``_cancel_batch`` on 2.17.0 only, ``_cancel`` since 2.17.1."""
    suffix = "/_cancel_batch" if tuple(version[:3]) == (2, 17, 0) else "/_cancel"
    return TASK.path(task_id) + suffix


def cancel_task(client, task_id):
    """Ask ML Commons to cancel the job. A cancel whose answer was lost is sent again only if the job
    still runs once the request can no longer be under way (create_once's look before a repeat)."""
    def cancelled_meanwhile():
        fresh = read_task(client, task_id)
        return fresh if fresh is not None and fresh.get("state") not in ACTIVE_STATES else None

    create_once(lambda: client.post(cancel_path(client.server_version, task_id)), cancelled_meanwhile)
