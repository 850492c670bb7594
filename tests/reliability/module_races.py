"""Create races at full power: several module processes released at the same moment create the
same object, round after round, for each kind (model group, connector, model in one group).

The playbook-level concurrency scenario starts whole `ansible-playbook` runs, whose start-up
staggers them by up to a second, so it seldom makes two creates overlap on the server. Here each
racer is the module itself (its main, run with an arguments file, the code Ansible would run),
all released at one moment once their imports are done, so the creates land within
milliseconds of each other. Judged on the server: exactly one object of the name remains, and
every racer returned its ID. (Even so, the narrowest race, an older create indexed just after a
younger one was searched for, shows rarely here; keep_oldest_race.py provokes that one.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import ENV, PREFIX, TALLY, ScenarioFailed, connector_args, delete_everything_named, ml_search

MODULE_PACKAGE = "ansible_collections.opensearch.ml_commons.plugins.modules."
KIND_PATHS = {"ml_model_group": ("model_groups", "model_group_id"), "ml_connector": ("connectors", "connector_id"),
              "ml_model": ("models", "model_id")}


def collection_root() -> str:
    """The directory that holds ansible_collections/ (make reliability points ANSIBLE_COLLECTIONS_PATH at it)."""
    for path in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep):
        if (Path(path) / "ansible_collections" / "opensearch" / "ml_commons").is_dir():
            return path
    raise ScenarioFailed("ANSIBLE_COLLECTIONS_PATH does not hold the built collection: run through `make reliability`")


# Each racer imports the module's libraries first, then waits for the common start time, then runs
# the module: process start-up (a few tenths of a second, uneven) no longer staggers the creates.
RACER = """
import runpy, sys, time
import ansible.module_utils.basic, requests
import ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
sys.argv = [sys.argv[1], sys.argv[3]]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""
START_DELAY = 2.0


def race(module: str, arguments: dict, racers: int, workdir: Path) -> list[dict]:
    """Run ``racers`` processes of ``module`` released at the same moment; return their results (JSON)."""
    args_file = workdir / f"{module}-{time.monotonic_ns()}.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(arguments, url=ENV["OPENSEARCH_URL"])}))
    env = dict(os.environ, PYTHONPATH=collection_root())
    start = str(time.time() + START_DELAY)
    processes = [subprocess.Popen([sys.executable, "-c", RACER, MODULE_PACKAGE + module, start, str(args_file)], env=env, cwd=workdir,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _racer in range(racers)]
    results = []
    for process in processes:
        output = process.communicate(timeout=300)[0]
        try:
            results.append(json.loads(output[output.index("{"):]))
        except ValueError:
            results.append({"failed": True, "msg": output[-2000:]})
    return results


def judge(kind_module: str, name: str, results: list[dict], filters: list | None = None) -> list[str]:
    path, id_field = KIND_PATHS[kind_module]
    problems = [f"{kind_module}: a racer failed: {result.get('msg')}" for result in results if result.get("failed")]
    found = ml_search(path, {"bool": {"filter": [{"term": {"name.keyword": name}}] + (filters or [])}})
    returned = {result.get(id_field) for result in results if not result.get("failed")}
    if len(found) > 1:
        TALLY.duplicated += len(found) - 1
        problems.append(f"{kind_module}: {len(found)} objects called {name!r} remain: {[item['id'] for item in found]}")
    elif not found:
        TALLY.lost += 1
        problems.append(f"{kind_module}: no object called {name!r} remains")
    elif returned != {found[0]["id"]}:
        problems.append(f"{kind_module}: the racers returned {sorted(map(str, returned))}, the server holds {found[0]['id']}")
    return problems


def run_module_races(tag: str, rounds: int, racers: int) -> str:
    """``rounds`` rounds of ``racers`` processes per kind; fails on the first round with problems."""
    with tempfile.TemporaryDirectory(prefix="rel-races-") as directory:
        workdir = Path(directory)
        for round_number in range(1, rounds + 1):
            names = {kind: f"{PREFIX}{tag} {round_number} {kind}" for kind in ("group", "connector", "model")}
            groups = race("ml_model_group", {"name": names["group"]}, racers, workdir)
            problems = judge("ml_model_group", names["group"], groups)
            # A literal key: the arguments file is not templated, and the racers never call the provider.
            connectors = race("ml_connector", connector_args(names["connector"], "sk-module-race"), racers, workdir)
            problems += judge("ml_connector", names["connector"], connectors)
            if not problems:
                group_id, connector_id = groups[0]["model_group_id"], connectors[0]["connector_id"]
                models = race("ml_model", {"name": names["model"], "function_name": "remote", "model_group_id": group_id,
                                           "connector_id": connector_id, "state": "present"}, racers, workdir)
                problems += judge("ml_model", names["model"], models, [{"term": {"model_group_id": group_id}}])
            delete_everything_named(f"{PREFIX}{tag} ")
            if problems:
                raise ScenarioFailed(f"round {round_number}: " + "; ".join(problems))
    return f"{rounds} round(s) of {racers} module processes released together per kind, one object of each every time"
