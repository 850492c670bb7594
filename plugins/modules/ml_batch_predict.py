#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ml_batch_predict
short_description: Run an offline batch inference job through ML Commons, once, and wait for it or cancel it
version_added: 0.1.0
description:
  - Submits an offline batch inference job (C(POST /_plugins/_ml/models/<id>/_batch_predict)) for a remote model whose
    connector has a C(batch_predict) action, for example OpenAI's Batch API, SageMaker batch transform or Bedrock batch
    inference. ML Commons calls the provider and keeps a C(BATCH_PREDICTION) task that tracks the provider's job.
  - A re-run does not submit, and pay for, the same job twice. Before submitting, the module searches the model's batch
    tasks for a job with the same input (see the notes for how each provider's job is recognised). When one is created,
    running or completed, it is returned with C(changed=false) and nothing is sent; so is one that ML Commons marked
    unreachable, because the provider may well have run it. A job that failed, is being or was cancelled, or expired does
    not count, so a re-run submits a new one. O(force=true) submits anyway. The search comes first, by the request's own
    parameters; a re-run whose job exists sends only it, plus one status read while the job has not finished.
  - O(wait=true) polls the task until the job has ended (ML Commons asks the provider at each poll) and returns the
    output and error file IDs and the request counts. The module fails when the job ends failed, cancelled, expired or
    unreachable, with the provider's reason. It works under Ansible C(async) and C(poll).
  - O(state=cancelled) cancels the job named by O(task_id), or the running job with the same input, through ML Commons.
    A job that has already ended, or is being cancelled, is left as it is.
  - With O(jobs), runs several jobs of the model at once, each found again or submitted once as a single job is, for
    example one per part of an input too large for one job. They are submitted in order while ML Commons has room for
    them. When C(plugins.ml_commons.max_batch_inference_tasks) jobs are already created or running (ML Commons answers 429),
    or the provider refuses or fails a job only because its queue is full (OpenAI's C(token_limit_exceeded)), the rest
    wait and are submitted as jobs end, never failing the task. O(wait=true) waits for all of them on one poll schedule;
    O(wait=false) submits what there is room for and returns, and a later run with the same jobs picks up from there. A
    job that ends failed, cancelled or expired does not fail the task; its entry of RV(jobs) says how and why.
  - Every ML Commons version gets the same result shape, RV(task_id), RV(job), RV(status) and RV(raw), although the
    server's answer changed in 2.17 and 2.18.
author:
  - opensearch.ml_commons maintainers (@opensearch-ml-commons)
extends_documentation_fragment:
  - opensearch.ml_commons.connection
  - opensearch.ml_commons.attributes
options:
  model_id:
    description:
      - The remote model to run the job with. It should be deployed; ML Commons deploys it on first use when
        C(plugins.ml_commons.model_auto_deploy.enable) is on (the default), and the module warns then.
    type: str
    required: true
  parameters:
    description:
      - The request's C(parameters). They fill the C(${parameters.*}) placeholders of the connector's C(batch_predict)
        action, over the connector's own parameters; for OpenAI typically C(input_file_id), C(endpoint) and C(model).
      - Values that are not strings are sent as JSON text, the way ML Commons stores connector parameters.
    type: dict
  jobs:
    description:
      - Several jobs to run at once, instead of one. Each entry's C(parameters) go over O(parameters), which then holds
        what the jobs share. Each job must be recognisable (see the notes), for OpenAI by its C(input_file_id).
      - A job that expired is got back by a re-run, not submitted again as a single job would be. The provider has run,
        and charged for, part of its requests, whose results are in its output file; submit the others on their own.
      - With O(state=cancelled), every created or running job of the list is cancelled.
      - Needs ML Commons 2.17 or later (tasks for batch jobs). Cannot be used with O(task_id).
    type: list
    elements: dict
    suboptions:
      parameters:
        description: The job's own parameters.
        type: dict
        required: true
  state:
    description:
      - V(present) submits the job, or finds the same job submitted before.
      - V(cancelled) cancels the job given by O(task_id), or else the created or running job with the same input.
    type: str
    choices: [present, cancelled]
    default: present
  task_id:
    description:
      - The ML Commons task of an earlier job. With O(state=present) the module only reads that job (and waits for it
        with O(wait)), submitting nothing; with O(state=cancelled) it cancels it.
    type: str
  force:
    description:
      - Submit a new job even when the same job was submitted before. Each forced run submits, and pays for, one more job.
    type: bool
    default: false
  wait:
    description:
      - Wait until the job has ended (completed, failed, cancelled, expired or unreachable); with O(state=cancelled), until
        the cancel has taken effect.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait with O(wait). When they run out, the module fails with the last state seen and the task ID; the job
        goes on, and a later run with O(task_id) (or the same O(parameters)) can wait for it again.
    type: int
    default: 3600
  poll_interval:
    description:
      - Seconds before the first status check with O(wait), and the least time between two. Later checks space out to a
        tenth of the time waited so far (at most five minutes), because each makes ML Commons call the provider.
      - So the module returns at most this long, or a tenth of the job's duration, after the job has ended. When the
        provider reports the job's progress (OpenAI's request counts), the check after the job's expected end comes
        then; while the provider finalizes (every request ran), checks are this far apart and space out to a tenth of
        the time it has finalized, so the end is seen at most about this long, or a tenth of the finalization, after it.
    type: float
    default: 10
notes:
  - "How a re-run recognises the same job: by the model and the job's input, read from O(parameters) and else from the
    connector's parameters. The provider is recognised as ML Commons recognises it, by the C(batch_predict) URL.
    B(OpenAI): C(input_file_id). B(SageMaker): C(TransformJobName) (matched against the job's name, or the end of its
    C(TransformJobArn)). B(Amazon Bedrock): C(jobName), else the input location C(inputDataConfig.s3InputDataConfig.s3Uri).
    Other providers (Cohere, custom endpoints), or a job without those parameters, cannot be recognised: the module warns
    and submits every time."
  - SageMaker and Bedrock report the job name only when ML Commons reads the job's status, so the module reads the new
    task once right after submitting it (ML Commons makes the task itself searchable at once). When that read fails, such
    a job can be recognised only after ML Commons' next status read (2.19 and later poll running jobs every minute).
  - Two runs started at the same moment can both submit, because ML Commons has nothing that would make the second one fail.
    Right after submitting, each run looks again; the oldest job stands, and a run whose job is younger cancels it at once
    and follows the oldest, with a warning. The provider may already have started the cancelled copy. A job the module
    follows (another run's, or one found again) that ends cancelled while it waits hands over to the job that stands.
  - ML Commons 2.16 ran batch jobs without tasks, so there it cannot recognise a re-run (the module warns and submits each
    time), cannot wait and cannot cancel. Its answer shape, and that of 2.17, are covered by unit tests only; the
    integration tests run against 2.19 and 3.x.
  - ML Commons sends the C(predict) action's headers with every call to the provider, C(batch_predict), status and
    cancel included, so the connector needs a C(predict) action that carries the authorisation header; the module warns
    when it does not.
  - Provider errors are reported with the provider's reason; keys, tokens and passwords in them are masked.
  - "On a cluster, ML Commons sends the job to one of the nodes that serve the model, in turn (deploying it there first
    when its nodes do not all serve it and C(plugins.ml_commons.model_auto_deploy.enable) is on); a model that is
    C(PARTIALLY_DEPLOYED) counts as deployed here. The job's task lives in ML Commons' task index, not on a node, so a
    node that leaves does not lose it and a re-run finds it as above. ML Commons 2.19 fails the submit with C(all shards
    failed) when its check of C(plugins.ml_commons.max_batch_inference_tasks) searches the task index on another node;
    nothing is submitted then, and the module sends the request again (up to 6 times)."
seealso:
  - module: opensearch.ml_commons.ml_task_info
  - module: opensearch.ml_commons.ml_model
"""

EXAMPLES = r"""
- name: Run the blueprint's batch job on a file already uploaded to OpenAI, once, and wait for it
  opensearch.ml_commons.ml_batch_predict:
    model_id: "{{ model.model_id }}"
    parameters:
      model: text-embedding-ada-002
      input_file_id: "{{ upload.json.id }}"
    wait: true
    wait_timeout: 86400
    poll_interval: 60
  async: 90000
  poll: 300
  register: batch

- name: Show where the results are
  ansible.builtin.debug:
    msg: "{{ batch.job.output_file_id }} ({{ batch.job.request_counts.completed }} requests)"

- name: Submit without waiting, then wait for it in a later play
  opensearch.ml_commons.ml_batch_predict:
    model_id: "{{ model.model_id }}"
    parameters:
      input_file_id: "{{ upload.json.id }}"
  register: submitted

- name: Wait for that job
  opensearch.ml_commons.ml_batch_predict:
    model_id: "{{ model.model_id }}"
    task_id: "{{ submitted.task_id }}"
    wait: true

- name: Run a job per part of a large input, at most as many at once as ML Commons allows, and wait for all
  opensearch.ml_commons.ml_batch_predict:
    model_id: "{{ model.model_id }}"
    parameters:
      endpoint: /v1/embeddings
    jobs:
      - parameters:
          input_file_id: "{{ part_1.file_id }}"
      - parameters:
          input_file_id: "{{ part_2.file_id }}"
    wait: true
  register: parts

- name: Cancel it and wait until it is cancelled
  opensearch.ml_commons.ml_batch_predict:
    model_id: "{{ model.model_id }}"
    task_id: "{{ submitted.task_id }}"
    state: cancelled
    wait: true
"""

RETURN = r"""
task_id:
  description:
    - The ML Commons task that tracks the job; null on ML Commons 2.16 (no tasks), in check mode before a submit, or when
      O(state=cancelled) found no job to cancel.
  returned: always
  type: str
  sample: Mz3FEY8Bz9_1t9trBeKO
status:
  description:
    - The task's state, for example C(RUNNING), C(COMPLETED), C(FAILED), C(CANCELLING), C(CANCELLED), C(EXPIRED) or
      C(UNREACHABLE). On ML Commons 2.16, which has no task, the provider's own status (for example C(validating)).
  returned: always
  type: str
  sample: COMPLETED
job:
  description:
    - The provider's job as ML Commons last read it, for OpenAI the Batch object (C(id), C(status), C(input_file_id),
      C(output_file_id), C(error_file_id), C(request_counts), timestamps). Whole numbers are integers (ML Commons turns
      them into floats). Empty when there is no job, and on ML Commons 2.17 before the first status read.
  returned: always
  type: dict
  sample:
    id: batch_6751fc3b4dfc8190abc85e87a2b62b1e
    object: batch
    status: completed
    input_file_id: file-YbowBByiyVJN89oSZo2Enu9W
    output_file_id: file-9R5a1qUeYhqS3Jx9BT8hPxjd
    error_file_id: null
    request_counts:
      total: 3
      completed: 3
      failed: 0
raw:
  description: The server's answer as it came, the C(_batch_predict) answer when this run submitted the job, else the task.
  returned: always
  type: dict
jobs:
  description:
    - With O(jobs), one entry per job in the same order, each with C(task_id), C(status) and C(job) as for a single
      job (C(task_id) and C(status) are null while the job waits to be submitted), and C(reason), why a job ended
      failed, cancelled, expired or unreachable (else null).
    - RV(status) is then the least advanced of their states (null while one waits to be submitted, then that of a
      running job, then C(COMPLETED) when all completed, else the first other end); RV(task_id) is null, RV(job) and
      RV(raw) are empty.
  returned: when O(jobs) is given
  type: list
  elements: dict
  sample:
    - task_id: Mz3FEY8Bz9_1t9trBeKO
      status: COMPLETED
      reason: null
      job:
        id: batch_6751fc3b4dfc8190abc85e87a2b62b1e
        status: completed
        input_file_id: file-YbowBByiyVJN89oSZo2Enu9W
        output_file_id: file-9R5a1qUeYhqS3Jx9BT8hPxjd
        request_counts:
          total: 50000
          completed: 50000
          failed: 0
diff:
  description: The job's task and states before and after, in diff mode.
  returned: when diff mode is on
  type: dict
"""

from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons import answers
from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch.jobs import (
    ACTIVE_STATES,
    BATCH_TASK_TYPE,
    CANCELLED_STATES,
    DONE_STATES,
    FIRST_BATCH_VERSION,
    FINISHED_STATES,
    FIRST_TASK_VERSION,
    MAX_POLL_INTERVAL,
    NOT_REUSABLE_STATES,
    POLL_FRACTION_OF_WAIT,
    UNSUCCESSFUL_STATES,
    cancel_path,
    connector_action,
    describe_task,
    explain,
    failure_reason,
    find_jobs,
    from_batch_answer,
    from_task,
    job_identity,
    job_identity_of_request,
    read_new_task,
    read_task,
    read_waited_task,
    reusable_job,
    seconds_to_first_end,
    summary,
    TaskLimitReached,
    wait_for_job,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.cluster import effective_ml_settings
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import as_server_string, build_diff
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError, HTTPError, MLCommonsError, WaitTimeoutError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.models import is_deployed_or_deploying
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import MLCommonsModule
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import (
    CONNECTOR,
    MODEL,
    TASK,
    create_once,
    get_by_id,
    keep_oldest_of,
    oldest_of,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.wait import retry, wait_until

BATCH_ENABLED_SETTING = "plugins.ml_commons.offline_batch_inference_enabled"
AUTO_DEPLOY_SETTING = "plugins.ml_commons.model_auto_deploy.enable"
# How often a submit is sent whose batch task limit check failed on a cluster (answers.is_batch_limit_check_failed).
LIMIT_CHECK_ATTEMPTS = 6


# -- checks before anything is sent ------------------------------------------------------------


# How many jobs a run follows at most when concurrent runs' jobs are cancelled in favour of older ones.
FOLLOW_ATTEMPTS = 3


def load_model(client, model_id):
    """The model and its connector; clear failures for what cannot run a batch job."""
    if client.server_version < FIRST_BATCH_VERSION:
        raise ConfigurationError("Offline batch inference needs OpenSearch 2.16 or later; this cluster runs %s." % client.server_version)
    model = get_by_id(client, MODEL, model_id)
    if model is None:
        raise MLCommonsError("No model has the ID %s." % model_id)
    if str(model.get("algorithm", "")).upper() != "REMOTE":
        raise MLCommonsError("Model %s is a %s model; batch inference needs a remote model." % (model_id, model.get("algorithm")))
    connector = model.get("connector")
    if connector is None:
        connector = get_by_id(client, CONNECTOR, model.get("connector_id"))
        if connector is None:
            raise MLCommonsError("Model %s uses connector %s, which does not exist." % (model_id, model.get("connector_id")))
    return model, connector


def cluster_settings(client):
    """The ML Commons settings, or {} when this user may not read cluster settings (the server then says what is wrong)."""
    try:
        return effective_ml_settings(client)
    except HTTPError as error:
        if error.status in (401, 403):
            return {}
        raise


def check_can_submit(module, client, model, connector):
    model_id = model["model_id"]
    batch_action = connector_action(connector, "BATCH_PREDICT")
    if batch_action is None:
        raise MLCommonsError(
            "Model %s's connector %s has no batch_predict action, so ML Commons cannot submit a batch job for it. "
            "Add one (opensearch.ml_commons.ml_connector)." % (model_id, connector.get("connector_id") or model.get("connector_id"))
        )
    predict_action = connector_action(connector, "PREDICT") or {}
    if batch_action.get("headers") and batch_action.get("headers") != predict_action.get("headers"):
        module.warn(
            "ML Commons sends the predict action's headers with every call to the provider, batch_predict included, not the "
            "batch_predict action's own: give model %s's connector a predict action with the same headers, or the provider "
            "may refuse the job (for example a 401 without the Authorization header)." % model_id
        )
    settings = cluster_settings(client)
    if str(settings.get(BATCH_ENABLED_SETTING, "true")).lower() == "false":
        raise MLCommonsError(
            "Batch inference is disabled on this cluster: set the cluster setting %s to true." % BATCH_ENABLED_SETTING
        )
    if not is_deployed_or_deploying(model):
        if str(settings.get(AUTO_DEPLOY_SETTING, "true")).lower() == "false":
            raise MLCommonsError(
                "Model %s is not deployed (%s), and ML Commons deploys models on first use only when %s is true. "
                "Deploy it first (opensearch.ml_commons.ml_model, state: deployed)." % (model_id, model.get("model_state"), AUTO_DEPLOY_SETTING)
            )
        module.warn("Model %s is not deployed (%s); ML Commons deploys it for this job (%s)." % (model_id, model.get("model_state"), AUTO_DEPLOY_SETTING))


def check_is_batch_task_of(task, task_id, model_id):
    if task is None:
        raise MLCommonsError("No task has the ID %s." % task_id)
    if task.get("task_type") != BATCH_TASK_TYPE:
        raise MLCommonsError("Task %s is a %s task, not a batch job." % (task_id, task.get("task_type")))
    if task.get("model_id") != model_id:
        raise MLCommonsError("Task %s is a batch job of model %s, not of model %s." % (task_id, task.get("model_id"), model_id))


# -- results ---------------------------------------------------------------------------------


def result(changed, after, before=None):
    after = after or {"task_id": None, "job": {}, "status": None, "raw": {}}
    return dict(after, changed=changed, diff=build_diff(summary(before), summary(after)))


def check_outcome(task_id, task):
    """After a wait: a job that ended without results fails the task, with the provider's reason."""
    state = task.get("state")
    if state in UNSUCCESSFUL_STATES:
        outcome = from_task(task_id, task)
        raise MLCommonsError(
            "Batch job %s ended %s: %s" % (task_id, state, failure_reason(task)),
            task_id=task_id, status=state, job=outcome["job"],
        )


# -- state: present --------------------------------------------------------------------------


def submit(client, model_id, parameters, identity, known_ids):
    """POST _batch_predict once. If its outcome is unknown (a timeout), a job with the same
    identity that was not there before is taken as this request's."""
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


def standing_jobs(client, model_id, identity):
    """The model's jobs of ``identity`` that count: not failed, cancelled or expired."""
    return [job for job in find_jobs(client, model_id, identity) if job.get("state") not in NOT_REUSABLE_STATES]


def older_job_of_concurrent_run(module, client, model_id, identity, task_id):
    """Runs started at the same moment can each submit the same job. The oldest job stands: a
    younger run cancels its own job at once (before the provider has done much of it) and follows
    the oldest. Returns the oldest job's task ID, or None when this run's job is the oldest.

    As for other objects (resource.keep_oldest_of), a job that looks like the oldest is checked
    once more a moment later: ML Commons stamps a job's creation time before it calls the
    provider and stores the task only after the provider has answered, so an older job of
    another run can show up to about one submit's time late. (The wait follows the last answer,
    the submit's or the status read's after it: each is a round trip to the provider.)
    """
    def cancel_own(own_id):
        try:
            client.post(cancel_path(client.server_version, own_id))
            module.warn("A run at the same moment submitted this job first; this run cancelled its own copy (task %s)." % own_id)
        except MLCommonsError as error:
            module.warn("A run at the same moment submitted this job first; cancelling this run's copy (task %s) failed: %s" % (own_id, error))

    oldest = keep_oldest_of(client, TASK, task_id, cancel_own, lambda: standing_jobs(client, model_id, identity))
    return None if oldest == task_id else oldest


def follow_standing(module, client, model_id, identity, task_id, task, changed, wait):
    """Follow a job of ``identity`` (another run's, or one found again) as :func:`follow` does.

    Concurrent runs converge on their oldest job, so the job followed can still be cancelled by
    its own run, for an even older job that this run's checks did not see yet (its provider
    answered later); and a run that starts a moment after them finds their jobs and takes the
    newest, which may be one about to be cancelled. When the job followed ends cancelled, the job
    that stands is followed instead, a few times at most."""
    params = module.params
    for _attempt in range(FOLLOW_ATTEMPTS):
        if wait and (task is None or task.get("state") not in DONE_STATES):
            task = wait_for_job(client, task_id, params["wait_timeout"], params["poll_interval"])
        if task is None or task.get("state") not in CANCELLED_STATES:
            break
        standing = standing_jobs(client, model_id, identity)
        if not standing:
            break
        task_id = oldest_of(TASK, standing)["task_id"]
        task = read_task(client, task_id)
    return follow(module, client, task_id, task, changed, wait)


def follow(module, client, task_id, task, changed, wait):
    """Wait for the job if ``wait``, and return the module's result for it."""
    params = module.params
    if wait:
        if task is None or task.get("state") not in DONE_STATES:
            task = wait_for_job(client, task_id, params["wait_timeout"], params["poll_interval"])
        check_outcome(task_id, task)
    return result(changed, from_task(task_id, task))


def present_without_tasks(module, client, parameters):
    """ML Commons 2.16: the job is submitted synchronously and no task tracks it."""
    module.warn(
        "ML Commons %s keeps no task for batch jobs, so the module cannot tell whether this job was submitted before "
        "(every run submits one), and cannot wait for it or cancel it." % client.server_version
    )
    if module.check_mode:
        return result(True, {"task_id": None, "job": {}, "status": None, "raw": {}})
    answer = submit(client, module.params["model_id"], parameters, None, ())
    return result(True, from_batch_answer(answer))


class EarlierJobs(object):
    """What a run looks up before it submits: the ``identity`` its job is recognised by, the model's
    tasks of that identity (``known``), the one to return instead of submitting (``reusable``:
    None when there is none, or with force), and the model and its connector once they were read."""

    def __init__(self, identity, known, reusable, model=None, connector=None):
        self.identity = identity
        self.known = known
        self.reusable = reusable
        self.model = model
        self.connector = connector


def jobs_of(module, client, model_id, identity, model=None, connector=None):
    """The model's tasks of ``identity``, and the one a re-run gets back."""
    known = [] if identity is None else find_jobs(client, model_id, identity)
    reusable = None if identity is None or module.params["force"] else reusable_job(client, known)
    return EarlierJobs(identity, known, reusable, model, connector)


def find_earlier_jobs(module, client, parameters, model=None, connector=None):
    """Look for the job of ``parameters`` before submitting it.

    The request's own parameters come first: when the job is there, nothing else needs reading
    (see job_identity_of_request). Otherwise the connector decides which provider's identity
    counts, and its parameters join the request's; that identity is searched for too when it
    differs. On ML Commons 2.16, which keeps no tasks, nothing can be found. The model and its
    connector, when the caller has read them already, are not read again.
    """
    model_id = module.params["model_id"]
    request_identity = job_identity_of_request(parameters)
    earlier = jobs_of(module, client, model_id, request_identity)
    if earlier.reusable is not None:
        return earlier
    if model is None:
        model, connector = load_model(client, model_id)
    if client.server_version < FIRST_TASK_VERSION:
        return EarlierJobs(None, [], None, model, connector)
    identity = job_identity(connector, parameters)
    if identity is None:
        module.warn(
            "The module cannot tell this batch job from others of model %s (it recognises OpenAI's input_file_id, SageMaker's "
            "TransformJobName and Bedrock's jobName or input S3 URI), so every run submits a new job." % model_id
        )
    if identity == request_identity:
        earlier.model, earlier.connector = model, connector
        return earlier
    return jobs_of(module, client, model_id, identity, model, connector)


def submit_job(module, client, earlier, parameters, wait):
    """Submit the job of ``parameters`` once and return the module's result: the job this run
    submitted, or, when a concurrent run submitted the same job first, that one (see
    older_job_of_concurrent_run); waited for when ``wait``."""
    params = module.params
    model_id = params["model_id"]
    identity = earlier.identity
    if client.server_version < FIRST_TASK_VERSION:
        return present_without_tasks(module, client, parameters)
    if module.check_mode:
        return result(True, {"task_id": None, "job": {}, "status": "CREATED", "raw": {}})
    answer = submit(client, model_id, parameters, identity, set(task["task_id"] for task in earlier.known))
    submitted = from_batch_answer(answer)
    task_id = submitted["task_id"]
    if not task_id:
        return result(True, submitted)
    task = None
    if identity is None or not identity.matches(submitted["job"]):
        # The answer lacks what a re-run searches for (SageMaker's and Bedrock's job names come
        # with the first status read); OpenAI's answer carries input_file_id and needs no read.
        task, warning = read_new_task(client, task_id)
        if warning:
            module.warn(warning)
    older = identity is not None and not params["force"] and older_job_of_concurrent_run(module, client, model_id, identity, task_id)
    if older:
        return follow_standing(module, client, model_id, identity, older, read_task(client, older), True, wait)
    if wait:
        return dict(follow(module, client, task_id, task, True, wait), raw=answer)
    if task is not None:
        submitted = dict(from_task(task_id, task), raw=answer)
    return result(True, submitted)


def follow_named_job(module, client):
    """With task_id: only read that job (and wait for it), submitting nothing."""
    params = module.params
    load_model(client, params["model_id"])
    task = read_task(client, params["task_id"])
    check_is_batch_task_of(task, params["task_id"], params["model_id"])
    return follow(module, client, params["task_id"], task, False, params["wait"])


def ensure_present(module, client):
    """Find the job, else submit it; then follow it (see follow_standing and follow)."""
    if module.params["task_id"]:
        return follow_named_job(module, client)
    earlier = find_earlier_jobs(module, client, module.params["parameters"])
    if earlier.reusable is not None:
        job = earlier.reusable
        return follow_standing(module, client, module.params["model_id"], earlier.identity, job["task_id"], job, False,
                               module.params["wait"])
    check_can_submit(module, client, earlier.model, earlier.connector)
    return submit_job(module, client, earlier, module.params["parameters"], module.params["wait"])


# -- jobs: several jobs at once --------------------------------------------------------------


class Job(object):
    """One entry of O(jobs): its ``parameters``, what was found of it before submitting
    (``earlier``: an :class:`EarlierJobs`, looked up again after a provider refused it for a full
    queue) and its ``task`` as last read; ``task_id`` is None while it waits to be submitted."""

    def __init__(self, number, parameters, identity):
        self.number = number
        self.parameters = parameters
        self.identity = identity
        self.earlier = None
        self.task_id = None
        self.task = None
        self.handovers = 0

    @property
    def state(self):
        return (self.task or {}).get("state")

    def follow(self, task_id, task):
        self.task_id, self.task = task_id, task

    def describe(self):
        if self.task_id is None:
            return "job %d waits to be submitted" % self.number
        return "job %d: %s" % (self.number, describe_task(self.task_id, self.task))

    def outcome(self):
        entry = from_task(self.task_id, self.task or {}) if self.task_id else {"task_id": None, "job": {}, "status": None}
        entry.pop("raw", None)
        entry["reason"] = failure_reason(self.task) if self.state in UNSUCCESSFUL_STATES else None
        return entry


def jobs_of_request(module, connector):
    """The entries of O(jobs), each with O(parameters) under its own, and what recognises its job."""
    params = module.params
    jobs = []
    for number, entry in enumerate(params["jobs"], start=1):
        parameters = dict(params["parameters"] or {}, **entry["parameters"])
        identity = job_identity(connector, parameters)
        if identity is None:
            raise ConfigurationError(
                "jobs[%d]: the module cannot tell this job from the model's others (it recognises OpenAI's input_file_id, "
                "SageMaker's TransformJobName and Bedrock's jobName or input S3 URI), so it could not run it once only, nor "
                "wait for it among others. Give each job those parameters." % (number - 1)
            )
        jobs.append(Job(number, parameters, identity))
    return jobs


def earlier_job_with_results(earlier):
    """The job a part gets back: the one a single job would, else its newest expired job, whose
    results of the requests that ran are there to be had (the lines it did not run are retried on
    their own, not the part again, which would pay for those that ran twice)."""
    if earlier.reusable is not None:
        return earlier.reusable
    for task in earlier.known:
        if task.get("state") == "EXPIRED":
            return task
    return None


def take_earlier(module, client, model, connector, job):
    """Look for the job's earlier runs; follow the one it gets back, if any (returns whether)."""
    job.earlier = find_earlier_jobs(module, client, job.parameters, model, connector)
    found = None if module.params["force"] else earlier_job_with_results(job.earlier)
    if found is not None:
        job.follow(found["task_id"], found)
    return found is not None


def queued_again(job):
    """A job the provider failed only because its queue was full is submitted again later."""
    if job.state == "FAILED" and answers.is_provider_queue_full(failure_reason(job.task)):
        job.follow(None, None)
        job.earlier = None
        return True
    return False


def submit_what_fits(module, client, model, connector, jobs):
    """Submit, in order, the jobs that wait to be, until ML Commons' task limit or the provider's
    queue refuses one: the rest wait until jobs end. Returns whether anything was submitted."""
    submitted = False
    for job in jobs:
        if job.task_id is not None:
            continue
        if job.earlier is None:
            if take_earlier(module, client, model, connector, job):
                continue
        if module.check_mode:
            submitted = True
            continue
        try:
            outcome = submit_job(module, client, job.earlier, job.parameters, wait=False)
        except MLCommonsError as error:
            if not isinstance(error, TaskLimitReached) and not answers.is_provider_queue_full(str(error)):
                raise
            # Until there is room, a concurrent run may submit these jobs: look for them again then.
            for waiting in jobs:
                if waiting.task_id is None:
                    waiting.earlier = None
            break
        task = {"task_id": outcome["task_id"], "state": outcome["status"], "remote_job": outcome["job"]}
        job.follow(outcome["task_id"], task)
        submitted = True
    return submitted


def refresh(module, client, job):
    """Read a running job; one that ended cancelled, because a concurrent run converged on an older
    copy of it, is replaced by the copy that stands (see follow_standing)."""
    job.task = read_waited_task(client, job.task_id, "job %d" % job.number)
    if job.state in CANCELLED_STATES and job.handovers < FOLLOW_ATTEMPTS:
        standing = standing_jobs(client, module.params["model_id"], job.identity)
        if standing:
            job.handovers += 1
            oldest = oldest_of(TASK, standing)
            job.follow(oldest["task_id"], read_task(client, oldest["task_id"]) or oldest)


def wait_for_jobs(module, client, model, connector, jobs):
    """One poll schedule for every job (as wait_for_job's): read those that run, submit those that
    wait as room frees up, until every job has ended. Returns whether anything was submitted."""
    params = module.params
    submitted = [False]

    def poll():
        for job in jobs:
            if job.task_id is not None and job.state not in DONE_STATES:
                refresh(module, client, job)
        for job in jobs:
            queued_again(job)
        if any(job.task_id is None for job in jobs):
            submitted[0] = submit_what_fits(module, client, model, connector, jobs) or submitted[0]
        return jobs

    def all_ended(_jobs):
        return all(job.task_id is not None and job.state in DONE_STATES for job in jobs)

    try:
        wait_until(poll, all_ended, params["wait_timeout"], interval=params["poll_interval"],
                   max_interval=max(params["poll_interval"], MAX_POLL_INTERVAL), elapsed_fraction=POLL_FRACTION_OF_WAIT,
                   describe=lambda _jobs: "; ".join(job.describe() for job in jobs if job.state not in DONE_STATES),
                   expected_in=lambda _jobs: seconds_to_first_end([job.task for job in jobs if job.task_id is not None]))
    except WaitTimeoutError as error:
        raise WaitTimeoutError(
            "%s The jobs go on, and those that wait are submitted by a later run with the same jobs, which waits for "
            "them all again." % error, jobs=[job.outcome() for job in jobs], **error.details
        )
    return submitted[0]


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


def jobs_result(changed, jobs, before):
    entries = [job.outcome() for job in jobs]
    after = [summary(entry) or {"status": entry["status"]} for entry in entries]
    diff = build_diff({"jobs": before}, {"jobs": after})
    return dict(task_id=None, job={}, status=overall_status(entries), raw={}, jobs=entries, changed=changed, diff=diff)


def ensure_jobs_present(module, client):
    """Each job of O(jobs) found or submitted, as for one job, within ML Commons' task limit; with
    wait, all of them waited for together."""
    model, connector = load_model(client, module.params["model_id"])
    check_keeps_tasks(client)
    jobs = jobs_of_request(module, connector)
    for job in jobs:
        take_earlier(module, client, model, connector, job)
    before = [summary(job.outcome()) or {"status": None} for job in jobs]
    if any(job.task_id is None for job in jobs):
        check_can_submit(module, client, model, connector)
    changed = submit_what_fits(module, client, model, connector, jobs)
    if module.params["wait"] and not module.check_mode:
        changed = wait_for_jobs(module, client, model, connector, jobs) or changed
    return jobs_result(changed, jobs, before)


def ensure_jobs_cancelled(module, client):
    """Every created or running job of O(jobs) cancelled (each as for one job)."""
    model, connector = load_model(client, module.params["model_id"])
    check_keeps_tasks(client)
    outcomes = [ensure_cancelled(module, client, model, job_to_cancel(module, client, model["model_id"], connector, job.parameters))
                for job in jobs_of_request(module, connector)]
    entries = [dict(task_id=outcome["task_id"], job=outcome["job"], status=outcome["status"], reason=None) for outcome in outcomes]
    diff = build_diff({"jobs": [outcome["diff"]["before"] for outcome in outcomes]}, {"jobs": [outcome["diff"]["after"] for outcome in outcomes]})
    return dict(task_id=None, job={}, status=overall_status(entries), raw={}, jobs=entries,
                changed=any(outcome["changed"] for outcome in outcomes), diff=diff)


# -- state: cancelled ------------------------------------------------------------------------


def job_to_cancel(module, client, model_id, connector, parameters):
    """The task to cancel: the one named by task_id, else the newest created or running job of ``parameters``."""
    params = module.params
    if params["task_id"]:
        task = read_task(client, params["task_id"])
        check_is_batch_task_of(task, params["task_id"], model_id)
        return task
    identity = job_identity(connector, parameters)
    if identity is None:
        raise ConfigurationError(
            "state: cancelled needs task_id here: the module cannot tell which job of model %s to cancel from its parameters "
            "(it recognises OpenAI's input_file_id, SageMaker's TransformJobName and Bedrock's jobName or input S3 URI)." % model_id
        )
    for candidate in find_jobs(client, model_id, identity):
        if candidate.get("state") in ACTIVE_STATES:
            task = read_task(client, candidate["task_id"])
            if task is not None:
                return task
    return None


def check_keeps_tasks(client):
    if client.server_version < FIRST_TASK_VERSION:
        raise ConfigurationError(
            "ML Commons %s keeps no task for batch jobs, so it cannot tell them apart, wait for them or cancel them: use "
            "task-less single jobs, and cancel them at the provider." % client.server_version
        )


def ensure_cancelled(module, client, model, task):
    """Cancel ``task`` (None: nothing to cancel) unless it has ended, and wait for the cancel with wait."""
    params = module.params
    if task is None:
        return result(False, None)
    task_id = task["task_id"]
    before = from_task(task_id, task)
    if task.get("state") in DONE_STATES or task.get("state") == "CANCELLING":
        if params["wait"] and task.get("state") == "CANCELLING":
            task = wait_for_job(client, task_id, params["wait_timeout"], params["poll_interval"])
        return result(False, from_task(task_id, task), before)
    if module.check_mode:
        return result(True, dict(before, status="CANCELLING"), before)

    def send_cancel():
        client.post(cancel_path(client.server_version, task_id))
        return None

    def cancelled_meanwhile():
        fresh = read_task(client, task_id)
        return fresh if fresh is not None and fresh.get("state") not in ACTIVE_STATES else None

    try:
        create_once(send_cancel, cancelled_meanwhile)
    except HTTPError as error:
        # The job may have ended between the read and the cancel: then there is nothing to cancel.
        fresh = read_task(client, task_id)
        if fresh is not None and fresh.get("state") in DONE_STATES:
            module.warn("Batch job %s ended %s before it could be cancelled." % (task_id, fresh["state"]))
            return result(False, from_task(task_id, fresh), before)
        raise explain(error, "cancel the batch job", model["model_id"])
    if params["wait"]:
        task = wait_for_job(client, task_id, params["wait_timeout"], params["poll_interval"])
        if task.get("state") != "CANCELLED":
            module.warn("Batch job %s ended %s: the cancel came too late (%s)." % (task_id, task.get("state"), describe_task(task_id, task)))
    else:
        task = read_task(client, task_id) or task
    return result(True, from_task(task_id, task), before)


# -- entry point -----------------------------------------------------------------------------


def run(module, client):
    params = module.params
    if params["jobs"] is not None:
        return ensure_jobs_cancelled(module, client) if params["state"] == "cancelled" else ensure_jobs_present(module, client)
    if params["state"] == "cancelled":
        model, connector = load_model(client, params["model_id"])
        check_keeps_tasks(client)
        return ensure_cancelled(module, client, model, job_to_cancel(module, client, model["model_id"], connector, params["parameters"]))
    return ensure_present(module, client)


ARGUMENT_SPEC = dict(
    model_id=dict(type="str", required=True),
    parameters=dict(type="dict"),
    state=dict(type="str", choices=["present", "cancelled"], default="present"),
    task_id=dict(type="str"),
    force=dict(type="bool", default=False),
    wait=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=3600),
    poll_interval=dict(type="float", default=10),
    jobs=dict(type="list", elements="dict", options=dict(parameters=dict(type="dict", required=True))),
)


def main():
    MLCommonsModule(argument_spec=ARGUMENT_SPEC, mutually_exclusive=[("jobs", "task_id")]).execute(run)


if __name__ == "__main__":
    main()
