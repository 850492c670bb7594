"""ml_batch_predict's action plugin: a wait runs as the module's own waits in stretches, progress shown
between two, the checks backing off from poll_interval to max_poll_interval, and the task's result as one
wait of the whole wait_timeout would give it."""

from unittest import mock

import pytest

from ansible_collections.opensearch.ml_commons.plugins.action import ml_batch_predict as plugin


class Clock:
    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now


def timed_out(seconds, **details):
    """What the module fails with when a stretch of ``seconds`` runs out (a WaitTimeoutError)."""
    return dict(failed=True, polls=3, msg="Gave up waiting after %ss (3 checks); last state seen: task t1: RUNNING. The job goes on." % seconds,
                **details)


def run_plugin(monkeypatch, args, outcomes, check_mode=False, async_val=0):
    """Run the action plugin; each module run takes its stretch's wait_timeout (or 5 s when it ends sooner)."""
    clock = Clock()
    monkeypatch.setattr(plugin, "time", clock)
    shown = []
    monkeypatch.setattr(plugin.display, "display", shown.append)
    calls = []
    pending = list(outcomes)

    def execute_module(module_name, module_args, task_vars, wrap_async=False):
        assert module_name == "opensearch.ml_commons.ml_batch_predict"
        calls.append(dict(module_args))
        outcome = pending.pop(0)
        clock.now += module_args["wait_timeout"] if outcome.get("polls") else 5
        return dict(outcome)

    task = mock.MagicMock(args=args, async_val=async_val, check_mode=check_mode)
    task.get_name.return_value = "Batch jobs"
    action = plugin.ActionModule(task, mock.MagicMock(), mock.MagicMock(check_mode=check_mode), None, None, None)
    monkeypatch.setattr(action, "_execute_module", execute_module)
    monkeypatch.setattr(action, "_remove_tmp_path", lambda path: None)
    return action.run(task_vars={"inventory_hostname": "cluster-a"}), calls, shown


def test_without_wait_the_module_runs_once_as_given(monkeypatch):
    args = {"model_id": "m1", "wait": False}
    result, calls, shown = run_plugin(monkeypatch, args, [{"changed": True, "status": "CREATED"}])
    assert calls == [args] and shown == [] and result["changed"] is True


@pytest.mark.parametrize("extra", [dict(check_mode=True), dict(async_val=3600)])
def test_in_check_mode_and_under_async_the_module_runs_once_as_given(monkeypatch, extra):
    args = {"model_id": "m1", "wait": True}
    result, calls, shown = run_plugin(monkeypatch, args, [{"changed": False, "status": "CREATED"}], **extra)
    assert calls == [args] and shown == []


def test_a_long_wait_shows_progress_and_backs_off_to_the_ceiling(monkeypatch):
    job = {"request_counts": {"total": 100, "completed": 40, "failed": 2}}
    outcomes = [timed_out(100, status="RUNNING", job=job, task_id="t1", changed=True)] + [timed_out(900, status="RUNNING", job=job, task_id="t1")] * 10
    outcomes.append({"changed": False, "status": "COMPLETED", "job": job, "diff": {"before": {}, "after": {"status": "COMPLETED"}}})
    args = {"model_id": "m1", "parameters": {"input_file_id": "file-1"}, "force": True, "wait": True, "wait_timeout": 86400,
            "poll_interval": 10, "max_poll_interval": 300}
    result, calls, shown = run_plugin(monkeypatch, args, outcomes)
    # The first stretch submits (forced); the others follow its task and submit nothing.
    assert calls[0]["force"] is True and "task_id" not in calls[0]
    assert all(call["task_id"] == "t1" and call["force"] is False for call in calls[1:])
    paces = [call["poll_interval"] for call in calls]
    assert paces[0] == 10 and paces == sorted(paces) and paces[-1] == 300
    # Within a stretch the module keeps one pace: the back-off is the plugin's, never past the ceiling.
    assert all(call["max_poll_interval"] == call["poll_interval"] for call in calls)
    assert all(call["wait_timeout"] <= plugin.LONGEST_STRETCH for call in calls)
    assert len(shown) == len(calls) - 1
    assert shown[0] == "Batch jobs [cluster-a]: waited 1m40s of 24h00m: RUNNING; 42 of 100 requests done (2 failed)"
    # The first stretch submitted: the task reports the change.
    assert result["changed"] is True and result["status"] == "COMPLETED"


def test_several_jobs_show_their_states_and_summed_counts(monkeypatch):
    jobs = [{"status": "COMPLETED", "job": {"request_counts": {"total": 10, "completed": 10, "failed": 0}}},
            {"status": "RUNNING", "job": {"request_counts": {"total": 10, "completed": 3, "failed": 0}}},
            {"status": None, "job": {}}]
    outcomes = [timed_out(20, jobs=jobs), {"changed": False, "status": "COMPLETED", "jobs": jobs}]
    args = {"model_id": "m1", "input_file_ids": ["file-1", "file-2", "file-3"], "wait": True, "wait_timeout": 600, "poll_interval": 2}
    result, calls, shown = run_plugin(monkeypatch, args, outcomes)
    assert shown == ["Batch jobs [cluster-a]: waited 20s of 10m00s: 1 COMPLETED, 1 RUNNING, 1 waiting to be submitted; 13 of 20 requests done (0 failed)"]
    assert calls[0]["wait_timeout"] == 20 and calls[0]["poll_interval"] == 2
    # Several jobs are found again by their input files, never by a task_id.
    assert "task_id" not in calls[1]


def test_when_wait_timeout_runs_out_the_failure_names_the_whole_wait(monkeypatch):
    outcomes = [timed_out(20, status="RUNNING", task_id="t1")] * 3
    args = {"model_id": "m1", "wait": True, "wait_timeout": 60, "poll_interval": 2}
    result, calls, shown = run_plugin(monkeypatch, args, outcomes)
    assert result["failed"] is True and result["task_id"] == "t1"
    assert result["msg"].startswith("Gave up waiting after 60s (9 checks); last state seen: task t1: RUNNING.")
    assert sum(call["wait_timeout"] for call in calls) == 60 and len(shown) == 2


def test_a_failure_other_than_the_timeout_ends_the_wait_at_once(monkeypatch):
    outcomes = [{"failed": True, "msg": "Batch job t1 ended FAILED: quota", "changed": True}]
    result, calls, shown = run_plugin(monkeypatch, {"model_id": "m1", "wait": True}, outcomes)
    assert len(calls) == 1 and result["failed"] and result["changed"] and shown == []
