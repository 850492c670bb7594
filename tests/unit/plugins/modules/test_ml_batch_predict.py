"""ml_batch_predict following a job that concurrent runs converge away from."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.modules import ml_batch_predict
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule


DEFAULTS = dict(wait=True, wait_timeout=60, poll_interval=1)


def fake_module(check_mode=False, **params):
    return FakeModule(DEFAULTS, check_mode, **params)


def job(task_id, state, created):
    return {"task_id": task_id, "state": state, "create_time": created, "remote_job": {"input_file_id": "file-1"}}


class ServerSide(dict):
    """Jobs by task ID, which the test sets; the module's reads, waits and searches answer from
    them and are recorded in ``calls``."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def read(self, what, task_id):
        self.calls.append((what, task_id))
        return dict(self[task_id])

    def standing(self):
        self.calls.append(("standing", None))
        return [dict(found) for found in self.values() if found["state"] not in ("CANCELLED", "CANCELLING", "FAILED", "EXPIRED")]


@pytest.fixture
def server_side(monkeypatch):
    jobs = ServerSide()
    monkeypatch.setattr(ml_batch_predict, "read_task", lambda client, task_id: jobs.read("read", task_id))
    monkeypatch.setattr(ml_batch_predict, "wait_for_job", lambda client, task_id, timeout, interval: jobs.read("wait", task_id))
    monkeypatch.setattr(ml_batch_predict, "standing_jobs", lambda client, model_id, identity: jobs.standing())
    return jobs


def test_a_job_found_again_that_its_run_cancels_hands_over_to_the_job_that_stands(server_side):
    """A run that starts a moment after concurrent runs takes the newest of their jobs; that one's
    run cancels it for the older one, which is what this run must end with."""
    server_side["older"] = job("older", "COMPLETED", 1)
    server_side["newer"] = job("newer", "CANCELLED", 2)
    outcome = ml_batch_predict.follow_standing(fake_module(), None, "m1", None, "newer", job("newer", "RUNNING", 2), False, True)
    assert (outcome["task_id"], outcome["status"], outcome["changed"]) == ("older", "COMPLETED", False)


def test_a_job_cancelled_with_nothing_standing_fails_as_cancelled(server_side):
    server_side["only"] = job("only", "CANCELLED", 1)
    with pytest.raises(ml_batch_predict.MLCommonsError, match="ended CANCELLED"):
        ml_batch_predict.follow_standing(fake_module(), None, "m1", None, "only", job("only", "RUNNING", 1), False, True)


def test_a_completed_job_is_returned_without_another_read(server_side):
    outcome = ml_batch_predict.follow_standing(fake_module(), None, "m1", None, "done", job("done", "COMPLETED", 1), False, True)
    assert (outcome["task_id"], outcome["status"]) == ("done", "COMPLETED")
    assert server_side.calls == []


def test_a_running_job_is_waited_for_once(server_side):
    server_side["running"] = job("running", "COMPLETED", 1)
    outcome = ml_batch_predict.follow_standing(fake_module(), None, "m1", None, "running", job("running", "RUNNING", 1), False, True)
    assert outcome["status"] == "COMPLETED"
    assert server_side.calls == [("wait", "running")]
