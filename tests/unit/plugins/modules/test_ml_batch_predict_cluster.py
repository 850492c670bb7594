"""ml_batch_predict on a cluster of ML Commons 2.19: the batch task limit check that fails on another node's shard."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch import jobs
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import MLCommonsError
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import requests_sent

pytestmark = pytest.mark.usefixtures("module_test_server")

# What 2.19 answers when the task index is searched on another node (its log: "can not write type
# [class org.opensearch.ml.common.MLTaskState]").
LIMIT_CHECK_FAILED = (400, {"error": {"root_cause": [{"type": "search_phase_execution_exception", "reason": "all shards failed"}],
                                      "type": "search_phase_execution_exception", "reason": "all shards failed", "phase": "query",
                                      "grouped": True, "failed_shards": []}, "status": 400})
SUBMITTED = (200, {"task_id": "t1", "status": "CREATED"})
BATCH = ("POST", "/_plugins/_ml/models/m1/_batch_predict")


def submit(server):
    return jobs.submit(Client(server.url, backoff=0), "m1", {"input_file_id": "file-1"}, None, set())


def test_a_failed_limit_check_is_sent_again_until_a_worker_node_checks_it(server):
    server.answer(*BATCH, LIMIT_CHECK_FAILED, LIMIT_CHECK_FAILED, SUBMITTED)
    assert submit(server)["task_id"] == "t1"
    assert requests_sent(server) == [BATCH] * 3


def test_a_limit_check_that_keeps_failing_says_what_happened(server):
    server.answer(*BATCH, LIMIT_CHECK_FAILED)
    with pytest.raises(MLCommonsError) as caught:
        submit(server)
    assert str(caught.value).startswith("ML Commons could not submit the batch job: its check of "
                                        "plugins.ml_commons.max_batch_inference_tasks failed (all shards failed).")
    assert requests_sent(server) == [BATCH] * jobs.LIMIT_CHECK_ATTEMPTS


def test_another_bad_request_is_not_sent_again(server):
    server.answer(*BATCH, (400, {"error": {"type": "illegal_argument_exception", "reason": "no batch_predict action"}, "status": 400}))
    with pytest.raises(MLCommonsError):
        submit(server)
    assert requests_sent(server) == [BATCH]
