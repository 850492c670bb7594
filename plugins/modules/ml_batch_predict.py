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
    unreachable, with the provider's reason. It works under Ansible C(async) and C(poll). Otherwise the wait runs in
    stretches of at most 15 minutes, and between two the task prints the jobs' states and requests done of the total,
    at default verbosity; each stretch finds the same jobs again and submits nothing twice.
  - O(state=cancelled) cancels the job named by O(task_id), or the running job with the same input, through ML Commons.
    A job that has already ended, or is being cancelled, is left as it is.
  - With O(jobs) (or O(inputs), one input each), runs several jobs of the model at once, each found
    again or submitted once as a single job is, for example one per part of an input too large for one job. They are
    submitted in order while ML Commons has room for them. When C(plugins.ml_commons.max_batch_inference_tasks) jobs are
    already created or running (ML Commons answers 429), or the provider refuses or fails a job only because its queue is
    full (OpenAI's C(token_limit_exceeded)), the rest wait and are submitted as jobs end, never failing the task.
    O(wait=true) waits for all of them on one poll schedule; O(wait=false) submits what there is room for and returns,
    and a later run with the same jobs picks up from there. A job that ends failed, cancelled or expired does not fail
    the task; its entry of RV(jobs) says how and why.
  - Every ML Commons version gets the same result shape, RV(task_id), RV(job), RV(status) and RV(raw), although the
    server's answer changed in 2.17 and 2.18.
author:
  - opensearch.ml_commons maintainers (!UNKNOWN)
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
        action, over the connector's own parameters.
      - "For OpenAI's batch blueprint: C(input_file_id), the uploaded input (M(opensearch.ml_commons.openai_file)'s
        C(file_id)); C(endpoint), the Batch API endpoint the batch is created for, one of C(/v1/responses),
        C(/v1/chat/completions), C(/v1/embeddings) or C(/v1/completions), which every line's C(url) must name. The
        model is chosen by each line's C(body.model): a C(model) parameter is used by the connector's C(predict)
        action, not sent with the batch."
      - Values that are not strings are sent as JSON text, the way ML Commons stores connector parameters.
    type: dict
  jobs:
    description:
      - Several jobs to run at once, instead of one. Each entry's C(parameters) go over O(parameters), which then holds
        what the jobs share. Each job must be recognisable (see the notes), for OpenAI by its C(input_file_id).
      - A job that expired is got back by a re-run, not submitted again as a single job would be. The provider has run,
        and charged for, part of its requests, whose results are in its output file; submit the others on their own.
      - With O(state=cancelled), every created or running job of the list is cancelled.
      - Needs ML Commons 2.17 or later (tasks for batch jobs). Cannot be used with O(task_id) or O(inputs).
    type: list
    elements: dict
    suboptions:
      parameters:
        description: The job's own parameters.
        type: dict
        required: true
  inputs:
    description:
      - The jobs' inputs, a job each, in this order; the same as O(jobs) with one entry per input whose C(parameters) hold
        only it, under O(input_parameter). RV(jobs) is in the same order.
      - For example OpenAI's input files (their IDs, as M(opensearch.ml_commons.openai_file) returns them), or the S3 URIs
        of Bedrock's or SageMaker's inputs (as M(opensearch.ml_commons.s3_object) returns them).
      - Cannot be used with O(jobs) or O(task_id).
    type: list
    elements: str
    aliases: [input_file_ids]
  input_parameter:
    description:
      - The parameter each of O(inputs) is given as, the one the connector's C(batch_predict) action reads the job's
        input from; C(input_file_id) in ML Commons' OpenAI blueprint.
    type: str
    default: input_file_id
    version_added: 0.2.0
  name_parameter:
    description:
      - The parameter that names a job at its provider, for example C(jobName) for Bedrock or C(TransformJobName) for
        SageMaker (whose names are the jobs' identities there, see the notes).
      - A job whose parameters lack it is named C(<name_prefix>-<20 hex digits>), from the SHA-256 of its parameters
        (O(parameters) with its own) and O(model_id). So a re-run finds the same job; another input, output or model is
        another job; and a model registered again after a teardown does not ask for a name the service keeps taken.
      - No two jobs of one run may have the same name.
    type: str
    version_added: 0.2.0
  name_prefix:
    description:
      - The start of the names O(name_parameter) makes; anything but letters and digits becomes a hyphen, and it is cut
        to 42 characters, so that a name fits both services' rules (at most 63 letters, digits and hyphens).
    type: str
    default: batch
    version_added: 0.2.0
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
        tenth of the time waited so far (at most O(max_poll_interval)), because each makes ML Commons call the provider.
      - So the module returns at most this long, or a tenth of the job's duration, after the job has ended. When the
        provider reports the job's progress (OpenAI's request counts), the check after the job's expected end comes
        then; while the provider finalizes (every request ran), checks are this far apart and space out to a tenth of
        the time it has finalized, so the end is seen at most about this long, or a tenth of the finalization, after it.
    type: float
    default: 10
  max_poll_interval:
    description:
      - The longest time, in seconds, between two status checks with O(wait), however long the job has run (O(poll_interval)
        when that is longer). A job is seen ending at most this long after it has ended.
    type: float
    default: 300
    version_added: 0.2.0
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
- name: Upload the batch input to OpenAI, once (a re-run finds it by its content)
  opensearch.ml_commons.openai_file:
    src: ./embeddings.jsonl
    endpoint: /v1/embeddings
  register: upload

- name: Run the blueprint's batch job on it, once, and wait for it
  opensearch.ml_commons.ml_batch_predict:
    model_id: "{{ model.model_id }}"
    parameters:
      input_file_id: "{{ upload.file_id }}"
      endpoint: /v1/embeddings
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
      input_file_id: "{{ upload.file_id }}"
      endpoint: /v1/embeddings
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

- name: The same for every file an upload loop registered, a job each in the loop's order
  opensearch.ml_commons.ml_batch_predict:
    model_id: "{{ model.model_id }}"
    parameters:
      endpoint: /v1/embeddings
    inputs: "{{ uploads.results | map(attribute='file_id') | list }}"
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
    - With O(jobs) or O(inputs), one entry per job in the same order, each with C(task_id), C(status) and C(job) as for a single
      job (C(task_id) and C(status) are null while the job waits to be submitted); C(reason), why a job ended
      failed, cancelled, expired or unreachable (else null); and C(output_uri), the S3 object a completed Bedrock or
      SageMaker job wrote its input's results to (Bedrock's C(<output>/<job ID>/<input name>.out), SageMaker's
      C(<output>/<input name>.out); else null).
    - RV(status) is then the least advanced of their states (null while one waits to be submitted, then that of a
      running job, then C(COMPLETED) when all completed, else the first other end); RV(task_id) is null, RV(job) and
      RV(raw) are empty.
  returned: when O(jobs) or O(inputs) is given
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

from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch.run import Run
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import MLCommonsModule


def listed_jobs(params):
    """Each job's own parameters, from O(jobs) or O(inputs); None for the one job of O(parameters) or O(task_id)."""
    if params["inputs"] is not None:
        return [{params["input_parameter"]: value} for value in params["inputs"]]
    if params["jobs"] is not None:
        return [entry["parameters"] for entry in params["jobs"]]
    return None


def run(module, client):
    batch = Run(module, client, listed_jobs(module.params))
    return batch.cancel() if module.params["state"] == "cancelled" else batch.present()


ARGUMENT_SPEC = dict(
    model_id=dict(type="str", required=True),
    parameters=dict(type="dict"),
    state=dict(type="str", choices=["present", "cancelled"], default="present"),
    task_id=dict(type="str"),
    force=dict(type="bool", default=False),
    wait=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=3600),
    poll_interval=dict(type="float", default=10),
    max_poll_interval=dict(type="float", default=300),
    jobs=dict(type="list", elements="dict", options=dict(parameters=dict(type="dict", required=True))),
    inputs=dict(type="list", elements="str", aliases=["input_file_ids"]),
    input_parameter=dict(type="str", default="input_file_id"),
    name_parameter=dict(type="str"),
    name_prefix=dict(type="str", default="batch"),
)
MUTUALLY_EXCLUSIVE = [("jobs", "task_id"), ("inputs", "jobs"), ("inputs", "task_id")]


def main():
    MLCommonsModule(argument_spec=ARGUMENT_SPEC, mutually_exclusive=MUTUALLY_EXCLUSIVE).execute(run)


if __name__ == "__main__":
    main()
