"""ml_model_group through run(): the requests it sends to a scripted OpenSearch and what it returns."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError, MLCommonsError
from ansible_collections.opensearch.ml_commons.plugins.modules import ml_model_group
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule, hits, body, requests_sent, writes

# A request nothing was scripted for fails at once, and no wait pauses (see tests/unit/conftest.py).
pytestmark = pytest.mark.usefixtures("module_test_server")


GROUPS = "/_plugins/_ml/model_groups"
MODELS = "/_plugins/_ml/models"
STORED = {"name": "team_group", "description": "The team's models", "latest_version": 0, "access": "public",
          "created_time": 1722037257000, "last_updated_time": 1722037257000}


def fake_module(check_mode=False, **params):
    return FakeModule(ml_model_group, check_mode, **params)


def client(server):
    return Client(server.url, backoff=0)


def answer_found(server, *later):
    """The lookup by name finds g1 as STORED, and reads of g1 give STORED, then ``later`` in turn."""
    server.answer("POST", GROUPS + "/_search", (200, hits(("g1", STORED))))
    server.answer("GET", GROUPS + "/g1", (200, STORED), *later)


def answer_models(server, *found):
    server.answer("POST", MODELS + "/_search", (200, hits(*found)))


def test_a_missing_group_is_registered_and_returned_as_stored(server):
    created = dict(STORED, latest_version=0)
    # Searched once before the register, then after it until the group shows as the oldest of its name.
    server.answer("POST", GROUPS + "/_search", (200, hits()), (200, hits(("g1", created))))
    server.answer("POST", GROUPS + "/_register", (200, {"model_group_id": "g1", "status": "CREATED"}))
    server.answer("GET", GROUPS + "/g1", (200, created))
    result = ml_model_group.run(fake_module(name="team_group", description="The team's models"), client(server))
    assert result["changed"] is True
    assert result["model_group_id"] == "g1"
    assert result["model_group"] == dict(created, model_group_id="g1")
    assert result["diff"] == {"before": {}, "after": dict(created, model_group_id="g1")}
    assert writes(server) == [("POST", GROUPS + "/_register", {"name": "team_group", "description": "The team's models"})]
    lookup = body(server.received[0])
    assert server.received[0]["path"] == GROUPS + "/_search"
    assert lookup["query"] == {"bool": {"filter": [{"term": {"name.keyword": "team_group"}}]}}
    assert requests_sent(server)[-1] == ("GET", GROUPS + "/g1")


def test_check_mode_predicts_the_create_without_writing(server):
    server.answer("POST", GROUPS + "/_search", (200, hits()))
    result = ml_model_group.run(fake_module(check_mode=True, name="team_group", description="d"), client(server))
    assert result["changed"] is True and result["model_group_id"] is None
    predicted = {"name": "team_group", "description": "d", "model_group_id": None}
    assert result["model_group"] == predicted
    assert result["diff"] == {"before": {}, "after": predicted}
    assert requests_sent(server) == [("POST", GROUPS + "/_search")]


def test_a_register_refused_because_a_concurrent_run_took_the_name_returns_that_group(server):
    taken = (400, {"error": {"type": "illegal_argument_exception",
                             "reason": "The name you provided is already being used by a model group with ID: g0."}, "status": 400})
    # Not found by the lookup; found after the refused register.
    server.answer("POST", GROUPS + "/_search", (200, hits()), (200, hits(("g0", STORED))))
    server.answer("POST", GROUPS + "/_register", taken)
    server.answer("GET", GROUPS + "/g0", (200, STORED))
    result = ml_model_group.run(fake_module(name="team_group"), client(server))
    assert result["changed"] is True and result["model_group_id"] == "g0"
    assert [write[:2] for write in writes(server)] == [("POST", GROUPS + "/_register")]  # nothing deleted, nothing registered again


def test_a_rerun_that_finds_the_group_as_wanted_only_reads(server):
    answer_found(server)
    result = ml_model_group.run(fake_module(name="team_group", description="The team's models"), client(server))
    assert result["changed"] is False
    assert result["model_group_id"] == "g1" and result["model_group"] == dict(STORED, model_group_id="g1")
    assert requests_sent(server) == [("POST", GROUPS + "/_search"), ("GET", GROUPS + "/g1")]
    assert writes(server) == []


def test_only_the_changed_field_is_sent_and_the_group_is_read_back(server):
    updated = dict(STORED, description="New text", last_updated_time=1722037999000)
    answer_found(server, (200, updated))
    server.answer("PUT", GROUPS + "/g1", (200, {"status": "Updated"}))
    result = ml_model_group.run(fake_module(name="team_group", description="New text"), client(server))
    assert result["changed"] is True and result["model_group_id"] == "g1"
    assert writes(server) == [("PUT", GROUPS + "/g1", {"description": "New text"})]
    assert result["model_group"] == dict(updated, model_group_id="g1")
    assert result["diff"] == {"before": dict(STORED, model_group_id="g1"), "after": dict(updated, model_group_id="g1")}


def test_check_mode_predicts_the_update_without_writing(server):
    answer_found(server)
    result = ml_model_group.run(fake_module(check_mode=True, name="team_group", description="New text"), client(server))
    assert result["changed"] is True
    assert result["model_group"]["description"] == "New text"
    assert result["diff"]["before"]["description"] == "The team's models"
    assert writes(server) == []


def test_clearing_the_description_fails_before_writing(server):
    answer_found(server)
    with pytest.raises(ConfigurationError, match="cannot clear the description of model group 'team_group'"):
        ml_model_group.run(fake_module(name="team_group", description=""), client(server))
    assert writes(server) == []


def test_access_fields_fail_before_writing_when_access_control_is_off(server):
    server.answer("POST", GROUPS + "/_search", (200, hits()))
    server.answer("GET", "/_cat/plugins", (200, [{"component": "opensearch-ml", "version": "2.19.6.0"}]))
    with pytest.raises(ConfigurationError, match="need model access control, which is off"):
        ml_model_group.run(fake_module(name="team_group", access_mode="private"), client(server))
    assert writes(server) == []


def test_absent_deletes_an_empty_group(server):
    answer_found(server)
    answer_models(server)
    server.answer("DELETE", GROUPS + "/g1", (200, {"result": "deleted"}))
    result = ml_model_group.run(fake_module(name="team_group", state="absent"), client(server))
    assert result["changed"] is True
    assert result["model_group_id"] is None and result["model_group"] == {}
    assert result["diff"] == {"before": dict(STORED, model_group_id="g1"), "after": {}}
    [models_lookup] = [request for request in server.received if request["path"] == MODELS + "/_search"]
    assert body(models_lookup)["query"] == {"bool": {"filter": [{"term": {"model_group_id": "g1"}}]}}
    assert writes(server) == [("DELETE", GROUPS + "/g1", None)]


def test_absent_in_check_mode_deletes_nothing(server):
    answer_found(server)
    answer_models(server)
    result = ml_model_group.run(fake_module(check_mode=True, name="team_group", state="absent"), client(server))
    assert result["changed"] is True and result["model_group_id"] is None
    assert writes(server) == []


def test_absent_when_no_group_has_the_name_changes_nothing(server):
    server.answer("POST", GROUPS + "/_search", (200, hits()))
    result = ml_model_group.run(fake_module(name="team_group", state="absent"), client(server))
    assert result["changed"] is False
    assert result["model_group_id"] is None and result["model_group"] == {}
    assert requests_sent(server) == [("POST", GROUPS + "/_search")]


def test_a_group_that_still_holds_models_fails_listing_them_and_is_kept(server):
    answer_found(server)
    answer_models(server, ("m1", {"name": "embedder", "model_group_id": "g1"}), ("m2", {"name": "chat", "model_group_id": "g1"}))
    with pytest.raises(MLCommonsError) as caught:
        ml_model_group.run(fake_module(name="team_group", state="absent"), client(server))
    message = str(caught.value)
    assert "Model group 'team_group' (g1) still holds 2 model(s): m1 (embedder), m2 (chat)." in message
    assert "state: absent" in message
    assert caught.value.details == {"model_ids": ["m1", "m2"]}
    assert writes(server) == []


@pytest.mark.parametrize("params, complaint", [
    ({"name": "team#group"}, r"The model group name holds characters ML Commons does not accept \('#'\)"),
    ({"name": "   "}, "The model group name must not be empty"),
    ({"name": "g" * 257}, "The model group name is 257 characters long"),
    ({"name": "team_group", "description": "a;b"}, r"The model group description holds characters ML Commons does not accept \(';'\)"),
])
def test_bad_input_fails_before_any_request(server, params, complaint):
    with pytest.raises(ConfigurationError, match=complaint):
        ml_model_group.run(fake_module(**params), client(server))
    assert server.received == []
