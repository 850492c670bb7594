"""The cluster scenarios of the reliability suite (``run.py --cluster``): on a test bed of three nodes
(``OPENSEARCH_NODES=3 make up``), a node is SIGKILLed in the middle of a run of the batch_inference
role; the role is run again while it is down, then once more after it came back on its data.

The role talks to OpenSearch through the fault proxy (which sees every request, and so tells the
moment to kill), whose upstream is a node that is neither killed nor, when that can be avoided, the
elected cluster manager; the judge asks that node too. After each re-run: one model group,
connector and model, one batch job, and the model DEPLOYED and served by every live node (by the
nodes' own profiles). The last run, with all three nodes back, must change nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from run import (ENV, TESTBED, NotApplicable, Proxy, RoleWorkload, ScenarioFailed, batch_tasks, chain_objects, opensearch,
                 playbook_command, playbook_env)

CLUSTER_SIZE = 3
# Seconds to wait for the cluster to hold a number of nodes again (a killed cluster manager is replaced by election).
CLUSTER_SETTLE_SECONDS = 120


def node_urls() -> list[str]:
    return [url for url in ENV.get("OPENSEARCH_NODE_URLS", ENV["OPENSEARCH_URL"]).split(",") if url]


def require_cluster() -> None:
    count = int(ENV.get("OPENSEARCH_NODES", "1"))
    if count != CLUSTER_SIZE:
        raise NotApplicable(f"needs a test bed of {CLUSTER_SIZE} nodes (OPENSEARCH_NODES={CLUSTER_SIZE} make up); this one has {count}")


def elected_manager() -> int:
    """The index of the elected cluster manager (nodes are named ml-testbed-<index>)."""
    status, answer = opensearch("GET", "/_cat/cluster_manager?format=json")
    if status != 200 or not answer:
        raise ScenarioFailed(f"asking for the elected cluster manager answered {status}: {answer}")
    return int(answer[0]["node"].rsplit("-", 1)[1])


def testbed_node(action: str, index: int) -> float:
    """``testbed.py node stop|start index``; returns the seconds it took."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(TESTBED / "testbed.py"), "node", action, str(index)], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ScenarioFailed(f"testbed.py node {action} {index} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return time.monotonic() - started


def wait_for_nodes(count: int) -> None:
    """Until the cluster (as the judge's node sees it) has ``count`` nodes and a cluster manager."""
    deadline = time.monotonic() + CLUSTER_SETTLE_SECONDS
    while time.monotonic() < deadline:
        status, health = opensearch("GET", f"/_cluster/health?wait_for_nodes={count}&timeout=10s")
        if status == 200 and isinstance(health, dict) and not health.get("timed_out") and health.get("number_of_nodes") == count:
            return
        time.sleep(1)
    raise ScenarioFailed(f"the cluster did not get back to {count} nodes within {CLUSTER_SETTLE_SECONDS} s: {health}")


def running_nodes() -> list[int]:
    status, answer = opensearch("GET", "/_cat/nodes?format=json&h=name")
    return sorted(int(row["name"].rsplit("-", 1)[1]) for row in answer) if status == 200 else []


def restore_all_nodes() -> None:
    """Start any node a scenario left down, and wait until every shard is back (green), so that the next
    scenario finds the whole cluster: a search of an ML index whose shards still recover fails
    ("all shards failed"), which is not what the scenarios test."""
    for index in sorted(set(range(CLUSTER_SIZE)) - set(running_nodes())):
        testbed_node("start", index)
    wait_for_nodes(CLUSTER_SIZE)
    status, health = opensearch("GET", f"/_cluster/health?wait_for_status=green&timeout={CLUSTER_SETTLE_SECONDS}s")
    if status != 200 or health.get("status") != "green":
        raise ScenarioFailed(f"the cluster did not get green again within {CLUSTER_SETTLE_SECONDS} s: {health}")


def first_failure(output: str) -> str:
    """The message of the first failed task of a run, shortened, for the scenario's line ("" when none failed)."""
    match = re.search(r'^fatal: .*?"msg": "((?:[^"\\]|\\.)*)"', output, re.MULTILINE)
    return f" ({match.group(1)[:240]})" if match else ""


class ClusterScenarios:
    """Each scenario: choose the victim and the node the role talks to, run the role and kill the victim at
    ``kill_when``, re-run while it is down (unless ``restart_at_once``), start it again, re-run, judge each time."""

    def __init__(self, suite, proxy_port: int):
        self.suite, self.proxy_port = suite, proxy_port

    def kill_in_role(self, tag: str, victim: str, kill_when, what: str, restart_at_once: bool = False,
                     batch_task_left: bool = False) -> str:
        require_cluster()
        urls = node_urls()
        home_url = ENV["OPENSEARCH_URL"]
        restore_all_nodes()
        manager = elected_manager()
        if victim == "manager":
            target = manager
            others = [index for index in range(CLUSTER_SIZE) if index != target]
        else:
            others = [index for index in range(CLUSTER_SIZE) if index != manager]
            target = others[-1]
        upstream = next(index for index in others if index != target)
        proxy = Proxy(self.proxy_port, urls[upstream])
        ENV["OPENSEARCH_URL"] = urls[upstream]
        try:
            return self._scenario(tag, proxy, target, manager, upstream, kill_when, what, restart_at_once, batch_task_left)
        finally:
            proxy.stop()
            try:
                restore_all_nodes()
            finally:
                ENV["OPENSEARCH_URL"] = home_url

    def _scenario(self, tag, proxy, target, manager, upstream, kill_when, what, restart_at_once, batch_task_left):
        workdir = self.suite.workdir
        workload = RoleWorkload(workdir, tag)
        runner = subprocess.Popen(playbook_command(workdir, workload.plays({"url": proxy.url})), env=playbook_env(),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        killed = False
        memo: dict = {}
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and runner.poll() is None:
            if kill_when(proxy.stats(), memo):
                testbed_node("stop", target)
                killed = True
                break
            time.sleep(0.02)
        first_output = workload.scan(runner.communicate(timeout=900)[0])
        first_rc = runner.returncode
        if not killed:
            workload.cleanup()
            raise ScenarioFailed(f"the role never got to the moment to kill ({what}):\n{first_output[-2000:]}")
        problems: list[str] = []
        if batch_task_left and not batch_tasks([model["id"] for model in chain_objects(workload.names)["model"]]):
            problems.append("no batch task was stored before the kill: the scenario tested something else")
        steps = []
        if restart_at_once:
            steps.append(f"started again in {testbed_node('start', target):.0f} s")
            wait_for_nodes(3)
        else:
            wait_for_nodes(2)
            problems += self._rerun_and_judge(workload, proxy, "with the node down", steps)
            seconds = testbed_node("start", target)
            wait_for_nodes(3)
            steps.append(f"started again in {seconds:.0f} s")
        judged = self._rerun_and_judge(workload, proxy, "with all nodes back", steps)
        problems += judged
        if not judged:
            last = workload.run(workdir, proxy.url)
            if last.rc != 0 or last.changed != 0:
                problems.append(f"a last run did not converge (rc {last.rc}, changed {last.changed}):\n" + last.tail())
            else:
                steps.append("a last run changed nothing")
        problems += workload.leak_problems()
        workload.cleanup()
        if problems:
            raise ScenarioFailed("; ".join(problems))
        role = f"the role talked to ml-testbed-{upstream}"
        return (f"killed ml-testbed-{target} ({'the elected cluster manager' if target == manager else 'a data node'}) {what}, "
                f"first run rc={first_rc}{first_failure(first_output)}; {role}; {'; '.join(steps)}")

    def _rerun_and_judge(self, workload, proxy, when: str, steps: list) -> list[str]:
        """Re-run the role (one more try after a failure is allowed and reported, as in the restart scenarios), then judge."""
        problems = []
        rerun = workload.run(self.suite.workdir, proxy.url)
        if rerun.rc != 0:
            time.sleep(5)
            second = workload.run(self.suite.workdir, proxy.url)
            problems.append(f"the re-run {when} failed" + ("" if second.rc == 0 else " twice") + ":\n" + rerun.tail(8)
                            + ("" if second.rc == 0 else "\n" + second.tail()))
        judged, account = workload.judge()
        steps.append(f"re-run {when} ok in {rerun.seconds:.0f} s ({account})" if not (problems or judged) else f"re-run {when} judged")
        return problems + [f"{when}: {problem}" for problem in judged]


def scenarios(add) -> None:
    """The cluster scenarios, for run.py's scenario list (``add(name, function(suite))``)."""
    from index_scenarios import node_killed_mid_write_back  # pylint: disable=import-outside-toplevel
    from run import kill_on, kill_on_new  # pylint: disable=import-outside-toplevel

    port = int(os.environ.get("FAULT_PROXY_PORT", "9290")) + 2
    add("cluster/data-node-killed-mid-role",
        lambda s: ClusterScenarios(s, port).kill_in_role("cldata", "data", kill_on(r"^POST /_plugins/_ml/models/_register$"),
                                                         "at the model register"))
    add("cluster/manager-killed-mid-role",
        lambda s: ClusterScenarios(s, port).kill_in_role("clmgr", "manager", kill_on(r"^POST /_plugins/_ml/connectors/_create$"),
                                                         "at the connector create"))
    add("cluster/node-killed-after-batch-predict",
        lambda s: ClusterScenarios(s, port).kill_in_role(
            "clbatch", "data", kill_on_new(r"^POST /_plugins/_ml/models/[^/]+/_batch_predict$", r"^GET /_plugins/_ml/tasks/"),
            "after the batch POST was answered", batch_task_left=True))
    add("cluster/node-restarted-while-deploying",
        lambda s: ClusterScenarios(s, port).kill_in_role("cldeploy", "data", kill_on(r"^POST /_plugins/_ml/models/[^/]+/_deploy$"),
                                                         "as the deploy POST arrived", restart_at_once=True))
    add("cluster/node-killed-mid-write-back",
        lambda s: node_killed_mid_write_back(s, "clidx", port))
