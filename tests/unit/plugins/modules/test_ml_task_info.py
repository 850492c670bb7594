"""ml_task_info through run(): one task read fresh by ID, or tasks as stored by a search; whole numbers as integers."""

import json

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import Client
from ansible_collections.opensearch.ml_commons.plugins.modules import ml_task_info
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule, exit_output, hits, module_args, requests_sent

# A request nothing was scripted for fails at once, and no wait pauses (see tests/unit/conftest.py).
pytestmark = pytest.mark.usefixtures("module_test_server")


TASKS = "/_plugins/_ml/tasks"
NOT_FOUND = (404, {"error": {"type": "status_exception", "reason": "Failed to find task"}, "status": 404})


def fake_module(check_mode=False, **params):
    return FakeModule(ml_task_info, check_mode, **params)


def batch_task(state="RUNNING", status="in_progress", completed=1.0):
    """A BATCH_PREDICTION task as ML Commons answers it: the provider's numbers turned into floats."""
    return {"model_id": "m1", "task_type": "BATCH_PREDICTION", "function_name": "REMOTE", "state": state, "create_time": 1714000000000,
            "remote_job": {"id": "batch_1", "status": status, "input_file_id": "file-in", "created_at": 1714000000.0,
                           "request_counts": {"total": 3.0, "completed": completed, "failed": 0.0}}}


def run(server, **params):
    module = fake_module(**params)
    return module, ml_task_info.run(module, Client(server.url, backoff=0))


def test_by_id_reads_the_task_with_whole_numbers_as_integers(server):
    server.answer("GET", TASKS + "/t1", (200, batch_task()))
    _module, result = run(server, task_id="t1")
    assert result["changed"] is False
    [task] = result["tasks"]
    assert task["task_id"] == "t1" and task["state"] == "RUNNING"
    assert task["remote_job"]["request_counts"] == {"total": 3, "completed": 1, "failed": 0}
    assert isinstance(task["remote_job"]["request_counts"]["total"], int) and isinstance(task["remote_job"]["created_at"], int)
    assert requests_sent(server) == [("GET", TASKS + "/t1")]


def test_an_unknown_id_is_an_empty_list(server):
    server.answer("GET", TASKS + "/t9", NOT_FOUND)
    assert run(server, task_id="t9")[1] == {"changed": False, "tasks": []}


def test_when_the_provider_cannot_be_asked_the_stored_task_is_returned_with_a_warning(server):
    unreachable = (500, {"error": {"type": "status_exception", "reason": "Error from remote service: connection refused"}, "status": 500})
    server.answer("GET", TASKS + "/t1", unreachable)
    server.answer("POST", TASKS + "/_search", (200, hits(("t1", batch_task()))))
    module, result = run(server, task_id="t1")
    assert [task["task_id"] for task in result["tasks"]] == ["t1"]
    assert result["tasks"][0]["remote_job"]["request_counts"]["total"] == 3
    assert len(module.warnings) == 1 and module.warnings[0].startswith("Returning task t1 as last stored")
    assert requests_sent(server) == [("GET", TASKS + "/t1"), ("POST", TASKS + "/_search")]
    assert json.loads(server.received[1]["body"])["query"] == {"bool": {"filter": [{"ids": {"values": ["t1"]}}]}}


def test_an_id_with_filters_it_does_not_meet_is_an_empty_list(server):
    server.answer("GET", TASKS + "/t1", (200, batch_task(state="RUNNING")))
    assert run(server, task_id="t1", task_state="completed")[1]["tasks"] == []


def test_filters_are_searched_in_upper_case_and_tasks_returned_as_stored(server):
    """A search returns tasks as last stored: no task is read again (that would ask the provider for each)."""
    completed = (("t1", batch_task("COMPLETED", "completed", 3.0)), ("t2", batch_task("COMPLETED", "completed", 2.0)))
    server.answer("POST", TASKS + "/_search", (200, hits(*completed)))
    _module, result = run(server, model_id="m1", task_type="batch_prediction", task_state="completed")
    assert [task["task_id"] for task in result["tasks"]] == ["t1", "t2"]
    assert result["tasks"][1]["remote_job"]["request_counts"] == {"total": 3, "completed": 2, "failed": 0}
    sent = json.loads(server.received[0]["body"])
    assert sent["query"] == {"bool": {"filter": [{"term": {"model_id": "m1"}}, {"term": {"state": "COMPLETED"}},
                                                 {"term": {"task_type": "BATCH_PREDICTION"}}]}}
    assert sent["sort"] == [{"create_time": {"order": "asc", "unmapped_type": "long"}}]
    assert requests_sent(server) == [("POST", TASKS + "/_search")]


def test_all_tasks_are_one_search_and_a_task_without_a_remote_job_is_returned_as_it_is(server):
    register = {"model_id": "m1", "task_type": "REGISTER_MODEL", "state": "COMPLETED", "create_time": 1714000000000}
    server.answer("POST", TASKS + "/_search", (200, hits(("t0", register), ("t1", batch_task()))))
    _module, result = run(server)
    assert result["tasks"] == [dict(register, task_id="t0"), dict(batch_task(), task_id="t1", remote_job=result["tasks"][1]["remote_job"])]
    assert "remote_job" not in result["tasks"][0]
    assert json.loads(server.received[0]["body"])["query"] == {"match_all": {}}


def test_nothing_found_is_an_empty_list(server):
    server.answer("POST", TASKS + "/_search", (200, hits()))
    assert run(server, model_id="m9")[1] == {"changed": False, "tasks": []}
    assert requests_sent(server) == [("POST", TASKS + "/_search")]


def test_the_old_state_filter_still_filters(server, capsys, monkeypatch):
    """A real module run with ``state``, the deprecated alias of ``task_state``."""
    monkeypatch.setenv("OPENSEARCH_URL", server.url)
    server.answer("POST", TASKS + "/_search", (200, hits(("t1", batch_task("FAILED", "failed")))))
    with module_args({"task_type": "BATCH_PREDICTION", "state": "failed"}):
        _printed, output = exit_output(capsys, ml_task_info.main)
    assert [task["task_id"] for task in output["tasks"]] == ["t1"]
    assert {"term": {"state": "FAILED"}} in json.loads(server.received[0]["body"])["query"]["bool"]["filter"]


def test_the_old_state_filter_is_deprecated_for_1_0_0():
    # (Read from the validation: where a module's deprecations go depends on what else the process has loaded.)
    result = ArgumentSpecValidator(ml_task_info.ARGUMENT_SPEC).validate({"state": "failed"})
    assert result.validated_parameters["task_state"] == "failed"
    assert [(item["version"], item["collection_name"]) for item in result._deprecations] == [("1.0.0", "opensearch.ml_commons")]
    assert "'state'" in result._deprecations[0]["msg"]
