# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Offline batch inference: one result shape on every ML Commons version, what makes two jobs
the same, and reading, waiting for and cancelling batch tasks.

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
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import as_server_string
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import (
    HTTPError,
    MLCommonsError,
    WaitTimeoutError,
    redact_secrets,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import TASK, search
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.wait import wait_until

BATCH_TASK_TYPE = "BATCH_PREDICTION"
FIRST_BATCH_VERSION = (2, 16)
FIRST_TASK_VERSION = (2, 17)

# ML task states (MLTaskState). ML Commons stores a new batch task as RUNNING and moves it on
# only when it reads the provider's status (a GET of the task, or the 2.19+ poller every minute).
# How status checks of a long job space out (see wait_for_job).
POLL_FRACTION_OF_WAIT = 0.1
MAX_POLL_INTERVAL = 300
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

# How long a run that submitted a job waits, at most, for the new task to be searchable.
VISIBILITY_TIMEOUT = 10


# -- one result shape -----------------------------------------------------------------------


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


def batch_result(task_id, job, status, raw):
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
        return batch_result(None, job, provider_status(job), answer)
    return batch_result(answer.get("task_id"), answer.get("remote_job"), answer.get("status"), answer)


def from_task(task_id, task):
    """A batch task (as GET or search returns it) as ``{task_id, job, status, raw}``."""
    return batch_result(task_id, task.get("remote_job"), task.get("state"), task)


def summary(result):
    """What diff mode shows of a job: its task and states, not the whole provider object."""
    if not result or not result.get("task_id"):
        return {}
    return {"task_id": result["task_id"], "status": result["status"], "provider_status": provider_status(result["job"])}


# -- which provider, and what makes two jobs the same ---------------------------------------


def connector_action(connector, action_type):
    for action in (connector or {}).get("actions") or []:
        if str(action.get("action_type", "")).upper() == action_type:
            return action
    return None


def provider_of(connector):
    """The provider, recognised the way ML Commons recognises it: by the batch_predict URL."""
    url = ((connector_action(connector, "BATCH_PREDICT") or {}).get("url") or "").lower()
    for provider in ("sagemaker", "openai", "cohere", "bedrock"):
        if provider in url:
            return provider
    return None


def _text(value):
    """A parameter value as it is sent: strings as they are, anything else as JSON text."""
    return None if value is None else as_server_string(value)


def _wildcard_literal(text):
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


def _object(value):
    """A parameter that holds an object, given as a dict or as its JSON text; None otherwise."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def _dig(value, *path):
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


class JobIdentity(object):
    """What makes two batch jobs of one model the same job, for one provider.

    ``field`` is the key in the task's ``remote_job`` (a ``flat_object``, so dotted paths are
    searchable), ``clause`` the search clause that finds candidates, and :meth:`matches` the exact
    check made on each candidate.
    """

    def __init__(self, provider, parameter, field, value, clause=None, matches=None):
        self.provider = provider
        self.parameter = parameter
        self.field = field
        self.value = value
        self.clause = clause or {"term": {"remote_job." + field: value}}
        self._matches = matches or (lambda job: _text(_dig(job, *field.split("."))) == value)

    def matches(self, job):
        return self._matches(job or {})

    def __eq__(self, other):
        return isinstance(other, JobIdentity) and (self.provider, self.field, self.value) == (other.provider, other.field, other.value)

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __str__(self):
        return "%s %s %s" % (self.provider, self.parameter, self.value)


def _openai_identity(parameters):
    value = _text(parameters.get("input_file_id"))
    return value and JobIdentity("OpenAI", "input_file_id", "input_file_id", value)


def _sagemaker_identity(parameters):
    name = _text(parameters.get("TransformJobName"))
    if not name:
        return None
    # CreateTransformJob answers only TransformJobArn, whose last segment is the name (SageMaker
    # writes ARNs in lower case); TransformJobName joins remote_job at the first status read.
    clause = {"bool": {"minimum_should_match": 1, "should": [
        {"term": {"remote_job.TransformJobName": name}},
        {"wildcard": {"remote_job.TransformJobArn": {"value": "*/" + _wildcard_literal(name), "case_insensitive": True}}},
    ]}}

    def matches(job):
        arn = job.get("TransformJobArn")
        return job.get("TransformJobName") == name or (isinstance(arn, str) and arn.rsplit("/", 1)[-1].lower() == name.lower())

    return JobIdentity("SageMaker", "TransformJobName", "TransformJobName", name, clause, matches)


def _bedrock_identity(parameters):
    # CreateModelInvocationJob answers only jobArn; jobName and inputDataConfig join remote_job at
    # the first status read (GetModelInvocationJob).
    name = _text(parameters.get("jobName"))
    if name:
        return JobIdentity("Bedrock", "jobName", "jobName", name)
    uri = _text(_dig(_object(parameters.get("inputDataConfig")), "s3InputDataConfig", "s3Uri"))
    if uri:
        return JobIdentity("Bedrock", "inputDataConfig.s3InputDataConfig.s3Uri", "inputDataConfig.s3InputDataConfig.s3Uri", uri)
    return None


IDENTITIES = {"openai": _openai_identity, "sagemaker": _sagemaker_identity, "bedrock": _bedrock_identity}


def job_identity(connector, parameters):
    """The :class:`JobIdentity` of a job submitted with ``parameters``, or None when it cannot be told.

    The request's parameters win over the connector's, as they do in ML Commons.
    """
    identity = IDENTITIES.get(provider_of(connector))
    if identity is None:
        return None
    merged = dict((connector or {}).get("parameters") or {})
    merged.update(parameters or {})
    return identity(merged) or None


def job_identity_of_request(parameters):
    """The :class:`JobIdentity` the request's own parameters give, or None.

    Each provider's identifying parameter is its own (input_file_id, TransformJobName, jobName or
    inputDataConfig), so a re-run can look for its job before reading the model and its connector:
    the look-up a no-op re-run makes is then its only request.
    """
    for identity in IDENTITIES.values():
        found = identity(parameters or {})
        if found:
            return found
    return None


# -- reading and finding batch tasks --------------------------------------------------------


class TaskLimitReached(MLCommonsError):
    """ML Commons refused a job because as many batch tasks as it allows are created or running;
    nothing was created, so the same request may be sent again once some have ended."""


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


def stored_task(client, task_id):
    """The task as last stored, without asking the provider (a search by ID); None when absent."""
    found = search(client, TASK, [{"ids": {"values": [task_id]}}], size=1)
    return found[0] if found else None


def find_jobs(client, model_id, identity):
    """Batch tasks of ``model_id`` whose job is ``identity``, newest first, as stored."""
    filters = [{"term": {"task_type": BATCH_TASK_TYPE}}, {"term": {"model_id": model_id}}, identity.clause]
    matching = [task for task in search(client, TASK, filters) if identity.matches(task.get("remote_job"))]
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


def read_new_task(client, task_id):
    """Read a task just created, so that a re-run right after this one finds it; returns
    ``(task or None, warning or None)``.

    The task itself is searchable as soon as ``_batch_predict`` answers: ML Commons indexes it
    with an immediate refresh on every version (explicitly in 2.17 and 2.18; through the
    remote-metadata SDK, whose write requests default to it, since 2.19). Checked on 2.19.6 and
    3.6.0: a search sent right after the answer found the new task 20 times out of 20, without
    this read. What the search cannot find yet is the SageMaker and Bedrock job name, which the
    provider reports only on a status read. So the task is read once: ML Commons asks the
    provider, merges the answer into remote_job and writes the task back, again with an immediate
    refresh (MLTaskManager.updateMLTaskDirectly). On 2.17, whose answer has no job, the read also
    fills in the job. Should the read fail, the search is polled until the task shows (which it
    should at once), for at most VISIBILITY_TIMEOUT seconds, in case a version indexes it lazily.
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


def failure_reason(task):
    """Why a job ended unsuccessfully, in the provider's words when it gave any."""
    job = provider_job((task or {}).get("remote_job"))
    reasons = []
    errors = job.get("errors")
    if isinstance(errors, dict):
        for entry in errors.get("data") or []:
            line = " (line %s)" % entry["line"] if entry.get("line") is not None else ""
            reasons.append("%s%s" % (entry.get("message") or entry.get("code"), line))
    for key in ("FailureReason", "message"):
        if isinstance(job.get(key), str) and job[key]:
            reasons.append(job[key])
    if (task or {}).get("error"):
        reasons.append(task["error"])
    return redact_secrets("; ".join(reasons)) if reasons else "no reason given"


def seconds_to_end(task, now):
    """In how many seconds a running job should end, judged from the progress its provider reports (OpenAI's
    ``request_counts`` and ``in_progress_at``): the time it has run times the requests left over those done. Once
    every request ran the provider finalizes, for a time it does not foretell: the job is due again after a tenth
    of the time it has finalized (``finalizing_at``), so that a short finalization is seen within the poll interval
    and a long one costs few checks; 0 until it says when it began. None when the provider does not say (other
    providers, a job not started or with nothing done yet)."""
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


def read_waited_task(client, task_id, label=None):
    """The task of a job being waited for, which must still exist; ``label`` tells the job apart in the error."""
    task = read_task(client, task_id)
    if task is None:
        raise MLCommonsError("Batch task %s%s disappeared while waiting for it." % (task_id, " (%s)" % label if label else ""), task_id=task_id)
    return task


def wait_for_job(client, task_id, timeout, interval, done=DONE_STATES):
    """Poll the task (each read asks the provider) until its state is in ``done``; return it.

    Checks start ``interval`` apart and then space out to a tenth of the time waited so far (at
    most MAX_POLL_INTERVAL): a job of minutes is seen ending within ``interval``, a job of hours
    costs the provider few calls and is seen ending at most a tenth of its duration late (a factor
    of 1.5 per check had let a job that ended after some minutes go unseen for up to a minute more;
    make bench, issue 7). When the provider reports the job's progress, the check after its expected end comes
    then (see seconds_to_end), so the end is seen at most about ``interval``, or a tenth of the provider's
    finalization, late. On timeout fails with the last state seen and the task ID.
    """
    try:
        task, _polls = wait_until(lambda: read_waited_task(client, task_id), lambda task: task.get("state") in done, timeout, interval=interval,
                                  max_interval=max(interval, MAX_POLL_INTERVAL), elapsed_fraction=POLL_FRACTION_OF_WAIT,
                                  describe=lambda task: describe_task(task_id, task),
                                  expected_in=lambda task: seconds_to_first_end([task]))
    except WaitTimeoutError as error:
        last = getattr(error, "last", None) or {}
        raise WaitTimeoutError(
            "%s The job goes on; wait for it again with task_id: %s." % (error, task_id),
            task_id=task_id, status=last.get("state"), job=provider_job(last.get("remote_job")), **error.details
        )
    return task


def cancel_path(version, task_id):
    """The cancel route: ``_cancel_batch`` on 2.17.0 only, ``_cancel`` since 2.17.1."""
    suffix = "/_cancel_batch" if tuple(version[:3]) == (2, 17, 0) else "/_cancel"
    return TASK.path(task_id) + suffix
