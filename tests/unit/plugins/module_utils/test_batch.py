"""Batch inference: one shape for every server answer, job identity, reading, explaining, pacing the waits.

ML Commons 2.16 and 2.17 cannot run on the test bed (their ML zips are not on Maven Central), so
their answer shapes are covered here, from the documented and source-read shapes.
"""

import json

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch.identity import (
    JobIdentity,
    job_identity,
    job_identity_of_request,
    provider_of,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch.jobs import (
    NoRoomForJob,
    TaskLimitReached,
    cancel_path,
    describe_task,
    explain,
    failed_for_full_queue,
    failure_reason,
    find_jobs,
    from_batch_answer,
    from_task,
    integral_numbers,
    poll_pace,
    provider_reason,
    read_new_task,
    read_task,
    reusable_job,
    seconds_to_end,
    seconds_to_first_end,
)
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core import wait
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import Client, ServerVersion
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import HTTPError, MLCommonsError, redact_secrets
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.wait import wait_until

OPENAI_JOB = {
    "id": "batch_abc",
    "object": "batch",
    "endpoint": "/v1/embeddings",
    "input_file_id": "file-in",
    "status": "validating",
    "output_file_id": None,
    "request_counts": {"total": 0.0, "completed": 0.0, "failed": 0.0},
    "created_at": 1714000000.0,
}


def openai_connector(**parameters):
    return {
        "parameters": parameters,
        "actions": [
            {"action_type": "PREDICT", "url": "https://api.openai.com/v1/embeddings"},
            {"action_type": "BATCH_PREDICT", "url": "https://api.openai.com/v1/batches"},
        ],
    }


def connector_for(url, **parameters):
    return {"parameters": parameters, "actions": [{"action_type": "batch_predict", "url": url}]}


OPENAI_URL = "https://api.openai.com/v1/batches"
SAGEMAKER_URL = "https://api.sagemaker.us-east-1.amazonaws.com/CreateTransformJob"
BEDROCK_URL = "https://bedrock.us-east-1.amazonaws.com/model-invocation-job"


def hits(*sources):
    return {"hits": {"total": {"value": len(sources), "relation": "eq"},
                     "hits": [{"_id": source.pop("_id"), "_source": source} for source in sources]}}


# -- the answer shapes ------------------------------------------------------------------------


def test_2_16_synchronous_answer_has_the_job_in_data_as_map_and_no_task():
    answer = {"inference_results": [{"output": [{"name": "response", "dataAsMap": dict(OPENAI_JOB)}], "status_code": 200}]}
    result = from_batch_answer(answer)
    assert result["task_id"] is None
    assert result["status"] == "validating"
    assert result["job"]["id"] == "batch_abc"
    assert result["job"]["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert result["raw"] is answer


def test_2_16_sagemaker_answer_has_no_provider_status():
    arn = "arn:aws:sagemaker:us-east-1:123456789012:transform-job/my-job"
    answer = {"inference_results": [{"output": [{"name": "response", "dataAsMap": {"TransformJobArn": arn}}], "status_code": 200}]}
    result = from_batch_answer(answer)
    assert (result["task_id"], result["status"], result["job"]) == (None, None, {"TransformJobArn": arn})


def test_2_17_answer_has_a_task_and_no_job_yet():
    answer = {"task_id": "t1", "status": "CREATED"}
    assert from_batch_answer(answer) == {"task_id": "t1", "job": {}, "status": "CREATED", "raw": answer}


def test_2_18_answer_has_the_job_as_remote_job_without_ml_commons_keys():
    answer = {"task_id": "t1", "status": "CREATED", "remote_job": dict(OPENAI_JOB, dlq=None, num_of_retries=2)}
    result = from_batch_answer(answer)
    assert result["task_id"] == "t1"
    assert result["status"] == "CREATED"
    assert "dlq" not in result["job"] and "num_of_retries" not in result["job"]
    assert result["job"]["created_at"] == 1714000000
    assert isinstance(result["job"]["created_at"], int)
    assert result["raw"]["remote_job"]["dlq"] is None


def test_an_empty_answer_gives_the_empty_shape():
    assert from_batch_answer(None) == {"task_id": None, "job": {}, "status": None, "raw": {}}


def test_a_task_gives_the_same_shape_with_its_state():
    task = {"task_type": "BATCH_PREDICTION", "state": "COMPLETED", "remote_job": dict(OPENAI_JOB, status="completed")}
    result = from_task("t1", task)
    assert (result["task_id"], result["status"], result["job"]["status"], result["raw"]) == ("t1", "COMPLETED", "completed", task)


def test_integral_numbers_keeps_fractions_and_other_types():
    value = {"a": [1.0, 2.5, {"b": 0.0}], "c": True, "d": "3.0", "e": None}
    assert integral_numbers(value) == {"a": [1, 2.5, {"b": 0}], "c": True, "d": "3.0", "e": None}


# -- providers and job identity ---------------------------------------------------------------


@pytest.mark.parametrize("url, provider", [
    ("https://api.openai.com/v1/batches", "openai"),
    ("http://198.18.0.1:8089/openai/v1/batches", "openai"),
    (SAGEMAKER_URL, "sagemaker"),
    (BEDROCK_URL, "bedrock"),
    ("https://api.cohere.ai/v1/embed-jobs", "cohere"),
    ("https://batch.example.com/jobs", None),
])
def test_the_provider_comes_from_the_batch_predict_url(url, provider):
    assert provider_of(connector_for(url)) == provider


def test_no_batch_predict_action_means_no_provider():
    assert provider_of({"actions": [{"action_type": "PREDICT", "url": "https://api.openai.com/v1/embeddings"}]}) is None


def test_openai_identity_is_the_input_file_request_parameters_first():
    connector = openai_connector(input_file_id="file-connector")
    from_connector = job_identity(connector, {"model": "m"})
    from_request = job_identity(connector, {"input_file_id": "file-request"})
    assert (from_connector.field, from_connector.value) == ("input_file_id", "file-connector")
    assert from_request.value == "file-request"
    assert from_request.clause == {"term": {"remote_job.input_file_id": "file-request"}}
    assert from_request.matches({"input_file_id": "file-request"})
    assert not from_request.matches({"input_file_id": "file-other"})
    assert not from_request.matches({})


def test_without_the_identity_parameter_there_is_no_identity():
    assert job_identity(openai_connector(), {"model": "m"}) is None
    assert job_identity(connector_for("https://batch.example.com/jobs", input_file_id="f"), {}) is None
    assert job_identity(connector_for("https://api.cohere.ai/v1/embed-jobs"), {"dataset_id": "d"}) is None


def test_sagemaker_identity_matches_the_name_or_the_lower_case_arn():
    identity = job_identity(connector_for(SAGEMAKER_URL, TransformJobName="Embed-2024"), None)
    assert (identity.field, identity.value) == ("TransformJobName", "Embed-2024")
    assert identity.matches({"TransformJobArn": "arn:aws:sagemaker:us-east-1:1:transform-job/embed-2024"})
    assert identity.matches({"TransformJobName": "Embed-2024"})
    assert not identity.matches({"TransformJobArn": "arn:aws:sagemaker:us-east-1:1:transform-job/embed-2024-b"})
    should = identity.clause["bool"]["should"]
    assert {"term": {"remote_job.TransformJobName": "Embed-2024"}} in should
    assert {"wildcard": {"remote_job.TransformJobArn": {"value": "*/Embed-2024", "case_insensitive": True}}} in should


def test_bedrock_identity_is_the_job_name_else_the_input_location():
    by_name = job_identity(connector_for(BEDROCK_URL), {"jobName": "nightly", "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://b/in"}}})
    assert (by_name.field, by_name.value) == ("jobName", "nightly")
    by_uri = job_identity(connector_for(BEDROCK_URL), {"inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://b/in"}}})
    assert by_uri.clause == {"term": {"remote_job.inputDataConfig.s3InputDataConfig.s3Uri": "s3://b/in"}}
    assert by_uri.matches({"inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://b/in"}}})
    # Connector parameters hold objects as JSON text.
    from_text = job_identity(connector_for(BEDROCK_URL, inputDataConfig='{"s3InputDataConfig": {"s3Uri": "s3://b/in"}}'), {})
    assert from_text.value == "s3://b/in"
    assert job_identity(connector_for(BEDROCK_URL, inputDataConfig="not json"), {}) is None


def test_the_request_alone_gives_the_identity_its_connector_would():
    for url, parameters in (
        (OPENAI_URL, {"input_file_id": "file-in", "endpoint": "/v1/embeddings"}),
        (SAGEMAKER_URL, {"TransformJobName": "embed-2024"}),
        (BEDROCK_URL, {"jobName": "nightly"}),
        (BEDROCK_URL, {"inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://b/in"}}}),
    ):
        assert job_identity_of_request(parameters) == job_identity(connector_for(url), parameters)
    assert job_identity_of_request({"endpoint": "/v1/embeddings"}) is None
    assert job_identity_of_request(None) is None


def test_identities_differ_by_provider_field_or_value():
    identity = JobIdentity("OpenAI", "input_file_id", "input_file_id", "file-in")
    assert identity == JobIdentity("OpenAI", "input_file_id", "input_file_id", "file-in")
    assert identity != JobIdentity("OpenAI", "input_file_id", "input_file_id", "file-other")
    assert identity != JobIdentity("Bedrock", "jobName", "jobName", "file-in")
    request_without_identity = None  # the module compares with this when the request names no job
    assert identity != request_without_identity


def test_find_jobs_searches_by_type_model_and_identity_newest_first(server):
    server.answer("POST", "/_plugins/_ml/tasks/_search", (200, hits(
        {"_id": "old", "state": "COMPLETED", "remote_job": {"input_file_id": "file-in"}},
        {"_id": "other", "state": "RUNNING", "remote_job": {"input_file_id": "file-other"}},
        {"_id": "new", "state": "RUNNING", "remote_job": {"input_file_id": "file-in"}},
    )))
    identity = JobIdentity("OpenAI", "input_file_id", "input_file_id", "file-in")
    found = find_jobs(Client(server.url), "m1", identity)
    assert [task["task_id"] for task in found] == ["new", "old"]
    sent = json.loads(server.received[0]["body"])
    assert server.received[0]["path"] == "/_plugins/_ml/tasks/_search"
    assert sent["query"]["bool"]["filter"] == [
        {"term": {"task_type": "BATCH_PREDICTION"}},
        {"term": {"model_id": "m1"}},
        {"bool": {"minimum_should_match": 1, "should": [
            {"term": {"remote_job.input_file_id": "file-in"}},
            {"bool": {"must_not": [{"exists": {"field": "remote_job.input_file_id"}}]}},
        ]}},
    ]
    assert sent["sort"] == [{"create_time": {"order": "asc", "unmapped_type": "long"}}]


def test_find_jobs_reads_a_task_stored_before_its_first_status_read_and_keeps_it_when_it_is_the_job(server):
    # CreateModelInvocationJob answers only the jobArn; the job's name joins remote_job at the first status read.
    server.answer("POST", "/_plugins/_ml/tasks/_search", (200, hits(
        {"_id": "other", "state": "RUNNING", "remote_job": {"jobArn": "arn:aws:bedrock:r:1:model-invocation-job/other"}},
        {"_id": "named", "state": "COMPLETED", "remote_job": {"jobArn": "arn:aws:bedrock:r:1:model-invocation-job/a", "jobName": "nightly"}},
        {"_id": "unread", "state": "RUNNING", "remote_job": {"jobArn": "arn:aws:bedrock:r:1:model-invocation-job/b"}},
    )))
    server.answer("GET", "/_plugins/_ml/tasks/other", (200, {"state": "RUNNING", "remote_job": {"jobName": "weekly"}}))
    server.answer("GET", "/_plugins/_ml/tasks/unread", (200, {"state": "RUNNING", "remote_job": {"jobName": "nightly", "status": "InProgress"}}))
    found = find_jobs(Client(server.url), "m1", JobIdentity("Bedrock", "jobName", "jobName", "nightly"))
    assert [(task["task_id"], task["state"]) for task in found] == [("unread", "RUNNING"), ("named", "COMPLETED")]
    assert [request["path"] for request in server.received[1:]] == ["/_plugins/_ml/tasks/other", "/_plugins/_ml/tasks/unread"]


def test_reusable_job_skips_ended_jobs_and_reads_each_candidate_fresh(server):
    server.answer("GET", "/_plugins/_ml/tasks/b", (200, {"state": "CANCELLED", "remote_job": {}}))  # RUNNING when stored
    server.answer("GET", "/_plugins/_ml/tasks/c", (200, {"state": "COMPLETED", "remote_job": {"id": "batch_c"}}))
    candidates = [{"task_id": "a", "state": "FAILED"}, {"task_id": "b", "state": "RUNNING"}, {"task_id": "c", "state": "RUNNING"}]
    found = reusable_job(Client(server.url), candidates)
    assert found["task_id"] == "c" and found["state"] == "COMPLETED"
    assert [request["path"] for request in server.received] == ["/_plugins/_ml/tasks/b", "/_plugins/_ml/tasks/c"]


def test_reusable_job_takes_a_stored_finished_job_as_it_is(server):
    candidates = [{"task_id": "a", "state": "COMPLETED", "remote_job": {"id": "batch_a"}}, {"task_id": "b", "state": "RUNNING"}]
    assert reusable_job(Client(server.url), candidates) == candidates[0]
    assert server.received == []


def test_reusable_job_gives_none_when_every_job_ended_badly(server):
    candidates = [{"task_id": "a", "state": state} for state in ("FAILED", "CANCELLED", "CANCELLING", "EXPIRED")]
    assert reusable_job(Client(server.url), candidates) is None
    assert server.received == []


# -- reading tasks and explaining failures ----------------------------------------------------


def http_error(status, reason, error_type="status_exception"):
    return HTTPError("POST", "/_plugins/_ml/models/m1/_batch_predict", status, error_type, reason)


def test_read_task_adds_the_id_and_gives_none_for_a_missing_task(server):
    server.answer("GET", "/_plugins/_ml/tasks/t1", (200, {"state": "RUNNING"}))
    server.answer("GET", "/_plugins/_ml/tasks/t2", (404, {"error": {"type": "status_exception", "reason": "Failed to find task"}}))
    client = Client(server.url)
    assert read_task(client, "t1") == {"state": "RUNNING", "task_id": "t1"}
    assert read_task(client, "t2") is None


def test_read_task_of_a_deleted_model_is_an_error_not_a_missing_task(server):
    gone = {"error": {"type": "status_exception", "reason": "Failed to retrieve the ML model for the given task ID"}}
    server.answer("GET", "/_plugins/_ml/tasks/t1", (404, gone))
    with pytest.raises(MLCommonsError) as caught:
        read_task(Client(server.url), "t1")
    assert "the task's model no longer exists" in str(caught.value)


def test_explain_disabled_batch_inference():
    error = explain(http_error(500, 'Offline Batch Inference is currently disabled. To enable it, update the setting '
                                    '"plugins.ml_commons.offline_batch_inference_enabled" to true.', "illegal_state_exception"), "submit the batch job")
    assert str(error).startswith("Batch inference is disabled on this cluster, so ML Commons refused to submit the batch job.")
    assert error.details["status"] == 500


def test_explain_the_running_jobs_limit():
    error = explain(http_error(429, "Exceeded maximum limit for BATCH_PREDICTION tasks. To increase the limit, update the "
                                    "plugins.ml_commons.max_batch_inference_tasks setting."), "submit the batch job")
    assert "plugins.ml_commons.max_batch_inference_tasks" in str(error)
    assert "(HTTP 429)" in str(error)


def test_explain_a_provider_refusal_with_its_reason_and_without_the_key():
    body = {"error": {"message": "Incorrect API key provided: sk-abc***************wxyz. You can find your API key at "
                                 "https://platform.openai.com/account/api-keys.", "type": "invalid_request_error", "param": None,
                      "code": "invalid_api_key"}}
    error = explain(http_error(401, "Error from remote service: " + json.dumps(body)), "submit the batch job")
    assert str(error) == ("The provider refused to submit the batch job (HTTP 401): Incorrect API key provided: ********. You can "
                          "find your API key at https://platform.openai.com/account/api-keys. (code invalid_api_key)")
    assert "wxyz" not in json.dumps(error.details)


def test_explain_a_private_address_in_a_status_read():
    error = explain(http_error(400, "Remote inference host name has private ip address: 10.0.0.5", "illegal_argument_exception"),
                    "read the batch job's status")
    assert "without honouring plugins.ml_commons.connector.private_ip_enabled" in str(error)


def test_explain_an_undeployed_model_and_a_missing_action():
    not_deployed = explain(http_error(400, "Model not ready yet. Please deploy the model first.", "illegal_argument_exception"), "submit", "m1")
    no_action = explain(http_error(400, "no BATCH_PREDICT action found", "illegal_argument_exception"), "submit", "m1")
    assert "Model m1 is not deployed" in str(not_deployed)
    assert "Model m1's connector has no batch_predict action" in str(no_action)


def test_explain_passes_other_errors_on_without_secrets():
    error = explain(http_error(500, "boom with Bearer sk-secret-123"), "submit the batch job")
    assert "OpenSearch answered 500 to POST /_plugins/_ml/models/m1/_batch_predict" in str(error)
    assert "sk-secret-123" not in str(error)


def test_provider_reason_falls_back_to_the_body():
    assert provider_reason("Error from remote service: upstream timeout") == "upstream timeout"
    assert provider_reason('Error from remote service: {"message": "Could not find job"}') == "Could not find job"
    assert provider_reason('Error from remote service: {"error": {"message": "bad", "param": "x"}}') == "bad (param x)"


def test_redact_secrets_masks_keys_tokens_and_named_secrets():
    text = 'Incorrect API key provided: sk-abc*****wxyz. Authorization: Bearer sk-live-1 {"secret_key": "s3cr3t", "total_tokens": 6}'
    redacted = redact_secrets(text)
    for secret in ("wxyz", "sk-live-1", "s3cr3t"):
        assert secret not in redacted
    assert '"total_tokens": 6' in redacted
    assert redact_secrets("Authorization: Bearer YOUR_KEY") == "Authorization: Bearer YOUR_KEY"


def test_failure_reason_uses_the_provider_words():
    openai = {"state": "FAILED", "remote_job": {"errors": {"data": [{"code": "invalid_json_line", "message": "This line is not parseable", "line": 2}]}}}
    sagemaker = {"state": "FAILED", "remote_job": {"FailureReason": "ClientError: no model"}, "error": "remote failed"}
    assert failure_reason(openai) == "This line is not parseable (line 2)"
    assert failure_reason(sagemaker) == "ClientError: no model; remote failed"
    assert failure_reason({"state": "EXPIRED"}) == "no reason given"


def test_describe_task_shows_progress():
    task = {"state": "RUNNING", "remote_job": {"status": "in_progress", "request_counts": {"total": 3.0, "completed": 1.0, "failed": 1.0}}}
    assert describe_task("t1", task) == "task t1 is RUNNING (provider status in_progress, 2 of 3 requests done)"


@pytest.mark.parametrize("version, path", [
    ("2.17.0", "/_plugins/_ml/tasks/t1/_cancel_batch"),
    ("2.17.1", "/_plugins/_ml/tasks/t1/_cancel"),
    ("2.19.6", "/_plugins/_ml/tasks/t1/_cancel"),
    ("3.6.0", "/_plugins/_ml/tasks/t1/_cancel"),
])
def test_cancel_path_by_version(version, path):
    assert cancel_path(ServerVersion(version), "t1") == path


# -- explaining refusals for want of room, and pacing the waits -------------------------------


def test_no_room_for_a_job_is_told_apart_by_ml_commons_answer():
    limit = explain(http_error(429, "Exceeded maximum limit for BATCH_PREDICTION tasks. To increase the limit, update the "
                                    "plugins.ml_commons.max_batch_inference_tasks setting."), "submit the batch job")
    body = {"error": {"message": "Enqueued token limit reached for text-embedding-ada-002.", "code": "token_limit_exceeded"}}
    queue_full = explain(http_error(400, "Error from remote service: " + json.dumps(body)), "submit the batch job")
    refused = explain(http_error(400, 'Error from remote service: {"error": {"message": "No such File object: file-x"}}'), "submit the batch job")
    assert isinstance(limit, TaskLimitReached) and isinstance(limit, NoRoomForJob)
    assert isinstance(queue_full, NoRoomForJob)
    assert str(queue_full).startswith("The provider refused to submit the batch job (HTTP 400): Enqueued token limit reached")
    assert not isinstance(refused, NoRoomForJob)


def test_a_job_failed_for_a_full_queue_is_told_by_the_provider_words_only():
    def failed(code, message):
        return {"state": "FAILED", "remote_job": {"errors": {"data": [{"code": code, "message": message}]}}}

    assert failed_for_full_queue(failed("token_limit_exceeded", "Enqueued token limit reached for text-embedding-ada-002."))
    assert not failed_for_full_queue(failed("invalid_json_line", "This line is not parseable as valid JSON."))
    # The collection's own words are not the provider's: a failure without a reason is not a full queue.
    assert failure_reason({"state": "FAILED"}) == "no reason given"
    assert not failed_for_full_queue({"state": "FAILED"})
    assert not failed_for_full_queue(dict(failed("token_limit_exceeded", "Enqueued token limit reached"), state="RUNNING"))


class FakeClock:
    """``time.monotonic`` and ``time.sleep`` for core.wait; each check of a job takes ``check_seconds``."""

    def __init__(self, now=0.0, check_seconds=0.0):
        self.now = now
        self.check_seconds = check_seconds

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds + self.check_seconds


def test_batch_checks_come_every_poll_interval_then_a_tenth_of_the_wait(monkeypatch):
    """A job of minutes is seen ending within one poll interval, one of hours within a tenth of its
    duration, with few provider calls."""
    clock = FakeClock()
    monkeypatch.setattr(wait, "time", clock)
    reads = []

    def read():
        reads.append(clock.now)
        return "COMPLETED" if clock.now >= 7200 else "RUNNING"

    wait_until(read, lambda state: state == "COMPLETED", 86400, **poll_pace(2))
    gaps = [later - earlier for earlier, later in zip(reads, reads[1:])]
    assert gaps[:5] == [2, 2, 2, 2, 2]
    assert max(gaps) <= 300
    assert reads[-1] - 7200 <= 7200 * 0.1 + 2
    assert len(reads) < 100
    assert poll_pace(600)["max_interval"] == 600


def test_make_searchable_reads_the_new_task_once(server):
    server.answer("GET", "/_plugins/_ml/tasks/t1", (200, {"state": "RUNNING", "remote_job": {"id": "batch_1"}}))
    task, warning = read_new_task(Client(server.url), "t1")
    assert task["task_id"] == "t1" and warning is None
    assert [request["path"] for request in server.received] == ["/_plugins/_ml/tasks/t1"]


def test_make_searchable_polls_the_search_when_the_read_fails(server):
    server.answer("GET", "/_plugins/_ml/tasks/t1",
                  (400, {"error": {"type": "illegal_argument_exception", "reason": "Remote inference host name has private ip address: 10.1.1.1"}}))
    server.answer("POST", "/_plugins/_ml/tasks/_search", (200, {"hits": {"hits": []}}), (200, hits({"_id": "t1", "state": "RUNNING"})))
    task, warning = read_new_task(Client(server.url), "t1")
    assert task is None
    assert "Submitted batch job t1, but could not read its status yet" in warning
    assert "private_ip_enabled" in warning
    assert json.loads(server.received[1]["body"])["query"] == {"bool": {"filter": [{"ids": {"values": ["t1"]}}]}}
    assert len(server.received) == 3


def running(total, completed, failed=0, in_progress_at=1000.0, state="RUNNING"):
    counts = {"total": float(total), "completed": float(completed), "failed": float(failed)}
    return {"state": state, "remote_job": {"status": "in_progress", "in_progress_at": in_progress_at, "request_counts": counts}}


def test_a_job_that_reports_progress_is_expected_to_end_when_its_pace_says():
    # A quarter done in 60 s: three quarters left, 180 s.
    assert seconds_to_end(running(1000, 200, 50), now=1060.0) == 180.0
    # Every request ran: the end is due now; once the provider says it finalizes, due again after a tenth of the
    # time it has finalized (the wait never checks sooner than its poll interval).
    assert seconds_to_end(running(1000, 990, 10), now=1060.0) == 0
    finalizing = running(1000, 1000)
    finalizing["remote_job"].update(status="finalizing", finalizing_at=1050.0)
    assert seconds_to_end(finalizing, now=1060.0) == 1.0
    assert seconds_to_end(finalizing, now=1650.0) == 60.0
    # Several jobs, one long finalizing: the soonest end still decides when the next check comes.
    assert seconds_to_first_end([finalizing, running(1000, 500, in_progress_at=1600.0)], now=1650.0) == 50.0
    # Nothing done yet, no counts (validating, other providers): it cannot tell.
    assert seconds_to_end(running(1000, 0), now=1060.0) is None
    assert seconds_to_end({"state": "RUNNING", "remote_job": {"TransformJobStatus": "InProgress"}}, now=1060.0) is None
    # Several jobs: the soonest of those still running.
    tasks = [running(1000, 500), running(1000, 100), running(1000, 1000, state="COMPLETED"), None]
    assert seconds_to_first_end(tasks, now=1100.0) == 100.0


def simulated_wait(monkeypatch, finalizing_s, poll_interval=2.0, validating_s=60.0, in_progress_s=1800.0):
    """ml_batch_predict's wait for one OpenAI job, on a simulated clock: (status checks while it finalized, seconds
    after its end that the wait saw it)."""
    created = 1000.0
    clock = FakeClock(now=created, check_seconds=0.05)
    monkeypatch.setattr(wait, "time", clock)
    checks = []
    in_progress_at, finalizing_at = created + validating_s, created + validating_s + in_progress_s
    ends_at = finalizing_at + finalizing_s

    def read():
        now = clock.now
        checks.append(now)
        if now >= ends_at:
            return {"state": "COMPLETED", "remote_job": {"status": "completed"}}
        if now < in_progress_at:
            return {"state": "RUNNING", "remote_job": {"status": "validating"}}
        done = min(1.0, (now - in_progress_at) / in_progress_s) * 50000
        job = {"status": "in_progress", "in_progress_at": int(in_progress_at), "request_counts": {"total": 50000, "completed": int(done), "failed": 0}}
        if now >= finalizing_at:
            job.update(status="finalizing", finalizing_at=int(finalizing_at))
        return {"state": "RUNNING", "remote_job": job}

    wait_until(read, lambda task: task["state"] == "COMPLETED", 10 ** 6, expected_in=lambda task: seconds_to_first_end([task], now=clock.now),
               **poll_pace(poll_interval))
    return len([at for at in checks if finalizing_at <= at]), clock.now - ends_at


def test_a_finalizing_job_is_checked_less_and_less_often(monkeypatch):
    # A short finalization is seen within the poll interval; a long one costs few checks and is seen at most about a
    # tenth of its length late (checking every poll interval, 900 s of finalizing would take 450 checks).
    checks, late = simulated_wait(monkeypatch, finalizing_s=10)
    assert late <= 2.1
    checks, late = simulated_wait(monkeypatch, finalizing_s=900)
    assert checks <= 60 and late <= 0.1 * 900 + 2.1
