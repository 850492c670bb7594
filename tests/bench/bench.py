#!/usr/bin/env python
"""`make bench`: the collection against a hand-written ``ansible.builtin.uri`` playbook, on the real test bed.

    python tests/bench/bench.py --collections /tmp/ml-commons-collections-XXXX

Brings the test bed up (``make up``; and down again at the end when it was not running before),
puts the counting fault proxy (tests/testbed/fault_proxy.py) between every playbook and OpenSearch,
runs every measurement in this one run and writes a markdown table to stdout (and, after a full
run, to docs/benchmark-results.md) and the full results to tests/output/bench/results.json. Results are ratios of two things measured side by side, so a
slow or busy machine moves both. HTTP requests are the ones the proxy forwarded, never the
client's own count.

Keys (targets in TARGETS):
    first_run_ratio_vs_uri         wall time of the chain group -> connector -> model deployed -> batch
                                   submitted, through the batch_inference role, over the same chain as
                                   uri tasks with an `until` poll; the cluster is emptied before each.
    noop_write_requests            write requests of the role's re-run when everything exists
    noop_requests_per_resource     all requests of that re-run, per resource it manages
    module_overhead_ratio_vs_uri   one ml_model_group_info call over one uri GET of the same group, per
                                   call of a loop of --repeat calls timed from inside ansible-playbook
                                   (callback_plugins/bench_timer.py), so Ansible's start-up is left out
    scale_per_item_ratio_200_vs_10 time per item (a connector and its model: the median item time of each
                                   loop, summed) at the largest size over the smallest, creating;
                                   scale_noop_per_item_ratio_200_vs_10 for the re-run; the *_mean_* keys
                                   use the mean instead (informative: bursts of load move them)
    wait_overshoot_s, wait_polls   a batch job that the emulator completes T seconds after it is created:
                                   how long after that ml_batch_predict returns, and how many status
                                   reads reached OpenSearch
    cluster_first_run_ratio_3_vs_1 the role's first run (the chain of first_run_ratio_vs_uri) on a test bed of three
                                   nodes over the same on one node; cluster_noop_ratio_3_vs_1 the same for its
                                   no-op re-run; fastest of BENCH_ROUNDS runs on each, the cluster emptied before
                                   each first run; the bench switches the test bed to one node, to three, then
                                   back to the shape it found
    cluster_noop_write_requests    write requests of that re-run on three nodes
    volume_upload_ratio_vs_curl    a 190 MB batch input of 50,000 embeddings requests uploaded by openai_file
                                   (ansible-playbook) over the same upload by curl -F, each on an emptied
                                   emulator, fastest of BENCH_ROUNDS alternating rounds. The module's time
                                   is its task's time (bench_timer callback) less that of a no-op task of
                                   the same module just before it in the same playbook (state absent of a
                                   missing file): Ansible's fixed cost for one task
    volume_download_ratio_vs_curl  the same for the output of a batch of that input run by the emulator,
                                   downloaded by openai_file (dest) and by curl -o
    volume_output_bytes            that output's size: 1 GB or more, from embeddings as long as needed (at
                                   least 1,536 dimensions, from the size of one answer of the emulator)
    volume_peak_rss_mb             the module process's peak RSS (GNU time around its interpreter), the
                                   largest of the upload, the download and their re-runs
    volume_rerun_content_bytes     file content moved by the re-run of the upload and of the download, both;
                                   the emulator's byte counters, else its content requests x the file's size
    volume_rerun_requests_per_file requests of the re-run that made more, as the emulator counted them
    volume_batch_overhead_ratio    an input of BENCH_VOLUME_BATCH_LINES embeddings requests (200,000: 4 jobs of
                                   50,000) through the batch_inference role, the emulator running each job for
                                   minutes (its timings set through POST /_emulator/timings): the role's wall time
                                   over the emulator's batch_busy_seconds, the time at least one job was running
    volume_batch_peak_rss_mb       the largest peak RSS of every module process of that run and of its re-run (GNU
                                   time around the interpreter of every module task)
    volume_batch_rerun_paid_requests
                                   what the re-run of the completed run paid for at OpenAI: files uploaded, batches
                                   created and content downloads, counted by the emulator
    index_export_ratio_vs_opensearch_py
                                   BENCH_INDEX_DOCUMENTS documents (100,000; 1,000 bytes of text each) exported by
                                   index_batch_input (its task's time less that of a no-op task of the same module)
                                   over opensearch-py's helpers.scan reading the same field (tests/bench/
                                   index_reference.py, timed in its own process), fastest of BENCH_ROUNDS alternating
    index_write_ratio_vs_opensearch_py
                                   the merged output of those documents' jobs (BENCH_INDEX_DIMENSIONS, 256) written back
                                   by index_batch_output (task time less a no-op task's) over helpers.streaming_bulk
                                   sending the same partial updates to a clone of the index, then a refresh;
                                   index_write_ratio_vs_parallel_bulk the same over parallel_bulk (informative)
    index_peak_rss_mb              the largest peak RSS of an index_batch_input or index_batch_output process
    index_rerun_paid_requests      what the re-run of the whole loop paid for at OpenAI (emulator counters)
    index_rerun_index_ops          the index's indexing.index_total over that re-run
    index_roundtrip_overhead_ratio the whole loop (export, the batch_inference role on the exported input, write-back)
                                   over the emulator's batch_busy_seconds, as volume_batch_overhead_ratio; no target:
                                   it depends on the job length (BENCH_INDEX_JOB_SECONDS in progress, default 60)

Keys that cannot be measured are null, with the reason under "<key>_reason".

Environment: OPENSEARCH_PORT, OPENAI_EMULATOR_PORT, ML_TESTBED_CACHE, OPENSEARCH_VERSION (the test
bed's), FAULT_PROXY_PORT (default 9290), BENCH_SIZES (default "10 50 200"), BENCH_REPEAT (default 30),
BENCH_ROUNDS (default 3: each timed pair is run that many times, alternating, the fastest kept),
BENCH_JOB_SECONDS (default 6), BENCH_POLL_INTERVAL (default 2), BENCH_PHASES (some of "first_run
module_overhead scale wait cluster volume volume_batch index", to run only those while working on one; the table then lacks
the others),
BENCH_VOLUME_LINES (default 50000; 3,800 bytes a line), BENCH_VOLUME_DIMENSIONS (default: as many as an output
of 1 GB needs), BENCH_VOLUME_BATCH_TIMEOUT (default 3600 s), BENCH_VOLUME_KEEP (1 keeps the phase's files in
tests/output/bench/volume and tests/output/bench/volume_batch; they are deleted otherwise); for the volume_batch
phase BENCH_VOLUME_BATCH_LINES (default 200000; 1,000 bytes a line), BENCH_VOLUME_BATCH_REQUESTS_PER_JOB (default
50000, the role's default and OpenAI's limit), BENCH_VOLUME_BATCH_DIMENSIONS (default 256),
BENCH_VOLUME_BATCH_JOB_SECONDS (default 180: each job's in_progress time, after 10 s validating and before 10 s
finalizing), BENCH_VOLUME_BATCH_POLL_INTERVAL (default 2; the role's poll interval and its
back-off ceiling, a steady pace) and BENCH_VOLUME_BATCH_TIMEOUT
(default 3600 s, the role's wait_timeout); for the index phase BENCH_INDEX_DOCUMENTS (default 100000),
BENCH_INDEX_DIMENSIONS (default 256), BENCH_INDEX_REQUESTS_PER_JOB (default 50000), BENCH_INDEX_JOB_SECONDS
(default 60, with 10 s validating and 10 s finalizing), BENCH_INDEX_KEEP (1 keeps its indices and files).
"""

import argparse
import filecmp
import importlib.util
import ipaddress
import json
import math
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import string
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# The latest full run's table, written by the bench itself (a partial run, BENCH_PHASES, leaves it alone).
RESULTS_PAGE = REPO_ROOT / "docs" / "benchmark-results.md"
RESULTS_PAGE_HEAD = (
    "# Benchmark: the latest full run\n\n"
    "Written by `make bench` from `tests/output/bench/results.json`; what each key measures is in [the benchmark page](benchmark.md).\n\n"
)
BENCH_DIR = Path(__file__).resolve().parent
PLAYBOOKS = BENCH_DIR / "playbooks"
OUTPUT_DIR = REPO_ROOT / "tests" / "output" / "bench"
ENV_FILE = REPO_ROOT / ".testbed" / "env"
PROXY_SCRIPT = REPO_ROOT / "tests" / "testbed" / "fault_proxy.py"
BENCH_NAME = "bench"
PROXY_LIFETIME_S = 3600
HTTP_TIMEOUT_S = 60
PLAYBOOK_TIMEOUT_S = 1800

TARGETS = {
    "first_run_ratio_vs_uri": ("<=", 1.0),
    "noop_write_requests": ("<=", 0),
    "noop_requests_per_resource": ("<=", 2),
    "module_overhead_ratio_vs_uri": ("<=", 1.2),
    "scale_per_item_ratio_200_vs_10": ("<=", 1.2),
    "scale_noop_per_item_ratio_200_vs_10": ("<=", 1.2),
    "scale_mean_per_item_ratio_200_vs_10": (None, None),
    "scale_mean_noop_per_item_ratio_200_vs_10": (None, None),
    "wait_overshoot_s": ("<", "poll_interval_s"),
    "wait_polls": (None, None),
    "cluster_first_run_ratio_3_vs_1": (None, None),
    "cluster_noop_ratio_3_vs_1": (None, None),
    "cluster_noop_write_requests": ("<=", 0),
    "volume_upload_ratio_vs_curl": ("<=", 1.2),
    "volume_download_ratio_vs_curl": ("<=", 1.2),
    "volume_peak_rss_mb": ("<=", 100),
    "volume_rerun_content_bytes": ("<=", 0),
    "volume_rerun_requests_per_file": ("<=", 2),
    "volume_output_bytes": (">=", 10 ** 9),
    "volume_batch_overhead_ratio": ("<=", 1.1),
    "volume_batch_peak_rss_mb": ("<=", 100),
    "volume_batch_rerun_paid_requests": ("<=", 0),
    "index_export_ratio_vs_opensearch_py": ("<=", 1.0),
    "index_write_ratio_vs_opensearch_py": ("<=", 1.0),
    "index_peak_rss_mb": ("<=", 100),
    "index_rerun_paid_requests": ("<=", 0),
    "index_rerun_index_ops": ("<=", 0),
    "index_roundtrip_overhead_ratio": (None, None),
}


class BenchError(Exception):
    """A failure that ends the benchmark with one message."""


def say(message):
    print("bench: %s" % message, file=sys.stderr, flush=True)


# -- HTTP -----------------------------------------------------------------------------------------


def http(method, url, body=None, headers=None, raw=None, timeout=HTTP_TIMEOUT_S):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    all_headers = {"Content-Type": "application/json"}
    all_headers.update(headers or {})
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        payload = answer.read()
    return json.loads(payload) if payload else {}


def wait_for(url, what, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            return http("GET", url)
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise BenchError("%s did not answer at %s within %s s" % (what, url, timeout_s))


# -- the cluster ----------------------------------------------------------------------------------


def empty_cluster(opensearch_url):
    """Every model, connector and model group deleted (tests/testbed/reset_ml.py), then the ML
    indices refreshed, so no lookup of the next run sees a deleted object in search results."""
    sys.path.insert(0, str(REPO_ROOT / "tests" / "testbed"))
    import reset_ml  # pylint: disable=import-outside-toplevel

    delete_batch_tasks = reset_ml.delete_batch_tasks

    def tolerant_delete_batch_tasks(base):
        # 2.x's integ-test distribution has no delete-by-query; batch tasks of deleted models harm no run.
        try:
            delete_batch_tasks(base)
        except urllib.error.HTTPError as error:
            say("batch tasks left in place: delete-by-query answered %s" % error.code)

    reset_ml.delete_batch_tasks = tolerant_delete_batch_tasks
    stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        reset_ml.main(opensearch_url)
    finally:
        sys.stdout = stdout
        reset_ml.delete_batch_tasks = delete_batch_tasks
    http("POST", opensearch_url + "/_refresh")


def used_cluster(opensearch_url, openai_base_url):
    """A model group, a connector and a model registered, then every object deleted: a cluster's first
    object of each kind also creates ML Commons' system index for it, a one-off cost of the cluster that a
    phase timing the role's runs leaves out, as the phases before it in a full run do."""
    group = http("POST", opensearch_url + "/_plugins/_ml/model_groups/_register", {"name": "bench used cluster"})
    connector = http("POST", opensearch_url + "/_plugins/_ml/connectors/_create", {
        "name": "bench used cluster", "version": "1", "protocol": "http", "credential": {"openAI_key": "unused"},
        "actions": [{"action_type": "predict", "method": "POST", "url": openai_base_url + "/embeddings", "request_body": "{}"}]})
    http("POST", opensearch_url + "/_plugins/_ml/models/_register", {
        "name": "bench used cluster", "function_name": "remote", "model_group_id": group["model_group_id"],
        "connector_id": connector["connector_id"]})
    empty_cluster(opensearch_url)


class Proxy:
    """The counting proxy in front of OpenSearch, started and stopped by the bench."""

    def __init__(self, port, upstream):
        self.url = "http://127.0.0.1:%d" % port
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                raise BenchError("port %d is taken (another checkout's proxy?): set FAULT_PROXY_PORT to a free port" % port)
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, str(PROXY_SCRIPT), "--port", str(port), "--upstream", upstream, "--lifetime", str(PROXY_LIFETIME_S)],
            stdin=subprocess.DEVNULL,
        )
        wait_for(self.url + "/_fault/stats", "the fault proxy")

    def reset(self):
        http("POST", self.url + "/_fault/reset")

    def stats(self):
        stats = http("GET", self.url + "/_fault/stats")
        writes = 0
        for route, count in stats["requests"].items():
            method, path = route.split(" ", 1)
            if method in ("PUT", "DELETE") or (method == "POST" and not path.endswith("/_search")):
                writes += count
        return {"requests": stats["forwarded"], "writes": writes, "routes": stats["requests"]}

    def stop(self):
        try:
            http("POST", self.url + "/_fault/stop")
            self.process.wait(timeout=10)
        except (urllib.error.URLError, OSError, subprocess.TimeoutExpired):
            self.process.terminate()
            self.process.wait(timeout=10)


# -- playbooks ------------------------------------------------------------------------------------


class Runner:
    """Runs the bench's playbooks with ansible-playbook against the collection copy of `make collection`."""

    def __init__(self, collections, variables):
        self.collections = collections
        self.variables = variables
        self.runs = 0
        self.logs = OUTPUT_DIR / "logs"
        shutil.rmtree(self.logs, ignore_errors=True)
        self.logs.mkdir(parents=True)

    def run(self, playbook, label, check=True, **extra):
        """Run one playbook; returns its wall time, its tasks' times and whether it succeeded."""
        self.runs += 1
        stem = "%02d-%s" % (self.runs, label)
        timer_file = self.logs / (stem + ".tasks.jsonl")
        vars_file = self.logs / (stem + ".vars.json")
        vars_file.write_text(json.dumps(dict(self.variables, **extra)))
        vars_file.chmod(0o600)
        env = dict(
            os.environ,
            ANSIBLE_COLLECTIONS_PATH=str(self.collections),
            ANSIBLE_CALLBACK_PLUGINS=str(BENCH_DIR / "callback_plugins"),
            ANSIBLE_CALLBACKS_ENABLED="bench_timer",
            BENCH_TIMER_FILE=str(timer_file),
            ANSIBLE_LOCALHOST_WARNING="false",
            ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
            ANSIBLE_NOCOLOR="true",
        )
        command = [str(Path(sys.executable).parent / "ansible-playbook"), str(PLAYBOOKS / playbook), "-e", "@%s" % vars_file]
        started = time.monotonic()
        with (self.logs / (stem + ".log")).open("w") as log:
            completed = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       timeout=PLAYBOOK_TIMEOUT_S, check=False)
        wall = time.monotonic() - started
        tasks = [json.loads(line) for line in timer_file.read_text().splitlines()] if timer_file.exists() else []
        for task in tasks:
            task["seconds"] = round(task["end"] - task["start"], 3)
        ok = completed.returncode == 0
        say("%-28s %6.2f s %s" % (stem, wall, "ok" if ok else "FAILED (see %s)" % (self.logs / (stem + ".log"))))
        if check and not ok:
            raise BenchError("%s failed; see %s" % (playbook, self.logs / (stem + ".log")))
        return {"wall_s": round(wall, 3), "tasks": tasks, "ok": ok, "log": str(self.logs / (stem + ".log"))}


def task_seconds(run, *names):
    return sum(task["seconds"] for task in run["tasks"] if task["name"] in names)


def step_times(run):
    return [{"task": task["name"], "seconds": task["seconds"], "items": task["items"]} for task in run["tasks"]]


def log_tail(run, lines=15):
    return "\n".join(Path(run["log"]).read_text(errors="replace").splitlines()[-lines:])


# -- the measurements -----------------------------------------------------------------------------


def openai_actions(base_url, timed=False):
    """The role's OpenAI embedding connector actions (roles/batch_inference/vars/main.yml); ``timed``
    adds the emulator's per-batch timings to the batch request, from the ``job_seconds`` parameter."""
    auth = {"Authorization": "Bearer ${credential.openAI_key}"}
    batch_body = '{ "input_file_id": "${parameters.input_file_id}", "endpoint": "${parameters.endpoint}", "completion_window": "24h" }'
    if timed:
        batch_body = (
            '{ "input_file_id": "${parameters.input_file_id}", "endpoint": "${parameters.endpoint}", "completion_window": "24h", '
            '"metadata": { "emulator_validating_seconds": "0", "emulator_in_progress_seconds": "${parameters.job_seconds}", '
            '"emulator_finalizing_seconds": "0" } }'
        )
    return [
        {"action_type": "predict", "method": "POST", "url": base_url + "/embeddings", "headers": auth,
         "request_body": '{ "input": ${parameters.input}, "model": "${parameters.model}" }',
         "pre_process_function": "connector.pre_process.openai.embedding",
         "post_process_function": "connector.post_process.openai.embedding"},
        {"action_type": "batch_predict", "method": "POST", "url": base_url + "/batches", "headers": auth, "request_body": batch_body},
        {"action_type": "batch_predict_status", "method": "GET", "url": base_url + "/batches/${parameters.id}", "headers": auth},
        {"action_type": "cancel_batch_predict", "method": "POST", "url": base_url + "/batches/${parameters.id}/cancel", "headers": auth},
    ]


def upload_input_file(base_url, api_key, lines=20):
    """A batch input file on the emulator, uploaded once for every batch job of the bench."""
    content = "".join(
        json.dumps({"custom_id": "request-%d" % number, "method": "POST", "url": "/v1/embeddings",
                    "body": {"model": "text-embedding-ada-002", "input": "benchmark line %d" % number}}) + "\n"
        for number in range(lines)
    )
    boundary = "bench%s" % secrets.token_hex(8)
    body = (
        "--{b}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
        "--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.jsonl\"\r\n"
        "Content-Type: application/jsonl\r\n\r\n{c}\r\n--{b}--\r\n"
    ).format(b=boundary, c=content).encode()
    answer = http("POST", base_url + "/files", raw=body,
                  headers={"Authorization": "Bearer " + api_key, "Content-Type": "multipart/form-data; boundary=" + boundary})
    return answer["id"]


def pairwise(opensearch_url, first, second, rounds):
    """Run two timed callables alternately ``rounds`` times on an emptied cluster; keep each one's fastest run."""
    results = {"first": [], "second": []}
    for round_number in range(rounds):
        order = (("first", first), ("second", second)) if round_number % 2 == 0 else (("second", second), ("first", first))
        for key, measure in order:
            empty_cluster(opensearch_url)
            results[key].append(measure())
    return min(results["first"], key=lambda run: run["wall_s"]), min(results["second"], key=lambda run: run["wall_s"]), results


LOOPBACK_REASON = (
    "ML Commons reads a batch job's status through connector code that ignores "
    "plugins.ml_commons.connector.private_ip_enabled, so it refuses a provider on a loopback or private address (the "
    "OpenAI emulator here listens on %s; the test bed's default, the emulator in a network namespace of its "
    "own on 198.18.x.2, avoids that; OPENAI_EMULATOR_HOST=127.0.0.1 keeps all traffic on 127.0.0.0/8)"
)


def status_readable(base_url):
    """Whether ML Commons can read batch jobs' status from the emulator: not when it is on a private address."""
    host = urllib.parse.urlsplit(base_url).hostname or ""
    try:
        address = ipaddress.ip_address(socket.gethostbyname(host))
    except (OSError, ValueError):
        return True
    return not (address.is_loopback or address.is_private or address.is_link_local) or address in ipaddress.ip_network("198.18.0.0/15")


def measure_first_run(runner, proxy, opensearch_url, chain, rounds):
    """first_run_ratio_vs_uri, and the no-op re-run right after each first run of ours.

    ``chain`` says which playbook is ours (the role, else the modules), whether the batch step
    exists (``batch``), and whether its re-run can work here (``batch_rerun``: a re-run reads
    the job's status through ML Commons).
    """
    noops = []

    def ours():
        proxy.reset()
        first = runner.run(chain["playbook"], "first-run-ours", bench_batch=chain["batch"])
        first["http"] = proxy.stats()
        proxy.reset()
        again = runner.run(chain["playbook"], "noop-ours", check=False, bench_batch=chain["batch_rerun"])
        again["http"] = proxy.stats()
        noops.append(again)
        return first

    def uri():
        proxy.reset()
        run = runner.run("chain_uri.yml", "first-run-uri", bench_batch=chain["batch"])
        run["http"] = proxy.stats()
        return run

    best_ours, best_uri, _all = pairwise(opensearch_url, ours, uri, rounds)
    noop = noops[-1]
    resources = 4 if chain["batch_rerun"] else 3
    result = {
        "first_run_ratio_vs_uri": round(best_ours["wall_s"] / best_uri["wall_s"], 3),
        "first_run_ours_s": best_ours["wall_s"],
        "first_run_uri_s": best_uri["wall_s"],
        "first_run_ours_requests": best_ours["http"]["requests"],
        "first_run_uri_requests": best_uri["http"]["requests"],
        "first_run_includes_batch": chain["batch"],
        "first_run_ours_playbook": chain["playbook"],
        "noop_resources": resources,
        "noop_ok": noop["ok"],
        "noop_routes": noop["http"]["routes"],
        "steps": {"first_run_ours": step_times(best_ours), "first_run_uri": step_times(best_uri), "noop_ours": step_times(noop)},
    }
    if chain["playbook"] != "chain_role.yml":
        result["first_run_note"] = ("the batch_inference role is not in this collection: ours is the same chain through the "
                                    "modules (tests/bench/playbooks/chain_modules.yml)")
    if not chain["batch"]:
        result["first_run_note"] = "ml_batch_predict is not in this collection: both sides stop at the deployed model"
    if chain["batch"] and not chain["batch_rerun"]:
        result["noop_note"] = "the re-run leaves the batch step out (3 resources): " + chain["loopback_reason"]
    if noop["ok"]:
        result["noop_write_requests"] = noop["http"]["writes"]
        result["noop_requests_per_resource"] = round(noop["http"]["requests"] / float(resources), 2)
    else:
        reason = "the re-run failed: %s" % log_tail(noop, 6)
        result.update(noop_write_requests=None, noop_requests_per_resource=None,
                      noop_write_requests_reason=reason, noop_requests_per_resource_reason=reason)
    return result


def measure_cluster(runner, proxy, opensearch_url, chain, rounds, make_env):
    """cluster_*: the role's first run and no-op re-run on one node and on three (the proxy's upstream, node 0,
    keeps its URL); the test bed is back in the shape it had when the phase ends."""
    best = {}
    try:
        for nodes in (1, 3):
            make("up", dict(make_env, OPENSEARCH_NODES=str(nodes)))
            lift_batch_task_cap(opensearch_url)
            for _round in range(rounds):
                empty_cluster(opensearch_url)
                for step, batch in (("first_run", chain["batch"]), ("noop", chain["batch_rerun"])):
                    proxy.reset()
                    run = runner.run(chain["playbook"], "cluster-%d-%s" % (nodes, step), check=False, bench_batch=batch)
                    run["http"] = proxy.stats()
                    if not run["ok"]:
                        reason = "the %s on %d node(s) failed: %s" % (step.replace("_", " "), nodes, log_tail(run, 6))
                        return {key: None for key in CLUSTER_KEYS} | {key + "_reason": reason for key in CLUSTER_KEYS}
                    if (nodes, step) not in best or run["wall_s"] < best[nodes, step]["wall_s"]:
                        best[nodes, step] = run
    finally:
        make("up", make_env)
        lift_batch_task_cap(opensearch_url)
    return {
        "cluster_first_run_ratio_3_vs_1": round(best[3, "first_run"]["wall_s"] / best[1, "first_run"]["wall_s"], 3),
        "cluster_noop_ratio_3_vs_1": round(best[3, "noop"]["wall_s"] / best[1, "noop"]["wall_s"], 3),
        "cluster_noop_write_requests": best[3, "noop"]["http"]["writes"],
        "cluster_runs": {"%s_%d_nodes" % (step, nodes): {"wall_s": run["wall_s"], "requests": run["http"]["requests"]}
                         for (nodes, step), run in best.items()},
        "steps": {"cluster_%s_%d_nodes" % (step, nodes): step_times(run) for (nodes, step), run in best.items()},
    }


CLUSTER_KEYS = ("cluster_first_run_ratio_3_vs_1", "cluster_noop_ratio_3_vs_1", "cluster_noop_write_requests")


def lift_batch_task_cap(opensearch_url):
    """Batch tasks that ML Commons cannot poll (emulator on a loopback address) stay "running", and 2.x's
    integ-test distribution cannot delete them: lift the cap of 10 (to its maximum) so that they do not block a submit.
    Transient settings outrank persistent ones, so restore_batch_task_cap puts it back at the end: the integration
    tests that set their own limit (persistent) may run on this test bed next."""
    http("PUT", opensearch_url + "/_cluster/settings", {"transient": {"plugins.ml_commons.max_batch_inference_tasks": 500}})


def restore_batch_task_cap(opensearch_url):
    try:
        http("PUT", opensearch_url + "/_cluster/settings", {"transient": {"plugins.ml_commons.max_batch_inference_tasks": None}})
    except (urllib.error.URLError, OSError) as error:
        say("plugins.ml_commons.max_batch_inference_tasks left at 500 (transient): %s" % error)


def measure_overhead(runner, proxy, opensearch_url, repeat, rounds):
    empty_cluster(opensearch_url)
    group_id = http("POST", opensearch_url + "/_plugins/_ml/model_groups/_register",
                    {"name": "%s overhead group" % BENCH_NAME, "description": "looked up by the overhead measurement"})["model_group_id"]
    per_call = {"info": [], "uri": []}
    requests = {}
    for round_number in range(rounds):
        order = ("info", "uri") if round_number % 2 == 0 else ("uri", "info")
        for side in order:
            proxy.reset()
            run = runner.run("overhead_%s.yml" % side, "overhead-%s" % side, bench_model_group_id=group_id, bench_repeat=repeat)
            per_call[side].append(task_seconds(run, "Looped lookup") / repeat)
            requests[side] = proxy.stats()["requests"] / float(repeat + 1)
    info, uri = min(per_call["info"]), min(per_call["uri"])
    return {
        "module_overhead_ratio_vs_uri": round(info / uri, 3),
        "module_overhead_method": (
            "one task looping %d times over the same GET of one model group, timed from inside ansible-playbook by the "
            "bench_timer callback (task start to its last item), after a warm-up task; fastest of %d alternating rounds"
            % (repeat, rounds)
        ),
        "module_overhead_info_per_call_s": round(info, 4),
        "module_overhead_uri_per_call_s": round(uri, 4),
        "module_overhead_requests_per_call": {"info": round(requests["info"], 2), "uri": round(requests["uri"], 2)},
    }


def item_durations(task):
    """How long each item of a looped task took: from the task's start, or the previous item's end, to its end."""
    ends = task.get("item_ends") or []
    return [end - begin for begin, end in zip([task["start"]] + ends, ends)]


def measure_scale(runner, proxy, opensearch_url, sizes):
    """Per item, a connector and its model: the median item time of each loop, summed.

    The median, because this machine's other processes stretch a few items now and then (a burst
    moves the mean of a 10-item loop far more than that of a 200-item one), and the first item of
    each loop also carries Ansible's one-off packaging of the module. The mean is kept too, and
    how the first and last tenth of each loop compare, which shows any cost that grows with the
    number of objects.
    """
    rows = []
    for count in sizes:
        empty_cluster(opensearch_url)
        row = {"items": count}
        for phase in ("create", "noop"):
            proxy.reset()
            run = runner.run("scale.yml", "scale-%d-%s" % (count, phase), bench_count=count)
            http_stats = proxy.stats()
            looped = [task for task in run["tasks"] if task["name"] in ("Connectors", "Models")]
            median_item, drift = 0.0, {}
            for task in looped:
                durations = item_durations(task)
                median_item += statistics.median(durations)
                tenth = max(len(durations) // 10, 1)
                drift[task["name"]] = {"median_item_s": round(statistics.median(durations), 3),
                                       "first_tenth_mean_s": round(sum(durations[:tenth]) / tenth, 3),
                                       "last_tenth_mean_s": round(sum(durations[-tenth:]) / tenth, 3)}
            row[phase] = {
                "per_item_s": round(median_item, 4),
                "mean_per_item_s": round(sum(task["seconds"] for task in looped) / count, 4),
                "wall_s": run["wall_s"],
                "requests_per_item": round(http_stats["requests"] / float(count), 2),
                "writes": http_stats["writes"],
                "loops": drift,
            }
        rows.append(row)
    smallest, largest = rows[0], rows[-1]
    key = "%d_vs_%d" % (largest["items"], smallest["items"])
    result = {"scale": rows, "scale_sizes": sizes}
    for phase, name in (("create", "scale_per_item_ratio_200_vs_10"), ("noop", "scale_noop_per_item_ratio_200_vs_10")):
        result[name] = round(largest[phase]["per_item_s"] / smallest[phase]["per_item_s"], 3)
        result[name.replace("scale_", "scale_mean_", 1)] = round(largest[phase]["mean_per_item_s"] / smallest[phase]["mean_per_item_s"], 3)
        if key != "200_vs_10":
            result[name + "_note"] = "measured %s (BENCH_SIZES)" % key
    return result


class BatchWatcher(threading.Thread):
    """Polls the emulator's own counter of created batches, to know when the job was created."""

    def __init__(self, stats_url, timeout_s):
        super().__init__(daemon=True)
        self.stats_url = stats_url
        self.timeout_s = timeout_s
        self.before = http("GET", stats_url)["batches_created"]
        self.created_at = None
        self.done = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.timeout_s
        while not self.done.is_set() and time.monotonic() < deadline:
            if http("GET", self.stats_url)["batches_created"] > self.before:
                self.created_at = time.time()
                return
            time.sleep(0.05)


def measure_wait(runner, proxy, opensearch_url, env, job_seconds, poll_interval):
    if not status_readable(env["OPENAI_BASE_URL"]):
        reason = "no batch job can be waited for on this test bed: " + LOOPBACK_REASON % env["OPENAI_BASE_URL"]
        return {"wait_overshoot_s": None, "wait_polls": None, "wait_overshoot_s_reason": reason, "wait_polls_reason": reason,
                "wait_job_seconds": job_seconds, "wait_poll_interval_s": poll_interval}
    empty_cluster(opensearch_url)
    emulator_root = env["OPENAI_BASE_URL"].rsplit("/v1", 1)[0]
    watcher = BatchWatcher(emulator_root + "/_emulator/stats", PLAYBOOK_TIMEOUT_S)
    watcher.start()
    proxy.reset()
    run = runner.run("wait.yml", "wait", check=False, bench_job_seconds=job_seconds, bench_poll_interval=poll_interval,
                     bench_output_dir=str(runner.logs))
    watcher.done.set()
    watcher.join(timeout=5)
    http_stats = proxy.stats()
    polls = sum(count for route, count in http_stats["routes"].items() if route.startswith("GET /_plugins/_ml/tasks/"))
    result = {"wait_job_seconds": job_seconds, "wait_poll_interval_s": poll_interval, "wait_routes": http_stats["routes"],
              "steps": {"wait": step_times(run)}}
    waited = [task for task in run["tasks"] if task["name"] == "Batch job, waited for"]
    if not run["ok"] or not waited or watcher.created_at is None:
        reason = "the wait run failed: %s" % log_tail(run, 6)
        if "private ip address" in reason:
            reason = "no batch job can be waited for on this test bed: " + LOOPBACK_REASON % env["OPENAI_BASE_URL"]
        result.update(wait_overshoot_s=None, wait_polls=None, wait_overshoot_s_reason=reason, wait_polls_reason=reason)
        return result
    result["wait_overshoot_s"] = round(waited[0]["end"] - (watcher.created_at + job_seconds), 3)
    result["wait_polls"] = polls
    return result


# -- volume ---------------------------------------------------------------------------------------

VOLUME_DIR = OUTPUT_DIR / "volume"
VOLUME_LINE_BYTES = 3800  # 50,000 lines make a 190 MB input, each line about 3.7 KB of text
VOLUME_MODEL = "text-embedding-3-small"
VOLUME_DEFAULT_DIMENSIONS = 1536  # text-embedding-3-small's own length
VOLUME_MAX_DIMENSIONS = 3072  # OpenAI's widest embedding, and the emulator's limit
VOLUME_OUTPUT_GOAL_BYTES = 10 ** 9
# What a batch output line adds around its embeddings answer: its id, custom_id, status, request_id and error.
VOLUME_OUTPUT_ENVELOPE_BYTES = 160
VOLUME_POLL_INTERVAL_S = 1
GNU_TIME = "/usr/bin/time"


class Emulator:
    """The test bed's OpenAI emulator: its API with the test bed's key, and its admin routes (stats, reset)."""

    def __init__(self, env):
        self.base_url = env["OPENAI_BASE_URL"]
        self.api_key = env["OPENAI_API_KEY"]
        self.admin_url = self.base_url.rsplit("/v1", 1)[0] + "/_emulator"
        self.headers = {"Authorization": "Bearer " + self.api_key}

    def api(self, method, path, body=None, timeout=HTTP_TIMEOUT_S):
        return http(method, self.base_url + path, body, headers=self.headers, timeout=timeout)

    def reset(self):
        http("POST", self.admin_url + "/reset")

    def stats(self):
        return http("GET", self.admin_url + "/stats")


def volume_request(custom_id, text, dimensions):
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings",
            "body": {"model": VOLUME_MODEL, "input": text, "dimensions": dimensions}}


def write_volume_input(path, lines, dimensions, line_bytes=VOLUME_LINE_BYTES):
    """The batch input, written line by line (never whole in memory), ``line_bytes`` a line: the line's
    custom_id, then a slice of a pool of random words, so that no two inputs are the same. Returns its size."""
    generator = random.Random(0)  # the same input on every run
    pool = " ".join("".join(generator.choices(string.ascii_lowercase, k=generator.randint(2, 10)))
                    for _word in range(VOLUME_LINE_BYTES))
    with path.open("w", encoding="ascii") as out:
        for number in range(lines):
            custom_id = "r-%d" % number
            length = line_bytes - len(json.dumps(volume_request(custom_id, custom_id + " ", dimensions))) - 1
            start = number * 7919 % (len(pool) - length)
            out.write(json.dumps(volume_request(custom_id, custom_id + " " + pool[start:start + length], dimensions)) + "\n")
    return path.stat().st_size


def volume_dimensions(emulator, lines):
    """The embedding length that makes the batch output VOLUME_OUTPUT_GOAL_BYTES or more, from the size of one
    embeddings answer of the emulator at the default length (its number format sets the size), with 2 % to spare;
    at least the default, at most VOLUME_MAX_DIMENSIONS."""
    body = json.dumps(volume_request("r-0", "x" * (VOLUME_LINE_BYTES - 200), VOLUME_DEFAULT_DIMENSIONS)["body"]).encode()
    request = urllib.request.Request(emulator.base_url + "/embeddings", data=body, method="POST",
                                     headers=dict(emulator.headers, **{"Content-Type": "application/json"}))
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as answer:
        line_bytes = len(answer.read()) + VOLUME_OUTPUT_ENVELOPE_BYTES
    wanted = VOLUME_DEFAULT_DIMENSIONS * 1.02 * VOLUME_OUTPUT_GOAL_BYTES / (line_bytes * lines)
    return min(VOLUME_MAX_DIMENSIONS, max(VOLUME_DEFAULT_DIMENSIONS, int(math.ceil(wanted)))), line_bytes


def check_free_space(needed_bytes, what, directory=VOLUME_DIR):
    free = shutil.disk_usage(directory).free
    if free < needed_bytes:
        raise BenchError("the volume phases need %.1f GB for %s in %s; %.1f GB is free"
                         % (needed_bytes / 1e9, what, directory, free / 1e9))


def peak_rss_interpreter(directory):
    """The interpreter of a phase's module tasks: the real one under GNU time, which appends a line to
    $VOLUME_RSS_FILE for each module process: its peak RSS in KB and its command line. ansible-core runs a module
    inside the AnsiballZ process it starts with this interpreter, and GNU time forks that process from itself (a
    small process), so the figure is the module's own peak: neither ansible-playbook's, nor a parent's pages
    counted at fork."""
    wrapper = directory / "python-peak-rss"
    wrapper.write_text('#!/bin/sh\nexec %s -f "%%M %%C" -a -o "$VOLUME_RSS_FILE" %s "$@"\n' % (GNU_TIME, sys.executable))
    wrapper.chmod(0o755)
    return wrapper


def module_peaks(path):
    """Each module process's peak RSS in MB and its module's name, from a $VOLUME_RSS_FILE. GNU time writes
    "Command exited with non-zero status N" before a line when the module failed."""
    peaks = []
    for line in path.read_text().splitlines():
        kilobytes, _space, command = line.partition(" ")
        if kilobytes.isdigit():
            module = re.search(r"AnsiballZ_(\w+)\.py", command)
            peaks.append((round(int(kilobytes) / 1024.0, 1), module.group(1) if module else command))
    return peaks


def peak_rss_mb(path):
    return max(mb for mb, _module in module_peaks(path))


def run_openai_file(runner, label, fixed_cost, **target):
    """One volume_file.yml run: the module task's time (task start to end, by the bench_timer callback), its peak
    RSS, and whether it reported a change. With ``fixed_cost``, also the time of the no-op task of the same module
    run just before it, and ``seconds``: the moving task's time less that, Ansible's fixed cost for one task."""
    run_dir = VOLUME_DIR / label
    run_dir.mkdir()
    run = runner.run("volume_file.yml", label, bench_volume_run_dir=str(run_dir), bench_volume_fixed_cost=fixed_cost, **target)
    moved = task_seconds(run, "File moved")
    returned = json.loads((run_dir / "moved.json").read_text())
    step = {"task_s": round(moved, 3), "rss_mb": peak_rss_mb(run_dir / "moved.rss"), "changed": returned["changed"],
            "file_id": returned["file_id"], "wall_s": run["wall_s"]}
    if fixed_cost:
        fixed = task_seconds(run, "Fixed cost")
        step.update(fixed_cost_s=round(fixed, 3), seconds=round(moved - fixed, 3), noop_rss_mb=peak_rss_mb(run_dir / "fixed-cost.rss"))
    return step


def rerun_traffic(before, after, file_bytes):
    """Requests and content bytes between two emulator stats. Content bytes come from the emulator's counters
    (file_bytes_uploaded, file_bytes_downloaded); an emulator without them has them counted from the requests that
    move a file's content whole (uploads, content downloads), each as ``file_bytes``, the size of the one file that
    the re-run is about (openai_file before its streaming rewrite compared by downloading files of that size)."""
    routes = {route: count - before["requests"].get(route, 0) for route, count in after["requests"].items()}
    routes = {route: count for route, count in routes.items() if count}
    if "file_bytes_uploaded" in after and "file_bytes_downloaded" in after:
        content_bytes = sum(after[counter] - before.get(counter, 0) for counter in ("file_bytes_uploaded", "file_bytes_downloaded"))
        counted_by = "the emulator's byte counters"
    else:
        content_bytes = file_bytes * (routes.get("POST /v1/files", 0) + routes.get("GET /v1/files/{id}/content", 0))
        counted_by = "content requests x file size (the emulator has no byte counters)"
    return {"requests": sum(routes.values()), "routes": routes, "content_bytes": content_bytes, "content_counted_by": counted_by}


def curl(emulator, *arguments):
    """curl's wall time and output; its command line is the one a user would type."""
    started = time.monotonic()
    command = ["curl", "-sS", "-H", "Authorization: " + emulator.headers["Authorization"]] + list(arguments)
    completed = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL, timeout=PLAYBOOK_TIMEOUT_S, check=False)
    seconds = time.monotonic() - started
    if completed.returncode != 0:
        raise BenchError("curl %s failed: %s" % (arguments[-1], completed.stderr.decode(errors="replace").strip()))
    return round(seconds, 3), completed.stdout


def completed_batch(emulator, input_file_id, timeout_s):
    """A batch of the whole input, with the emulator's timings set to 0 in its metadata, polled until it ends.
    The emulator before its files-on-disk rewrite ran a whole batch inside one status read, hence a read timeout
    as long as the wait."""
    zero = {"emulator_validating_seconds": "0", "emulator_in_progress_seconds": "0", "emulator_finalizing_seconds": "0"}
    batch = emulator.api("POST", "/batches", {"input_file_id": input_file_id, "endpoint": "/v1/embeddings",
                                              "completion_window": "24h", "metadata": zero})
    deadline = time.monotonic() + timeout_s
    while batch["status"] not in ("completed", "failed", "expired", "cancelled"):
        if time.monotonic() > deadline:
            raise BenchError("the volume batch %s is still %s after %d s (BENCH_VOLUME_BATCH_TIMEOUT)"
                             % (batch["id"], batch["status"], timeout_s))
        time.sleep(VOLUME_POLL_INTERVAL_S)
        batch = emulator.api("GET", "/batches/" + batch["id"], timeout=timeout_s)
    if batch["status"] != "completed" or not batch.get("output_file_id"):
        raise BenchError("the volume batch ended %s: %s"
                         % (batch["status"], json.dumps(batch.get("errors") or batch.get("request_counts"))))
    return batch


def measure_volume(runner, env, settings):
    """volume_*: a large batch input uploaded, and a large batch output downloaded, by openai_file and by curl.

    Runs last: it empties the emulator (POST /_emulator/reset), which forgets the other phases' input file, and
    empties it again at the end to free what it holds of the output. Its files are deleted at the end unless
    ``settings["keep"]``.
    """
    shutil.rmtree(VOLUME_DIR, ignore_errors=True)
    VOLUME_DIR.mkdir(parents=True)
    emulator = Emulator(env)
    try:
        return volume_steps(runner, emulator, settings)
    finally:
        emulator.reset()
        if not settings["keep"]:
            shutil.rmtree(VOLUME_DIR, ignore_errors=True)


def alternating(rounds, module_side, curl_side):
    """Each side run ``rounds`` times, the module first in even rounds and curl first in odd ones; each side's runs."""
    runs = {"module": [], "curl": []}
    for round_number in range(rounds):
        order = [("module", module_side), ("curl", curl_side)]
        for side, measure in order if round_number % 2 == 0 else reversed(order):
            runs[side].append(measure(round_number))
    return runs


def volume_steps(runner, emulator, settings):
    lines = settings["lines"]
    emulator.reset()
    dimensions, expected_line_bytes = volume_dimensions(emulator, lines)
    if settings["dimensions"]:
        dimensions = settings["dimensions"]
    expected_output_bytes = lines * expected_line_bytes * dimensions // VOLUME_DEFAULT_DIMENSIONS
    # The input, the module's download, its temporary copy while it downloads, and curl's download.
    check_free_space(lines * VOLUME_LINE_BYTES + 3 * expected_output_bytes, "the input and three copies of the output")
    input_path = VOLUME_DIR / "input.jsonl"
    started = time.monotonic()
    input_bytes = write_volume_input(input_path, lines, dimensions)
    say("volume: %d lines, %.1f MB, %d dimensions (%.1f s)" % (lines, input_bytes / 1e6, dimensions, time.monotonic() - started))
    module_vars = {"bench_volume_interpreter": str(peak_rss_interpreter(VOLUME_DIR))}
    reruns = {}
    last_upload = {}  # the emulator holds this file alone after the uploads: the batch's input

    # Each upload on an empty emulator: openai_file finds an earlier upload of the same content and does not upload.
    def module_upload(round_number):
        emulator.reset()
        step = run_openai_file(runner, "volume-upload-%d" % round_number, True, bench_volume_src=str(input_path), **module_vars)
        if round_number == 0:  # the re-run, while the emulator holds the module's own upload
            before = emulator.stats()
            reruns["upload"] = run_openai_file(runner, "volume-upload-rerun", False, bench_volume_src=str(input_path), **module_vars)
            reruns["upload"].update(rerun_traffic(before, emulator.stats(), input_bytes))
        last_upload["id"] = step["file_id"]
        return step

    def curl_upload(_round_number):
        emulator.reset()
        seconds, answer = curl(emulator, "-F", "purpose=batch", "-F", "file=@%s" % input_path, emulator.base_url + "/files")
        last_upload["id"] = json.loads(answer)["id"]
        return seconds

    uploads = alternating(settings["rounds"], module_upload, curl_upload)

    started = time.monotonic()
    batch = completed_batch(emulator, last_upload["id"], settings["batch_timeout_s"])
    batch_s = round(time.monotonic() - started, 1)
    output_file_id = batch["output_file_id"]
    output_bytes = emulator.api("GET", "/files/" + output_file_id)["bytes"]
    say("volume: batch completed in %.1f s, output %.2f GB" % (batch_s, output_bytes / 1e9))
    check_free_space(3 * output_bytes, "three copies of the output")
    module_dest, curl_dest = VOLUME_DIR / "output-module.jsonl", VOLUME_DIR / "output-curl.jsonl"

    def module_download(round_number):
        if module_dest.exists():
            module_dest.unlink()  # else the module's re-run, which may keep it, would be timed
        return run_openai_file(runner, "volume-download-%d" % round_number, True, bench_volume_file_id=output_file_id,
                               bench_volume_dest=str(module_dest), **module_vars)

    def curl_download(_round_number):
        return curl(emulator, "-o", str(curl_dest), emulator.base_url + "/files/%s/content" % output_file_id)[0]

    downloads = alternating(settings["rounds"], module_download, curl_download)
    identical = filecmp.cmp(module_dest, curl_dest, shallow=False)
    curl_dest.unlink()
    before = emulator.stats()
    reruns["download"] = run_openai_file(runner, "volume-download-rerun", False, bench_volume_file_id=output_file_id,
                                         bench_volume_dest=str(module_dest), **module_vars)
    reruns["download"].update(rerun_traffic(before, emulator.stats(), output_bytes))

    upload = min(uploads["module"], key=lambda step: step["seconds"])
    download = min(downloads["module"], key=lambda step: step["seconds"])
    module_runs = uploads["module"] + downloads["module"] + list(reruns.values())
    return {
        "volume_upload_ratio_vs_curl": round(upload["seconds"] / min(uploads["curl"]), 3),
        "volume_download_ratio_vs_curl": round(download["seconds"] / min(downloads["curl"]), 3),
        "volume_peak_rss_mb": max(step["rss_mb"] for step in module_runs),
        "volume_rerun_content_bytes": sum(rerun["content_bytes"] for rerun in reruns.values()),
        "volume_rerun_requests_per_file": max(rerun["requests"] for rerun in reruns.values()),
        "volume_output_bytes": output_bytes,
        "volume_input_bytes": input_bytes,
        "volume_lines": lines,
        "volume_dimensions": dimensions,
        "volume_rounds": settings["rounds"],
        "volume_curl_upload_s": min(uploads["curl"]),
        "volume_curl_download_s": min(downloads["curl"]),
        "volume_upload_s": {"module": [step["seconds"] for step in uploads["module"]], "curl": uploads["curl"]},
        "volume_download_s": {"module": [step["seconds"] for step in downloads["module"]], "curl": downloads["curl"]},
        "volume_batch_s": batch_s,
        "volume_download_identical_to_curl": identical,
        "volume_module": {"upload": upload, "upload_rerun": reruns["upload"], "download": download, "download_rerun": reruns["download"]},
        "volume_method": (
            "module time: the openai_file task's time (bench_timer callback, task start to end) less that of a no-op "
            "task of the same module just before it in the same playbook (state absent of a missing file: one GET), "
            "which is Ansible's fixed cost for one task; curl: the wall time of its process; fastest of %d alternating "
            "rounds each, every upload on an empty emulator; peak RSS: GNU time around the module's process, the "
            "largest of every upload, download and re-run" % settings["rounds"]
        ),
    }


# -- volume through the role ---------------------------------------------------------------------

VOLUME_BATCH_DIR = OUTPUT_DIR / "volume_batch"
VOLUME_BATCH_LINE_BYTES = 1000  # a passage of about 150 words, a usual chunk of a corpus embedded for search
VOLUME_BATCH_JOBS_TASK = "Batch jobs, one per input, within ML Commons' task limit"
VOLUME_BATCH_RESULT_TASK = "Keep what the role published"
# What a re-run pays for at OpenAI: a file stored, a batch created, a file's content downloaded.
PAID_COUNTERS = ("files_uploaded", "batches_created", "file_downloads")
# Real jobs of 50,000 requests spend minutes to hours in each status; these keep the phase within minutes.
VOLUME_BATCH_VALIDATING_S = 10.0
VOLUME_BATCH_FINALIZING_S = 10.0
OUTPUT_CUSTOM_ID = re.compile(r'"custom_id"\s*:\s*"([^"]*)"')


def merged_in_input_order(path, lines):
    """Whether the merged output holds r-0 .. r-(lines - 1), once each, in that order (read line by line)."""
    count = 0
    with path.open(encoding="utf-8") as merged:
        for count, line in enumerate(merged, 1):
            found = OUTPUT_CUSTOM_ID.search(line[:300])
            if not found or found.group(1) != "r-%d" % (count - 1):
                return False
    return count == lines


def role_timeline(run):
    """The role's wall time (its first task's start to its last task's end, from the bench_timer callback), split
    into what came before the jobs' task (split, upload, provisioning), that task (submit and wait), and after it
    (download and merge); and each task's seconds, largest first."""
    tasks = [task for task in run["tasks"] if not task["name"].endswith(VOLUME_BATCH_RESULT_TASK)]
    start, end = tasks[0]["start"], max(task["end"] for task in tasks)
    jobs = [task for task in tasks if task["name"].endswith(VOLUME_BATCH_JOBS_TASK)]
    timeline = {"role_s": round(end - start, 3)}
    if jobs:
        timeline.update(before_jobs_s=round(jobs[0]["start"] - start, 3), jobs_task_s=round(jobs[-1]["end"] - jobs[0]["start"], 3),
                        after_jobs_s=round(end - jobs[-1]["end"], 3))
    totals = {}
    for task in tasks:
        totals[task["name"]] = totals.get(task["name"], 0.0) + task["seconds"]
    timeline["tasks_s"] = [{"task": name, "seconds": round(seconds, 3)}
                           for name, seconds in sorted(totals.items(), key=lambda pair: -pair[1]) if seconds >= 0.05]
    return timeline


def job_edges(run, jobs):
    """How long after the jobs' task started the first job was created, and how long after the last job ended the
    task returned (the wait's last poll), from the jobs' own created_at and *_at times: whole seconds, so +-1 s."""
    tasks = [task for task in run["tasks"] if task["name"].endswith(VOLUME_BATCH_JOBS_TASK)]
    created = [job["job"]["created_at"] for job in jobs if (job.get("job") or {}).get("created_at")]
    ended = [max(job["job"].get(key) or 0 for key in ("completed_at", "failed_at", "expired_at", "cancelled_at"))
             for job in jobs if job.get("job")]
    if not tasks or not created or not ended:
        return {}
    return {"first_job_created_after_s": round(min(created) - tasks[0]["start"], 1),
            "last_job_end_seen_after_s": round(tasks[-1]["end"] - max(ended), 1)}


def recap_changed(run):
    found = re.findall(r"changed=(\d+)", Path(run["log"]).read_text(errors="replace"))
    return int(found[-1]) if found else None


def measure_volume_batch(runner, env, opensearch_url, settings):
    """volume_batch_*: an input of several jobs through the batch_inference role, then its re-run.

    Empties the emulator before (it forgets the other phases' input file) and after (which also restores its
    start-up timings); its files are deleted at the end unless ``settings["keep"]``.
    """
    if not status_readable(env["OPENAI_BASE_URL"]):
        reason = "no batch job can be waited for on this test bed: " + LOOPBACK_REASON % env["OPENAI_BASE_URL"]
        keys = ("volume_batch_overhead_ratio", "volume_batch_peak_rss_mb", "volume_batch_rerun_paid_requests")
        return dict([(key, None) for key in keys] + [(key + "_reason", reason) for key in keys])
    shutil.rmtree(VOLUME_BATCH_DIR, ignore_errors=True)
    VOLUME_BATCH_DIR.mkdir(parents=True)
    emulator = Emulator(env)
    try:
        return volume_batch_steps(runner, emulator, opensearch_url, settings)
    finally:
        emulator.reset()
        if not settings["keep"]:
            shutil.rmtree(VOLUME_BATCH_DIR, ignore_errors=True)


def volume_batch_steps(runner, emulator, opensearch_url, settings):
    lines, dimensions = settings["lines"], settings["dimensions"]
    # The input and its parts; the jobs' outputs, their downloads and the merged output (about 15 bytes a dimension).
    check_free_space(lines * (2 * VOLUME_BATCH_LINE_BYTES + 3 * dimensions * 16), "the input, its parts, the jobs' outputs, "
                     "their downloads and the merged output", VOLUME_BATCH_DIR)
    used_cluster(opensearch_url, emulator.base_url)
    emulator.reset()
    timings = http("POST", emulator.admin_url + "/timings", settings["timings"])
    input_path = VOLUME_BATCH_DIR / "input.jsonl"
    started = time.monotonic()
    input_bytes = write_volume_input(input_path, lines, dimensions, VOLUME_BATCH_LINE_BYTES)
    say("volume_batch: %d lines, %.1f MB, %d dimensions (%.1f s); jobs of %d requests, each %s s validating, in progress, "
        "finalizing" % (lines, input_bytes / 1e6, dimensions, time.monotonic() - started, settings["requests_per_job"],
                        "/".join("%g" % timings[status] for status in ("validating", "in_progress", "finalizing"))))
    role_vars = {
        "bench_volume_interpreter": str(peak_rss_interpreter(VOLUME_BATCH_DIR)),
        "bench_volume_batch_input": str(input_path),
        "bench_volume_batch_model": VOLUME_MODEL,
        "bench_volume_batch_max_requests": settings["requests_per_job"],
        "bench_volume_batch_results_dir": str(VOLUME_BATCH_DIR / "results"),
        "bench_volume_batch_poll_interval": settings["poll_interval"],
        "bench_volume_batch_wait_timeout": settings["wait_timeout_s"],
    }

    def run_role(label):
        run_dir = VOLUME_BATCH_DIR / label
        run_dir.mkdir()
        before = emulator.stats()
        run = runner.run("volume_batch.yml", label, check=False, bench_volume_run_dir=str(run_dir), **role_vars)
        after = emulator.stats()
        if not run["ok"]:
            raise BenchError("the batch_inference role failed (%s): %s" % (label, log_tail(run, 8)))
        rss_file = run_dir / "modules.rss"
        return {"run": run, "before": before, "after": after, "load_after": list(os.getloadavg()), "result": json.loads((run_dir / "result.json").read_text()),
                "peaks": module_peaks(rss_file) if rss_file.exists() else [], "timeline": role_timeline(run)}

    load_before = list(os.getloadavg())
    first = run_role("volume-batch")
    result = first["result"]
    if result.get("status") != "COMPLETED" or (result.get("request_counts") or {}).get("completed") != lines:
        raise BenchError("the role's jobs did not all complete: status %s, request counts %s"
                         % (result.get("status"), json.dumps(result.get("request_counts"))))
    output_path = Path(result["output"])
    in_order = merged_in_input_order(output_path, lines)
    if not in_order:
        raise BenchError("the merged output %s does not answer r-0 .. r-%d in input order" % (output_path, lines - 1))
    rerun = run_role("volume-batch-rerun")
    paid = {counter: rerun["after"][counter] - rerun["before"][counter] for counter in PAID_COUNTERS}
    rerun_routes = {route: count - rerun["before"]["requests"].get(route, 0) for route, count in rerun["after"]["requests"].items()}

    busy = first["after"]["batch_busy_seconds"]
    peaks = first["peaks"] + rerun["peaks"]
    by_module = {}
    for mb, module in peaks:
        by_module[module] = max(mb, by_module.get(module, 0.0))
    timeline = dict(first["timeline"], **job_edges(first["run"], result["jobs"]))
    return {
        "volume_batch_overhead_ratio": round(timeline["role_s"] / busy, 3),
        "volume_batch_peak_rss_mb": max(by_module.values()),
        "volume_batch_rerun_paid_requests": sum(paid.values()),
        "volume_batch_lines": lines,
        "volume_batch_parts": len(result["jobs"]),
        "volume_batch_requests_per_job": settings["requests_per_job"],
        "volume_batch_input_bytes": input_bytes,
        "volume_batch_output_bytes": output_path.stat().st_size,
        "volume_batch_dimensions": dimensions,
        "volume_batch_emulator_timings_s": timings,
        "volume_batch_poll_interval_s": settings["poll_interval"],
        "volume_batch_role_s": timeline["role_s"],
        "volume_batch_playbook_s": first["run"]["wall_s"],
        "volume_batch_busy_s": busy,
        "volume_batch_first_created_to_last_ended_s": first["after"]["batch_seconds_first_created_to_last_ended"],
        "volume_batch_overhead_s": round(timeline["role_s"] - busy, 3),
        "volume_batch_timeline": timeline,
        "volume_batch_first_run_counts": {counter: first["after"][counter] - first["before"][counter]
                                          for counter in PAID_COUNTERS + ("file_bytes_uploaded", "file_bytes_downloaded")},
        "volume_batch_peak_rss_by_module_mb": by_module,
        "volume_batch_module_processes": len(peaks),
        "volume_batch_output_in_input_order": in_order,
        "volume_batch_load_average": {"before": load_before, "after_first_run": first["load_after"]},
        "volume_batch_rerun": {"role_s": rerun["timeline"]["role_s"], "changed": recap_changed(rerun["run"]), "paid": paid,
                               "file_bytes_downloaded": rerun["after"]["file_bytes_downloaded"] - rerun["before"]["file_bytes_downloaded"],
                               "emulator_routes": {route: count for route, count in rerun_routes.items() if count},
                               "tasks_s": rerun["timeline"]["tasks_s"]},
        "volume_batch_method": (
            "the batch_inference role run by ansible-playbook on an input of %d lines, split into jobs of at most %d "
            "requests; overhead ratio: the role's wall time (its first task's start to its last task's end, by the "
            "bench_timer callback) over the emulator's batch_busy_seconds (the union of the jobs' created-to-ended "
            "intervals), so that time when no job ran counts as the role's; peak RSS: GNU time around every module "
            "process of the run and of its re-run, the largest; re-run paid requests: the re-run's files uploaded, batches "
            "created and content downloads, counted by the emulator" % (lines, settings["requests_per_job"])
        ),
    }


# -- from an index back into the index ------------------------------------------------------------

INDEX_DIR = OUTPUT_DIR / "index"
INDEX_NAME = "bench-index"
# Copies of the index as it was before the write-back, for opensearch-py's writers (made with _clone: hard links).
INDEX_COPIES = {"streaming_bulk": INDEX_NAME + "-streaming-bulk", "parallel_bulk": INDEX_NAME + "-parallel-bulk"}
INDEX_REFERENCE = BENCH_DIR / "index_reference.py"
INDEX_TARGET_FIELD = "vector"
INDEX_FINGERPRINT_FIELD = "vector_fingerprint"  # the module's default for target_field "vector"
INDEX_TEXT_BYTES = 1000  # a passage of about 150 words, as in volume_batch
INDEX_LOAD_BULK_BYTES = 5 * 10 ** 6


def index_documents(count):
    """(_id, text) of the phase's documents: the same on every run, no two texts alike."""
    generator = random.Random(1)
    pool = " ".join("".join(generator.choices(string.ascii_lowercase, k=generator.randint(2, 10))) for _word in range(INDEX_TEXT_BYTES))
    for number in range(count):
        start = number * 7919 % (len(pool) - INDEX_TEXT_BYTES)
        yield "doc-%d" % number, "doc %d %s" % (number, pool[start:start + INDEX_TEXT_BYTES])


def index_load(opensearch_url, count, dimensions):
    """The index (a lucene knn_vector field of ``dimensions``, the fingerprint field, one shard, no replica) with
    ``count`` documents, then its copies, cloned while it is read-only."""
    for name in [INDEX_NAME] + list(INDEX_COPIES.values()):
        try:
            http("DELETE", "%s/%s" % (opensearch_url, name))
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise
    http("PUT", "%s/%s" % (opensearch_url, INDEX_NAME), {
        "settings": {"index": {"knn": True, "number_of_shards": 1, "number_of_replicas": 0}},
        "mappings": {"properties": {
            "text": {"type": "text"},
            INDEX_TARGET_FIELD: {"type": "knn_vector", "dimension": dimensions,
                                 "method": {"name": "hnsw", "engine": "lucene", "space_type": "l2"}},
            INDEX_FINGERPRINT_FIELD: {"type": "keyword"}}}})
    chunk, size = [], 0
    for doc_id, text in index_documents(count):
        lines = json.dumps({"index": {"_id": doc_id}}) + "\n" + json.dumps({"text": text}) + "\n"
        chunk.append(lines)
        size += len(lines)
        if size >= INDEX_LOAD_BULK_BYTES:
            index_load_chunk(opensearch_url, chunk)
            chunk, size = [], 0
    if chunk:
        index_load_chunk(opensearch_url, chunk)
    http("POST", "%s/%s/_refresh" % (opensearch_url, INDEX_NAME))
    http("POST", "%s/%s/_forcemerge?max_num_segments=1" % (opensearch_url, INDEX_NAME), timeout=900)
    http("PUT", "%s/%s/_settings" % (opensearch_url, INDEX_NAME), {"index.blocks.write": True})
    for copy in INDEX_COPIES.values():
        http("POST", "%s/%s/_clone/%s?wait_for_active_shards=1" % (opensearch_url, INDEX_NAME, copy), {"settings": {"index.number_of_replicas": 0}})
    for name in [INDEX_NAME] + list(INDEX_COPIES.values()):
        http("PUT", "%s/%s/_settings" % (opensearch_url, name), {"index.blocks.write": None})
    http("GET", "%s/_cluster/health/%s?wait_for_status=green&timeout=120s" % (opensearch_url, ",".join([INDEX_NAME] + list(INDEX_COPIES.values()))),
         timeout=130)
    return http("GET", "%s/%s/_count" % (opensearch_url, INDEX_NAME))["count"]


def index_load_chunk(opensearch_url, chunk):
    answer = http("POST", "%s/%s/_bulk" % (opensearch_url, INDEX_NAME), raw="".join(chunk).encode(),
                  headers={"Content-Type": "application/x-ndjson"}, timeout=300)
    if answer.get("errors"):
        raise BenchError("loading the index failed: %s" % json.dumps([item for item in answer["items"] if "error" in list(item.values())[0]][:3]))


def index_ops(opensearch_url, index=INDEX_NAME):
    return http("GET", "%s/%s/_stats/indexing" % (opensearch_url, index))["_all"]["primaries"]["indexing"]["index_total"]


def index_reference(*arguments):
    done = subprocess.run([sys.executable, str(INDEX_REFERENCE)] + [str(argument) for argument in arguments], capture_output=True,
                          text=True, timeout=PLAYBOOK_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise BenchError("opensearch-py's %s failed: %s" % (arguments[0], done.stderr[-2000:]))
    found = json.loads(done.stdout)
    say("opensearch-py %-16s %6.2f s" % (arguments[0], found["seconds"]))
    return found


def measure_index(runner, env, opensearch_url, settings):
    """index_*: an index's documents exported, through batch jobs, written back; opensearch-py side by side.

    Empties the emulator before and after (which also restores its start-up timings); deletes the phase's indices
    and files at the end unless ``settings["keep"]``."""
    keys = ("index_export_ratio_vs_opensearch_py", "index_write_ratio_vs_opensearch_py", "index_peak_rss_mb",
            "index_rerun_paid_requests", "index_rerun_index_ops", "index_roundtrip_overhead_ratio")
    if importlib.util.find_spec("opensearchpy") is None:
        reason = "opensearch-py is not installed (requirements-dev.txt; make venv)"
        return dict([(key, None) for key in keys] + [(key + "_reason", reason) for key in keys])
    if not status_readable(env["OPENAI_BASE_URL"]):
        reason = "no batch job can be waited for on this test bed: " + LOOPBACK_REASON % env["OPENAI_BASE_URL"]
        return dict([(key, None) for key in keys] + [(key + "_reason", reason) for key in keys])
    shutil.rmtree(INDEX_DIR, ignore_errors=True)
    INDEX_DIR.mkdir(parents=True)
    emulator = Emulator(env)
    try:
        return index_steps(runner, emulator, opensearch_url, settings)
    finally:
        emulator.reset()
        if not settings["keep"]:
            shutil.rmtree(INDEX_DIR, ignore_errors=True)
            for name in [INDEX_NAME] + list(INDEX_COPIES.values()):
                try:
                    http("DELETE", "%s/%s" % (opensearch_url, name))
                except urllib.error.HTTPError:
                    pass


def index_steps(runner, emulator, opensearch_url, settings):
    documents, dimensions = settings["documents"], settings["dimensions"]
    # The input and its parts; the jobs' outputs, their downloads and the merged output (about 16 bytes a dimension).
    check_free_space(documents * (3 * INDEX_TEXT_BYTES + 3 * dimensions * 16), "the input, its parts, the jobs' outputs, "
                     "their downloads and the merged output", INDEX_DIR)
    started = time.monotonic()
    loaded = index_load(opensearch_url, documents, dimensions)
    if loaded != documents:
        raise BenchError("the index holds %d documents, not %d" % (loaded, documents))
    say("index: %d documents of %d bytes of text loaded, copied twice (%.1f s)" % (documents, INDEX_TEXT_BYTES, time.monotonic() - started))
    variables = {
        "bench_index_url": opensearch_url,
        "bench_index_name": INDEX_NAME,
        "bench_index_model": VOLUME_MODEL,
        "bench_index_dimensions": dimensions,
        "bench_volume_interpreter": str(peak_rss_interpreter(INDEX_DIR)),
        "bench_index_max_requests": settings["requests_per_job"],
        "bench_index_results_dir": str(INDEX_DIR / "results"),
        "bench_index_poll_interval": settings["poll_interval"],
        "bench_index_wait_timeout": settings["wait_timeout_s"],
    }
    peaks = []

    def run(playbook, label, **extra):
        run_dir = INDEX_DIR / label
        run_dir.mkdir()
        done = runner.run(playbook, label, check=False, bench_index_run_dir=str(run_dir), **dict(variables, **extra))
        if not done["ok"]:
            raise BenchError("%s failed (%s): %s" % (playbook, label, log_tail(done, 8)))
        rss_file = run_dir / "modules.rss"
        peaks.extend(module_peaks(rss_file) if rss_file.exists() else [])
        return done, run_dir

    # The export, alternating with helpers.scan on the same documents, before anything is written back.
    exports, scans = [], []
    for round_number in range(settings["rounds"]):
        done, run_dir = run("index_export.yml", "index-export-%d" % round_number)
        exported = json.loads((run_dir / "exported.json").read_text())
        if exported["requests"] != documents:
            raise BenchError("the export wrote %d requests, not %d" % (exported["requests"], documents))
        exports.append(round(task_seconds(done, "Export") - task_seconds(done, "Export of nothing"), 3))
        scanned = index_reference("scan", opensearch_url, INDEX_NAME, "text")
        if scanned["documents"] != documents:
            raise BenchError("helpers.scan read %d documents, not %d" % (scanned["documents"], documents))
        scans.append(scanned["seconds"])

    emulator.reset()
    timings = http("POST", emulator.admin_url + "/timings", settings["timings"])
    ops_before = index_ops(opensearch_url)
    first, run_dir = run("index_loop.yml", "index-loop")
    after = emulator.stats()
    result = json.loads((run_dir / "result.json").read_text())
    role, written = result["role"], result["written"]
    if role.get("status") != "COMPLETED" or (role.get("request_counts") or {}).get("completed") != documents:
        raise BenchError("the jobs did not all complete: status %s, request counts %s" % (role.get("status"), json.dumps(role.get("request_counts"))))
    if written["written"] != documents or written["failed_documents"]:
        raise BenchError("the write-back wrote %d of %d documents, %d failed: %s"
                         % (written["written"], documents, written["failed_documents"], json.dumps(written["failures"][:3])))
    first_ops = index_ops(opensearch_url) - ops_before
    output = role["output"]
    tasks = {task["name"]: task for task in first["tasks"]}
    loop_s = tasks["Write back"]["end"] - tasks["Export"]["start"]
    write_s = round(tasks["Write back"]["seconds"] - tasks["Write-back of nothing"]["seconds"], 3)
    loop_export_s = round(tasks["Export"]["seconds"] - tasks["Export of nothing"]["seconds"], 3)
    busy = after["batch_busy_seconds"]

    references = {}
    for kind, copy in INDEX_COPIES.items():
        references[kind] = index_reference(kind, opensearch_url, copy, output, INDEX_TARGET_FIELD, INDEX_FINGERPRINT_FIELD)
        if references[kind]["written"] != documents:
            raise BenchError("opensearch-py's %s wrote %d of %d documents" % (kind, references[kind]["written"], documents))

    ops_before = index_ops(opensearch_url)
    rerun_before = emulator.stats()
    rerun, run_dir = run("index_loop.yml", "index-loop-rerun", bench_index_previous_output=output)
    rerun_after = emulator.stats()
    rerun_ops = index_ops(opensearch_url) - ops_before
    rerun_result = json.loads((run_dir / "result.json").read_text())
    paid = {counter: rerun_after[counter] - rerun_before[counter] for counter in PAID_COUNTERS}

    by_module = {}
    for mb, module in peaks:
        by_module[module] = max(mb, by_module.get(module, 0.0))
    export_s, scan_s = min(exports), min(scans)
    streaming_s, parallel_s = references["streaming_bulk"]["seconds"], references["parallel_bulk"]["seconds"]
    return {
        "index_export_ratio_vs_opensearch_py": round(export_s / scan_s, 3),
        "index_write_ratio_vs_opensearch_py": round(write_s / streaming_s, 3),
        "index_write_ratio_vs_parallel_bulk": round(write_s / parallel_s, 3),
        "index_peak_rss_mb": max(by_module.get("index_batch_input", 0.0), by_module.get("index_batch_output", 0.0)),
        "index_rerun_paid_requests": sum(paid.values()),
        "index_rerun_index_ops": rerun_ops,
        "index_roundtrip_overhead_ratio": round(loop_s / busy, 3),
        "index_documents": documents,
        "index_dimensions": dimensions,
        "index_text_bytes": INDEX_TEXT_BYTES,
        "index_export_s": exports,
        "index_scan_s": scans,
        "index_loop_export_s": loop_export_s,
        "index_write_s": write_s,
        "index_streaming_bulk_s": streaming_s,
        "index_parallel_bulk_s": parallel_s,
        "index_first_run_index_ops": first_ops,
        "index_loop_s": round(loop_s, 3),
        "index_busy_s": busy,
        "index_parts": len(role["jobs"]),
        "index_requests_per_job": settings["requests_per_job"],
        "index_emulator_timings_s": timings,
        "index_poll_interval_s": settings["poll_interval"],
        "index_output_bytes": Path(output).stat().st_size,
        "index_peak_rss_by_module_mb": by_module,
        "index_rerun": {"paid": paid, "changed": recap_changed(rerun), "exported_requests": rerun_result["exported"]["requests"],
                        "written": rerun_result["written"]["written"], "unchanged": rerun_result["written"]["unchanged"],
                        "wall_s": rerun["wall_s"]},
        "index_method": (
            "%d documents (%d bytes of text each) in one shard; export: index_batch_input's task time less that of a no-op "
            "task of the same module (a query that matches nothing) over helpers.scan of the text field in its own process "
            "(1,000 a page), fastest of %d alternating rounds; write-back: index_batch_output's task time (less its no-op "
            "task, an empty output) in the loop over streaming_bulk (and parallel_bulk, 4 threads) sending the same merged "
            "output as partial updates (vector and fingerprint) to a clone of the index taken before the write-back, then a "
            "refresh, one run each; round trip: export start to write-back end over the emulator's batch_busy_seconds; "
            "re-run: the same playbook again (no job when the export sends nothing)"
            % (documents, INDEX_TEXT_BYTES, settings["rounds"])
        ),
    }


# -- reporting ------------------------------------------------------------------------------------


def verdict(key, results):
    value = results.get(key)
    operator, target = TARGETS[key]
    if operator is None:
        return "-", "-"
    if target == "poll_interval_s":
        target = results.get("wait_poll_interval_s")
    shown = "%s %s" % (operator, target)
    if value is None:
        return shown, "not measured"
    held = {"<=": value <= target, "<": value < target, ">=": value >= target}[operator]
    return shown, "held" if held else "MISSED"


def markdown_table(results):
    lines = ["| Key | Value | Target | Result |", "|---|---|---|---|"]
    for key in TARGETS:
        shown, held = verdict(key, results)
        value = results.get(key)
        lines.append("| `%s` | %s | %s | %s |" % (key, "null" if value is None else value, shown, held))
    versions = results["versions"]
    lines.append("")
    lines.append("OpenSearch %s (ML Commons %s), ansible-core %s, Python %s, %s cores; sizes %s; %s" % (
        versions["opensearch"], versions["ml_commons"], versions["ansible_core"], versions["python"], results["machine"]["cores"],
        "/".join(str(size) for size in results.get("scale_sizes", [])), results["finished"]))
    if "volume_lines" in results:
        lines.append("")
        lines.append("Volume: %d lines, %.1f MB in, %.2f GB out (%d dimensions); upload %.2f s by the module, %.2f s by curl; "
                     "download %.2f s, %.2f s" % (
                         results["volume_lines"], results["volume_input_bytes"] / 1e6, results["volume_output_bytes"] / 1e9,
                         results["volume_dimensions"], results["volume_module"]["upload"]["seconds"], results["volume_curl_upload_s"],
                         results["volume_module"]["download"]["seconds"], results["volume_curl_download_s"]))
    if "volume_batch_lines" in results:
        timeline = results["volume_batch_timeline"]
        lines.append("")
        lines.append("Volume through the role: %d lines, %.1f MB in, %.2f GB out, %d parts; role %.1f s (%.1f before the jobs' task, "
                     "%.1f in it, of which the last job's end seen %s s late, %.1f after), jobs running %.1f s (each %s s validating, "
                     "in progress, finalizing; poll interval %g s); re-run %.1f s" % (
                         results["volume_batch_lines"], results["volume_batch_input_bytes"] / 1e6,
                         results["volume_batch_output_bytes"] / 1e9, results["volume_batch_parts"], timeline["role_s"],
                         timeline.get("before_jobs_s", 0), timeline.get("jobs_task_s", 0), timeline.get("last_job_end_seen_after_s"),
                         timeline.get("after_jobs_s", 0), results["volume_batch_busy_s"],
                         "/".join("%g" % results["volume_batch_emulator_timings_s"][status] for status in ("validating", "in_progress", "finalizing")),
                         results["volume_batch_poll_interval_s"], results["volume_batch_rerun"]["role_s"]))
    if "index_documents" in results:
        lines.append("")
        lines.append("Index: %d documents, %d dimensions; export %.2f s by the module, %.2f s by helpers.scan; write-back %.2f s by the "
                     "module, %.2f s by streaming_bulk, %.2f s by parallel_bulk; loop %.1f s, %d parts, jobs running %.1f s (each %s s "
                     "validating, in progress, finalizing); peak RSS %s" % (
                         results["index_documents"], results["index_dimensions"], min(results["index_export_s"]), min(results["index_scan_s"]),
                         results["index_write_s"], results["index_streaming_bulk_s"], results["index_parallel_bulk_s"], results["index_loop_s"],
                         results["index_parts"], results["index_busy_s"],
                         "/".join("%g" % results["index_emulator_timings_s"][status] for status in ("validating", "in_progress", "finalizing")),
                         ", ".join("%s %.1f MB" % pair for pair in sorted(results["index_peak_rss_by_module_mb"].items()))))
    reasons = [(key, results[key + "_reason"]) for key in TARGETS if results.get(key + "_reason")]
    for key, reason in reasons:
        lines.append("")
        lines.append("`%s` is null: %s" % (key, reason.replace("\n", " ")))
    return "\n".join(lines)


def versions(opensearch_url):
    root = http("GET", opensearch_url + "/")
    plugins = json.loads(urllib.request.urlopen(opensearch_url + "/_cat/plugins?format=json", timeout=HTTP_TIMEOUT_S).read())
    ml = [plugin["version"] for plugin in plugins if plugin["component"] == "opensearch-ml"]
    ansible_version = subprocess.run([sys.executable, "-c", "import ansible.release; print(ansible.release.__version__)"],
                                     capture_output=True, text=True, check=True).stdout.strip()
    galaxy = (REPO_ROOT / "galaxy.yml").read_text()
    collection = [line.split(":", 1)[1].strip() for line in galaxy.splitlines() if line.startswith("version:")]
    commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return {"opensearch": root["version"]["number"], "ml_commons": ml[0] if ml else None, "ansible_core": ansible_version,
            "python": platform.python_version(), "collection": collection[0] if collection else None,
            "commit": commit.stdout.strip() or None}


def make(target, env):
    say("make %s" % target)
    subprocess.run(["make", "--no-print-directory", target], cwd=REPO_ROOT, env=env, check=True,
                   stdout=sys.stderr, stderr=sys.stderr, timeout=900)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collections", required=True, help="the ANSIBLE_COLLECTIONS_PATH of `make collection`")
    args = parser.parse_args()
    collections = Path(args.collections)
    sizes = [int(size) for size in os.environ.get("BENCH_SIZES", "10 50 200").split()]
    repeat = int(os.environ.get("BENCH_REPEAT", "30"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    job_seconds = int(os.environ.get("BENCH_JOB_SECONDS", "6"))
    poll_interval = int(os.environ.get("BENCH_POLL_INTERVAL", "2"))
    volume = {"lines": int(os.environ.get("BENCH_VOLUME_LINES", "50000")),
              "dimensions": int(os.environ.get("BENCH_VOLUME_DIMENSIONS", "0")),
              "keep": os.environ.get("BENCH_VOLUME_KEEP", "") not in ("", "0"),
              "batch_timeout_s": int(os.environ.get("BENCH_VOLUME_BATCH_TIMEOUT", "3600"))}
    volume_batch = {"lines": int(os.environ.get("BENCH_VOLUME_BATCH_LINES", "200000")),
                    "requests_per_job": int(os.environ.get("BENCH_VOLUME_BATCH_REQUESTS_PER_JOB", "50000")),
                    "dimensions": int(os.environ.get("BENCH_VOLUME_BATCH_DIMENSIONS", "256")),
                    "timings": {"validating": VOLUME_BATCH_VALIDATING_S,
                                "in_progress": float(os.environ.get("BENCH_VOLUME_BATCH_JOB_SECONDS", "180")),
                                "finalizing": VOLUME_BATCH_FINALIZING_S},
                    "poll_interval": float(os.environ.get("BENCH_VOLUME_BATCH_POLL_INTERVAL", "2")),
                    "wait_timeout_s": int(os.environ.get("BENCH_VOLUME_BATCH_TIMEOUT", "3600")),
                    "keep": volume["keep"]}
    index = {"documents": int(os.environ.get("BENCH_INDEX_DOCUMENTS", "100000")),
             "dimensions": int(os.environ.get("BENCH_INDEX_DIMENSIONS", "256")),
             "requests_per_job": int(os.environ.get("BENCH_INDEX_REQUESTS_PER_JOB", "50000")),
             "timings": {"validating": VOLUME_BATCH_VALIDATING_S,
                         "in_progress": float(os.environ.get("BENCH_INDEX_JOB_SECONDS", "60")),
                         "finalizing": VOLUME_BATCH_FINALIZING_S},
             "poll_interval": volume_batch["poll_interval"], "wait_timeout_s": volume_batch["wait_timeout_s"],
             "rounds": rounds, "keep": os.environ.get("BENCH_INDEX_KEEP", "") not in ("", "0")}
    only = os.environ.get("BENCH_PHASES", "").split()
    for phase in ("volume", "volume_batch", "index"):
        if (not only or phase in only) and not os.access(GNU_TIME, os.X_OK):
            raise BenchError("the %s phase measures peak RSS with GNU time, and %s is missing: apt-get install -y time" % (phase, GNU_TIME))
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)

    make_env = dict(os.environ)
    was_up = subprocess.run(["make", "--no-print-directory", "status"], cwd=REPO_ROOT, env=make_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, check=False).returncode == 0
    started = time.time()
    make("up", make_env)
    proxy = None
    task_cap = None  # the cluster setting lifted below, put back at the end
    try:
        sys.path.insert(0, str(REPO_ROOT / "tests" / "testbed"))
        from testbed import read_env_file  # pylint: disable=import-outside-toplevel

        env = read_env_file(ENV_FILE)
        opensearch_url = env["OPENSEARCH_URL"]
        proxy = Proxy(int(os.environ.get("FAULT_PROXY_PORT", "9290")), opensearch_url)
        module_dir = collections / "ansible_collections" / "opensearch" / "ml_commons"
        has_batch = (module_dir / "plugins" / "modules" / "ml_batch_predict.py").exists()
        has_role = (module_dir / "roles" / "batch_inference").is_dir()
        readable = status_readable(env["OPENAI_BASE_URL"])
        chain = {"playbook": "chain_role.yml" if has_batch and has_role else "chain_modules.yml", "batch": has_batch,
                 "batch_rerun": has_batch and readable, "loopback_reason": LOOPBACK_REASON % env["OPENAI_BASE_URL"]}
        task_cap = opensearch_url
        lift_batch_task_cap(opensearch_url)
        input_file_id = upload_input_file(env["OPENAI_BASE_URL"], env["OPENAI_API_KEY"])
        variables = {
            "bench_url": proxy.url,
            "bench_name": BENCH_NAME,
            "bench_openai_base_url": env["OPENAI_BASE_URL"],
            "bench_openai_api_key": env["OPENAI_API_KEY"],
            "bench_input_file_id": input_file_id,
            "bench_batch": has_batch,
            "bench_actions": openai_actions(env["OPENAI_BASE_URL"]),
            "bench_timed_actions": openai_actions(env["OPENAI_BASE_URL"], timed=True),
            "bench_batch_parameters": {"input_file_id": input_file_id, "endpoint": "/v1/embeddings"},
        }
        runner = Runner(collections, variables)
        results = {"versions": versions(opensearch_url),
                   "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "load_average": list(os.getloadavg())},
                   "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "has_batch_module": has_batch,
                   "has_role": has_role, "wait_poll_interval_s": poll_interval}
        steps = {}
        phases = [
            ("first_run", lambda: measure_first_run(runner, proxy, opensearch_url, chain, rounds)),
            ("module_overhead", lambda: measure_overhead(runner, proxy, opensearch_url, repeat, rounds)),
            ("scale", lambda: measure_scale(runner, proxy, opensearch_url, sizes)),
        ]
        if has_batch:
            phases.append(("wait", lambda: measure_wait(runner, proxy, opensearch_url, env, job_seconds, poll_interval)))
        else:
            reason = "ml_batch_predict is not in this collection"
            results.update(wait_overshoot_s=None, wait_polls=None, wait_overshoot_s_reason=reason, wait_polls_reason=reason,
                           wait_poll_interval_s=poll_interval)
        phases.append(("cluster", lambda: measure_cluster(runner, proxy, opensearch_url, chain, rounds, make_env)))
        # Last: they empty the emulator, which forgets the input file of the phases above.
        phases.append(("volume", lambda: measure_volume(runner, env, dict(volume, rounds=rounds))))
        if has_batch and has_role:
            phases.append(("volume_batch", lambda: measure_volume_batch(runner, env, opensearch_url, volume_batch)))
        else:
            reason = "the batch_inference role or ml_batch_predict is not in this collection"
            keys = ("volume_batch_overhead_ratio", "volume_batch_peak_rss_mb", "volume_batch_rerun_paid_requests")
            results.update(dict([(key, None) for key in keys] + [(key + "_reason", reason) for key in keys]))
        if has_batch and has_role:
            phases.append(("index", lambda: measure_index(runner, env, opensearch_url, index)))
        else:
            reason = "the batch_inference role or ml_batch_predict is not in this collection"
            keys = [key for key in TARGETS if key.startswith("index_")]
            results.update(dict([(key, None) for key in keys] + [(key + "_reason", reason) for key in keys]))
        for name, measure in phases:
            if only and name not in only:
                continue
            phase_started = time.monotonic()
            measured = measure()
            steps.update(measured.pop("steps", {}))
            results.update(measured)
            steps["phase_%s_s" % name] = round(time.monotonic() - phase_started, 1)
        results["steps"] = steps
        results["machine"]["load_average_end"] = list(os.getloadavg())
        results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        results["duration_s"] = round(time.time() - started, 1)
        empty_cluster(opensearch_url)
    finally:
        if task_cap is not None:
            restore_batch_task_cap(task_cap)
        if proxy is not None:
            proxy.stop()
        if not was_up:
            make("down", make_env)
    (OUTPUT_DIR / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    table = markdown_table(results)
    print(table)
    say("results in %s" % (OUTPUT_DIR / "results.json"))
    if not only:
        RESULTS_PAGE.write_text(RESULTS_PAGE_HEAD + table + "\n")
        say("the table is in %s" % RESULTS_PAGE.relative_to(REPO_ROOT))
    return 0


def stop_on_sigterm(_signum, _frame):
    raise SystemExit(143)  # unwinds main(), whose finally stops the proxy (and the test bed it started)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        sys.exit(main())
    except BenchError as error:
        print("bench: FAILED: %s" % error, file=sys.stderr)
        sys.exit(1)
