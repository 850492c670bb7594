#!/usr/bin/env python
"""The reliability and security suite: faults, restarts, concurrency, bad input, secrets and TLS,
against the real test bed (`make up`) and the OpenAI emulator.

    python tests/reliability/run.py [--quick | --cluster] [--only NAME ...] [--list]

The fault, restart, concurrency and task-limit scenarios run the collection's role
opensearch.ml_commons.batch_inference (the input split into parts, each uploaded to the OpenAI
emulator, model group -> connector -> model, deployed -> a batch job per part, waited for ->
download, merged); the TLS, secrets and bad-input scenarios drive the modules themselves. Every
scenario runs real `ansible-playbook` and judges the outcome by asking OpenSearch itself (the ML
`_search` APIs and tasks, never the collection's modules) and the emulator (uploads, batches). It prints one line per scenario, then

    scenarios run N, resources lost N, duplicated N, secrets leaked N
    N passed, N failed

and exits 1 when any scenario failed. ``--quick`` runs the short form (for `make test`).
``--cluster`` runs the cluster scenarios of cluster.py instead, which need a test bed of three nodes
(`make reliability-cluster` starts one): on another test bed each is reported NOT APPLICABLE, never
counted as passed, and the suite exits 3 when nothing was tested.

Needs: .testbed/env (from `make up`), ANSIBLE_COLLECTIONS_PATH pointing at a built copy of the
collection (`make reliability` sets it), and the ``cryptography`` package for the TLS front.
All traffic stays on this machine: 127.0.0.1, and the emulator in its network namespace (the suite
asks it which files and batches it holds).

Environment: FAULT_PROXY_PORT (default 9290; the HTTPS front uses the next port).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTBED = REPO / "tests" / "testbed"
STATE_FILE = REPO / ".testbed" / "state.json"
ENV_FILE = REPO / ".testbed" / "env"
PREFIX = "rel-"
KINDS = (("group", "model_groups"), ("connector", "connectors"), ("model", "models"))
CREATE_PATHS = {
    "group": r"^/_plugins/_ml/model_groups/_register",
    "connector": r"^/_plugins/_ml/connectors/_create",
    "model": r"^/_plugins/_ml/models/_register",
}
BATCH_PATH = r"^/_plugins/_ml/models/[^/]+/_batch_predict$"
BATCH_TASK_TYPE = "BATCH_PREDICTION"
TASK_LIMIT_SETTING = "plugins.ml_commons.max_batch_inference_tasks"
# A job a younger concurrent run cancelled on purpose is not a duplicate; any other state counts.
CANCELLED_STATES = ("CANCELLED", "CANCELLING")
ACTIVE_STATES = ("CREATED", "RUNNING")
# The module timeout of the scenarios that answer slower than it, and how late those answers come.
SHORT_TIMEOUT = 3
SLOW_ANSWER = 5
# How long the judge lets a model that ML Commons is redeploying by itself (after a restart) take.
MODEL_SETTLE_SECONDS = 30


class ScenarioFailed(Exception):
    pass


class NotApplicable(Exception):
    """The scenario cannot run on this test bed (the cluster scenarios on a single node): reported, never counted as passed."""


# The exit status when every selected scenario was not applicable.
NOTHING_TESTED = 3


# ------------------------------------------------------------------------------------------------
# The test bed and direct (module-free) access to OpenSearch


def read_env_file() -> dict:
    if not ENV_FILE.exists():
        sys.exit(f"reliability: {ENV_FILE} is missing: run `make up` first")
    sys.path.insert(0, str(REPO / "tests" / "testbed"))
    from testbed import read_env_file as read_testbed_env  # pylint: disable=import-outside-toplevel

    return read_testbed_env(ENV_FILE)


ENV: dict = {}


def http(method: str, url: str, body=None, headers=None, timeout=30):
    """(status, decoded JSON or text) of one request; never raises on an HTTP error status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw or b"{}")
    except ValueError:
        return status, raw.decode(errors="replace")


def opensearch(method: str, path: str, body=None):
    return http(method, ENV["OPENSEARCH_URL"] + path, body)


def openai(method: str, path: str):
    """The OpenAI emulator's own API (the provider's view), with the test bed's key."""
    return http(method, ENV["OPENAI_BASE_URL"] + path, headers={"Authorization": "Bearer " + ENV["OPENAI_API_KEY"]})


def provider_files_named(filenames: list[str]) -> dict[str, list[dict]]:
    """The files uploaded to the emulator under each of these names."""
    status, answer = openai("GET", "/files?purpose=batch&limit=10000")
    if status != 200:
        raise ScenarioFailed(f"listing the emulator's files answered {status}: {answer}")
    found: dict[str, list[dict]] = {name: [] for name in filenames}
    for item in answer.get("data", []):
        if item.get("filename") in found:
            found[item["filename"]].append(item)
    return found


def emulator_stats() -> dict:
    """The emulator's own counters (uploads, batches created, requests per route)."""
    status, answer = http("GET", ENV["OPENAI_BASE_URL"].rsplit("/v1", 1)[0] + "/_emulator/stats")
    if status != 200:
        raise ScenarioFailed(f"the emulator's stats answered {status}: {answer}")
    return answer


def provider_batches(input_file_ids: set[str]) -> list[dict]:
    """The emulator's batches whose input is one of these files."""
    found, after = [], None
    while True:
        status, answer = openai("GET", "/batches?limit=100" + (f"&after={after}" if after else ""))
        if status != 200:
            raise ScenarioFailed(f"listing the emulator's batches answered {status}: {answer}")
        found += [batch for batch in answer.get("data", []) if batch.get("input_file_id") in input_file_ids]
        if not answer.get("has_more") or not answer.get("data"):
            return found
        after = answer["data"][-1]["id"]


def ml_search(kind_path: str, query: dict) -> list[dict]:
    """Objects of a kind, straight from ML Commons' own search API (after a refresh)."""
    opensearch("POST", "/_refresh")
    status, answer = opensearch("POST", f"/_plugins/_ml/{kind_path}/_search", {"query": query, "size": 1000})
    if status == 404:
        return []
    if status != 200:
        raise ScenarioFailed(f"searching {kind_path} answered {status}: {answer}")
    return [dict(hit["_source"], id=hit["_id"]) for hit in answer.get("hits", {}).get("hits", [])]


def ml_totals() -> dict:
    return {kind: len(ml_search(path, {"match_all": {}})) for kind, path in KINDS}


def chain_names(tag: str) -> dict:
    return {"group": f"{PREFIX}{tag} group", "connector": f"{PREFIX}{tag} connector", "model": f"{PREFIX}{tag} model"}


def chain_objects(names: dict) -> dict:
    return {kind: ml_search(path, {"term": {"name.keyword": names[kind]}}) for kind, path in KINDS}


def batch_tasks(model_ids: list[str]) -> list[dict]:
    """The BATCH_PREDICTION tasks of these models, as ML Commons stored them, oldest first."""
    if not model_ids:
        return []
    query = {"bool": {"filter": [{"term": {"task_type": BATCH_TASK_TYPE}}, {"terms": {"model_id": list(model_ids)}}]}}
    return sorted(ml_search("tasks", query), key=lambda task: (task.get("create_time") or 0, task["id"]))


def read_task(task_id: str) -> dict:
    """GET a task: ML Commons asks the provider for a batch job's status and stores the answer."""
    status, answer = opensearch("GET", f"/_plugins/_ml/tasks/{task_id}")
    return answer if status == 200 and isinstance(answer, dict) else {"state": f"unreadable (HTTP {status}: {str(answer)[:200]})"}


def settle_and_delete_tasks(model_ids: list[str]) -> None:
    """Batch tasks go before their model: a task whose model is gone can no longer be read, stays
    RUNNING for good and counts against plugins.ml_commons.max_batch_inference_tasks. An active
    task is read (the emulator's jobs end in seconds), cancelled if still active, then deleted."""
    for task in batch_tasks(model_ids):
        task_id = task["id"]
        if task.get("state") in ACTIVE_STATES and read_task(task_id).get("state") in ACTIVE_STATES:
            opensearch("POST", f"/_plugins/_ml/tasks/{task_id}/_cancel")
        for _attempt in range(10):
            if opensearch("DELETE", f"/_plugins/_ml/tasks/{task_id}")[0] in (200, 404):
                break
            time.sleep(1)
            read_task(task_id)
        else:
            # Refused for good (still CANCELLING, say): the test bed has no Security plugin guarding the system index.
            opensearch("DELETE", f"/.plugins-ml-task/_doc/{task_id}?refresh=true")


def delete_everything_named(prefix: str = PREFIX) -> None:
    """Remove what the suite made: batch tasks, models (undeployed first), connectors, groups."""
    query = {"prefix": {"name.keyword": prefix}}
    models = ml_search("models", query)
    settle_and_delete_tasks([model["id"] for model in models])
    for model in models:
        opensearch("POST", f"/_plugins/_ml/models/{model['id']}/_undeploy")
        for _attempt in range(20):
            if opensearch("DELETE", f"/_plugins/_ml/models/{model['id']}")[0] in (200, 404):
                break
            time.sleep(0.5)
    for connector in ml_search("connectors", query):
        opensearch("DELETE", f"/_plugins/_ml/connectors/{connector['id']}")
    for group in ml_search("model_groups", query):
        opensearch("DELETE", f"/_plugins/_ml/model_groups/{group['id']}")


def live_eligible_nodes() -> dict:
    """The nodes in the cluster that ML Commons deploys remote models to by default (a data or ml role): ID -> name."""
    status, answer = opensearch("GET", "/_nodes?filter_path=nodes.*.name,nodes.*.roles")
    nodes = (answer.get("nodes") or {}) if status == 200 and isinstance(answer, dict) else {}
    return {node_id: node.get("name") for node_id, node in nodes.items() if {"data", "ml"} & set(node.get("roles") or ())}


def model_served(model_id: str):
    """True when the model is DEPLOYED and every live eligible node's profile holds it deployed (on one node:
    that node); else what is wrong.

    After a restart ML Commons redeploys models by itself, passing the model through DEPLOYING,
    possibly after the role's re-run ended: a DEPLOYING model is given MODEL_SETTLE_SECONDS to
    finish. Any other state fails at once, and so does a DEPLOYED that a live node does not serve.
    """
    deadline = time.monotonic() + MODEL_SETTLE_SECONDS
    while True:
        status, live = opensearch("GET", f"/_plugins/_ml/models/{model_id}")
        state = live.get("model_state") if status == 200 else f"unreadable (HTTP {status})"
        if state != "DEPLOYING" or time.monotonic() >= deadline:
            break
        time.sleep(1)
    if state != "DEPLOYED":
        return f"is {state}, not DEPLOYED"
    _status, profile = opensearch("GET", f"/_plugins/_ml/profile/models/{model_id}")
    nodes = (profile.get("nodes") if isinstance(profile, dict) else None) or {}
    serving = {node_id for node_id, node in nodes.items() if ((node.get("models") or {}).get(model_id) or {}).get("model_state") == "DEPLOYED"}
    eligible = live_eligible_nodes()
    missing = sorted(name for node_id, name in eligible.items() if node_id not in serving)
    if not serving or missing:
        return (f"is stored DEPLOYED but not served by {missing or 'any node'} (serving: "
                f"{sorted(eligible.get(node_id, node_id) for node_id in serving)})")
    return True


class Tally:
    def __init__(self):
        self.lost = self.duplicated = self.leaked = 0

    def judge_chain(self, names: dict) -> list[str]:
        """Count on the server: exactly one group, connector and model, the model deployed on those two."""
        found = chain_objects(names)
        problems = []
        for kind, _path in KINDS:
            count = len(found[kind])
            if count == 0:
                self.lost += 1
                problems.append(f"no {kind} called {names[kind]!r}")
            elif count > 1:
                self.duplicated += count - 1
                problems.append(f"{count} {kind}s called {names[kind]!r}: {[item['id'] for item in found[kind]]}")
        if not problems:
            model = found["model"][0]
            served = model_served(model["id"])
            if served is not True:
                problems.append(f"model {model['id']} {served}")
            if model.get("model_group_id") != found["group"][0]["id"]:
                self.lost += 1
                problems.append(f"model is in group {model.get('model_group_id')}, not {found['group'][0]['id']}")
            if model.get("connector_id") != found["connector"][0]["id"]:
                self.lost += 1
                problems.append(f"model uses connector {model.get('connector_id')}, not {found['connector'][0]['id']}")
        return problems

    def judge_batch(self, names: dict, workload: "RoleWorkload", orphans_allowed: bool = False) -> tuple[list[str], str]:
        """Count on the server, for each part of the workload's input (the role splits it; a small
        input is one part): the part uploaded once, exactly one batch job of the model for it that no
        run cancelled on purpose, COMPLETED (the role waits for it), and one batch of it that the
        provider itself ran and nobody cancelled. Returns the problems and a short account (jobs
        standing and cancelled, batches the provider created and cancelled, and how many requests
        the cancelled ones had run: what was paid for besides).

        ``orphans_allowed``: more batches of a part at the provider than jobs at ML Commons are
        reported, not failed. ML Commons stores a batch task only once the provider has answered,
        so OpenSearch killed in between leaves a batch the provider runs and no task that a re-run
        could find: that input is run, and paid for, twice, which nothing asking ML Commons can
        prevent (see docs/reliability.md)."""
        problems = []
        uploads = provider_files_named(workload.part_filenames)
        input_ids = {}
        for number, name in enumerate(workload.part_filenames, start=1):
            found = uploads.get(name, [])
            if len(found) != 1:
                problems.append(f"part {number}: {len(found)} uploads at the provider: {[item['id'] for item in found]}")
                self.lost += not found
                self.duplicated += max(0, len(found) - 1)
            for item in found:
                input_ids[item["id"]] = number
        models = chain_objects(names)["model"]
        tasks = batch_tasks([model["id"] for model in models])
        foreign = [task["id"] for task in tasks if (task.get("remote_job") or {}).get("input_file_id") not in input_ids]
        if foreign:
            problems.append(f"batch jobs of the model for another input: {foreign}")
        # A stored CREATED or RUNNING may be behind (ML Commons stores a cancel, or the job's end, only
        # when the task is read): such tasks are read, which asks the provider.
        for task in tasks:
            if task.get("state") in ACTIVE_STATES:
                task["state"] = read_task(task["id"]).get("state")
        batches = provider_batches(set(input_ids))
        standing_total = cancelled_total = orphans = 0
        for file_id, number in sorted(input_ids.items(), key=lambda item: item[1]):
            label = f"part {number}" if len(workload.part_filenames) > 1 else "the input"
            own = [task for task in tasks if (task.get("remote_job") or {}).get("input_file_id") == file_id]
            standing = [task for task in own if task.get("state") not in CANCELLED_STATES]
            standing_total += len(standing)
            cancelled_total += len(own) - len(standing)
            if not standing:
                self.lost += 1
                problems.append(f"{label}: no batch job of model {[model['id'] for model in models]} stands "
                                f"({len(own)} task(s): {[(task['id'], task.get('state')) for task in own]})")
            elif len(standing) > 1:
                self.duplicated += len(standing) - 1
                problems.append(f"{label}: {len(standing)} batch jobs stand for the same input: "
                                f"{[(task['id'], task.get('state')) for task in standing]}")
            elif standing[0].get("state") != "COMPLETED":
                problems.append(f"{label}: batch job {standing[0]['id']} is {standing[0].get('state')}, not COMPLETED")
            ran = [batch for batch in batches if batch.get("input_file_id") == file_id and batch.get("status") not in ("cancelling", "cancelled")]
            # Only when the jobs that stand are right: a provider batch without a task (ML Commons killed
            # between calling the provider and storing the task) is paid for twice all the same.
            if len(standing) == 1 and len(ran) > 1 and orphans_allowed:
                orphans += len(ran) - 1
            elif len(standing) == 1 and len(ran) != 1:
                self.duplicated += max(0, len(ran) - 1)
                problems.append(f"{label}: the provider ran {len(ran)} batches of it that nobody cancelled: {[batch['id'] for batch in ran]}")
        created = len(batches)
        cancelled_at_provider = [batch for batch in batches if batch.get("status") in ("cancelling", "cancelled")]
        requests_run = sum((batch.get("request_counts") or {}).get("completed") or 0 for batch in cancelled_at_provider)
        parts = f"{len(workload.part_filenames)} parts: " if len(workload.part_filenames) > 1 else ""
        account = (f"{parts}{standing_total} batch job(s) standing, {cancelled_total} cancelled; the provider created {created} "
                   f"batch(es), {len(cancelled_at_provider)} cancelled (having run {requests_run} request(s))")
        if orphans:
            account += f", {orphans} of them run besides the job, without a task: ML Commons was killed after calling the provider"
        return problems, account

    def judge_output(self, path: Path, custom_ids: list[str]) -> list[str]:
        """The merged output of a run: every request's answer once, in input order, each a success."""
        if not path.exists():
            self.lost += len(custom_ids)
            return [f"no merged output at {path}"]
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        seen = [line.get("custom_id") for line in lines]
        missing = set(custom_ids) - set(seen)
        repeated = len(seen) - len(set(seen))
        self.lost += len(missing)
        self.duplicated += repeated
        problems = []
        if missing or repeated:
            problems.append(f"{path.name}: {len(missing)} request(s) missing (first: {sorted(missing)[:3]}), {repeated} repeated")
        elif seen != custom_ids:
            problems.append(f"{path.name}: the answers are not in input order (first lines: {seen[:5]})")
        failed = [line.get("custom_id") for line in lines if (line.get("response") or {}).get("status_code") != 200]
        if failed:
            problems.append(f"{path.name}: {len(failed)} answer(s) not a success (first: {failed[:3]})")
        return problems


TALLY = Tally()


# ------------------------------------------------------------------------------------------------
# Playbooks (written as JSON, which YAML reads) and ansible-playbook runs


def connector_args(name: str, key_expression: str = "{{ lookup('ansible.builtin.env', 'REL_OPENAI_KEY') }}") -> dict:
    base = ENV["OPENAI_BASE_URL"]
    return {
        "name": name,
        "description": "reliability suite",
        "version": "1",
        "protocol": "http",
        "parameters": {"model": "text-embedding-ada-002", "endpoint": "/v1/embeddings"},
        "credential": {"openAI_key": key_expression},
        "actions": [{
            "action_type": "predict",
            "method": "POST",
            "url": f"{base}/embeddings",
            "headers": {"Authorization": "Bearer ${credential.openAI_key}"},
            "request_body": '{ "input": ${parameters.input}, "model": "${parameters.model}" }',
            "pre_process_function": "connector.pre_process.openai.embedding",
            "post_process_function": "connector.post_process.openai.embedding",
        }],
    }


def chain_tasks(names: dict) -> list[dict]:
    return [
        {"name": "Model group", "opensearch.ml_commons.ml_model_group": {"name": names["group"], "description": "reliability suite"},
         "register": "group"},
        {"name": "Connector", "opensearch.ml_commons.ml_connector": connector_args(names["connector"]), "register": "connector"},
        {"name": "Model, deployed", "opensearch.ml_commons.ml_model": {
            "name": names["model"], "function_name": "remote", "model_group_id": "{{ group.model_group_id }}",
            "connector_id": "{{ connector.connector_id }}", "description": "reliability suite", "state": "deployed"},
         "register": "model"},
    ]


def play(tasks: list[dict], connection: dict) -> list[dict]:
    return [{"name": "reliability", "hosts": "localhost", "gather_facts": False,
             "module_defaults": {"group/opensearch.ml_commons.ml_commons": connection}, "tasks": tasks}]


class Run:
    def __init__(self, rc, output, seconds):
        self.rc, self.output, self.seconds = rc, output, seconds
        recap = re.search(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
        self.ok, self.changed, _unreachable, self.failed = (int(group) for group in recap.groups()) if recap else (0, 0, 0, 1)

    def tail(self, lines=25):
        return "\n".join(self.output.splitlines()[-lines:])


def playbook_command(workdir: Path, plays: list, verbosity: list[str] = ()) -> list[str]:
    path = workdir / f"play-{secrets.token_hex(4)}.yml"
    path.write_text(json.dumps(plays, indent=1))
    return [str(Path(sys.executable).parent / "ansible-playbook"), *verbosity, str(path)]


def playbook_env(extra: dict | None = None) -> dict:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ANSIBLE_RETRY_FILES_ENABLED="false", ANSIBLE_PIPELINING="true",
               REL_OPENAI_KEY=ENV["OPENAI_API_KEY"])
    # The role's AWS credentials and S3 endpoint, as the test bed's env gives them.
    env.update((name, ENV[name]) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL_S3"))
    env.update(extra or {})
    return env


def run_playbook(workdir: Path, plays: list, extra_env=None, verbosity=()) -> Run:
    started = time.monotonic()
    result = subprocess.run(playbook_command(workdir, plays, verbosity), env=playbook_env(extra_env), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, check=False, timeout=900)
    return Run(result.returncode, result.stdout + result.stderr, time.monotonic() - started)


def run_playbooks_at_once(workdir: Path, runs: list[tuple]) -> list[Run]:
    """run_playbook for each (plays, extra_env, verbosity) at the same time; results in order."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(runs)) as pool:
        futures = [pool.submit(run_playbook, workdir, *arguments) for arguments in runs]
        return [future.result() for future in futures]


def run_chain(workdir: Path, names: dict, url: str, **connection) -> Run:
    return run_playbook(workdir, play(chain_tasks(names), dict({"url": url}, **connection)))


class RoleWorkload:
    """One use of the role opensearch.ml_commons.batch_inference: the chain's names, an input file
    of its own (unique content, so its uploads and batch jobs are told from every other scenario's)
    and a download directory. Every run of it is the same role call.

    The role splits the input into parts of ``per_part`` requests (batch_inference_max_requests_per_job),
    uploads each, runs a job per part and merges the outputs in input order; the default input is
    one part of 3 requests."""

    def __init__(self, workdir: Path, tag: str, parts: int = 1, per_part: int = 3):
        self.tag, self.names, self.per_part = tag, chain_names(tag), per_part
        token = secrets.token_hex(6)
        stem = f"{PREFIX}{tag}-{token}"
        self.input = workdir / f"{stem}.jsonl"
        self.custom_ids = [f"{tag}-{number}" for number in range(parts * per_part)]
        lines = [json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings",
                             "body": {"model": "text-embedding-ada-002", "input": f"reliability {tag} {token} line {number}"}}) + "\n"
                 for number, custom_id in enumerate(self.custom_ids)]
        self.input.write_text("".join(lines))
        # The names openai_file uploads the parts under (batch_input_split names them <stem>.part-00001.jsonl
        # and so on): each its own, with the part's SHA-256. An input of one part is uploaded as it is.
        self.part_filenames = [
            f"{stem}.part-{index + 1:05d}.sha256-{hashlib.sha256(''.join(lines[start:start + per_part]).encode()).hexdigest()}.jsonl"
            for index, start in enumerate(range(0, len(lines), per_part))]
        if parts == 1:
            self.part_filenames = [f"{stem}.sha256-{hashlib.sha256(''.join(lines).encode()).hexdigest()}.jsonl"]
        self.download_dir = workdir / f"results-{tag}-{token}"
        # The role's default batch_inference_output_file (named after the host, localhost here).
        self.output_file = self.download_dir / f"{stem}.localhost.output.jsonl"
        self.leaks = 0

    def scan(self, output: str) -> str:
        """Count the OpenAI key in a run's output (the role hides it with no_log); returns the output."""
        found = output.count(ENV["OPENAI_API_KEY"])
        self.leaks += found
        TALLY.leaked += found
        return output

    def leak_problems(self) -> list[str]:
        return [f"the OpenAI key appeared {self.leaks} time(s) in the role's output"] if self.leaks else []

    def plays(self, connection: dict, output_file: Path | None = None) -> list[dict]:
        role_vars = {
            "batch_inference_provider": "openai",
            "batch_inference_model_group_name": self.names["group"],
            "batch_inference_connector_name": self.names["connector"],
            "batch_inference_model_name": self.names["model"],
            "batch_inference_openai_base_url": ENV["OPENAI_BASE_URL"],
            "batch_inference_openai_api_key": "{{ lookup('ansible.builtin.env', 'REL_OPENAI_KEY') }}",
            "batch_inference_input_file": str(self.input),
            "batch_inference_wait": True,
            "batch_inference_wait_timeout": 180,
            "batch_inference_poll_interval": 1,
            "batch_inference_download_dir": str(self.download_dir),
            "batch_inference_max_requests_per_job": self.per_part,
        }
        if output_file is not None:
            role_vars["batch_inference_output_file"] = str(output_file)
        return [{"name": "reliability, role", "hosts": "localhost", "gather_facts": False,
                 "module_defaults": {"group/opensearch.ml_commons.ml_commons": connection},
                 "roles": [{"role": "opensearch.ml_commons.batch_inference", "vars": role_vars}]}]

    def run(self, workdir: Path, url: str, **connection) -> Run:
        run = run_playbook(workdir, self.plays(dict({"url": url}, **connection)))
        self.scan(run.output)
        return run

    def judge(self, outputs: list[Path] | None = None, orphans_allowed: bool = False) -> tuple[list[str], str]:
        """The chain and each part's batch job, counted on the server, and the merged output (or each
        of ``outputs``): TALLY keeps the losses and duplicates. ``orphans_allowed``: see Tally.judge_batch."""
        problems = TALLY.judge_chain(self.names)
        batch_problems, account = TALLY.judge_batch(self.names, self, orphans_allowed)
        outputs = outputs or [self.output_file]
        output_problems = [problem for path in outputs for problem in TALLY.judge_output(path, self.custom_ids)]
        if not output_problems:
            account += f"; {len(outputs)} merged output(s) of {len(self.custom_ids)} answers each, in input order"
        return problems + batch_problems + output_problems, account

    def cleanup(self) -> None:
        delete_everything_named(PREFIX + self.tag)
        for found in provider_files_named(self.part_filenames).values():
            for item in found:
                openai("DELETE", f"/files/{item['id']}")


class BedrockWorkload:
    """The role on Amazon Bedrock: ``records`` records of unique content in a local input, which the role uploads
    under an S3 prefix of its own, one Bedrock job through ML Commons (signed by ML Commons, checked by the
    emulator), the output downloaded and put in input order by recordId. The same interface as RoleWorkload."""

    def __init__(self, workdir: Path, tag: str, records: int = 100, padding: int = 0, s3_url: str | None = None):
        self.tag, self.names, self.s3_url = tag, chain_names(tag), s3_url
        token = secrets.token_hex(6)
        self.stem = f"{PREFIX}{tag}-{token}"
        self.input = workdir / f"{self.stem}.jsonl"
        self.record_ids = [f"{tag}-{number:04d}" for number in range(records)]
        # ``padding`` characters more per record make an input large enough for a multipart upload (parts of 8 MiB).
        self.input.write_text("".join(json.dumps({"recordId": record_id, "modelInput": {"inputText": f"reliability {token} {record_id} " + "x" * padding}})
                                      + "\n" for record_id in self.record_ids))
        self.bucket = ENV["TESTBED_S3_BUCKET"]
        self.prefix = f"reliability/{self.stem}/"
        self.download_dir = workdir / f"results-{tag}-{token}"
        self.output_file = self.download_dir / f"{self.stem}.localhost.output.jsonl"

    def scan(self, output: str) -> str:
        return output

    def leak_problems(self) -> list[str]:
        return []

    def plays(self, connection: dict) -> list[dict]:
        role_vars = {
            "batch_inference_provider": "bedrock",
            "batch_inference_name": self.stem,
            "batch_inference_model_group_name": self.names["group"],
            "batch_inference_connector_name": self.names["connector"],
            "batch_inference_model_name": self.names["model"],
            "batch_inference_input_file": str(self.input),
            "batch_inference_s3_prefix": f"s3://{self.bucket}/{self.prefix}",
            "batch_inference_bedrock_endpoint_url": ENV["BEDROCK_ENDPOINT_URL"],
            "batch_inference_bedrock_role_arn": "arn:aws:iam::123456789012:role/reliability",
            "batch_inference_wait_timeout": 180,
            "batch_inference_poll_interval": 1,
            "batch_inference_download_dir": str(self.download_dir),
        }
        return [{"name": "reliability, role on Bedrock", "hosts": "localhost", "gather_facts": False,
                 "module_defaults": {"group/opensearch.ml_commons.ml_commons": connection},
                 "roles": [{"role": "opensearch.ml_commons.batch_inference", "vars": role_vars}]}]

    def run(self, workdir: Path, url: str, **connection) -> Run:
        return run_playbook(workdir, self.plays(dict({"url": url}, **connection)), {"AWS_ENDPOINT_URL_S3": self.s3_url} if self.s3_url else None)

    def uploads(self) -> list[dict]:
        """The objects under the input prefix, and the multipart uploads left open there."""
        client = s3_client()
        objects = client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix + "input/").get("Contents", [])
        open_uploads = client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix).get("Uploads", [])
        return [{"key": item["Key"], "bytes": item["Size"]} for item in objects] + [{"open multipart upload": item["Key"]} for item in open_uploads]

    def judge(self, orphans_allowed: bool = False) -> tuple[list[str], str]:
        """The chain; one upload under the prefix; one Bedrock job of the input at the emulator and one ML Commons task of
        it standing, COMPLETED; the merged output holds every record once, in input order, each with its modelOutput."""
        problems = TALLY.judge_chain(self.names)
        uploads = self.uploads()
        if [upload.get("bytes") for upload in uploads] != [self.input.stat().st_size]:
            problems.append(f"not one whole upload of the input ({self.input.stat().st_size} bytes) under s3://{self.bucket}/{self.prefix}: {uploads}")
        jobs = bedrock_jobs(self.stem)
        tasks = [task for task in batch_tasks([model["id"] for model in chain_objects(self.names)["model"]])
                 if task.get("state") not in CANCELLED_STATES]
        if len(jobs) != 1 or len(tasks) != 1:
            TALLY.lost += not jobs or not tasks
            TALLY.duplicated += max(0, len(jobs) - 1) + max(0, len(tasks) - 1)
            problems.append(f"{len(jobs)} Bedrock job(s) of the input ({[job['jobName'] for job in jobs]}) and {len(tasks)} standing ML Commons "
                            f"task(s) ({[(task['id'], task.get('state')) for task in tasks]}), not one of each")
        elif tasks[0].get("state") != "COMPLETED" or jobs[0].get("status") != "Completed":
            problems.append(f"the job is {jobs[0].get('status')} at Bedrock and its task {tasks[0].get('state')}, not completed")
        if not self.output_file.exists():
            TALLY.lost += len(self.record_ids)
            return problems + [f"no merged output at {self.output_file}"], ""
        lines = [json.loads(line) for line in self.output_file.read_text().splitlines() if line.strip()]
        if [line.get("recordId") for line in lines] != self.record_ids or not all(line.get("modelOutput") for line in lines):
            problems.append(f"{self.output_file.name}: not every record once, in input order, with its modelOutput "
                            f"(first: {[line.get('recordId') for line in lines[:5]]})")
        return problems, f"{len(jobs)} Bedrock job, {len(tasks)} task, {len(lines)} records in input order"

    def cleanup(self) -> None:
        delete_everything_named(PREFIX + self.tag)
        client = s3_client()
        for item in client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix).get("Contents", []):
            client.delete_object(Bucket=self.bucket, Key=item["Key"])


def s3_client():
    # tests/testbed's helper, on the path once ENV is read.
    import s3_object  # noqa: E402  pylint: disable=import-outside-toplevel

    return s3_object.client(ENV)


def bedrock_jobs(name: str) -> list[dict]:
    """The emulator's Bedrock jobs whose name holds ``name`` (ListModelInvocationJobs, signed as AWS wants it)."""
    from botocore.auth import SigV4Auth  # pylint: disable=import-outside-toplevel
    from botocore.awsrequest import AWSRequest  # pylint: disable=import-outside-toplevel
    from botocore.credentials import Credentials  # pylint: disable=import-outside-toplevel

    request = AWSRequest("GET", f"{ENV['BEDROCK_ENDPOINT_URL']}/model-invocation-jobs?nameContains={name}&maxResults=1000")
    SigV4Auth(Credentials(ENV["AWS_ACCESS_KEY_ID"], ENV["AWS_SECRET_ACCESS_KEY"]), "bedrock", ENV["AWS_REGION"]).add_auth(request)
    status, answer = http("GET", request.url, headers=dict(request.headers.items()))
    if status != 200:
        raise ScenarioFailed(f"ListModelInvocationJobs answered {status}: {answer}")
    return answer["invocationJobSummaries"]


# ------------------------------------------------------------------------------------------------
# The fault proxy and the HTTPS front


class Proxy:
    def __init__(self, port: int, upstream: str, tls: tuple[str, str] | None = None):
        self.port = port
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        self.admin = f"http://127.0.0.1:{port}" if not tls else None
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                raise SystemExit(f"reliability: port {port} is in use; set FAULT_PROXY_PORT to a free one")
        command = [sys.executable, str(TESTBED / "fault_proxy.py"), "--port", str(port), "--upstream", upstream, "--lifetime", "3600"]
        if tls:
            command += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"reliability: the proxy on port {port} did not start")
            time.sleep(0.2)

    def plan(self, **plan):
        status, answer = http("POST", self.admin + "/_fault/plan", plan)
        if status != 200:
            raise ScenarioFailed(f"the proxy refused the plan {plan}: {answer}")

    def reset(self):
        http("POST", self.admin + "/_fault/reset", {})

    def stats(self) -> dict:
        return http("GET", self.admin + "/_fault/stats")[1]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def make_certificates(directory: Path) -> dict:
    """A throwaway CA and a server certificate it signs, for 127.0.0.1 and localhost only."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject, issuer, public_key, signing_key, ca, extensions=()):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        for extension in extensions:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reliability suite throwaway CA")])
    ca_cert = certificate(ca_name, ca_name, ca_key.public_key(), ca_key, True,
                          [x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False)])
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), ca_name, server_key.public_key(), ca_key, False,
        [x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])])
    # A second CA that signed nothing here: a ca_path that does not match the server's certificate.
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reliability suite unrelated CA")])
    other_ca = certificate(other_name, other_name, other_key.public_key(), other_key, True)
    paths = {"ca": directory / "ca.pem", "cert": directory / "server.pem", "key": directory / "server.key",
             "cert_other_ca": directory / "other-ca.pem"}
    paths["cert_other_ca"].write_bytes(other_ca.public_bytes(serialization.Encoding.PEM))
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return {name: str(path) for name, path in paths.items()}


# ------------------------------------------------------------------------------------------------
# Scenarios


class Suite:
    def __init__(self, workdir: Path, proxy: Proxy, tls_proxy: Proxy, certs: dict):
        self.workdir, self.proxy, self.tls_proxy, self.certs = workdir, proxy, tls_proxy, certs

    # -- faults ----------------------------------------------------------------------------------

    def fault(self, tag: str, plan: dict, first_run_must_pass: bool, connection=None, min_injected=1):
        """Inject ``plan`` during a first run of the role through the proxy, then re-run without faults:
        the re-run must end ok and the server must hold one group, connector, model and batch job."""
        workload = RoleWorkload(self.workdir, tag)
        names = workload.names
        connection = connection or {}
        self.proxy.reset()
        self.proxy.plan(**plan)
        first = workload.run(self.workdir, self.proxy.url, **connection)
        injected = self.proxy.stats()["injected"]
        self.proxy.reset()
        problems = []
        if injected < min_injected:
            problems.append(f"the fault never happened (injected {injected}): the scenario tested nothing")
        if first_run_must_pass and first.rc != 0:
            problems.append("the run under faults failed:\n" + first.tail())
        # Whatever the first run did, the server must not hold duplicates already.
        for kind, items in chain_objects(names).items():
            if len(items) > 1:
                problems.append(f"after the faulty run: {len(items)} {kind}s")
        standing = [task for task in batch_tasks([model["id"] for model in chain_objects(names)["model"]])
                    if task.get("state") not in CANCELLED_STATES]
        if len(standing) > 1:
            problems.append(f"after the faulty run: {len(standing)} batch jobs")
        rerun = workload.run(self.workdir, self.proxy.url, **connection)
        if rerun.rc != 0:
            problems.append("the re-run failed:\n" + rerun.tail())
        judged, account = workload.judge()
        problems += judged
        again = workload.run(self.workdir, self.proxy.url, **connection)
        if again.rc != 0 or again.changed != 0:
            problems.append(f"a third run did not converge (rc {again.rc}, changed {again.changed}):\n" + again.tail())
        problems += workload.leak_problems()
        workload.cleanup()
        if problems:
            raise ScenarioFailed("; ".join(problems))
        return f"first run rc={first.rc} ({first.seconds:.0f} s), {injected} fault(s), re-run ok, third run changed=0; {account}"

    def s3_fault(self, tag: str, part: int = 2):
        """S3 answers 503 to every attempt at part ``part`` of the input's multipart upload: the run fails with the upload
        aborted, nothing in S3 or the cluster used as input, no job. S3 then answers 503 once: botocore tries again, the
        upload completes, one job runs. A third run changes nothing."""
        proxy = Proxy(int(self.proxy.port) + 2, ENV["AWS_ENDPOINT_URL_S3"])
        try:
            workload = BedrockWorkload(self.workdir, tag, padding=100 * 1024, s3_url=proxy.url)
            plan = {"mode": "status", "status": 503, "method": "PUT", "path": f"[?&]partNumber={part}(&|$)"}
            problems = []
            proxy.plan(count=-1, **plan)
            first = workload.run(self.workdir, ENV["OPENSEARCH_URL"])
            injected = proxy.stats()["injected"]
            left = workload.uploads()
            jobs = bedrock_jobs(workload.stem)
            if first.rc == 0 or injected == 0:
                problems.append(f"the run under a failing part ended rc={first.rc} with {injected} fault(s) injected")
            if left or jobs:
                problems.append(f"the failed upload left {left} in S3 and {len(jobs)} Bedrock job(s)")
            if "503" not in first.output and "SlowDown" not in first.output and "Service Unavailable" not in first.output:
                problems.append("the failure does not say what S3 answered:\n" + first.tail())
            proxy.reset()
            proxy.plan(count=1, **plan)
            second = workload.run(self.workdir, ENV["OPENSEARCH_URL"])
            retried = proxy.stats()["injected"]
            proxy.reset()
            if second.rc != 0 or retried != 1:
                problems.append(f"the run with one 503 ended rc={second.rc} ({retried} injected):\n" + second.tail())
            judged, account = workload.judge()
            problems += judged
            third = workload.run(self.workdir, ENV["OPENSEARCH_URL"])
            if third.rc != 0 or third.changed != 0:
                problems.append(f"a third run did not converge (rc {third.rc}, changed {third.changed}):\n" + third.tail())
            workload.cleanup()
        finally:
            proxy.stop()
        if problems:
            raise ScenarioFailed("; ".join(problems))
        message = re.search(r'"msg": "([^"]*)"', first.output)
        return (f"every attempt at part {part} refused ({injected} 503s): the run failed ({message.group(1) if message else '?'}), nothing "
                f"left in S3, no job; one 503: retried, completed; third run changed=0; {account}")

    # -- restart ---------------------------------------------------------------------------------

    def restart(self, tag: str, kill_when, what: str, tasks_left: tuple[int, int] | None = None, parts: int = 1, per_part: int = 3,
                orphans_allowed: bool = False, workload=None):
        """SIGKILL OpenSearch in the middle of a run of the role, as soon as ``kill_when(stats, memo)``
        is true of the proxy's stats (the routes it passed, the statuses OpenSearch answered); start it
        again on its data, re-run the role. ``tasks_left``: how many batch tasks, at least and at most,
        the kill must have left (else the scenario did not test what it names). ``parts``: the input
        is split into that many parts of ``per_part`` requests. ``orphans_allowed``: a kill during the
        batch POST may leave a batch at the provider without a task (see Tally.judge_batch). ``workload``: another
        than the OpenAI one of ``parts``."""
        workload = workload or RoleWorkload(self.workdir, tag, parts, per_part)
        self.proxy.reset()
        command = playbook_command(self.workdir, workload.plays({"url": self.proxy.url}))
        runner = subprocess.Popen(command, env=playbook_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 300
        killed = False
        memo: dict = {}
        while time.monotonic() < deadline and runner.poll() is None:
            if kill_when(self.proxy.stats(), memo):
                pid = json.loads(STATE_FILE.read_text())["opensearch"]["nodes"][0]["pid"]
                os.killpg(pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.02)
        output = workload.scan(runner.communicate(timeout=300)[0])
        if not killed:
            workload.cleanup()
            raise ScenarioFailed(f"the role never got to the moment to kill ({what}):\n{output[-2000:]}")
        # The JVM, a child of the killed launcher, may hold the port a moment longer.
        port = int(ENV["OPENSEARCH_URL"].rsplit(":", 1)[1])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) != 0:
                    break
            time.sleep(0.2)
        started = time.monotonic()
        up = subprocess.run([sys.executable, str(TESTBED / "testbed.py"), "up"], env=dict(os.environ, TESTBED_KEEP_DATA="1"),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
        if up.returncode != 0:
            raise ScenarioFailed("OpenSearch did not start again:\n" + (up.stdout + up.stderr)[-3000:])
        restart_seconds = time.monotonic() - started
        problems = []
        left = batch_tasks([model["id"] for model in chain_objects(workload.names)["model"]])
        if tasks_left and not tasks_left[0] <= len(left) <= tasks_left[1]:
            problems.append(f"{len(left)} batch task(s) survived the kill, not {tasks_left[0]} to {tasks_left[1]}: it came at another "
                            "moment, so the scenario tested something else")
        rerun = workload.run(self.workdir, self.proxy.url)
        if rerun.rc != 0:
            # ML Commons may need a moment after a restart (its encryption key, the model's nodes); one more try is fair.
            time.sleep(5)
            first_rerun = rerun
            rerun = workload.run(self.workdir, self.proxy.url)
            if rerun.rc != 0:
                problems.append("the re-run after the restart failed twice:\n" + first_rerun.tail(8) + "\n" + rerun.tail())
            else:
                problems.append("the first re-run after the restart failed:\n" + first_rerun.tail(8))
        judged, account = workload.judge(orphans_allowed=orphans_allowed)
        problems += judged + workload.leak_problems()
        workload.cleanup()
        if problems:
            raise ScenarioFailed(f"killed {what} ({len(left)} batch task(s) survived it): " + "; ".join(problems))
        return (f"killed {what} ({len(left)} batch task(s) survived it), back in {restart_seconds:.0f} s, re-run ok in "
                f"{rerun.seconds:.0f} s; {account}")

    # -- concurrency -----------------------------------------------------------------------------

    def concurrency(self, tag: str, runs: int, rounds: int, parts: int = 1, per_part: int = 3):
        """``runs`` runs of the role at once, same names and input (split into ``parts`` parts of
        ``per_part`` requests, in the same parts and download directories), for ``rounds`` rounds (each
        on a fresh input, after the previous round's objects are deleted). Each run merges the output
        into a file of its own, so that each run's is judged."""
        lines = []
        for round_number in range(1, rounds + 1):
            workload = RoleWorkload(self.workdir, tag, parts, per_part)
            merged = [workload.download_dir / f"run-{index + 1}.output.jsonl" for index in range(runs)]
            commands = [playbook_command(self.workdir, workload.plays({"url": ENV["OPENSEARCH_URL"]}, output)) for output in merged]
            uploads_before = emulator_stats()["files_uploaded"]
            started = time.monotonic()
            runners = [subprocess.Popen(command, env=playbook_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True) for command in commands]
            outputs = [workload.scan(runner.communicate(timeout=600)[0]) for runner in runners]
            seconds = time.monotonic() - started
            uploads = emulator_stats()["files_uploaded"] - uploads_before
            problems = [f"run {index + 1} ended with rc {runner.returncode}:\n" + "\n".join(output.splitlines()[-15:])
                        for index, (runner, output) in enumerate(zip(runners, outputs)) if runner.returncode != 0]
            judged, account = workload.judge(merged)
            problems += judged + workload.leak_problems()
            if problems:
                # What the runs decided about their batch jobs, and what OpenSearch holds: for the diagnosis.
                decisions = sorted({line.strip() for output in outputs for line in output.splitlines()
                                    if "this run cancelled its own copy" in line or "cancelling this run's copy" in line})
                tasks = [(task["id"], task.get("state"), task.get("create_time"))
                         for task in batch_tasks([model["id"] for model in chain_objects(workload.names)["model"]])]
                problems.append(f"batch tasks (id, state, create_time): {tasks}; the runs' warnings: {decisions}")
            workload.cleanup()
            if problems:
                raise ScenarioFailed(f"round {round_number}: " + "; ".join(problems))
            lines.append(f"{seconds:.0f} s: {account}; {uploads} upload(s) made, younger copies deleted")
        return f"{rounds} round(s) of {runs} parallel runs of the role, all ok, one of each, {runs} complete outputs ({'; '.join(lines)})"

    # -- ML Commons' limit of batch tasks ------------------------------------------------------

    def task_limit(self, tag: str, limit: int, parts: list[int], per_part: int = 50, copies: int = 1):
        """plugins.ml_commons.max_batch_inference_tasks set to ``limit`` (restored after), and runs of
        the role at once through the proxy, ``copies`` on each input, split into ``parts[i]`` parts
        (copies of a run each merge into an output of their own): ML Commons refuses the submits beyond the limit with 429 until jobs end. Every run must end
        ok with every part's job once and its complete output; ML Commons' active batch tasks,
        sampled while the runs go on, must never exceed the limit, not counting the copies a younger
        run cancelled at once (ML Commons counts the active tasks before it submits, so submits at the
        same moment can all pass its check; the runs converge on the oldest copy); and the proxy must
        have seen 429s (else the scenario tested nothing)."""
        workloads = [RoleWorkload(self.workdir, f"{tag}{index}", count, per_part) for index, count in enumerate(parts)]
        merged = {workload: [workload.download_dir / f"run-{copy + 1}.output.jsonl" for copy in range(copies)] for workload in workloads}
        _status, settings = opensearch("GET", "/_cluster/settings?flat_settings=true")
        previous = (settings.get("persistent") or {}).get(TASK_LIMIT_SETTING)
        samples: list[set[str]] = []
        stop = threading.Event()
        active = {"bool": {"filter": [{"term": {"task_type": BATCH_TASK_TYPE}}, {"terms": {"state": list(ACTIVE_STATES)}}]}}

        def sample():
            # As ML Commons counts them before a submit: stored BATCH_PREDICTION tasks CREATED or RUNNING.
            while not stop.wait(0.3):
                samples.append({task["id"] for task in ml_search("tasks", active)})

        self.proxy.reset()
        status, answer = opensearch("PUT", "/_cluster/settings", {"persistent": {TASK_LIMIT_SETTING: limit}})
        if status != 200:
            raise ScenarioFailed(f"setting {TASK_LIMIT_SETTING} answered {status}: {answer}")
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            plays = [workload.plays({"url": self.proxy.url}, output) for workload, outputs in merged.items() for output in outputs]
            runs = run_playbooks_at_once(self.workdir, [(each, None, ()) for each in plays])
        finally:
            stop.set()
            sampler.join()
            opensearch("PUT", "/_cluster/settings", {"persistent": {TASK_LIMIT_SETTING: previous}})
        answers = self.proxy.stats()["answers"]
        self.proxy.reset()
        refused = sum(count for key, count in answers.items() if re.search(r"^POST /_plugins/_ml/models/[^/]+/_batch_predict 429$", key))
        tasks = batch_tasks([model["id"] for workload in workloads for model in chain_objects(workload.names)["model"]])
        copies_cancelled = {task["id"] for task in tasks if task.get("state") in CANCELLED_STATES
                            or (task.get("state") in ACTIVE_STATES and read_task(task["id"]).get("state") in CANCELLED_STATES)}
        most = max((len(sample) for sample in samples), default=0)
        most_standing = max((len(sample - copies_cancelled) for sample in samples), default=0)
        problems, accounts = [], []
        for workload, outputs in merged.items():
            own_runs = [runs.pop(0) for _output in outputs]
            for run in own_runs:
                workload.scan(run.output)
                if run.rc != 0:
                    problems.append(f"a run of {workload.tag} failed:\n" + run.tail())
            judged, account = workload.judge(outputs)
            problems += judged + workload.leak_problems()
            accounts.append(f"{workload.tag} in {max(run.seconds for run in own_runs):.0f} s: {account}")
            workload.cleanup()
        if not refused:
            problems.append("ML Commons never answered 429: the runs never met the limit, so the scenario tested nothing")
        if not samples or most_standing > limit:
            problems.append(f"{most_standing} batch tasks were active at once, over the limit of {limit} "
                            f"(samples: {[sorted(sample) for sample in samples if len(sample) > limit]})")
        if problems:
            raise ScenarioFailed("; ".join(problems))
        return (f"limit {limit}, {len(workloads) * copies} runs: {refused} submits answered 429, at most {most_standing} job(s) active in "
                f"{len(samples)} samples ({most} counting copies cancelled at once); " + "; ".join(accounts))

    # -- the batch judge itself -----------------------------------------------------------------

    def batch_judge_canary(self, tag: str):
        """Proof that the batch job count can fail: after a clean run of the role, a second job for the
        same input is submitted straight to OpenSearch (the judge must call it a duplicate), then
        cancelled (it must no longer count), then every job is deleted (the judge must call it lost).
        Judged with tallies of its own, so the suite's totals hold only real findings."""
        workload = RoleWorkload(self.workdir, tag)
        try:
            run = workload.run(self.workdir, ENV["OPENSEARCH_URL"])
            if run.rc != 0:
                raise ScenarioFailed("the role failed:\n" + run.tail())
            seen = []

            def judge(expect_lost: int, expect_duplicated: int, step: str):
                tally = Tally()
                problems, account = tally.judge_batch(workload.names, workload)
                seen.append(f"{step}: {account}")
                if (tally.lost, tally.duplicated) != (expect_lost, expect_duplicated) or bool(problems) != bool(expect_lost or expect_duplicated):
                    raise ScenarioFailed(f"{step}: the judge counted lost {tally.lost}, duplicated {tally.duplicated} "
                                         f"(expected {expect_lost}, {expect_duplicated}): {problems}")

            judge(0, 0, "after the role")
            # The merged output's judge, on copies of the role's output: reordered, a line dropped, a line repeated.
            lines = workload.output_file.read_text().splitlines(keepends=True)
            tampered = workload.download_dir / "tampered.output.jsonl"
            for step, content, expected in (("output reordered", lines[1:] + lines[:1], (0, 0)), ("an answer dropped", lines[1:], (1, 0)),
                                            ("an answer repeated", lines + lines[:1], (0, 1))):
                tampered.write_text("".join(content))
                tally = Tally()
                problems = tally.judge_output(tampered, workload.custom_ids)
                if not problems or (tally.lost, tally.duplicated) != expected:
                    raise ScenarioFailed(f"{step}: the output judge counted lost {tally.lost}, duplicated {tally.duplicated} "
                                         f"(expected {expected}): {problems}")
                seen.append(f"{step}: {problems[0]}")
            model_id = chain_objects(workload.names)["model"][0]["id"]
            standing = batch_tasks([model_id])[0]
            status, answer = opensearch("POST", f"/_plugins/_ml/models/{model_id}/_batch_predict",
                                        {"parameters": {"input_file_id": standing["remote_job"]["input_file_id"]}})
            if status != 200 or not answer.get("task_id"):
                raise ScenarioFailed(f"submitting a second job by hand answered {status}: {answer}")
            judge(0, 1, "a second job")
            status, answer = opensearch("POST", f"/_plugins/_ml/tasks/{answer['task_id']}/_cancel")
            if status != 200:
                raise ScenarioFailed(f"cancelling the second job answered {status}: {answer}")
            judge(0, 0, "the second job cancelled")
            settle_and_delete_tasks([model_id])
            judge(1, 0, "every job deleted")
            if workload.leaks:
                raise ScenarioFailed(workload.leak_problems()[0])
        finally:
            workload.cleanup()
        return "; ".join(seen)

    # -- TLS -------------------------------------------------------------------------------------

    def tls(self, tag: str):
        names = chain_names(tag)
        url = self.tls_proxy.url
        problems = []
        without = run_chain(self.workdir, names, url)
        if without.rc == 0 or "TLS verification failed" not in without.output or "Set ca_path" not in without.output:
            problems.append("without ca_path the run did not fail with the TLS message:\n" + without.tail())
        if any(chain_objects(names).values()):
            problems.append("a run that failed TLS verification created something")
        with_ca = run_chain(self.workdir, names, url, ca_path=self.certs["ca"])
        if with_ca.rc != 0:
            problems.append("with ca_path the run failed:\n" + with_ca.tail())
        problems += TALLY.judge_chain(names)
        # The CA as AWX's credential type hands it over: a path in OPENSEARCH_CA_PATH, no option in the play.
        from_env = run_playbook(self.workdir, play(chain_tasks(names), {"url": url}), extra_env={"OPENSEARCH_CA_PATH": self.certs["ca"]})
        if from_env.rc != 0 or from_env.changed != 0:
            problems.append(f"ca_path from OPENSEARCH_CA_PATH: rc {from_env.rc}, changed {from_env.changed}:\n" + from_env.tail())
        insecure = run_chain(self.workdir, names, url, validate_certs=False)
        if insecure.rc != 0 or insecure.changed != 0:
            problems.append(f"validate_certs false: rc {insecure.rc}, changed {insecure.changed}:\n" + insecure.tail())
        if "validate_certs is false" not in insecure.output:
            problems.append("validate_certs false did not warn")
        if "InsecureRequestWarning" in insecure.output:
            problems.append("urllib3's own warning leaked through")
        delete_everything_named(PREFIX + tag)
        if problems:
            raise ScenarioFailed("; ".join(problems))
        return "no ca_path: clear failure, nothing created; ca_path: ok; OPENSEARCH_CA_PATH: ok, no change; validate_certs false: ok and warned"

    # -- secrets ---------------------------------------------------------------------------------

    def secrets(self, tag: str):
        from secrets_scenario import secrets_playbooks  # noqa: E402  (a sibling module of this script)

        found = secrets_playbooks(self, tag)
        delete_everything_named(PREFIX + tag)
        return found

    # -- bad input -------------------------------------------------------------------------------

    def module_races(self, tag: str, rounds: int, racers: int):
        from module_races import run_module_races  # noqa: E402

        return run_module_races(tag, rounds, racers)

    def keep_oldest_race(self, rounds: int, threads: int):
        script = Path(__file__).resolve().parent / "keep_oldest_race.py"
        env = dict(os.environ, PYTHONPATH=os.environ.get("ANSIBLE_COLLECTIONS_PATH", ""))
        done = subprocess.run([sys.executable, str(script), "--rounds", str(rounds), "--threads", str(threads)], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900, check=False)
        summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "no output"
        if done.returncode != 0:
            left = [int(count) for count in re.findall(r"(\d+) connectors left", done.stdout)]
            TALLY.duplicated += sum(count - 1 for count in left if count > 1)
            TALLY.lost += left.count(0)
            raise ScenarioFailed(done.stdout[-3000:])
        return summary

    def bad_input(self, tag: str):
        from bad_input import run_bad_input  # noqa: E402

        return run_bad_input(self, tag)

    def index(self, scenario: str, tag: str):
        import index_scenarios  # noqa: E402  pylint: disable=import-outside-toplevel

        return getattr(index_scenarios, scenario)(self, tag)


def kill_on(pattern: str):
    """Kill as soon as a request whose route matches ``pattern`` reached the proxy (it is forwarded at
    the same moment: OpenSearch may not have it yet, be processing it, or have answered it)."""
    return lambda stats, _memo: any(re.search(pattern, route) for route in stats["requests"])


def kill_on_new(first: str, then: str):
    """Kill when, after a request matching ``first``, a route matching ``then`` shows that was not
    there before it: e.g. the first read of the batch task that ``_batch_predict`` answered with."""
    def check(stats, memo):
        requests = stats["requests"]
        if "after" not in memo:
            if any(re.search(first, route) for route in requests):
                memo["after"] = True
            else:
                memo["before"] = {route for route in requests if re.search(then, route)}
            return False
        return any(re.search(then, route) and route not in memo.get("before", ()) for route in requests)
    return check


def kill_on_answers(*counts: tuple[str, int]):
    """Kill as soon as OpenSearch has answered, for each (pattern, count), ``count`` requests whose
    "METHOD path status" matches ``pattern`` (the proxy counts an answer before passing it on): e.g.
    the first ``_batch_predict`` answered 200, whose task ML Commons stored before answering."""
    def check(stats, _memo):
        answers = stats.get("answers", {})
        return all(sum(seen for key, seen in answers.items() if re.search(pattern, key)) >= count for pattern, count in counts)
    return check


BATCH_ANSWERED = r"^POST /_plugins/_ml/models/[^/]+/_batch_predict 200$"
TASK_READ = r"^GET /_plugins/_ml/tasks/[^/]+ 200$"
SPLIT_PARTS = 3


def scenario_list(quick: bool) -> list[tuple[str, callable]]:
    """(name, function(suite)) in the order they run; ``quick`` is the short form."""
    scenarios = []

    def add(name, function, in_quick=False):
        if in_quick or not quick:
            scenarios.append((name, function))

    add("faults/503-burst", lambda s: s.fault("f503", {"mode": "status", "status": 503, "count": 3}, True), True)
    add("faults/429-burst", lambda s: s.fault("f429", {"mode": "status", "status": 429, "count": 3}, True))
    for kind in ("group", "connector", "model"):
        add(f"faults/drop-before-{kind}-create",
            lambda s, kind=kind: s.fault(f"db{kind}", {"mode": "drop_before", "method": "POST", "path": CREATE_PATHS[kind], "count": 1}, True),
            False)
        add(f"faults/drop-after-{kind}-create",
            lambda s, kind=kind: s.fault(f"da{kind}", {"mode": "drop_after", "method": "POST", "path": CREATE_PATHS[kind], "count": 1}, True))
        add(f"faults/slow-{kind}-create",
            lambda s, kind=kind: s.fault(f"sl{kind}", {"mode": "delay", "delay": SLOW_ANSWER, "method": "POST", "path": CREATE_PATHS[kind],
                                                       "count": 1}, True, {"timeout": SHORT_TIMEOUT}),
            False)
        add(f"faults/503-on-{kind}-create",
            lambda s, kind=kind: s.fault(f"s503{kind}", {"mode": "status", "status": 503, "method": "POST", "path": CREATE_PATHS[kind],
                                                         "count": 1}, False))
    add("faults/drop-after-deploy",
        lambda s: s.fault("dadeploy", {"mode": "drop_after", "method": "POST", "path": r"/_deploy$", "count": 1}, True))
    add("faults/drop-before-any-3",
        lambda s: s.fault("dbany", {"mode": "drop_before", "count": 3}, True))
    add("faults/slow-searches",
        lambda s: s.fault("slsearch", {"mode": "delay", "delay": SLOW_ANSWER, "path": r"/_search$", "count": 2}, True,
                          {"timeout": SHORT_TIMEOUT}, 2))
    # The batch step: POST /_plugins/_ml/models/<id>/_batch_predict, whose processing sends the job to the provider.
    add("faults/drop-before-batch-predict",
        lambda s: s.fault("dbbatch", {"mode": "drop_before", "method": "POST", "path": BATCH_PATH, "count": 1}, True))
    add("faults/drop-after-batch-predict",
        lambda s: s.fault("dabatch", {"mode": "drop_after", "method": "POST", "path": BATCH_PATH, "count": 1}, True), True)
    add("faults/slow-batch-predict",
        lambda s: s.fault("slbatch", {"mode": "delay", "delay": SLOW_ANSWER, "method": "POST", "path": BATCH_PATH, "count": 1}, True,
                          {"timeout": SHORT_TIMEOUT}))
    add("faults/503-on-batch-predict",
        lambda s: s.fault("s503batch", {"mode": "status", "status": 503, "method": "POST", "path": BATCH_PATH, "count": 1}, False))
    add("restart/kill-after-connector-create",
        lambda s: s.restart("rsconn", kill_on(r"^POST /_plugins/_ml/connectors/_create$"), "after the connector create"))
    add("restart/kill-after-model-register",
        lambda s: s.restart("rsmodel", kill_on(r"^POST /_plugins/_ml/models/_register$"), "after the model register"))
    add("restart/kill-during-batch-predict",
        lambda s: s.restart("rsbdur", kill_on(r"^POST /_plugins/_ml/models/[^/]+/_batch_predict$"), "as the batch POST arrived",
                            orphans_allowed=True))
    add("restart/kill-after-batch-predict",
        lambda s: s.restart("rsbaft", kill_on_new(r"^POST /_plugins/_ml/models/[^/]+/_batch_predict$", r"^GET /_plugins/_ml/tasks/"),
                            "after the batch POST was answered (at the new task's first read)", tasks_left=(1, 1)))
    add("faults/s3-503-on-upload-part", lambda s: s.s3_fault("s3part"))
    add("restart/kill-after-batch-predict-bedrock",
        lambda s: s.restart("rsbedrock", kill_on_new(r"^POST /_plugins/_ml/models/[^/]+/_batch_predict$", r"^GET /_plugins/_ml/tasks/"),
                            "after the Bedrock job's batch POST was answered (at the new task's first read)", tasks_left=(1, 1),
                            workload=BedrockWorkload(s.workdir, "rsbedrock")), True)
    # An input the role splits into SPLIT_PARTS parts of 50 requests, a job each, merged in input order.
    add("restart/kill-while-parts-submitted",
        lambda s: s.restart("rspsub", kill_on_answers((BATCH_ANSWERED, 1)), "once the first part's batch POST was answered",
                            tasks_left=(1, SPLIT_PARTS - 1), parts=SPLIT_PARTS, per_part=50))
    add("restart/kill-while-parts-waited-for",
        lambda s: s.restart("rspwait", kill_on_answers((BATCH_ANSWERED, SPLIT_PARTS), (TASK_READ, 1)),
                            "at the first status read after every part was submitted", tasks_left=(SPLIT_PARTS, SPLIT_PARTS),
                            parts=SPLIT_PARTS, per_part=50))
    add("judge/batch-job-canary", lambda s: s.batch_judge_canary("canary"))
    add("concurrency/4-runs", lambda s: s.concurrency("conc", 4, 5))
    # In the short form instead of the one above: the same 4 runs, on an input of parts.
    add("concurrency/4-runs-split", lambda s: s.concurrency("concsplit", 4, 1, parts=SPLIT_PARTS, per_part=50), True)
    add("limits/429-storm", lambda s: s.task_limit("storm", 1, [5, 2]))
    add("limits/429-storm-same-input", lambda s: s.task_limit("stormsame", 1, [4], copies=3))
    add("concurrency/module-races", lambda s: s.module_races("race", 10, 4))
    add("concurrency/keep-oldest-race", lambda s: s.keep_oldest_race(30, 4))
    add("tls/https-front", lambda s: s.tls("tls"), True)
    add("secrets/every-module-vvvv-diff", lambda s: s.secrets("sec"), True)
    add("bad-input/modules", lambda s: s.bad_input("bad"), True)
    # index_batch_input and index_batch_output around a batch job of the emulator (index_scenarios.py).
    add("index/deleted-and-edited-during-job", lambda s: s.index("deleted_and_edited", "idxdel"), True)
    add("index/concurrent-loops", lambda s: s.index("concurrent_loops", "idxconc"))
    add("index/bad-inputs", lambda s: s.index("bad_inputs", "idxbad"), True)
    # Restarts the test bed's node twice (a write pool of one thread and a queue of one, then back): full suite only.
    add("index/bulk-rejections", lambda s: s.index("bulk_rejections", "idxrej"))
    return scenarios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the short form, for make test")
    parser.add_argument("--only", action="append", default=[], help="run the scenarios whose name contains this (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--cluster", action="store_true",
                        help="the cluster scenarios instead (tests/reliability/cluster.py), on a test bed of three nodes")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.cluster:
        import cluster  # pylint: disable=import-outside-toplevel

        scenarios = []
        cluster.scenarios(lambda name, function: scenarios.append((name, function)))
    else:
        scenarios = scenario_list(args.quick)
    if args.only:
        scenarios = [(name, function) for name, function in scenarios if any(part in name for part in args.only)]
    if args.list:
        print("\n".join(name for name, _function in scenarios))
        return 0
    ENV.update(read_env_file())
    port = int(os.environ.get("FAULT_PROXY_PORT", "9290"))
    passed = failed = not_applicable = 0
    suite_started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ml-reliability-") as temporary:
        workdir = Path(temporary)
        certs = make_certificates(workdir)
        proxy = Proxy(port, ENV["OPENSEARCH_URL"])
        tls_proxy = Proxy(port + 1, ENV["OPENSEARCH_URL"], tls=(certs["cert"], certs["key"]))
        suite = Suite(workdir, proxy, tls_proxy, certs)
        try:
            delete_everything_named()
            for name, function in scenarios:
                started = time.monotonic()
                try:
                    detail = function(suite)
                    passed += 1
                    print(f"PASS {name} ({time.monotonic() - started:.1f} s): {detail}", flush=True)
                except NotApplicable as reason:
                    not_applicable += 1
                    print(f"NOT APPLICABLE {name}: {reason} (not run, not counted as passed)", flush=True)
                except ScenarioFailed as error:
                    failed += 1
                    print(f"FAIL {name} ({time.monotonic() - started:.1f} s): {error}", flush=True)
                except Exception:  # a broken scenario is a failure too, with its traceback
                    failed += 1
                    print(f"FAIL {name} ({time.monotonic() - started:.1f} s): the scenario crashed:\n{traceback.format_exc()}", flush=True)
                    try:
                        delete_everything_named()
                    except Exception:  # noqa: BLE001 - best effort; the next scenario will show what is left
                        pass
        finally:
            proxy.stop()
            tls_proxy.stop()
    print(f"reliability: {time.monotonic() - suite_started:.0f} s in all")
    print(f"scenarios run {passed + failed}, resources lost {TALLY.lost}, duplicated {TALLY.duplicated}, secrets leaked {TALLY.leaked}")
    print(f"{passed} passed, {failed} failed" + (f", {not_applicable} not applicable (not run)" if not_applicable else ""))
    if not_applicable and not (passed or failed):
        print("reliability: nothing was tested")
        return NOTHING_TESTED
    return 0 if failed == 0 and not (TALLY.lost or TALLY.duplicated or TALLY.leaked) else 1


if __name__ == "__main__":
    # The scenario modules import this one as "run": let them share its state (ENV, TALLY).
    sys.modules.setdefault("run", sys.modules[__name__])
    sys.exit(main())
