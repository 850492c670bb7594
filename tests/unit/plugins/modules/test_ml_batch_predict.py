"""ml_batch_predict with one job, through run() against the scripted server: found again, submitted once, followed to the
copy that stands when concurrent runs converge away from it, waited for, cancelled."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import MLCommonsError, WaitTimeoutError
from ansible_collections.opensearch.ml_commons.plugins.modules import ml_batch_predict
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule, hits, requests_sent, writes

# A request nothing was scripted for fails at once, and no wait pauses (see tests/unit/conftest.py).
pytestmark = pytest.mark.usefixtures("module_test_server")

TASKS = "/_plugins/_ml/tasks"
SEARCH = ("POST", TASKS + "/_search")
MODEL_PATH = "/_plugins/_ml/models/m1"
BATCH_PATH = MODEL_PATH + "/_batch_predict"
HEADERS = {"Authorization": "Bearer ${credential.openAI_key}"}
CONNECTOR = {"connector_id": "c1", "parameters": {"model": "text-embedding-ada-002"}, "actions": [
    {"action_type": "PREDICT", "url": "https://api.openai.com/v1/embeddings", "headers": HEADERS},
    {"action_type": "BATCH_PREDICT", "url": "https://api.openai.com/v1/batches", "headers": HEADERS},
]}
INPUT = {"input_file_id": "file-1"}


def cluster(server, version="2.19.6"):
    """The cluster's version, the deployed model with its OpenAI connector, and the default settings."""
    server.answer("GET", "/", (200, {"version": {"number": version}}))
    server.answer("GET", MODEL_PATH, (200, {"algorithm": "REMOTE", "model_state": "DEPLOYED", "connector": CONNECTOR}))
    server.answer("GET", "/_cluster/settings", (200, {}))


def task(state, created=1, status=None, **job):
    """A batch task of model m1 on file-1, as ML Commons answers it."""
    remote_job = dict({"id": "batch_%d" % created, "input_file_id": "file-1", "status": status or state.lower()}, **job)
    return {"task_type": "BATCH_PREDICTION", "model_id": "m1", "state": state, "create_time": created, "remote_job": remote_job}


def read(task_id, *tasks):
    """GET of the task ``task_id`` answers ``tasks`` in turn."""
    return ("GET", TASKS + "/" + task_id) + tuple((200, found) for found in tasks)


def searched(*tasks):
    """A search of the tasks that finds ``tasks``: (ID, task) pairs, oldest first."""
    return 200, hits(*tasks)


def run(server, check_mode=False, **params):
    module = FakeModule(ml_batch_predict, check_mode, model_id="m1", **params)
    return module, ml_batch_predict.run(module, Client(server.url, backoff=0))


# -- found again --------------------------------------------------------------------------------


def test_a_rerun_finds_its_job_by_the_request_alone_and_reads_nothing_else(server):
    server.answer(*SEARCH, searched(("t1", task("RUNNING"))))
    server.answer(*read("t1", task("RUNNING")))
    _module, result = run(server, parameters=INPUT)
    assert (result["changed"], result["task_id"], result["status"], result["job"]["id"]) == (False, "t1", "RUNNING", "batch_1")
    assert requests_sent(server) == [SEARCH, ("GET", TASKS + "/t1")]


def test_a_completed_job_is_returned_without_another_read(server):
    server.answer(*SEARCH, searched(("done", task("COMPLETED"))))
    _module, result = run(server, parameters=INPUT, wait=True)
    assert (result["task_id"], result["status"], result["changed"]) == ("done", "COMPLETED", False)
    assert requests_sent(server) == [SEARCH]


def test_a_running_job_is_waited_for_until_it_has_ended(server):
    server.answer(*SEARCH, searched(("running", task("RUNNING"))))
    server.answer(*read("running", task("RUNNING"), task("RUNNING"), task("COMPLETED", output_file_id="file-out")))
    _module, result = run(server, parameters=INPUT, wait=True, poll_interval=0.01)
    assert (result["status"], result["job"]["output_file_id"]) == ("COMPLETED", "file-out")
    assert requests_sent(server) == [SEARCH] + [("GET", TASKS + "/running")] * 3


def test_a_job_found_again_that_its_run_cancels_hands_over_to_the_job_that_stands(server):
    """A run that starts a moment after concurrent runs takes the newest of their jobs; that one's
    run cancels it for the older one, which is what this run must end with."""
    server.answer(*SEARCH, searched(("older", task("RUNNING", 1)), ("newer", task("RUNNING", 2))),
                  searched(("older", task("RUNNING", 1)), ("newer", task("CANCELLED", 2))))
    server.answer(*read("newer", task("RUNNING", 2), task("CANCELLED", 2)))
    server.answer(*read("older", task("COMPLETED", 1)))
    _module, result = run(server, parameters=INPUT, wait=True)
    assert (result["task_id"], result["status"], result["changed"]) == ("older", "COMPLETED", False)
    assert writes(server) == []


def test_a_job_cancelled_with_nothing_standing_fails_as_cancelled(server):
    server.answer(*SEARCH, searched(("only", task("RUNNING"))), searched(("only", task("CANCELLED"))))
    server.answer(*read("only", task("RUNNING"), task("CANCELLED")))
    with pytest.raises(MLCommonsError, match="Batch job only ended CANCELLED: no reason given"):
        run(server, parameters=INPUT, wait=True)


# -- submitted once -----------------------------------------------------------------------------


def test_a_new_job_is_submitted_once_and_its_answer_is_raw(server):
    cluster(server)
    answer = {"task_id": "t1", "status": "CREATED", "remote_job": {"id": "batch_1", "input_file_id": "file-1", "status": "validating"}}
    server.answer(*SEARCH, searched(), searched(("t1", task("RUNNING"))))
    server.answer("POST", BATCH_PATH, (200, answer))
    module, result = run(server, parameters=dict(INPUT, endpoint="/v1/embeddings"))
    assert writes(server) == [("POST", BATCH_PATH, {"parameters": {"input_file_id": "file-1", "endpoint": "/v1/embeddings"}})]
    assert (result["changed"], result["task_id"], result["status"], result["raw"]) == (True, "t1", "CREATED", answer)
    assert result["diff"] == {"before": {}, "after": {"task_id": "t1", "status": "CREATED", "provider_status": "validating"}}
    assert module.warnings == []


def test_check_mode_predicts_a_created_job_and_sends_nothing(server):
    cluster(server)
    server.answer(*SEARCH, searched())
    _module, result = run(server, check_mode=True, parameters=INPUT)
    assert (result["changed"], result["task_id"], result["status"], result["job"], result["raw"]) == (True, None, "CREATED", {}, {})
    assert writes(server) == []


def test_a_run_whose_copy_is_younger_cancels_it_and_follows_the_oldest(server):
    cluster(server)
    server.answer(*SEARCH, searched(), searched(("t1", task("RUNNING", 1)), ("t2", task("RUNNING", 2))))
    server.answer("POST", BATCH_PATH, (200, {"task_id": "t2", "status": "CREATED", "remote_job": {"input_file_id": "file-1"}}))
    server.answer("POST", TASKS + "/t2/_cancel", (200, {}))
    server.answer(*read("t1", task("RUNNING", 1)))
    module, result = run(server, parameters=INPUT)
    assert [write[:2] for write in writes(server)] == [("POST", BATCH_PATH), ("POST", TASKS + "/t2/_cancel")]
    assert (result["changed"], result["task_id"], result["raw"]["task_id"]) == (True, "t1", "t1")
    assert module.warnings == ["A run at the same moment submitted this job first; this run cancelled its own copy (task t2)."]


def test_a_full_provider_queue_fails_a_single_job_with_the_provider_words(server):
    cluster(server)
    server.answer(*SEARCH, searched())
    reason = 'Error from remote service: {"error": {"message": "Enqueued token limit reached.", "code": "token_limit_exceeded"}}'
    server.answer("POST", BATCH_PATH, (400, {"error": {"type": "status_exception", "reason": reason}, "status": 400}))
    with pytest.raises(MLCommonsError, match=r"^The provider refused to submit the batch job \(HTTP 400\): Enqueued token limit reached"):
        run(server, parameters=INPUT)


def test_without_tasks_every_run_submits_and_says_so(server):
    cluster(server, "2.16.0")
    server.answer(*SEARCH, searched())
    answer = {"inference_results": [{"output": [{"name": "response", "dataAsMap": {"id": "batch_1", "status": "validating"}}]}]}
    server.answer("POST", BATCH_PATH, (200, answer))
    module, result = run(server, parameters=INPUT, wait=True)
    assert (result["changed"], result["task_id"], result["status"], result["raw"]) == (True, None, "validating", answer)
    assert any("keeps no task for batch jobs" in warning for warning in module.warnings)


# -- a job named by its task ID -----------------------------------------------------------------


def test_a_named_job_is_read_and_waited_for_submitting_nothing(server):
    cluster(server)
    server.answer(*read("t1", task("RUNNING"), task("COMPLETED", output_file_id="file-out")))
    _module, result = run(server, task_id="t1", wait=True, poll_interval=0.01)
    assert (result["changed"], result["status"], result["job"]["output_file_id"]) == (False, "COMPLETED", "file-out")
    assert writes(server) == []


def test_the_wait_times_out_with_the_last_state_and_the_task(server):
    cluster(server)
    server.answer(*read("t1", task("RUNNING", status="validating", request_counts={"total": 0.0})))
    with pytest.raises(WaitTimeoutError) as caught:
        run(server, task_id="t1", wait=True, wait_timeout=0)
    assert "last state seen: task t1 is RUNNING (provider status validating)" in str(caught.value)
    assert "wait for it again with task_id: t1" in str(caught.value)
    assert caught.value.details["task_id"] == "t1"
    assert caught.value.details["status"] == "RUNNING"
    assert caught.value.details["job"] == {"id": "batch_1", "input_file_id": "file-1", "status": "validating", "request_counts": {"total": 0}}


def test_a_task_that_disappears_while_waited_for_fails(server):
    cluster(server)
    server.answer("GET", TASKS + "/t1", (200, task("RUNNING")), (404, {"error": {"type": "status_exception", "reason": "Failed to find task"}}))
    with pytest.raises(MLCommonsError, match="Batch task t1 disappeared while waiting for it"):
        run(server, task_id="t1", wait=True)


def test_a_job_that_ends_failed_fails_with_the_provider_reason(server):
    cluster(server)
    failed = task("FAILED", errors={"data": [{"code": "invalid_json_line", "message": "This line is not parseable", "line": 1}]})
    server.answer(*read("t1", failed))
    with pytest.raises(MLCommonsError) as caught:
        run(server, task_id="t1", wait=True)
    assert str(caught.value) == "Batch job t1 ended FAILED: This line is not parseable (line 1)"
    assert (caught.value.details["task_id"], caught.value.details["status"]) == ("t1", "FAILED")


# -- cancelled ----------------------------------------------------------------------------------


def test_cancel_finds_the_running_job_by_its_input_and_waits_for_the_cancel(server):
    cluster(server)
    server.answer(*SEARCH, searched(("t1", task("RUNNING"))))
    server.answer(*read("t1", task("RUNNING"), task("CANCELLED")))
    server.answer("POST", TASKS + "/t1/_cancel", (200, {}))
    _module, result = run(server, parameters=INPUT, state="cancelled", wait=True)
    assert (result["changed"], result["task_id"], result["status"]) == (True, "t1", "CANCELLED")
    assert (result["diff"]["before"]["status"], result["diff"]["after"]["status"]) == ("RUNNING", "CANCELLED")
    assert [write[:2] for write in writes(server)] == [("POST", TASKS + "/t1/_cancel")]


def test_cancel_in_check_mode_predicts_it_and_sends_nothing(server):
    cluster(server)
    server.answer(*read("t1", task("RUNNING")))
    _module, result = run(server, check_mode=True, task_id="t1", state="cancelled")
    assert (result["changed"], result["status"], result["raw"]["state"]) == (True, "CANCELLING", "RUNNING")
    assert writes(server) == []


def test_an_ended_job_is_not_cancelled_and_nothing_found_is_no_change(server):
    cluster(server)
    server.answer(*read("t1", task("COMPLETED")))
    _module, ended = run(server, task_id="t1", state="cancelled")
    assert (ended["changed"], ended["status"]) == (False, "COMPLETED")
    server.answer(*SEARCH, searched())
    _module, nothing = run(server, parameters={"input_file_id": "file-never"}, state="cancelled")
    assert (nothing["changed"], nothing["task_id"], nothing["status"]) == (False, None, None)
    assert writes(server) == []


def test_a_job_that_ended_as_it_was_cancelled_is_no_change(server):
    cluster(server)
    server.answer(*read("t1", task("RUNNING"), task("COMPLETED")))
    server.answer("POST", TASKS + "/t1/_cancel", (400, {"error": {"type": "status_exception", "reason": "task already completed"}}))
    module, result = run(server, task_id="t1", state="cancelled")
    assert (result["changed"], result["status"]) == (False, "COMPLETED")
    assert module.warnings == ["Batch job t1 ended COMPLETED before it could be cancelled."]


def test_cancel_without_task_id_needs_a_recognisable_job(server):
    cluster(server)
    with pytest.raises(MLCommonsError, match="state: cancelled needs task_id here"):
        run(server, parameters={"model": "x"}, state="cancelled")


# -- ML Commons checks batch jobs against the model's interface (the request before 3.3, opensearch-project/ml-commons#4080) --

PRESET_INPUT = '{"type": "object", "properties": {"parameters": {"type": "object", "required": ["inputText"]}}}'
PRESET_OUTPUT = '{"type": "object", "required": ["inference_results"]}'


def cluster_with_interface(server, version, interface):
    server.answer("GET", "/", (200, {"version": {"number": version}}))
    server.answer("GET", MODEL_PATH, (200, {"algorithm": "REMOTE", "model_state": "DEPLOYED", "connector": CONNECTOR, "interface": interface}))
    server.answer("GET", "/_cluster/settings", (200, {}))


@pytest.mark.parametrize("version, interface, refused", [
    ("2.19.6", {"input": PRESET_INPUT, "output": PRESET_OUTPUT}, "input and output schema"),
    ("2.19.6", {"input": PRESET_INPUT}, "input schema"),
    ("3.6.0", {"input": PRESET_INPUT, "output": PRESET_OUTPUT}, "output schema"),
])
def test_a_model_whose_interface_ml_commons_would_check_the_job_against_is_refused_before_submitting(server, version, interface, refused):
    cluster_with_interface(server, version, interface)
    server.answer(*SEARCH, searched())
    with pytest.raises(MLCommonsError) as caught:
        run(server, parameters=INPUT)
    message = str(caught.value)
    for part in (version, "m1", refused, "opensearch-project/ml-commons#4080", "interface: {input: '{}', output: '{}'}",
                 "opensearch.ml_commons.ml_model"):
        assert part in message
    assert writes(server) == []


@pytest.mark.parametrize("version, interface", [
    ("2.19.6", {}),
    ("2.19.6", {"input": "{}", "output": "{}"}),
    ("3.3.0", {"input": PRESET_INPUT}),
])
def test_a_model_whose_interface_lets_batch_jobs_through_is_submitted(server, version, interface):
    cluster_with_interface(server, version, interface)
    answer = {"task_id": "t1", "status": "CREATED", "remote_job": {"id": "batch_1", "input_file_id": "file-1", "status": "validating"}}
    server.answer(*SEARCH, searched(), searched(("t1", task("RUNNING"))))
    server.answer("POST", BATCH_PATH, (200, answer))
    _module, result = run(server, parameters=INPUT)
    assert result["changed"] is True and [write[:2] for write in writes(server)] == [("POST", BATCH_PATH)]
