"""ml_batch_predict with jobs (or inputs): several jobs at once, within ML Commons' task limit, waited for together.

ML Commons is played by ``Cluster``, a simulation at the level of the batch run's requests (find, submit, read,
cancel), so the tests can count what the module asked for and hold it to the task limit as jobs end; the
integration tests run the same against a real ML Commons."""

import re

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch import identity
from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch import jobs as batch
from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch import run as batch_run
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core import wait
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError, WaitTimeoutError
from ansible_collections.opensearch.ml_commons.plugins.modules import ml_batch_predict
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule

SHARED = {"endpoint": "/v1/embeddings"}
OPENAI_CONNECTOR = {"connector_id": "c1", "actions": [{"action_type": "BATCH_PREDICT", "url": "https://api.openai.com/v1/batches"}]}


def fake_module(files, check_mode=False, **params):
    params = dict(dict(model_id="m1", parameters=SHARED, wait=True, wait_timeout=60, poll_interval=1), **params)
    return FakeModule(ml_batch_predict, check_mode, jobs=[{"parameters": {"input_file_id": file_id}} for file_id in files], **params)


class Client:
    server_version = (2, 19, 6)


class Cluster:
    """Batch tasks by ID. A job runs for ``reads_to_finish`` status reads, then ends as ``ends``
    says for its input file (COMPLETED by default); at most ``limit`` jobs may be created or running."""

    def __init__(self, limit=2, reads_to_finish=2):
        self.limit = limit
        self.reads_to_finish = reads_to_finish
        self.tasks = {}
        self.ends = {}
        self.submits = []
        self.refusals = 0
        self.reads = 0
        self.most_active = 0
        self.cancels = []

    def active(self):
        return [task for task in self.tasks.values() if task["state"] in batch.ACTIVE_STATES]

    def submit(self, client, model_id, parameters, identity, known_ids):
        if len(self.active()) >= self.limit:
            self.refusals += 1
            raise batch.TaskLimitReached("Exceeded maximum limit for BATCH_PREDICTION tasks", status=429)
        task_id = "t%d" % (len(self.tasks) + 1)
        job = {"id": "batch_%s" % task_id, "status": "validating", "input_file_id": parameters["input_file_id"]}
        self.tasks[task_id] = {"task_id": task_id, "state": "RUNNING", "create_time": len(self.tasks), "remote_job": job, "reads": 0}
        self.submits.append(parameters["input_file_id"])
        self.most_active = max(self.most_active, len(self.active()))
        return {"task_id": task_id, "status": "CREATED", "remote_job": dict(job)}

    def read(self, client, task_id, doing=None):
        self.reads += 1
        task = self.tasks.get(task_id)
        if task is None:
            return None
        if task["state"] == "CANCELLING":
            # The provider takes one status read to confirm a cancel.
            task["state"] = "CANCELLED" if task.pop("cancel_seen", False) else "CANCELLING"
            task.setdefault("cancel_seen", task["state"] == "CANCELLING")
        if task["state"] == "RUNNING":
            task["reads"] += 1
            if task["reads"] >= self.reads_to_finish:
                end = self.ends.get(task["remote_job"]["input_file_id"], ("COMPLETED", None))
                task["state"], task["remote_job"]["status"] = end[0], end[0].lower()
                if end[1]:
                    task["remote_job"]["errors"] = {"data": [{"code": end[1], "message": end[1]}]}
                if end[0] == "COMPLETED":
                    task["remote_job"]["output_file_id"] = "out-" + task_id
        return dict(task)

    def find(self, client, model_id, identity):
        found = [dict(task) for task in self.tasks.values() if identity.matches(task["remote_job"])]
        return sorted(found, key=lambda task: task["create_time"], reverse=True)

    def cancel(self, client, task_id):
        self.cancels.append(task_id)
        self.tasks[task_id]["state"] = "CANCELLING"


@pytest.fixture
def cluster(monkeypatch):
    fake = Cluster()
    monkeypatch.setattr(batch_run, "load_model", lambda client, model_id: ({"model_id": model_id}, OPENAI_CONNECTOR))
    monkeypatch.setattr(batch_run, "check_can_submit", lambda module, client, model, connector: None)
    monkeypatch.setattr(batch_run, "submit", fake.submit)
    monkeypatch.setattr(batch_run, "read_task", fake.read)
    monkeypatch.setattr(batch, "read_task", fake.read)
    monkeypatch.setattr(batch_run, "find_jobs", fake.find)
    monkeypatch.setattr(batch_run, "cancel_task", fake.cancel)
    monkeypatch.setattr(batch_run.Run, "older_copy", lambda self, job: None)
    monkeypatch.setattr(wait.time, "sleep", lambda seconds: None)
    return fake


def run(module):
    return ml_batch_predict.run(module, Client())


FILES = ["file-a", "file-b", "file-c", "file-d", "file-e"]


def test_each_job_is_submitted_once_never_more_at_once_than_the_limit_and_all_are_waited_for(cluster):
    outcome = run(fake_module(FILES))
    assert cluster.submits == FILES
    assert cluster.most_active == 2
    assert cluster.refusals >= 1
    assert [entry["job"]["input_file_id"] for entry in outcome["jobs"]] == FILES
    assert [entry["status"] for entry in outcome["jobs"]] == ["COMPLETED"] * 5
    assert (outcome["status"], outcome["changed"]) == ("COMPLETED", True)


def test_a_rerun_submits_nothing_and_does_not_read_completed_jobs_again(cluster):
    run(fake_module(FILES))
    submits, reads = len(cluster.submits), cluster.reads
    outcome = run(fake_module(FILES))
    assert (len(cluster.submits), cluster.reads) == (submits, reads)
    assert (outcome["changed"], outcome["status"]) == (False, "COMPLETED")
    assert outcome["diff"]["before"] == outcome["diff"]["after"]


def test_without_wait_what_fits_is_submitted_and_a_later_run_goes_on_from_there(cluster):
    first = run(fake_module(FILES, wait=False))
    assert cluster.submits == FILES[:2]
    assert [entry["status"] for entry in first["jobs"]] == ["CREATED", "CREATED", None, None, None]
    assert (first["status"], first["changed"]) == (None, True)
    second = run(fake_module(FILES, wait=False))  # the first two are read, finish, and make room
    third = run(fake_module(FILES, wait=False))
    assert cluster.submits[:2] == FILES[:2] and sorted(cluster.submits) == sorted(set(cluster.submits))
    assert second["changed"] or third["changed"]
    final = run(fake_module(FILES))
    assert sorted(cluster.submits) == FILES
    assert final["status"] == "COMPLETED"


def test_a_queue_full_failure_is_retried_and_then_completes(cluster, monkeypatch):
    cluster.limit = 5
    cluster.ends["file-b"] = ("FAILED", "token_limit_exceeded")

    def read_then_allow(client, task_id, doing=None):
        task = cluster.read(client, task_id, doing)
        if task is not None and task["state"] == "FAILED":
            cluster.ends.pop("file-b", None)  # the queue has room from now on
        return task

    monkeypatch.setattr(batch_run, "read_task", read_then_allow)
    monkeypatch.setattr(batch, "read_task", read_then_allow)
    outcome = run(fake_module(FILES[:3]))
    assert cluster.submits.count("file-b") == 2
    assert [entry["status"] for entry in outcome["jobs"]] == ["COMPLETED"] * 3


def test_a_job_that_ends_expired_is_reported_with_its_reason_and_does_not_fail_the_task(cluster):
    cluster.ends["file-b"] = ("EXPIRED", "the batch expired before it was done")
    outcome = run(fake_module(FILES[:3]))
    assert [entry["status"] for entry in outcome["jobs"]] == ["COMPLETED", "EXPIRED", "COMPLETED"]
    assert "expired before it was done" in outcome["jobs"][1]["reason"]
    assert outcome["jobs"][0]["reason"] is None
    assert outcome["status"] == "EXPIRED"


def test_a_rerun_gets_an_expired_job_back_instead_of_paying_for_its_part_again(cluster):
    cluster.ends["file-b"] = ("EXPIRED", "the batch expired before it was done")
    run(fake_module(FILES[:3]))
    outcome = run(fake_module(FILES[:3]))
    assert cluster.submits == FILES[:3]
    assert (outcome["changed"], outcome["jobs"][1]["status"]) == (False, "EXPIRED")


def test_check_mode_submits_nothing(cluster):
    outcome = run(fake_module(FILES, check_mode=True))
    assert cluster.submits == []
    assert outcome["changed"] is True


def test_a_job_the_module_cannot_recognise_is_refused_before_anything_is_sent(cluster):
    module = FakeModule(ml_batch_predict, model_id="m1", jobs=[{"parameters": {"input_file_id": "file-a"}}, {"parameters": {"model": "x"}}])
    with pytest.raises(ConfigurationError, match=r"jobs\[1\]"):
        run(module)
    assert cluster.submits == []


def test_the_wait_timeout_names_every_job_that_has_not_ended(cluster):
    cluster.reads_to_finish = 10 ** 6
    with pytest.raises(WaitTimeoutError) as raised:
        run(fake_module(FILES[:3], wait_timeout=0))
    assert "job 1: task t1 is RUNNING" in str(raised.value)
    assert "job 3 waits to be submitted" in str(raised.value)
    assert [entry["task_id"] for entry in raised.value.details["jobs"]] == ["t1", "t2", None]


def test_cancelled_cancels_every_running_job_and_leaves_ended_ones(cluster):
    run(fake_module(FILES[:2], wait=False))
    cluster.tasks["t1"]["state"] = "COMPLETED"
    outcome = run(fake_module(FILES[:2], state="cancelled", wait=False))
    assert cluster.cancels == ["t2"]
    # As for one job: an ended job is not a job to cancel, so its entry is empty.
    assert [entry["status"] for entry in outcome["jobs"]] == [None, "CANCELLING"]
    assert outcome["changed"] is True


def test_cancelled_with_wait_waits_for_every_cancel(cluster):
    run(fake_module(FILES[:2], wait=False))
    outcome = run(fake_module(FILES[:2], state="cancelled", wait=True))
    assert cluster.cancels == ["t1", "t2"]
    assert [entry["status"] for entry in outcome["jobs"]] == ["CANCELLED", "CANCELLED"]
    assert [entry["reason"] for entry in outcome["jobs"]] == ["no reason given"] * 2
    assert (outcome["status"], outcome["changed"]) == ("CANCELLED", True)


def test_inputs_run_the_same_jobs_as_jobs_in_the_same_order(cluster):
    by_ids = run(FakeModule(ml_batch_predict, model_id="m1", parameters=SHARED, wait=True, input_file_ids=FILES))
    assert cluster.submits == FILES
    by_jobs = run(fake_module(FILES))
    assert cluster.submits == FILES
    assert by_ids["jobs"] == by_jobs["jobs"]
    assert [entry["job"]["input_file_id"] for entry in by_ids["jobs"]] == FILES
    assert (by_ids["status"], by_ids["changed"], by_jobs["changed"]) == ("COMPLETED", True, False)


def test_inputs_cannot_be_given_with_jobs_or_task_id():
    validator = ArgumentSpecValidator(ml_batch_predict.ARGUMENT_SPEC, mutually_exclusive=ml_batch_predict.MUTUALLY_EXCLUSIVE)
    for other in (dict(jobs=[{"parameters": {"input_file_id": "file-a"}}]), dict(task_id="t1")):
        errors = validator.validate(dict(model_id="m1", input_file_ids=FILES, **other)).error_messages
        assert len(errors) == 1 and errors[0].startswith("parameters are mutually exclusive: ")
    assert validator.validate(dict(model_id="m1", input_file_ids=FILES)).error_messages == []


def sent_parameters(cluster, monkeypatch):
    """The parameters of each job submitted, as sent."""
    sent = []

    def submit(client, model_id, parameters, identity, known_ids):
        sent.append(dict(parameters))
        return cluster.submit(client, model_id, parameters, identity, known_ids)

    monkeypatch.setattr(batch_run, "submit", submit)
    return sent


def test_inputs_go_under_input_parameter_and_each_job_is_named_from_its_parameters_and_model(cluster, monkeypatch):
    sent = sent_parameters(cluster, monkeypatch)
    module = FakeModule(ml_batch_predict, model_id="m1", parameters=SHARED, wait=True, inputs=FILES[:2], name_parameter="jobName",
                        name_prefix="Nightly embeddings!")
    run(module)
    names = [parameters["jobName"] for parameters in sent]
    assert [parameters["input_file_id"] for parameters in sent] == FILES[:2]
    assert all(re.match(r"^Nightly-embeddings-[0-9a-f]{20}$", name) for name in names) and names[0] != names[1]
    assert names[0] == identity.job_name("Nightly embeddings!", dict(SHARED, input_file_id="file-a"), "m1")
    # Another model, output or prefix: another name; the same: the same.
    assert identity.job_name("x", {"a": "1"}, "m1") == identity.job_name("x", {"a": "1"}, "m1")
    assert len(set([identity.job_name("x", {"a": "1"}, "m1"), identity.job_name("x", {"a": "1"}, "m2"),
                    identity.job_name("x", {"a": "2"}, "m1"), identity.job_name("y", {"a": "1"}, "m1")])) == 4
    assert len(identity.job_name("a" * 80, {}, "m1")) == 63 and identity.job_name("--", {}, "m1").startswith("batch-")


def test_a_name_given_is_kept_and_two_jobs_of_one_name_are_refused_before_anything_is_sent(cluster, monkeypatch):
    sent = sent_parameters(cluster, monkeypatch)
    run(fake_module(FILES[:1], parameters=dict(SHARED, jobName="mine"), name_parameter="jobName"))
    assert sent[0]["jobName"] == "mine"
    with pytest.raises(ConfigurationError, match="jobs.0. and jobs.1. have the same jobName 'mine'"):
        run(fake_module(FILES[1:3], parameters=dict(SHARED, jobName="mine"), name_parameter="jobName"))
    assert len(sent) == 1


@pytest.mark.parametrize("job, status, uri", [
    ({"jobArn": "arn:aws:bedrock:us-east-1:1:model-invocation-job/abc123", "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://b/in/x.jsonl"}},
      "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://b/out/"}}}, "COMPLETED", "s3://b/out/abc123/x.jsonl.out"),
    ({"TransformInput": {"DataSource": {"S3DataSource": {"S3Uri": "s3://b/in/y.jsonl"}}}, "TransformOutput": {"S3OutputPath": "s3://b/out/m1"}},
     "COMPLETED_WITH_ERROR", "s3://b/out/m1/y.jsonl.out"),
    ({"TransformInput": {"DataSource": {"S3DataSource": {"S3Uri": "s3://b/in/y.jsonl"}}}, "TransformOutput": {"S3OutputPath": "s3://b/out/"}},
     "FAILED", None),
    ({"id": "batch_1", "output_file_id": "file-1"}, "COMPLETED", None),
])
def test_the_output_object_of_a_completed_aws_job(job, status, uri):
    assert batch.output_uri(job, status) == uri
