# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What ML Commons answers, recognised in one place: each text the collection acts on, with a predicate
named for what it means (texts of the ML Commons sources at the tested tags). A predicate takes any
failure of the collection; one that got no answer (a transport error) is none of these answers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# How ML Commons begins the reason of an error it passes on from a model provider.
REMOTE_SERVICE_ERROR = "Error from remote service:"
# Refused before anything is written while the encryption master key is not ready (right after a start).
MASTER_KEY_UNAVAILABLE = ("encryption master key has not been initialized yet", "Fetching master key timed out")
# 503s of a cluster not ready yet (created or restarted moments ago: ML Commons' system index without an active
# shard, the state not recovered, no cluster manager): refused before the request ran.
CLUSTER_NOT_READY_TYPES = ("no_shard_available_action_exception", "cluster_block_exception",
                           "cluster_manager_not_discovered_exception", "master_not_discovered_exception")
NO_SHARD_AVAILABLE = "No shard available for"
# A register whose name another group has: "... already being used by a model group with ID: <id>."
MODEL_GROUP_NAME_TAKEN = re.compile(r"already being used by a model group with ID: ([^.\s]+)")
# A connector update or delete refused: "N models are still using this connector, please ... first: [id1, id2]".
CONNECTOR_IN_USE = re.compile(r"models are still using this connector.*\[([^\]]*)\]")
# An update that was stored, but whose refresh of a node's copy of the model failed.
MODEL_CACHE_NOT_UPDATED = "update model cache was failed"
# A deploy task's error when another deploy of the model got in its way (a duplicate, or the model's
# seqNo), or when the deploy came right after a restart, before the encryption key could be read.
DEPLOY_COLLISIONS = ("Duplicate deploy model task", "Fetching master key timed out", "version conflict")
BATCH_DISABLED = "Offline Batch Inference is currently disabled"
BATCH_TASK_LIMIT = "Exceeded maximum limit for BATCH_PREDICTION tasks"
ALL_SHARDS_FAILED = "all shards failed"
PRIVATE_IP_REFUSED = "private ip address"
MODEL_NOT_READY = "Model not ready yet"
NO_BATCH_ACTION = "no BATCH_PREDICT action found"
NO_JOB_DESCRIBED = "Unable to create batch transform job"
TASK_MODEL_GONE = "Failed to retrieve the ML model for the given task ID"
# A provider's queue or quota full for now: OpenAI fails the batch in validation, Bedrock and SageMaker refuse the create.
PROVIDER_QUEUE_FULL = ("token_limit_exceeded", "Enqueued token limit reached", "ServiceQuotaExceededException", "ResourceLimitExceeded")
# 2.12-2.18 answer some missing objects or system indices with a 500 and these.
NOT_FOUND_TYPE = "m_l_resource_not_found_exception"
NOT_FOUND_REASONS = ("Fail to find", "Failed to find")


def _reason(error):
    return getattr(error, "reason", None) or ""


def _status(error):
    """The HTTP status of an answer; None for a failure that got none (a transport error)."""
    return getattr(error, "status", None)


def is_not_found(error):
    """The object does not exist: 404 on 2.19+, and the older versions' 500s that say so."""
    return _status(error) == 404 or getattr(error, "error_type", None) == NOT_FOUND_TYPE or _reason(error).startswith(NOT_FOUND_REASONS)


def is_version_conflict(error):
    """A whole write refused because another changed the object first (optimistic locking): nothing was
    written, so it may be sent again."""
    return _status(error) == 409 and "version conflict" in ("%s %s" % (getattr(error, "error_type", None) or "", _reason(error))).lower()


def is_master_key_unavailable(error):
    return any(answer in _reason(error) for answer in MASTER_KEY_UNAVAILABLE)


def is_cluster_not_ready(error):
    """A 503 of a cluster that cannot run the request yet (see CLUSTER_NOT_READY_TYPES)."""
    if _status(error) != 503:
        return False
    return getattr(error, "error_type", None) in CLUSTER_NOT_READY_TYPES or NO_SHARD_AVAILABLE in _reason(error)


def is_not_run_yet(error):
    """The request was refused before it ran, by a cluster or an ML Commons that is still starting: it may be
    sent again, a create included."""
    return is_master_key_unavailable(error) or is_cluster_not_ready(error)


def is_from_remote_service(reason):
    """Whether ``reason`` is a model provider's error that ML Commons passes on."""
    return (reason or "").startswith(REMOTE_SERVICE_ERROR)


def remote_service_body(reason):
    """The provider's own answer out of ML Commons' "Error from remote service: <body>"."""
    return reason[len(REMOTE_SERVICE_ERROR):].strip()


def model_group_taking_name(error):
    """The ID of the model group that has the name a register asked for, or None for other answers."""
    taken = MODEL_GROUP_NAME_TAKEN.search(_reason(error))
    return taken.group(1) if _status(error) == 400 and taken else None


def models_blocking_connector_change(error):
    """The model IDs a refused connector update or delete names (empty for other answers)."""
    match = CONNECTOR_IN_USE.search(_reason(error))
    return [model_id.strip() for model_id in match.group(1).split(",") if model_id.strip()] if match else []


def is_model_cache_not_updated(error):
    return MODEL_CACHE_NOT_UPDATED in _reason(error)


def is_deploy_collision(task_error):
    """Whether a failed deploy task's error says that another deploy got in its way. A task of two
    colliding deploys records no error at times, so ``None`` (no error recorded) counts as one."""
    return task_error is None or any(text in task_error for text in DEPLOY_COLLISIONS)


def is_batch_disabled(error):
    return BATCH_DISABLED in _reason(error)


def is_batch_limit_check_failed(error):
    """2.19 on a cluster: the batch task limit check searches with a query it cannot send to another node
    (MLTaskManager.checkMaxBatchJobTask, fixed in 3.0). It comes before any submit, and the next request
    goes to the next worker node, so it may be sent again."""
    return _status(error) == 400 and getattr(error, "error_type", None) == "search_phase_execution_exception" \
        and ALL_SHARDS_FAILED in _reason(error)


def is_batch_task_limit(error):
    """As many batch jobs as plugins.ml_commons.max_batch_inference_tasks allows are created or running."""
    return BATCH_TASK_LIMIT in _reason(error)


def is_private_ip_refused(error):
    return PRIVATE_IP_REFUSED in _reason(error)


def is_model_not_ready(error):
    return MODEL_NOT_READY in _reason(error)


def is_batch_action_missing(error):
    return NO_BATCH_ACTION in _reason(error)


def is_job_undescribed(error):
    """The provider's answer to a submit did not describe a job ML Commons could track."""
    return NO_JOB_DESCRIBED in _reason(error)


def is_provider_queue_full(text):
    """Whether a provider's refusal or failure reason only says its queue or quota is full for now."""
    return any(code in (text or "") for code in PROVIDER_QUEUE_FULL)


def is_task_model_gone(error):
    """A batch task's model no longer exists, so ML Commons cannot ask the provider about it."""
    return TASK_MODEL_GONE in _reason(error)
