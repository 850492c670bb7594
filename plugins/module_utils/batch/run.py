# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A run of batch jobs of one model, as ``ml_batch_predict`` runs them: the one job of its
``parameters`` or ``task_id``, or several (``jobs``). Each job is found again or submitted once,
follows the copy that stands when concurrent runs submitted it too, and is waited for on one poll
schedule or cancelled.

With several jobs, each is a part of a larger whole: a job ML Commons or the provider has no room
for yet waits and is submitted as others end, a job that ends badly is reported in its entry
instead of failing the run, and an expired job is got back (its provider charged for the requests
it ran, whose results its output holds).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch.checks import (
    check_can_submit,
    check_is_batch_task_of,
    check_keeps_tasks,
    load_model,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch.identity import job_identity, job_identity_of_request, job_name
from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch.jobs import (
    ACTIVE_STATES,
    CANCELLED_STATES,
    DONE_STATES,
    FINISHED_STATES,
    FIRST_TASK_VERSION,
    NOT_REUSABLE_STATES,
    UNSUCCESSFUL_STATES,
    NoRoomForJob,
    cancel_task,
    describe_task,
    explain,
    failed_for_full_queue,
    failure_reason,
    find_jobs,
    from_batch_answer,
    from_task,
    output_uri,
    poll_pace,
    provider_job,
    read_new_task,
    read_task,
    read_waited_task,
    reusable_job,
    seconds_to_first_end,
    submit,
    summary,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import build_diff
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import (
    ConfigurationError,
    HTTPError,
    MLCommonsError,
    WaitTimeoutError,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.wait import wait_until
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import TASK, keep_oldest_of, oldest_of

# How many times a job hands over to another copy when concurrent runs cancel theirs for an older one.
HANDOVERS = 3
RECOGNISED = "it recognises OpenAI's input_file_id, SageMaker's TransformJobName and Bedrock's jobName or input S3 URI"


class Job(object):
    """One job of a run: its ``parameters``; the ``identity`` it is recognised by and the tasks of that
    identity seen before it was submitted (``known``, None until looked up); the task it follows
    (``task_id`` and ``task``, None while it waits to be submitted); the ``_batch_predict`` answer when
    this run created that task; and the state check mode predicts for it."""

    def __init__(self, number, parameters):
        self.number = number
        self.parameters = parameters
        self.identity = None
        self.known = None
        self.task_id = None
        self.task = None
        self.answer = None
        self.predicted = None
        self.handovers = 0

    @property
    def state(self):
        return (self.task or {}).get("state")

    @property
    def ended(self):
        return self.task_id is not None and self.state in DONE_STATES

    def take(self, task_id, task, answer=None):
        """Follow the task ``task_id`` from now on (``answer``: this run created it)."""
        self.task_id, self.task, self.answer = task_id, task, answer

    def requeue(self):
        """Wait to be submitted again, looked up afresh first (a concurrent run may submit it meanwhile)."""
        self.take(None, None)
        self.known = None

    def shape(self):
        """``{task_id, job, status, raw}``; ``raw`` is the ``_batch_predict`` answer when this run created the task."""
        if self.task_id is None:
            shape = from_batch_answer(self.answer)
        else:
            shape = dict(from_task(self.task_id, self.task), raw=self.answer or self.task)
        if self.predicted:
            shape["status"] = self.predicted
        return shape

    def entry(self):
        """The job as an entry of the module's ``jobs``: its shape without ``raw``, and why it ended badly."""
        entry = self.shape()
        del entry["raw"]
        entry["reason"] = failure_reason(self.task) if self.state in UNSUCCESSFUL_STATES else None
        entry["output_uri"] = output_uri(entry["job"], entry["status"])
        return entry

    def describe(self):
        if self.task_id is None:
            return "job %d waits to be submitted" % self.number
        return "job %d: %s" % (self.number, describe_task(self.task_id, self.task))


def result(changed, before, after, **extra):
    """A module result: ``extra`` (the job, or the jobs), whether the run changed anything, and the diff."""
    return dict(extra, changed=changed, diff=build_diff(before, after))


def overall_status(entries):
    """The least advanced of the jobs' states: null while one waits to be submitted, then the state
    of a job that runs, then COMPLETED when all completed, else the first other end."""
    states = [entry["status"] for entry in entries]
    if None in states:
        return None
    for state in states:
        if state not in DONE_STATES:
            return state
    for state in states:
        if state not in FINISHED_STATES:
            return state
    return "COMPLETED"


class Run(object):
    """The jobs of one module run. ``listed`` holds each job's own parameters, which go over the
    module's ``parameters``; None for the one job of ``parameters`` (or of ``task_id``)."""

    def __init__(self, module, client, listed=None):
        self.module = module
        self.client = client
        self.params = module.params
        self.model_id = self.params["model_id"]
        self.several = listed is not None
        shared = self.params["parameters"]
        if self.several:
            self.jobs = [Job(number, dict(shared or {}, **own)) for number, own in enumerate(listed, start=1)]
        else:
            self.jobs = [Job(1, dict(shared or {}))]
        if not self.params["task_id"]:
            self.name_jobs()
        self.model = self.connector = None
        self.changed = False

    def name_jobs(self):
        """Each job without its provider name (``name_parameter``) gets one made from its parameters; no two jobs
        of the run may share a name, as they would be taken for one."""
        parameter = self.params.get("name_parameter")
        if not parameter:
            return
        named = {}
        for job in self.jobs:
            if not job.parameters.get(parameter):
                job.parameters[parameter] = job_name(self.params["name_prefix"], job.parameters, self.model_id)
            name = job.parameters[parameter]
            if name in named:
                raise ConfigurationError("jobs[%d] and jobs[%d] have the same %s %r; give each job a name of its own, or none so that "
                                         "the module names it." % (named[name] - 1, job.number - 1, parameter, name))
            named[name] = job.number

    @property
    def keeps_tasks(self):
        return self.client.server_version >= FIRST_TASK_VERSION

    def load_model(self):
        if self.model is None:
            self.model, self.connector = load_model(self.client, self.model_id)

    # -- state: present ----------------------------------------------------------------------

    def present(self):
        """Each job found again, else submitted; with wait, waited for until it has ended."""
        if self.params["task_id"]:
            self.take_named()
        else:
            if self.several:
                self.load_model()
                check_keeps_tasks(self.client)
                for job in self.jobs:
                    self.recognise(job)
            for job in self.jobs:
                self.look_up(job)
        before = self.views()
        if any(job.task_id is None for job in self.jobs):
            check_can_submit(self.module, self.client, self.model, self.connector)
            self.submit_waiting()
        if self.waits():
            self.wait(self.jobs)
            if not self.several:
                check_outcome(self.jobs[0])
        return self.finish(before)

    def take_named(self):
        """The job of task_id, only read: nothing is submitted."""
        task_id = self.params["task_id"]
        self.load_model()
        task = read_task(self.client, task_id)
        check_is_batch_task_of(task, task_id, self.model_id)
        self.jobs[0].take(task_id, task)

    def recognise(self, job):
        """The identity the model's connector gives ``job``: what tells it from the model's other jobs.
        None on ML Commons 2.16, which keeps no tasks to search, or when it cannot be told (then every
        run submits it anew; with several, it is refused)."""
        self.load_model()
        if not self.keeps_tasks:
            self.module.warn(
                "ML Commons %s keeps no task for batch jobs, so the module cannot tell whether this job was submitted before "
                "(every run submits one), and cannot wait for it or cancel it." % (self.client.server_version,)
            )
            return None
        identity = job_identity(self.connector, job.parameters)
        if identity is None and self.several:
            raise ConfigurationError(
                "jobs[%d]: the module cannot tell this job from the model's others (%s), so it could not run it once only, nor "
                "wait for it among others. Give each job those parameters." % (job.number - 1, RECOGNISED)
            )
        if identity is None:
            self.module.warn("The module cannot tell this batch job from others of model %s (%s), so every run submits a new job."
                             % (self.model_id, RECOGNISED))
        return identity

    def look_up(self, job):
        """Take the job submitted before, when there is one to get back. The request's own parameters
        are searched first, so a re-run whose job is there reads nothing else; then the connector's,
        which decide when they differ."""
        request_identity = job_identity_of_request(job.parameters)
        found = self.search(job, request_identity)
        if found is None:
            identity = self.recognise(job)
            if identity != request_identity:
                found = self.search(job, identity)
        if found is None and self.several and not self.params["force"]:
            found = next((task for task in job.known if task.get("state") == "EXPIRED"), None)
        if found is not None:
            job.take(found["task_id"], found)

    def search(self, job, identity):
        """The model's tasks of ``identity`` become the job's ``known``; returns the one a re-run gets back (None with force)."""
        job.identity = identity
        job.known = [] if identity is None else find_jobs(self.client, self.model_id, identity)
        return None if identity is None or self.params["force"] else reusable_job(self.client, job.known)

    def submit_waiting(self):
        """Submit, in order, the jobs that wait to be, each looked up again first when it has to be. With
        several, a job ML Commons or the provider has no room for stops the round: it and the rest wait."""
        for job in self.jobs:
            if job.task_id is not None:
                continue
            if job.known is None:
                self.look_up(job)
                if job.task_id is not None:
                    continue
            if self.module.check_mode:
                # With several, how many jobs ML Commons has room for is not known without submitting.
                job.predicted = "CREATED" if self.keeps_tasks and not self.several else None
            else:
                try:
                    self.submit(job)
                except NoRoomForJob:
                    if not self.several:
                        raise
                    for waiting in self.jobs:
                        if waiting.task_id is None:
                            waiting.requeue()
                    return
            self.changed = True

    def submit(self, job):
        """Send the job once and take its task, or the older copy of it that a concurrent run submitted."""
        answer = submit(self.client, self.model_id, job.parameters, job.identity, set(task["task_id"] for task in job.known))
        sent = from_batch_answer(answer)
        if not sent["task_id"]:
            job.answer = answer  # ML Commons 2.16: no task tracks the job
            return
        task = {"task_id": sent["task_id"], "state": sent["status"], "remote_job": sent["job"]}
        if job.identity is None or not job.identity.matches(sent["job"]):
            read, warning = read_new_task(self.client, sent["task_id"])
            if warning:
                self.module.warn(warning)
            task = read or task
        job.take(sent["task_id"], task, answer)
        older = job.identity is not None and not self.params["force"] and self.older_copy(job)
        if older:
            job.take(older, read_task(self.client, older) or {"task_id": older})
            self.hand_over(job)

    def older_copy(self, job):
        """The task ID of an older copy of the job just submitted, else None. Runs started at the same
        moment can each submit it: the oldest copy stands, and a run whose copy is younger cancels it
        at once, before the provider has done much of it (keep_oldest_of)."""
        def cancel_own(own_id):
            try:
                cancel_task(self.client, own_id)
                self.module.warn("A run at the same moment submitted this job first; this run cancelled its own copy (task %s)." % own_id)
            except MLCommonsError as error:
                self.module.warn("A run at the same moment submitted this job first; cancelling this run's copy (task %s) failed: %s"
                                 % (own_id, error))

        oldest = keep_oldest_of(self.client, TASK, job.task_id, cancel_own, lambda: self.standing(job.identity))
        return None if oldest == job.task_id else oldest

    def standing(self, identity):
        """The model's jobs of ``identity`` that count: not failed, cancelled or expired."""
        return [task for task in find_jobs(self.client, self.model_id, identity) if task.get("state") not in NOT_REUSABLE_STATES]

    def hand_over(self, job):
        """A job cancelled because its run converged on an older copy hands over to the copy that
        stands, a few times at most: that copy's run may cancel it in turn, for one it saw later."""
        while job.state in CANCELLED_STATES and job.identity is not None and job.handovers < HANDOVERS:
            standing = self.standing(job.identity)
            if not standing:
                return
            job.handovers += 1
            oldest = oldest_of(TASK, standing)
            job.take(oldest["task_id"], read_task(self.client, oldest["task_id"]) or oldest)

    def waits(self):
        """Whether wait has anything to wait for: the one job's task (none on ML Commons 2.16, nor for a
        job only predicted); with several, the jobs, unless in check mode (nothing is submitted)."""
        if not self.params["wait"]:
            return False
        return not self.module.check_mode if self.several else self.jobs[0].task_id is not None

    # -- state: cancelled --------------------------------------------------------------------

    def cancel(self):
        """Each job's created or running task cancelled; with wait, until the cancel has taken effect."""
        self.load_model()
        check_keeps_tasks(self.client)
        if self.several:
            for job in self.jobs:
                self.recognise(job)
        for job in self.jobs:
            self.find_to_cancel(job)
        before = self.views()
        sent = [job for job in self.jobs if self.cancel_job(job)]
        if self.params["wait"]:
            self.wait([job for job in self.jobs if job in sent or job.state == "CANCELLING"], cancelling=True)
            for job in sent:
                if job.state != "CANCELLED":
                    self.module.warn("Batch job %s ended %s: the cancel came too late (%s)." % (job.task_id, job.state, describe_task(job.task_id, job.task)))
        else:
            for job in sent:
                job.task = read_task(self.client, job.task_id) or job.task
        return self.finish(before)

    def find_to_cancel(self, job):
        """Take the task to cancel: the one named by task_id, else the newest created or running job of the job's parameters."""
        if self.params["task_id"]:
            self.take_named()
            return
        identity = job_identity(self.connector, job.parameters)
        if identity is None:
            raise ConfigurationError("state: cancelled needs task_id here: the module cannot tell which job of model %s to cancel from its "
                                     "parameters (%s)." % (self.model_id, RECOGNISED))
        for candidate in find_jobs(self.client, self.model_id, identity):
            if candidate.get("state") in ACTIVE_STATES:
                task = read_task(self.client, candidate["task_id"])
                if task is not None:
                    job.take(candidate["task_id"], task)
                    return

    def cancel_job(self, job):
        """Cancel the job's task unless there is none, it has ended or is being cancelled; returns whether a cancel was sent."""
        if job.task_id is None or job.ended or job.state == "CANCELLING":
            return False
        if self.module.check_mode:
            job.predicted = "CANCELLING"
            self.changed = True
            return False
        try:
            cancel_task(self.client, job.task_id)
        except HTTPError as error:
            # The job may have ended between the read and the cancel: then there is nothing to cancel.
            fresh = read_task(self.client, job.task_id)
            if fresh is None or fresh.get("state") not in DONE_STATES:
                raise explain(error, "cancel the batch job", self.model_id)
            self.module.warn("Batch job %s ended %s before it could be cancelled." % (job.task_id, fresh["state"]))
            job.task = fresh
            return False
        self.changed = True
        return True

    # -- waiting and the result --------------------------------------------------------------

    def wait(self, jobs, cancelling=False):
        """Read the running ``jobs`` on one poll schedule until every one has ended (each read makes ML
        Commons ask the provider). Unless ``cancelling``, a job cancelled for an older copy hands over to
        it; with several, a job the provider failed for a full queue, and those that wait, are
        submitted as room frees up."""
        def poll():
            for job in jobs:
                if job.task_id is not None and not job.ended:
                    job.task = read_waited_task(self.client, job.task_id, "job %d" % job.number if self.several else None)
                    if not cancelling:
                        self.hand_over(job)
                    if not cancelling and self.several and failed_for_full_queue(job.task):
                        job.requeue()
            if not cancelling and self.several and any(job.task_id is None for job in jobs):
                self.submit_waiting()
            return jobs

        def describe(_jobs):
            if self.several:
                return "; ".join(job.describe() for job in jobs if not job.ended)
            return describe_task(jobs[0].task_id, jobs[0].task)

        try:
            wait_until(poll, lambda _jobs: all(job.ended for job in jobs), self.params["wait_timeout"], describe=describe,
                       expected_in=lambda _jobs: seconds_to_first_end([job.task for job in jobs if job.task_id is not None]),
                       **poll_pace(self.params["poll_interval"], self.params["max_poll_interval"]))
        except WaitTimeoutError as error:
            if self.several:
                later = ("a later run with the same jobs waits for the cancels again" if cancelling else
                         "those that wait are submitted by a later run with the same jobs, which waits for them all again")
                raise WaitTimeoutError("%s The jobs go on, and %s." % (error, later), jobs=[job.entry() for job in self.jobs],
                                       changed=self.changed, **error.details)
            job = jobs[0]
            raise WaitTimeoutError("%s The job goes on; wait for it again with task_id: %s." % (error, job.task_id), task_id=job.task_id,
                                   status=job.state, job=provider_job((job.task or {}).get("remote_job")), changed=self.changed,
                                   **error.details)

    def views(self):
        """What diff mode shows of each job: its task and states (with several, its status when it has no task)."""
        views = [summary(job.shape()) for job in self.jobs]
        return [view or {"status": None} for view in views] if self.several else views

    def finish(self, before):
        """The module's result: the one job's shape, or with several each job's entry and their overall status."""
        after = self.views()
        if not self.several:
            return result(self.changed, before[0], after[0], **self.jobs[0].shape())
        entries = [job.entry() for job in self.jobs]
        return result(self.changed, {"jobs": before}, {"jobs": after}, task_id=None, job={}, status=overall_status(entries), raw={},
                      jobs=entries)


def check_outcome(job):
    """After a wait: a job that ended without results fails the module, with the provider's reason."""
    if job.state in UNSUCCESSFUL_STATES:
        raise MLCommonsError("Batch job %s ended %s: %s" % (job.task_id, job.state, failure_reason(job.task)),
                             task_id=job.task_id, status=job.state, job=provider_job(job.task.get("remote_job")))
