"""ml_model through run(): register, deploy, update, undeploy and delete against a scripted OpenSearch."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import ConfigurationError, MLCommonsError
from ansible_collections.opensearch.ml_commons.plugins.modules import ml_model
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule, hits, body, requests_sent, writes

# A request nothing was scripted for fails at once, and no wait pauses (see tests/unit/conftest.py).
pytestmark = pytest.mark.usefixtures("module_test_server")


MODELS = "/_plugins/_ml/models"
PROFILE = "/_plugins/_ml/profile/models"
NAME = "OpenAI embeddings"
WANTED = dict(name=NAME, model_group_id="g1", connector_id="c1", description="Embeds text")
GROUP = {"name": "team_group", "latest_version": 0, "access": "public"}
CONNECTOR = {"name": "OpenAI", "protocol": "http", "actions": [{"action_type": "PREDICT", "method": "POST", "url": "https://api.openai.com"}]}


def fake_module(check_mode=False, **params):
    return FakeModule(ml_model, check_mode, **params)


def stored(state, **fields):
    """The model as GET /models/<id> answers (without its ID, as ML Commons sends it)."""
    model = {"name": NAME, "algorithm": "REMOTE", "model_group_id": "g1", "connector_id": "c1", "description": "Embeds text",
             "model_version": "1", "created_time": 1722037257000, "model_state": state}
    model.update(fields)
    return model


def with_id(model, model_id="m1"):
    return dict(model, model_id=model_id)


def profile(model_id, node_state):
    return {"nodes": {"n1": {"models": {model_id: {"model_state": node_state, "worker_nodes": ["n1"]}}}}}


NODE_NAMES = (200, {"nodes": {"n1": {"name": "ml-testbed-0"}}})
SERVED_BY_N1 = [{"node_id": "n1", "name": "ml-testbed-0"}]


def client(server):
    return Client(server.url, backoff=0)


def answer(server, search=(), reads=(), profiles=(), names=None, **sent):
    """What each request gets: the name lookup (``search``, sources of m1 in turn), the reads of m1 by ID
    and of its profile in turn, the node names, and each write of ``sent`` (deploy, undeploy, update, delete)."""
    if search:
        server.answer("POST", MODELS + "/_search", *[(200, hits(("m1", found)) if found else hits()) for found in search])
    if reads:
        server.answer("GET", MODELS + "/m1", *reads)
    if profiles:
        server.answer("GET", PROFILE + "/m1", *profiles)
    if names:
        server.answer("GET", "/_nodes", names)
    routes = {"deploy": ("POST", MODELS + "/m1/_deploy"), "undeploy": ("POST", MODELS + "/m1/_undeploy"),
              "update": ("PUT", MODELS + "/m1"), "delete": ("DELETE", MODELS + "/m1")}
    for action, reply in sent.items():
        server.answer(*(routes[action] + (reply,)))


def answer_register(server, group=(200, GROUP), connector=(200, CONNECTOR)):
    """No model of the name until the register; then only the registered one."""
    server.answer("POST", MODELS + "/_search", (200, hits()), (200, hits(("m1", stored("REGISTERED")))))
    server.answer("GET", "/_plugins/_ml/model_groups/g1", group)
    server.answer("GET", "/_plugins/_ml/connectors/c1", connector)
    server.answer("POST", MODELS + "/_register", (200, {"task_id": "t1", "status": "CREATED", "model_id": "m1"}))


DEPLOYED = (200, {"task_id": "t2", "task_type": "DEPLOY_MODEL", "status": "COMPLETED"})


def test_a_missing_model_is_registered_in_its_group_then_deployed(server):
    answer_register(server)
    # Read after the register, before the deploy, then until DEPLOYED.
    answer(server, reads=[(200, stored("REGISTERED")), (200, stored("REGISTERED")), (200, stored("DEPLOYING")), (200, stored("DEPLOYED"))],
           profiles=[(200, profile("m1", "DEPLOYED"))], names=NODE_NAMES, deploy=DEPLOYED)
    result = ml_model.run(fake_module(**WANTED), client(server))
    assert result["changed"] is True
    assert (result["model_id"], result["model_state"], result["task_id"], result["redeployed"]) == ("m1", "DEPLOYED", "t1", False)
    assert result["serving_nodes"] == SERVED_BY_N1
    assert result["model"] == with_id(stored("DEPLOYED"))
    assert result["diff"] == {"before": {}, "after": with_id(stored("DEPLOYED"))}
    assert writes(server) == [
        ("POST", MODELS + "/_register", dict(WANTED, function_name="remote")),
        ("POST", MODELS + "/m1/_deploy", None),
    ]
    lookup = body(server.received[0])
    assert server.received[0]["path"] == MODELS + "/_search"
    assert lookup["query"] == {"bool": {"filter": [{"term": {"name.keyword": NAME}}, {"term": {"model_group_id": "g1"}}]}}
    assert requests_sent(server)[1:3] == [("GET", "/_plugins/_ml/model_groups/g1"), ("GET", "/_plugins/_ml/connectors/c1")]


def test_state_present_registers_without_deploying(server):
    answer_register(server)
    answer(server, reads=[(200, stored("REGISTERED"))])
    result = ml_model.run(fake_module(state="present", **WANTED), client(server))
    assert result["changed"] is True and result["model_state"] == "REGISTERED" and result["model_id"] == "m1"
    assert [write[:2] for write in writes(server)] == [("POST", MODELS + "/_register")]


def test_check_mode_predicts_the_register_and_deploy_without_writing(server):
    answer_register(server)
    result = ml_model.run(fake_module(check_mode=True, **WANTED), client(server))
    assert result["changed"] is True
    assert result["model_id"] is None and result["model_state"] == "DEPLOYED"
    assert result["model"] == dict(WANTED, model_id=None, model_state="DEPLOYED")
    assert writes(server) == []


def test_a_model_registered_without_a_group_fails_before_writing(server):
    """ML Commons would create a group named after the model on its own; the module refuses instead."""
    answer(server, search=[None])
    with pytest.raises(ConfigurationError, match="Registering model 'OpenAI embeddings' needs model_group_id"):
        ml_model.run(fake_module(name=NAME, connector_id="c1"), client(server))
    assert writes(server) == []


def test_a_group_that_does_not_exist_fails_before_writing(server):
    answer_register(server, group=(404, {"error": {"type": "status_exception", "reason": "Failed to find model group"}, "status": 404}))
    with pytest.raises(MLCommonsError, match="No model group has the ID g1"):
        ml_model.run(fake_module(**WANTED), client(server))
    assert writes(server) == []


def test_a_connector_without_a_predict_action_fails_before_writing(server):
    cancel_only = dict(CONNECTOR, actions=[{"action_type": "CANCEL_BATCH_PREDICT", "method": "POST", "url": "https://x"}])
    answer_register(server, connector=(200, cancel_only))
    with pytest.raises(MLCommonsError, match="Connector c1 has no predict or batch_predict action"):
        ml_model.run(fake_module(**WANTED), client(server))
    assert writes(server) == []


@pytest.mark.parametrize("params, complaint", [
    (dict(WANTED, name="embed|text"), r"The model name holds characters ML Commons does not accept \('\|'\)"),
    (dict(WANTED, description="a{b}"), r"The model description holds characters ML Commons does not accept \('\{' '\}'\)"),
])
def test_bad_characters_fail_before_any_request(server, params, complaint):
    with pytest.raises(ConfigurationError, match=complaint):
        ml_model.run(fake_module(**params), client(server))
    assert server.received == []


def test_a_rerun_on_a_served_model_only_reads(server):
    answer(server, search=[stored("DEPLOYED")], reads=[(200, stored("DEPLOYED", rate_limiter={"limit": "4", "unit": "MINUTES"}))],
           profiles=[(200, profile("m1", "DEPLOYED"))], names=NODE_NAMES)
    result = ml_model.run(fake_module(rate_limiter={"limit": 4, "unit": "MINUTES"}, **WANTED), client(server))
    assert result["changed"] is False
    assert (result["model_id"], result["model_state"], result["task_id"], result["redeployed"]) == ("m1", "DEPLOYED", None, False)
    assert result["serving_nodes"] == SERVED_BY_N1
    assert requests_sent(server) == [("POST", MODELS + "/_search"), ("GET", MODELS + "/m1"), ("GET", PROFILE + "/m1"),
                                     ("GET", "/_nodes?filter_path=nodes.%2A.name")]


def test_a_deployed_model_no_node_serves_is_deployed_again(server):
    """After a restart the model index still says DEPLOYED while no node holds the model."""
    answer(server, search=[stored("DEPLOYED")], reads=[(200, stored("DEPLOYED"))],
           profiles=[(200, {}), (200, profile("m1", "DEPLOYED"))],  # no node holds it until the deploy
           names=NODE_NAMES, deploy=DEPLOYED)
    result = ml_model.run(fake_module(**WANTED), client(server))
    assert result["changed"] is True and result["model_state"] == "DEPLOYED"
    assert requests_sent(server)[2] == ("GET", PROFILE + "/m1")
    assert writes(server) == [("POST", MODELS + "/m1/_deploy", None)]


def test_a_deployed_model_no_node_serves_in_check_mode_is_a_change_without_writing(server):
    answer(server, search=[stored("DEPLOYED")], reads=[(200, stored("DEPLOYED"))], profiles=[(200, profile("m1", "DEPLOYING"))])
    result = ml_model.run(fake_module(check_mode=True, **WANTED), client(server))
    assert result["changed"] is True and result["model_state"] == "DEPLOYED"
    assert result["serving_nodes"] == []  # the nodes serving it now
    assert writes(server) == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_deploy_ml_commons_has_under_way_is_waited_for_and_is_no_change(server, check_mode):
    """ML Commons redeploys a model by itself after a node restarts: the run only waits."""
    # Found, read before the deploy (under way), then until DEPLOYED; the node loads it, then serves it.
    answer(server, search=[stored("DEPLOYING")], reads=[(200, stored("DEPLOYING")), (200, stored("DEPLOYING")), (200, stored("DEPLOYED"))],
           profiles=[(200, profile("m1", "DEPLOYING")), (200, profile("m1", "DEPLOYED"))], names=NODE_NAMES)
    result = ml_model.run(fake_module(check_mode=check_mode, **WANTED), client(server))
    assert result["changed"] is False and result["model_state"] == "DEPLOYED"
    assert writes(server) == []


def test_only_the_changed_field_is_sent_to_a_deployed_model(server):
    answer(server, search=[stored("DEPLOYED")], reads=[(200, stored("DEPLOYED")), (200, stored("DEPLOYED", description="Embeds more text"))],
           profiles=[(200, profile("m1", "DEPLOYED"))], names=NODE_NAMES, update=(200, {"result": "updated"}))
    result = ml_model.run(fake_module(name=NAME, model_group_id="g1", connector_id="c1", description="Embeds more text"), client(server))
    assert result["changed"] is True and result["redeployed"] is False
    assert writes(server) == [("PUT", MODELS + "/m1", {"description": "Embeds more text"})]
    assert result["model"] == with_id(stored("DEPLOYED", description="Embeds more text"))
    assert result["diff"]["before"]["description"] == "Embeds text"
    assert result["diff"]["after"]["description"] == "Embeds more text"


def test_an_update_whose_cache_refresh_failed_redeploys_the_model(server):
    cache_failed = (500, {"error": {"type": "exception", "reason": "Successfully update ML model index with model ID m1 but update model "
                                    "cache was failed on following nodes [n1], please retry or redeploy model manually."}, "status": 500})
    answer(server, search=[stored("DEPLOYED")],
           reads=[(200, stored("DEPLOYED")), (200, stored("UNDEPLOYED")),  # found; after the undeploy
                  (200, stored("UNDEPLOYED")), (200, stored("DEPLOYED")),  # before and after the deploy
                  (200, stored("DEPLOYED", is_enabled=False))],  # read back
           profiles=[(200, profile("m1", "DEPLOYED"))], names=NODE_NAMES,
           update=cache_failed, undeploy=(200, {}), deploy=(200, {"status": "COMPLETED"}))
    result = ml_model.run(fake_module(is_enabled=False, **WANTED), client(server))
    assert result["changed"] is True and result["redeployed"] is True
    assert writes(server) == [("PUT", MODELS + "/m1", {"is_enabled": False}), ("POST", MODELS + "/m1/_undeploy", None),
                              ("POST", MODELS + "/m1/_deploy", None)]


def test_state_undeployed_undeploys_and_waits_until_no_node_holds_it(server):
    answer(server, reads=[(200, stored("DEPLOYED")), (200, stored("DEPLOYED")), (200, stored("UNDEPLOYED"))], undeploy=(200, {}))
    result = ml_model.run(fake_module(model_id="m1", state="undeployed"), client(server))
    assert result["changed"] is True and result["model_state"] == "UNDEPLOYED"
    assert result["model"] == with_id(stored("UNDEPLOYED"))
    assert writes(server) == [("POST", MODELS + "/m1/_undeploy", None)]
    assert requests_sent(server) == [("GET", MODELS + "/m1"), ("POST", MODELS + "/m1/_undeploy"),
                                     ("GET", MODELS + "/m1"), ("GET", MODELS + "/m1")]  # by ID, no search; read until undeployed


def test_state_undeployed_leaves_an_undeployed_model_alone(server):
    answer(server, reads=[(200, stored("UNDEPLOYED"))])
    result = ml_model.run(fake_module(model_id="m1", state="undeployed"), client(server))
    assert result["changed"] is False and result["model_state"] == "UNDEPLOYED"
    assert requests_sent(server) == [("GET", MODELS + "/m1")]


def test_deploy_without_wait_sends_the_deploy_and_returns_the_state_read_after_it(server):
    answer(server, reads=[(200, stored("REGISTERED")), (200, stored("DEPLOYING"))], profiles=[(200, profile("m1", "DEPLOYING"))],
           deploy=(200, {"task_id": "t2", "status": "CREATED"}))
    result = ml_model.run(fake_module(model_id="m1", wait=False), client(server))
    assert result["changed"] is True and result["model_state"] == "DEPLOYING"
    assert writes(server) == [("POST", MODELS + "/m1/_deploy", None)]


def test_a_failed_deploy_fails_with_the_reason_of_its_task(server):
    answer(server, reads=[(200, stored("REGISTERED")), (200, stored("REGISTERED")), (200, stored("DEPLOY_FAILED"))], deploy=DEPLOYED)
    server.answer("POST", "/_plugins/_ml/tasks/_search",
                  (200, hits(("t2", {"task_type": "DEPLOY_MODEL", "model_id": "m1", "state": "FAILED", "error": "no eligible node found"}))))
    with pytest.raises(MLCommonsError, match=r"Deploying model m1 failed \(DEPLOY_FAILED\): no eligible node found"):
        ml_model.run(fake_module(model_id="m1"), client(server))
    assert writes(server) == [("POST", MODELS + "/m1/_deploy", None)]  # a real failure is not retried


def test_absent_undeploys_a_deployed_model_then_deletes_it(server):
    answer(server, reads=[(200, stored("DEPLOYED")), (200, stored("UNDEPLOYED"))], undeploy=(200, {}), delete=(200, {"result": "deleted"}))
    result = ml_model.run(fake_module(model_id="m1", state="absent"), client(server))
    assert result["changed"] is True
    assert (result["model_id"], result["model"], result["model_state"]) == (None, {}, None)
    assert result["diff"] == {"before": with_id(stored("DEPLOYED")), "after": {}}
    assert writes(server) == [("POST", MODELS + "/m1/_undeploy", None), ("DELETE", MODELS + "/m1", None)]


def test_absent_deletes_a_registered_model_by_name_without_undeploying(server):
    answer(server, search=[stored("REGISTERED")], reads=[(200, stored("REGISTERED"))], delete=(200, {"result": "deleted"}))
    result = ml_model.run(fake_module(name=NAME, model_group_id="g1", state="absent"), client(server))
    assert result["changed"] is True and result["model_id"] is None
    assert writes(server) == [("DELETE", MODELS + "/m1", None)]


def test_absent_in_check_mode_writes_nothing(server):
    answer(server, reads=[(200, stored("DEPLOYED"))])
    result = ml_model.run(fake_module(check_mode=True, model_id="m1", state="absent"), client(server))
    assert result["changed"] is True and result["model_id"] is None
    assert writes(server) == []


def test_absent_when_the_model_is_gone_changes_nothing(server):
    answer(server, reads=[(404, {"error": {"type": "status_exception", "reason": "Failed to find model with the provided model id: m1"},
                                 "status": 404})])
    result = ml_model.run(fake_module(model_id="m1", state="absent"), client(server))
    assert result["changed"] is False and result["model_id"] is None and result["model"] == {}
    assert requests_sent(server) == [("GET", MODELS + "/m1")]


def test_absent_when_no_model_has_the_name_changes_nothing(server):
    answer(server, search=[None])
    result = ml_model.run(fake_module(name=NAME, model_group_id="g1", state="absent"), client(server))
    assert result["changed"] is False and result["model_id"] is None
    assert requests_sent(server) == [("POST", MODELS + "/_search")]


def test_an_unknown_model_id_fails_unless_absent_is_wanted(server):
    server.answer("GET", MODELS + "/m9", (404, {"error": {"type": "status_exception", "reason": "Failed to find model"}, "status": 404}))
    with pytest.raises(MLCommonsError, match="No model has the ID m9. Leave model_id out to register a model by name."):
        ml_model.run(fake_module(model_id="m9", state="present"), client(server))
    assert writes(server) == []


# On a cluster of three nodes (ML Commons 2.19/3.x answers): the model carries the nodes its deploy planned, and the
# profile API lists every node that answered; one that does not serve the model has no model_state for it.
NODES = ("n0", "n1", "n2")
THREE_NAMES = (200, {"nodes": dict((node_id, {"name": "ml-testbed-%s" % node_id[1]}) for node_id in NODES)})


def on_cluster(state, planned=NODES):
    return stored(state, planning_worker_nodes=list(planned), planning_worker_node_count=len(planned), deploy_to_all_nodes=True)


def cluster_profile(serving, live=NODES):
    def node(node_id):
        if node_id in serving:
            return {"models": {"m1": {"model_state": "DEPLOYED", "target_worker_nodes": list(live), "worker_nodes": list(serving)}}}
        return {"models": {"m1": {"target_worker_nodes": list(live), "worker_nodes": list(serving)}}}
    return {"nodes": dict((node_id, node(node_id)) for node_id in live)}


def named(*node_ids):
    return [{"node_id": node_id, "name": "ml-testbed-%s" % node_id[1]} for node_id in node_ids]


def test_a_partially_deployed_model_is_deployed_again_until_every_node_serves_it(server):
    """Node n2 came back after the deploy: ML Commons' sync job says PARTIALLY_DEPLOYED; the re-run loads it on n2."""
    answer(server, reads=[(200, on_cluster("PARTIALLY_DEPLOYED")), (200, on_cluster("PARTIALLY_DEPLOYED")),  # found; before the deploy
                          (200, on_cluster("DEPLOYING")), (200, on_cluster("DEPLOYED"))],  # until deployed
           profiles=[(200, cluster_profile(serving=("n0", "n1"))),  # served by two of the three planned nodes
                     (200, cluster_profile(serving=NODES))],  # after the deploy
           names=THREE_NAMES, deploy=DEPLOYED)
    result = ml_model.run(fake_module(model_id="m1"), client(server))
    assert result["changed"] is True and result["model_state"] == "DEPLOYED"
    assert result["serving_nodes"] == named("n0", "n1", "n2")
    assert writes(server) == [("POST", MODELS + "/m1/_deploy", None)]


def test_a_partially_deployed_model_is_left_alone_with_any_node(server):
    answer(server, reads=[(200, on_cluster("PARTIALLY_DEPLOYED"))], profiles=[(200, cluster_profile(serving=("n0", "n1")))], names=THREE_NAMES)
    result = ml_model.run(fake_module(model_id="m1", deployed_on="any_node"), client(server))
    assert result["changed"] is False and result["model_state"] == "PARTIALLY_DEPLOYED"
    assert result["serving_nodes"] == named("n0", "n1")
    assert writes(server) == []


def test_a_model_every_live_node_serves_after_a_node_was_lost_is_left_alone(server):
    """Node n2 was killed: it does not answer, and the sync job has not yet taken it out of the plan."""
    answer(server, reads=[(200, on_cluster("DEPLOYED"))], profiles=[(200, cluster_profile(serving=("n0", "n1"), live=("n0", "n1")))],
           names=THREE_NAMES)
    result = ml_model.run(fake_module(model_id="m1"), client(server))
    assert result["changed"] is False
    assert result["serving_nodes"] == named("n0", "n1")
    assert writes(server) == []


def test_a_stored_deployed_model_a_live_planned_node_lacks_is_deployed_again(server):
    """Right after n2 restarted and before ML Commons noticed: the index still says DEPLOYED."""
    answer(server, reads=[(200, on_cluster("DEPLOYED"))],
           profiles=[(200, cluster_profile(serving=("n0", "n1"))), (200, cluster_profile(serving=NODES))],  # before and after the deploy
           names=THREE_NAMES, deploy=DEPLOYED)
    result = ml_model.run(fake_module(model_id="m1"), client(server))
    assert result["changed"] is True and result["serving_nodes"] == named("n0", "n1", "n2")
    assert writes(server) == [("POST", MODELS + "/m1/_deploy", None)]


def test_a_partially_deployed_model_in_check_mode_is_a_change_reporting_the_nodes_serving_it_now(server):
    answer(server, reads=[(200, on_cluster("PARTIALLY_DEPLOYED"))], profiles=[(200, cluster_profile(serving=("n0",)))], names=THREE_NAMES)
    result = ml_model.run(fake_module(check_mode=True, model_id="m1"), client(server))
    assert result["changed"] is True and result["model_state"] == "DEPLOYED"
    assert result["serving_nodes"] == named("n0")
    assert writes(server) == []


def test_undeployed_reports_no_serving_node_without_asking(server):
    answer(server, reads=[(200, on_cluster("DEPLOYED")), (200, on_cluster("UNDEPLOYED"))], undeploy=(200, {}))
    result = ml_model.run(fake_module(model_id="m1", state="undeployed"), client(server))
    assert result["changed"] is True and result["serving_nodes"] == []
    assert PROFILE + "/m1" not in [path for _method, path in requests_sent(server)]


# -- the preset interface ML Commons attaches, which refuses batch jobs (opensearch-project/ml-commons#4080) ---------------

BATCH_CONNECTOR = {"name": "Bedrock", "protocol": "aws_sigv4", "parameters": {"service_name": "bedrock", "model": "amazon.titan-embed-text-v1"},
                   "actions": [{"action_type": "BATCH_PREDICT", "method": "POST", "url": "https://bedrock.us-east-1.amazonaws.com/model-invocation-job"}]}


@pytest.mark.parametrize("given, sent", [
    (None, {}),
    ({"input": "{}", "output": "{}"}, {"input": "{}", "output": "{}"}),
])
def test_a_batch_model_is_registered_with_an_empty_interface_unless_one_is_given(server, given, sent):
    answer_register(server, connector=(200, BATCH_CONNECTOR))
    answer(server, reads=[(200, stored("REGISTERED"))])
    params = dict(WANTED, state="present", **({"interface": given} if given is not None else {}))
    ml_model.run(fake_module(**params), client(server))
    assert writes(server)[0][2]["interface"] == sent


def test_a_model_without_a_batch_predict_action_is_registered_as_given(server):
    answer_register(server)
    answer(server, reads=[(200, stored("REGISTERED"))])
    ml_model.run(fake_module(state="present", **WANTED), client(server))
    assert "interface" not in writes(server)[0][2]
