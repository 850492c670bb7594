#!/usr/bin/env python
"""The reliability and security suite: faults, restarts, concurrency, bad input, secrets and TLS,
against the real test bed (`make up`) and the OpenAI emulator.

    python tests/reliability/run.py [--quick] [--only NAME ...] [--list]

Every scenario drives the module chain of the demo (ml_model_group -> ml_connector -> ml_model,
deployed) with real `ansible-playbook` runs, and judges the outcome by asking OpenSearch itself
(the ML `_search` APIs, never the collection's modules). It prints one line per scenario, then

    scenarios run N, resources lost N, duplicated N, secrets leaked N
    N passed, N failed

and exits 1 when any scenario failed. ``--quick`` runs the short form (for `make test`).

Needs: .testbed/env (from `make up`), ANSIBLE_COLLECTIONS_PATH pointing at a built copy of the
collection (`make reliability` sets it), and the ``cryptography`` package for the TLS front.
All traffic stays on 127.0.0.1.

Environment: FAULT_PROXY_PORT (default 9290; the HTTPS front uses the next port).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
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
# The module timeout of the scenarios that answer slower than it, and how late those answers come.
SHORT_TIMEOUT = 3
SLOW_ANSWER = 5


class ScenarioFailed(Exception):
    pass


# ------------------------------------------------------------------------------------------------
# The test bed and direct (module-free) access to OpenSearch


def read_env_file() -> dict:
    if not ENV_FILE.exists():
        sys.exit(f"reliability: {ENV_FILE} is missing: run `make up` first")
    values = {}
    for line in ENV_FILE.read_text().splitlines():
        key, _equals, value = line.partition("=")
        values[key] = shlex.split(value)[0] if value else ""
    return values


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


def delete_everything_named(prefix: str = PREFIX) -> None:
    """Remove what the suite made: models (undeployed first), connectors, groups."""
    query = {"prefix": {"name.keyword": prefix}}
    for model in ml_search("models", query):
        opensearch("POST", f"/_plugins/_ml/models/{model['id']}/_undeploy")
        for _attempt in range(20):
            if opensearch("DELETE", f"/_plugins/_ml/models/{model['id']}")[0] in (200, 404):
                break
            time.sleep(0.5)
    for connector in ml_search("connectors", query):
        opensearch("DELETE", f"/_plugins/_ml/connectors/{connector['id']}")
    for group in ml_search("model_groups", query):
        opensearch("DELETE", f"/_plugins/_ml/model_groups/{group['id']}")


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
            status, live = opensearch("GET", f"/_plugins/_ml/models/{model['id']}")
            state = live.get("model_state") if status == 200 else status
            if state != "DEPLOYED":
                problems.append(f"model {model['id']} is {state}, not DEPLOYED")
            if model.get("model_group_id") != found["group"][0]["id"]:
                self.lost += 1
                problems.append(f"model is in group {model.get('model_group_id')}, not {found['group'][0]['id']}")
            if model.get("connector_id") != found["connector"][0]["id"]:
                self.lost += 1
                problems.append(f"model uses connector {model.get('connector_id')}, not {found['connector'][0]['id']}")
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
        """Inject ``plan`` during a first run of the chain through the proxy, then re-run without faults:
        the re-run must end ok and the server must hold one of each."""
        names = chain_names(tag)
        connection = connection or {}
        self.proxy.reset()
        self.proxy.plan(**plan)
        first = run_chain(self.workdir, names, self.proxy.url, **connection)
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
        rerun = run_chain(self.workdir, names, self.proxy.url, **connection)
        if rerun.rc != 0:
            problems.append("the re-run failed:\n" + rerun.tail())
        problems += TALLY.judge_chain(names)
        again = run_chain(self.workdir, names, self.proxy.url, **connection)
        if again.rc != 0 or again.changed != 0:
            problems.append(f"a third run did not converge (rc {again.rc}, changed {again.changed}):\n" + again.tail())
        delete_everything_named(PREFIX + tag)
        if problems:
            raise ScenarioFailed("; ".join(problems))
        return f"first run rc={first.rc} ({first.seconds:.0f} s), {injected} fault(s), re-run ok, third run changed=0"

    # -- restart ---------------------------------------------------------------------------------

    def restart(self, tag: str, kill_after_route: str):
        """SIGKILL OpenSearch as soon as the proxy has passed ``kill_after_route``, start it again on its
        data, re-run the chain."""
        names = chain_names(tag)
        self.proxy.reset()
        command = playbook_command(self.workdir, play(chain_tasks(names), {"url": self.proxy.url}))
        runner = subprocess.Popen(command, env=playbook_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        killed = False
        while time.monotonic() < deadline and runner.poll() is None:
            if self.proxy.stats()["requests"].get(kill_after_route):
                pid = json.loads(STATE_FILE.read_text())["opensearch"]["pid"]
                os.killpg(pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.02)
        output = runner.communicate(timeout=300)[0]
        if not killed:
            raise ScenarioFailed(f"the chain never sent {kill_after_route}:\n{output[-2000:]}")
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
        rerun = run_chain(self.workdir, names, self.proxy.url)
        if rerun.rc != 0:
            # ML Commons may need a moment after a restart (its encryption key, the model's nodes); one more try is fair.
            time.sleep(5)
            first_rerun = rerun
            rerun = run_chain(self.workdir, names, self.proxy.url)
            if rerun.rc != 0:
                problems.append("the re-run after the restart failed twice:\n" + first_rerun.tail(8) + "\n" + rerun.tail())
            else:
                problems.append("the first re-run after the restart failed:\n" + first_rerun.tail(8))
        problems += TALLY.judge_chain(names)
        delete_everything_named(PREFIX + tag)
        if problems:
            raise ScenarioFailed("; ".join(problems))
        return f"killed after {kill_after_route}, back in {restart_seconds:.0f} s, re-run ok in {rerun.seconds:.0f} s"

    # -- concurrency -----------------------------------------------------------------------------

    def concurrency(self, tag: str, runs: int, rounds: int):
        lines = []
        for round_number in range(1, rounds + 1):
            names = chain_names(f"{tag}")
            commands = [playbook_command(self.workdir, play(chain_tasks(names), {"url": ENV["OPENSEARCH_URL"]})) for _run in range(runs)]
            started = time.monotonic()
            runners = [subprocess.Popen(command, env=playbook_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True) for command in commands]
            outputs = [runner.communicate(timeout=600)[0] for runner in runners]
            seconds = time.monotonic() - started
            problems = [f"run {index + 1} ended with rc {runner.returncode}:\n" + "\n".join(output.splitlines()[-15:])
                        for index, (runner, output) in enumerate(zip(runners, outputs)) if runner.returncode != 0]
            problems += TALLY.judge_chain(names)
            delete_everything_named(PREFIX + tag)
            if problems:
                raise ScenarioFailed(f"round {round_number}: " + "; ".join(problems))
            lines.append(f"{seconds:.0f} s")
        return f"{rounds} round(s) of {runs} parallel runs, all ok, one of each ({', '.join(lines)})"

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
        return "no ca_path: clear failure, nothing created; ca_path: ok; validate_certs false: ok and warned"

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
            lambda s, kind=kind: s.fault(f"da{kind}", {"mode": "drop_after", "method": "POST", "path": CREATE_PATHS[kind], "count": 1}, True),
            kind != "group")
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
    add("restart/kill-after-connector-create", lambda s: s.restart("rsconn", "POST /_plugins/_ml/connectors/_create"))
    add("restart/kill-after-model-register", lambda s: s.restart("rsmodel", "POST /_plugins/_ml/models/_register"))
    add("concurrency/4-runs", lambda s: s.concurrency("conc", 4, 1 if quick else 5), True)
    add("concurrency/module-races", lambda s: s.module_races("race", 10, 4))
    add("concurrency/keep-oldest-race", lambda s: s.keep_oldest_race(30, 4))
    add("tls/https-front", lambda s: s.tls("tls"), True)
    add("secrets/every-module-vvvv-diff", lambda s: s.secrets("sec"), True)
    add("bad-input/modules", lambda s: s.bad_input("bad"), True)
    return scenarios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the short form, for make test")
    parser.add_argument("--only", action="append", default=[], help="run the scenarios whose name contains this (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args()
    scenarios = scenario_list(args.quick)
    if args.only:
        scenarios = [(name, function) for name, function in scenarios if any(part in name for part in args.only)]
    if args.list:
        print("\n".join(name for name, _function in scenarios))
        return 0
    ENV.update(read_env_file())
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    port = int(os.environ.get("FAULT_PROXY_PORT", "9290"))
    passed = failed = 0
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
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and not (TALLY.lost or TALLY.duplicated or TALLY.leaked) else 1


if __name__ == "__main__":
    # The scenario modules import this one as "run": let them share its state (ENV, TALLY).
    sys.modules.setdefault("run", sys.modules[__name__])
    sys.exit(main())
