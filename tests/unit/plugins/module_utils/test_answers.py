"""ML Commons' answers, each recognised by the predicate named for what it means (texts from its sources)."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons import answers
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import HTTPError, UncertainOutcomeError


def answer(status, reason, error_type="status_exception"):
    return HTTPError("POST", "/x", status, error_type, reason)


def test_a_version_conflict_needs_the_409_and_the_words():
    assert answers.is_version_conflict(answer(409, "Document version conflict updating m1 in index .plugins-ml-model"))
    assert answers.is_version_conflict(answer(409, "[m1]: version conflict, required seqNo [82]", "version_conflict_engine_exception"))
    assert not answers.is_version_conflict(answer(400, "version conflict"))
    assert not answers.is_version_conflict(answer(409, "The name you provided is already being used"))


def test_missing_objects_across_versions():
    assert answers.is_not_found(answer(404, "no such model"))
    assert answers.is_not_found(answer(500, "Fail to find model", "m_l_resource_not_found_exception"))
    assert answers.is_not_found(answer(500, "Failed to find connector"))
    assert not answers.is_not_found(answer(500, "Failed to deploy"))


def test_the_model_group_that_has_the_name():
    taken = answer(400, "The name you provided is already being used by a model group with ID: Gx1abc_9.")
    assert answers.model_group_taking_name(taken) == "Gx1abc_9"
    assert answers.model_group_taking_name(answer(500, "already being used by a model group with ID: Gx1")) is None


def test_the_models_that_block_a_connector_change():
    blocked = answer(409, "2 models are still using this connector, please delete or update the models first: [m1, m2]")
    assert answers.models_blocking_connector_change(blocked) == ["m1", "m2"]
    assert answers.models_blocking_connector_change(answer(409, "version conflict")) == []


@pytest.mark.parametrize("task_error, collided", [
    ('{"node":"Duplicate deploy model task"}', True),
    ("[m1]: version conflict, required seqNo [353], primary term [17]", True),
    ("Fetching master key timed out.", True),
    (None, True),  # ML Commons recorded no error
    ("Connector not found", False),
])
def test_a_deploy_collision_is_read_from_the_deploy_tasks_error(task_error, collided):
    assert answers.is_deploy_collision(task_error) is collided


@pytest.mark.parametrize("predicate, reason", [
    (answers.is_master_key_unavailable, "Fetching master key timed out."),
    (answers.is_model_cache_not_updated, "update model cache was failed"),
    (answers.is_batch_disabled, "Offline Batch Inference is currently disabled. To enable it, update the setting"),
    (answers.is_batch_task_limit, "Exceeded maximum limit for BATCH_PREDICTION tasks. To increase the limit, update the setting"),
    (answers.is_private_ip_refused, "Remote inference host name has private ip address: 10.0.0.1"),
    (answers.is_model_not_ready, "Model not ready yet. Please run this first: POST /_plugins/_ml/models/m1/_deploy"),
    (answers.is_batch_action_missing, "no BATCH_PREDICT action found"),
    (answers.is_job_undescribed, "Unable to create batch transform job"),
    (answers.is_task_model_gone, "Failed to retrieve the ML model for the given task ID"),
])
def test_each_answer_is_recognised_by_its_own_predicate_only(predicate, reason):
    assert predicate(answer(400, reason))
    assert not predicate(answer(400, "something else"))


def test_a_cluster_not_ready_yet_is_a_503_that_says_the_request_did_not_run():
    no_shard = "No shard available for [get [.plugins-ml-config][master_key]: routing [null]]"
    assert answers.is_cluster_not_ready(answer(503, no_shard, "no_shard_available_action_exception"))
    assert answers.is_cluster_not_ready(answer(503, "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];", "cluster_block_exception"))
    assert answers.is_cluster_not_ready(answer(503, no_shard, "m_l_exception"))
    assert not answers.is_cluster_not_ready(answer(503, "try later", "unavailable"))
    # A block that is not about starting (an index made read-only) is no 503, and is not waited out.
    flood_stage = "blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark"
    assert not answers.is_cluster_not_ready(answer(429, flood_stage, "cluster_block_exception"))
    assert answers.is_not_run_yet(answer(503, no_shard, "no_shard_available_action_exception"))
    assert answers.is_not_run_yet(answer(500, "Fetching master key timed out."))
    assert not answers.is_not_run_yet(UncertainOutcomeError("No answer to POST /x within 30s"))


def test_a_providers_error_and_its_body():
    reason = 'Error from remote service: {"error": {"message": "bad"}}'
    assert answers.is_from_remote_service(reason)
    assert answers.remote_service_body(reason) == '{"error": {"message": "bad"}}'
    assert not answers.is_from_remote_service("Remote service error")


@pytest.mark.parametrize("predicate", [answers.is_version_conflict, answers.is_not_found, answers.model_group_taking_name,
                                       answers.is_batch_task_limit])
def test_a_failure_without_an_answer_is_none_of_them(predicate):
    """A register retried on version conflicts can also fail with no answer at all (a timeout)."""
    assert not predicate(UncertainOutcomeError("No answer to POST /x within 30s"))
