"""Deploy waiting: a deploy that does not finish in time fails with the model's state."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.client import Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.errors import MLCommonsError, WaitTimeoutError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.models import wait_until_deployed


def test_a_deploy_that_does_not_finish_times_out_naming_the_state(server):
    server.default = (200, {"name": "m", "model_state": "DEPLOYING"})
    with pytest.raises(WaitTimeoutError) as caught:
        wait_until_deployed(Client(server.url), "m1", timeout=0.3)
    assert str(caught.value).startswith("Gave up waiting after 0.3s")
    assert str(caught.value).endswith("last state seen: model m1 is DEPLOYING.")


def test_a_failed_deploy_reports_ml_commons_reason(server):
    server.script((200, {"name": "m", "model_state": "DEPLOY_FAILED"}),
                  (200, {"hits": {"hits": [{"_id": "t1", "_source": {"error": "no eligible node found", "task_type": "DEPLOY_MODEL"}}]}}))
    with pytest.raises(MLCommonsError) as caught:
        wait_until_deployed(Client(server.url), "m1", timeout=5)
    assert str(caught.value) == "Deploying model m1 failed (DEPLOY_FAILED): no eligible node found"
    assert caught.value.details == {"model_state": "DEPLOY_FAILED"}
