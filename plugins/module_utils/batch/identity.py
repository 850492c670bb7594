# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Which provider runs a model's batch jobs, and what makes two of its jobs the same job: a re-run
finds its job again by it, and concurrent runs converge on the oldest copy of it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import re

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.diff import as_server_string


def connector_action(connector, action_type):
    for action in (connector or {}).get("actions") or []:
        if str(action.get("action_type", "")).upper() == action_type:
            return action
    return None


def provider_of(connector):
    """The provider, recognised the way ML Commons recognises it: by the batch_predict URL."""
    url = ((connector_action(connector, "BATCH_PREDICT") or {}).get("url") or "").lower()
    for provider in ("sagemaker", "openai", "cohere", "bedrock"):
        if provider in url:
            return provider
    return None


def _text(value):
    """A parameter value as it is sent: strings as they are, anything else as JSON text."""
    return None if value is None else as_server_string(value)


def _wildcard_literal(text):
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


def _object(value):
    """A parameter that holds an object, given as a dict or as its JSON text; None otherwise."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def dig(value, *path):
    """The value at ``path`` in nested dicts; None where one is missing."""
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


class JobIdentity(object):
    """What makes two batch jobs of one model the same job, for one provider.

    ``field`` is the key in the task's ``remote_job`` (a ``flat_object``, so dotted paths are
    searchable), ``clause`` the search clause that finds candidates, and :meth:`matches` the exact
    check made on each candidate.
    """

    def __init__(self, provider, parameter, field, value, clause=None, matches=None):
        self.provider = provider
        self.parameter = parameter
        self.field = field
        self.value = value
        self.clause = clause or {"term": {"remote_job." + field: value}}
        self._matches = matches or (lambda job: _text(dig(job, *field.split("."))) == value)

    def matches(self, job):
        return self._matches(job or {})

    @property
    def unread_clause(self):
        """Tasks stored without the field: the first status read, which adds it, did not happen."""
        return {"bool": {"must_not": [{"exists": {"field": "remote_job." + self.field}}]}}

    def is_unread(self, job):
        return dig(job or {}, *self.field.split(".")) is None

    def __eq__(self, other):
        return isinstance(other, JobIdentity) and (self.provider, self.field, self.value) == (other.provider, other.field, other.value)

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __str__(self):
        return "%s %s %s" % (self.provider, self.parameter, self.value)


def _openai_identity(parameters):
    value = _text(parameters.get("input_file_id"))
    return value and JobIdentity("OpenAI", "input_file_id", "input_file_id", value)


def _sagemaker_identity(parameters):
    name = _text(parameters.get("TransformJobName"))
    if not name:
        return None
    # CreateTransformJob answers only TransformJobArn, whose last segment is the name (SageMaker
    # writes ARNs in lower case); TransformJobName joins remote_job at the first status read.
    clause = {"bool": {"minimum_should_match": 1, "should": [
        {"term": {"remote_job.TransformJobName": name}},
        {"wildcard": {"remote_job.TransformJobArn": {"value": "*/" + _wildcard_literal(name), "case_insensitive": True}}},
    ]}}

    def matches(job):
        arn = job.get("TransformJobArn")
        return job.get("TransformJobName") == name or (isinstance(arn, str) and arn.rsplit("/", 1)[-1].lower() == name.lower())

    return JobIdentity("SageMaker", "TransformJobName", "TransformJobName", name, clause, matches)


def _bedrock_identity(parameters):
    # CreateModelInvocationJob answers only jobArn; jobName and inputDataConfig join remote_job at
    # the first status read (GetModelInvocationJob).
    name = _text(parameters.get("jobName"))
    if name:
        return JobIdentity("Bedrock", "jobName", "jobName", name)
    uri = _text(dig(_object(parameters.get("inputDataConfig")), "s3InputDataConfig", "s3Uri"))
    if uri:
        return JobIdentity("Bedrock", "inputDataConfig.s3InputDataConfig.s3Uri", "inputDataConfig.s3InputDataConfig.s3Uri", uri)
    return None


IDENTITIES = {"openai": _openai_identity, "sagemaker": _sagemaker_identity, "bedrock": _bedrock_identity}


def job_identity(connector, parameters):
    """The :class:`JobIdentity` of a job submitted with ``parameters``, or None when it cannot be told.

    The request's parameters win over the connector's, as they do in ML Commons.
    """
    identity = IDENTITIES.get(provider_of(connector))
    if identity is None:
        return None
    merged = dict((connector or {}).get("parameters") or {})
    merged.update(parameters or {})
    return identity(merged) or None


def job_identity_of_request(parameters):
    """The :class:`JobIdentity` the request's own parameters give, or None.

    Each provider's identifying parameter is its own (input_file_id, TransformJobName, jobName or
    inputDataConfig), so a re-run can look for its job before reading the model and its connector:
    the look-up a no-op re-run makes is then its only request.
    """
    for identity in IDENTITIES.values():
        found = identity(parameters or {})
        if found:
            return found


def job_name(prefix, parameters, model_id):
    """A provider job name made from the job's ``parameters`` and ``model_id``: the same on a re-run, another for
    another input, output or model, and for a model made again (the services keep a used name taken). It fits
    Bedrock's and SageMaker's rules: letters, digits and hyphens, at most 63 characters."""
    stem = re.sub("[^A-Za-z0-9]+", "-", prefix or "").strip("-")[:42] or "batch"
    made_from = json.dumps([parameters, model_id], sort_keys=True, default=str)
    return "%s-%s" % (stem, hashlib.sha256(made_from.encode("utf-8")).hexdigest()[:20])
