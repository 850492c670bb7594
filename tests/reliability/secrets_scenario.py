"""Secrets: every module run with -vvvv --diff, on working and failing paths, and the role
batch_inference from upload to download; no secret may show.

Secrets in play, each fresh for the run: the OpenSearch password (OpenSearch without the security
plugin ignores it; the proxy answers 401 to a second, wrong one), two connector credentials, the
emulator's real API key and a wrong one, and keys that carry whitespace: the real key and the wrong
one with a trailing newline (as ansible-vault encrypt_string leaves it), a key with a line break and a
tab inside (refused), and a password with a tab inside that a hostile server echoes back into a
warning (ml_task_info's, when the task cannot be refreshed). They are searched, as they are, stripped,
escaped as repr and JSON write them, each whitespace-separated piece, and base64-encoded in basic-auth
form, in everything ansible-playbook printed and in every registered result.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from run import ENV, TALLY, RoleWorkload, ScenarioFailed, chain_names, connector_args, play, run_playbooks_at_once

USER = "reliability-admin"


def env_lookup(name: str) -> str:
    return "{{ lookup('ansible.builtin.env', '%s') }}" % name


def task(name, module, args, register, **extra):
    entry = {"name": name, f"opensearch.ml_commons.{module}": args, "register": register}
    entry.update(extra)
    return entry


def working_tasks(names: dict, jsonl: str, download: str) -> list[dict]:
    connector = connector_args(names["connector"], env_lookup("REL_CRED"))
    rotated = dict(connector, credential={"openAI_key": env_lookup("REL_CRED2")}, update_credential="always")
    openai = {"api_base_url": ENV["OPENAI_BASE_URL"], "api_key": env_lookup("REL_OPENAI_KEY")}
    return [
        task("cluster info", "ml_cluster_info", {}, "r_cluster"),
        task("group", "ml_model_group", {"name": names["group"], "description": "secrets"}, "r_group"),
        task("group info", "ml_model_group_info", {"name": names["group"]}, "r_group_info"),
        task("connector in check mode", "ml_connector", connector, "r_connector_check", check_mode=True),
        task("connector", "ml_connector", connector, "r_connector"),
        task("connector, credential rotated", "ml_connector", rotated, "r_connector_rotated"),
        task("connector info", "ml_connector_info", {"name": names["connector"]}, "r_connector_info"),
        task("model", "ml_model", {"name": names["model"], "model_group_id": "{{ r_group.model_group_id }}",
                                   "connector_id": "{{ r_connector.connector_id }}", "state": "deployed"}, "r_model"),
        task("model info", "ml_model_info", {"name": names["model"]}, "r_model_info"),
        task("upload to OpenAI", "openai_file", dict(openai, src=jsonl), "r_upload"),
        task("upload again, the key with a newline", "openai_file", dict(openai, src=jsonl, api_key=env_lookup("REL_OPENAI_KEY_NL")),
             "r_upload_key_nl"),
        task("download from OpenAI", "openai_file", dict(openai, file_id="{{ r_upload.file_id }}", dest=download), "r_download"),
        task("delete at OpenAI", "openai_file", dict(openai, file_id="{{ r_upload.file_id }}", state="absent"), "r_file_absent"),
        task("model absent", "ml_model", {"name": names["model"], "model_group_id": "{{ r_group.model_group_id }}", "state": "absent"},
             "r_model_absent"),
        task("connector absent", "ml_connector", {"name": names["connector"], "state": "absent"}, "r_connector_absent"),
        task("group absent", "ml_model_group", {"name": names["group"], "state": "absent"}, "r_group_absent"),
    ]


class EchoingServer:
    """A hostile "OpenSearch" that echoes the basic-auth password back, as given, as repr and JSON-escaped,
    in the error of a task's refresh; the stored task is found, so ml_task_info returns it with a warning."""

    TASK_ID = "relechotask"

    def __init__(self):
        task = {"task_type": "BATCH_PREDICTION", "state": "RUNNING", "function_name": "REMOTE", "create_time": 1}

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, status, payload):
                data = json.dumps(payload).encode()
                head = "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (status, self.responses[status][0], len(data))
                self.wfile.write(head.encode() + data)

            def do_GET(self):
                if self.path == "/":
                    return self.answer(200, {"version": {"number": "2.19.6"}})
                password = base64.b64decode(self.headers.get("Authorization", "Basic ").split(" ", 1)[1]).decode().split(":", 1)[-1]
                return self.answer(500, {"error": {"type": "status_exception", "reason": "refresh failed for %s, %r, %s"
                                                   % (password, password, json.dumps(password))}})

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                return self.answer(200, {"hits": {"total": {"value": 1, "relation": "eq"},
                                                  "hits": [{"_id": EchoingServer.TASK_ID, "_source": task}]}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def warning_tasks(echo_url: str) -> list[tuple[dict, str]]:
    """(task, what its warning must say): each succeeds with a warning in which a secret was redacted."""
    echoed = {"url": echo_url, "username": USER, "password": env_lookup("REL_WS_PASSWORD"), "task_id": EchoingServer.TASK_ID}
    return [(task("ml_task_info, a hostile server echoing the password", "ml_task_info", echoed, "w_task_info_echo"),
             "could not refresh it")]


def leak_forms(value: str) -> dict:
    """The forms a secret can take in printed text, each named."""
    forms = {}
    for label, text in (("", value), (" stripped", value.strip())):
        forms[label.strip() or "as given"] = text
        forms[f"repr{label}"] = repr(text)[1:-1]
        forms[f"JSON{label}"] = json.dumps(text)[1:-1]
    for number, piece in enumerate(value.split(), 1):
        if len(piece) >= 8:
            forms[f"piece {number}"] = piece
    return forms


def failing_tasks(names: dict, tls_url: str, jsonl: str) -> list[tuple[dict, str]]:
    """(task, what its message must say); each task ignores its error."""
    wrong = {"password": env_lookup("REL_WRONG_PASSWORD")}
    tls = {"url": tls_url}
    connector = connector_args(names["connector"], env_lookup("REL_CRED"))
    cases = []
    for label, connection, expected in (("wrong password", wrong, "401"), ("TLS error", tls, "TLS verification failed")):
        for module, args in (
            ("ml_cluster_info", {}),
            ("ml_model_group", {"name": names["group"]}),
            ("ml_model_group_info", {}),
            ("ml_connector", connector),
            ("ml_connector_info", {}),
            ("ml_model", {"name": names["model"], "model_group_id": "x", "connector_id": "y"}),
            ("ml_model_info", {}),
        ):
            cases.append((task(f"{module}, {label}", module, dict(args, **connection), f"f_{module}_{label.split()[0]}",
                               ignore_errors=True), expected))
    openai_wrong = {"api_base_url": ENV["OPENAI_BASE_URL"], "api_key": env_lookup("REL_WRONG_OPENAI_KEY"), "src": jsonl}
    cases.append((task("openai_file, wrong key", "openai_file", openai_wrong, "f_openai_wrong_key", ignore_errors=True), "401"))
    openai_tls = dict(openai_wrong, api_base_url=tls_url + "/openai/v1", api_key=env_lookup("REL_OPENAI_KEY"))
    cases.append((task("openai_file, TLS error", "openai_file", openai_tls, "f_openai_tls", ignore_errors=True), "TLS verification failed"))
    wrong_newline = dict(openai_wrong, api_key=env_lookup("REL_WRONG_OPENAI_KEY_NL"))
    cases.append((task("openai_file, wrong key with a newline", "openai_file", wrong_newline, "f_openai_wrong_key_nl", ignore_errors=True),
                  "401"))
    inner_whitespace = dict(openai_wrong, api_key=env_lookup("REL_WS_KEY"))
    cases.append((task("openai_file, a key with a line break inside", "openai_file", inner_whitespace, "f_openai_ws_key", ignore_errors=True),
                  "api_key holds whitespace or a control character"))
    return cases


def dump_task(registers: list[str], path: str) -> dict:
    content = "{{ {%s} | to_nice_json }}" % ", ".join("'%s': %s" % (name, name) for name in registers)
    return {"name": "dump the registered results", "ansible.builtin.copy": {"content": content, "dest": path, "mode": "0600"}}


def secrets_playbooks(suite, tag: str) -> str:
    names = chain_names(tag)
    values = {
        "REL_OS_PASSWORD": "relpw-" + secrets.token_hex(12),
        "REL_WRONG_PASSWORD": "relbad-" + secrets.token_hex(12),
        "REL_CRED": "sk-relcred-" + secrets.token_hex(12),
        "REL_CRED2": "sk-relcred2-" + secrets.token_hex(12),
        "REL_WRONG_OPENAI_KEY": "sk-relwrong-" + secrets.token_hex(12),
        "REL_OPENAI_KEY": ENV["OPENAI_API_KEY"],
    }
    values.update({
        "REL_OPENAI_KEY_NL": values["REL_OPENAI_KEY"] + "\n",
        "REL_WRONG_OPENAI_KEY_NL": values["REL_WRONG_OPENAI_KEY"] + "\n",
        "REL_WS_KEY": "sk-relws-" + secrets.token_hex(8) + "\n" + secrets.token_hex(8) + "\t" + secrets.token_hex(8),
        "REL_WS_PASSWORD": "relwspw-" + secrets.token_hex(8) + "\t" + secrets.token_hex(8) + "\n",
    })
    needles = {}
    for name, value in values.items():
        for form, text in leak_forms(value).items():
            needles[name if form == "as given" else f"{name} ({form})"] = text
    for name in ("REL_OS_PASSWORD", "REL_WRONG_PASSWORD", "REL_WS_PASSWORD"):
        needles[name + " (basic auth)"] = base64.b64encode(f"{USER}:{values[name]}".encode()).decode()

    workdir = suite.workdir
    jsonl = workdir / "secrets-input.jsonl"
    jsonl.write_text(json.dumps({"custom_id": "1", "method": "POST", "url": "/v1/embeddings",
                                 "body": {"model": "text-embedding-ada-002", "input": "secret test"}}) + "\n")
    connection = {"url": suite.proxy.url, "username": USER, "password": env_lookup("REL_OS_PASSWORD")}
    suite.proxy.reset()
    suite.proxy.plan(mode="reject_password", password=values["REL_WRONG_PASSWORD"], count=-1)

    # A canary printed on purpose: the search below must find it, or it could not find a leak either.
    canary = "relcanary-" + secrets.token_hex(12)
    values["REL_CANARY"] = canary
    working = working_tasks(names, str(jsonl), str(workdir / "secrets-download.jsonl"))
    working.append({"name": "print the canary", "ansible.builtin.debug": {"msg": env_lookup("REL_CANARY")}, "register": "r_canary"})
    failing = failing_tasks(names, suite.tls_proxy.url, str(jsonl))
    echoing = EchoingServer()
    warning = warning_tasks(echoing.url)
    dumps = {"working": str(workdir / "secrets-working.json"), "failing": str(workdir / "secrets-failing.json")}
    working_registers = [entry["register"] for entry in working]
    failing_registers = [entry["register"] for entry, _expected in failing + warning]
    # The role, whose tasks pass the OpenAI key to ml_connector and openai_file (and hide them with no_log). It runs
    # after the working run, not beside it: the working run updates and deletes its connector, which ML Commons
    # refuses while a model of another connector made in the same minute is registered (ml_connector's notes).
    role = RoleWorkload(workdir, tag + "role")
    try:
        working_run, failing_run = run_playbooks_at_once(workdir, [
            (play(working + [dump_task(working_registers, dumps["working"])], connection), values, ["-vvvv", "--diff"]),
            (play([entry for entry, _expected in failing + warning] + [dump_task(failing_registers, dumps["failing"])], connection), values,
             ["-vvvv", "--diff"]),
        ])
    finally:
        echoing.stop()
    [role_run] = run_playbooks_at_once(workdir, [(role.plays(connection), values, ["-vvvv", "--diff"])])
    runs = {"working": working_run, "failing": failing_run, "role": role_run}
    suite.proxy.reset()
    role.cleanup()
    problems = []
    if runs["role"].rc != 0:
        problems.append("the role's run failed:\n" + runs["role"].tail(40))
    if runs["working"].rc != 0:
        problems.append("the working run failed:\n" + runs["working"].tail(40))
    if runs["failing"].rc != 0:
        problems.append("the failing run did not reach its end:\n" + runs["failing"].tail(40))
    results = {}
    for which, path in dumps.items():
        try:
            results[which] = open(path).read()
        except OSError:
            results[which] = ""
            problems.append(f"no registered results from the {which} run")
    failing_results = json.loads(results["failing"] or "{}")
    for (entry, expected), register in zip(failing, failing_registers):
        outcome = failing_results.get(register, {})
        if not outcome.get("failed") or expected not in str(outcome.get("msg", "")):
            problems.append(f"{entry['name']}: expected a failure saying {expected!r}, got {str(outcome.get('msg'))[:300]!r}")
    for entry, expected in warning:
        outcome = failing_results.get(entry["register"], {})
        said = json.dumps(outcome.get("warnings", []))
        # The warning must be there, with the echoed password redacted in it, or the search below proves nothing.
        if outcome.get("failed") or expected not in said or "********" not in said:
            problems.append(f"{entry['name']}: expected a warning saying {expected!r} with a secret redacted, got {said[:300]!r}")
    leaks = []
    searched = {f"{which} output": run.output for which, run in runs.items()}
    searched.update({f"{which} registered results": text for which, text in results.items()})
    needles.pop("REL_CANARY", None)
    for where, text in searched.items():
        for name, needle in needles.items():
            count = text.count(needle)
            if count:
                leaks.append(f"{name} {count}x in the {where}")
                TALLY.leaked += count
    if leaks:
        problems.append("secrets leaked: " + ", ".join(leaks))
    if canary not in runs["working"].output:
        problems.append("the canary printed on purpose was not found: the search for secrets is broken")
    if problems:
        raise ScenarioFailed("; ".join(problems))
    size = sum(len(text) for text in searched.values())
    return (f"{len(working) - 1} working + {len(failing)} failing + {len(warning)} warning module runs and a run of the role at -vvvv --diff, "
            f"{len(needles)} "
            "secret forms searched "
            f"in {size // 1024} KiB of output and results: 0 found (a canary printed on purpose: found)")
