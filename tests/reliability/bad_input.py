"""Bad input: malformed options across the modules, each answered by one specific, clear message.

Every case runs as a task of one playbook (errors ignored, results registered and dumped); each must
fail, its message must hold the case's distinctive words, no Python traceback may show anywhere in
its result, and the ML object counts on the server must be the same before and after.
"""

from __future__ import annotations

import json

from run import (ENV, PREFIX, TALLY, ScenarioFailed, chain_names, chain_tasks, connector_args, delete_everything_named, ml_totals, play, run_playbook,
                 run_playbooks_at_once)

MISSING_ID = "rel-no-such-id-0000000000"
PARTS = 3


def cases(names: dict, suite) -> list[tuple[str, str, dict, str]]:
    """(label, module, arguments, the words its message must hold)."""
    connector = connector_args(names["connector"] + " bad")
    predict = connector["actions"][0]
    group = "{{ group.model_group_id }}"
    conn_id = "{{ connector.connector_id }}"
    proxy, tls = suite.proxy.url, suite.tls_proxy.url
    openai = {"api_base_url": ENV["OPENAI_BASE_URL"], "api_key": "{{ lookup('ansible.builtin.env', 'REL_OPENAI_KEY') }}"}

    def with_action(**changes):
        return dict(connector, actions=[dict(predict, **changes)])

    return [
        # ml_model_group
        ("group: name missing", "ml_model_group", {}, "missing required arguments: name"),
        ("group: empty name", "ml_model_group", {"name": "  "}, "name must not be empty"),
        ("group: unsafe name", "ml_model_group", {"name": "bad<name>"}, "does not accept ('<' '>')"),
        ("group: name too long", "ml_model_group", {"name": "g" * 300}, "at most 256 can be looked up"),
        ("group: unsafe description", "ml_model_group", {"name": names["group"] + " x", "description": "a {b}"}, "description holds characters"),
        ("group: unknown access_mode", "ml_model_group", {"name": names["group"] + " x", "access_mode": "everyone"},
         "value of access_mode must be one of"),
        ("group: roles exclusive", "ml_model_group", {"name": names["group"] + " x", "backend_roles": ["a"], "add_all_backend_roles": True},
         "mutually exclusive"),
        ("group: access control without the security plugin", "ml_model_group", {"name": names["group"] + " x", "access_mode": "private"},
         "needs the Security plugin"),
        ("group: unknown state", "ml_model_group", {"name": names["group"], "state": "gone"}, "value of state must be one of"),
        ("group: unknown option", "ml_model_group", {"name": names["group"], "colour": "blue"}, "Unsupported parameters"),
        ("group: roles not a list of strings", "ml_model_group", {"name": names["group"] + " x", "backend_roles": {"a": 1}},
         "backend_roles"),
        # ml_connector
        ("connector: no name nor id", "ml_connector", {"description": "x"}, "one of the following is required: name, connector_id"),
        ("connector: unknown id", "ml_connector", {"connector_id": MISSING_ID}, "No connector has the ID " + MISSING_ID),
        ("connector: unknown action type", "ml_connector", with_action(action_type="train"), "value of action_type must be one of"),
        ("connector: action without url", "ml_connector", dict(connector, actions=[{"action_type": "predict", "method": "POST"}]),
         "missing required arguments: url"),
        ("connector: actions not a list", "ml_connector", dict(connector, actions="predict"), "Elements value for option 'actions'"),
        ("connector: invalid request_body", "ml_connector", with_action(request_body='{ "input": ${parameters.input}, '),
         "request_body that is not a JSON template"),
        ("connector: parameters not a dict", "ml_connector", dict(connector, parameters="model"), "dictionary requested"),
        ("connector: unknown protocol", "ml_connector", dict(connector, protocol="ftp"), "value of protocol must be one of"),
        ("connector: unknown update_credential", "ml_connector", dict(connector, update_credential="sometimes"),
         "value of update_credential must be one of"),
        ("connector: wait_timeout not a number", "ml_connector", dict(connector, wait_timeout="soon"), "wait_timeout"),
        ("connector: unsafe name", "ml_connector", dict(connector, name="conn;drop"), "connector name holds characters"),
        ("connector: untrusted endpoint", "ml_connector", with_action(url="http://127.0.0.2:9/v1/embeddings"), "trusted"),
        ("connector: unknown HTTP method", "ml_connector", with_action(method="FETCH"), "has method 'FETCH'; ML Commons connectors send only POST or GET"),
        ("connector: in use, absent by unknown id", "ml_connector", {"connector_id": MISSING_ID, "state": "present", "description": "x"},
         "No connector has the ID"),
        # ml_model
        ("model: no name nor id", "ml_model", {"model_group_id": group}, "one of the following is required: name, model_id"),
        ("model: unknown group", "ml_model", {"name": names["model"] + " x", "model_group_id": MISSING_ID, "connector_id": conn_id},
         "No model group has the ID " + MISSING_ID),
        ("model: unknown connector", "ml_model", {"name": names["model"] + " x", "model_group_id": group, "connector_id": MISSING_ID},
         "No connector has the ID " + MISSING_ID),
        ("model: no group to register in", "ml_model", {"name": names["model"] + " x", "connector_id": conn_id},
         "needs model_group_id"),
        ("model: unknown function_name", "ml_model", {"name": names["model"], "function_name": "text_embedding"},
         "value of function_name must be one of"),
        ("model: unknown state", "ml_model", {"name": names["model"], "state": "running"}, "value of state must be one of"),
        ("model: unknown model_id", "ml_model", {"model_id": MISSING_ID}, "No model has the ID " + MISSING_ID),
        ("model: is_enabled not a boolean", "ml_model", {"name": names["model"], "is_enabled": "perhaps"}, "is_enabled"),
        ("model: rate_limiter not a dict", "ml_model", {"name": names["model"], "rate_limiter": "fast"}, "rate_limiter"),
        ("model: name too long", "ml_model", {"name": "m" * 300, "model_group_id": group, "connector_id": conn_id}, "at most 256"),
        ("model: unsafe description", "ml_model", {"name": names["model"], "description": "<b>", "model_group_id": group},
         "description holds characters"),
        # info modules
        ("model_info: unknown option", "ml_model_info", {"state": "x"}, "Unsupported parameters"),
        ("model: wait_timeout not a number", "ml_model", {"name": names["model"], "wait_timeout": "later"}, "wait_timeout"),
        ("group_info: unknown option", "ml_model_group_info", {"names": "x"}, "Unsupported parameters"),
        # connection options
        ("connection: url not a URL", "ml_cluster_info", {"url": "opensearch:9200"}, "url must look like https://host:9200"),
        ("connection: credentials in url", "ml_model_group_info", {"url": "http://admin:pw@127.0.0.1:9"}, "not in url"),
        ("connection: unreachable url", "ml_model_group", {"name": names["group"], "url": "http://127.0.0.1:9", "retries": 0},
         "Could not connect to POST http://127.0.0.1:9/"),
        ("connection: wrong password", "ml_model_group", {"name": names["group"], "url": proxy, "username": "admin",
                                                          "password": "{{ lookup('ansible.builtin.env', 'REL_WRONG_PASSWORD') }}"},
         "answered 401 to POST /_plugins/_ml/model_groups/_search: Unauthorized. Check username and password"),
        ("connection: https to an http port", "ml_cluster_info", {"url": ENV["OPENSEARCH_URL"].replace("http:", "https:")}, "does not seem to speak TLS"),
        ("connection: http to an https port", "ml_cluster_info", {"url": tls.replace("https:", "http:"), "retries": 0}, "the url must start with https://"),
        ("connection: TLS without ca_path", "ml_connector_info", {"url": tls}, "Set ca_path"),
        ("connection: missing ca_path file", "ml_connector_info", {"url": tls, "ca_path": "/nonexistent/ca.pem"}, "ca_path /nonexistent/ca.pem does not exist"),
        ("connection: wrong CA", "ml_connector_info", {"url": tls, "ca_path": suite.certs["cert_other_ca"]}, "TLS verification failed"),
        ("connection: missing client_cert file", "ml_model_info", {"client_cert": "/nonexistent/client.pem"},
         "client_cert /nonexistent/client.pem does not exist"),
        ("connection: basic without username", "ml_model_info", {"auth_type": "basic"}, "auth_type basic needs username"),
        ("connection: sigv4 without region", "ml_model_info", {"auth_type": "aws_sigv4", "aws_region": ""}, "aws_sigv4"),
        ("connection: timeout not a number", "ml_model_info", {"timeout": "fast"}, "timeout"),
        # openai_file
        ("openai_file: wrong api_key", "openai_file", dict(openai, api_key="sk-wrong-key", file_id="file-x", dest="/tmp/x"), "answered 401"),
        ("openai_file: nothing to do", "openai_file", dict(openai), "one of the following is required: src, file_id"),
        ("openai_file: missing src", "openai_file", dict(openai, src="/nonexistent/input.jsonl"), "Cannot read /nonexistent/input.jsonl"),
        ("openai_file: unknown file_id", "openai_file", dict(openai, file_id="file-doesnotexist", dest="/tmp/rel-never-written"),
         "no file file-doesnotexist"),
        ("openai_file: unreachable api", "openai_file",
         dict(openai, api_base_url="http://127.0.0.1:9/v1", file_id="f", dest="/tmp/x", retries=0), "Could not connect"),
        ("openai_file: unknown purpose", "openai_file", dict(openai, src="/etc/hostname", purpose="training"), "value of purpose must be one of"),
        ("openai_file: not a batch input", "openai_file", dict(openai, src="/etc/passwd"), "Line 1 of /etc/passwd is not valid JSON"),
        ("openai_file: checksum without its algorithm", "openai_file", dict(openai, file_id="file-x", dest="/tmp/x", checksum="abc"),
         "checksum must look like sha256:<hex digest>"),
    ]


def suite_cleanup(tag: str) -> None:
    delete_everything_named(PREFIX + tag)


def run_bad_input(suite, tag: str) -> str:
    names = chain_names(tag)
    # A group and a connector to point the model cases at; made first, outside the counted window.
    setup = run_playbook(suite.workdir, play(chain_tasks(names)[:2], {"url": ENV["OPENSEARCH_URL"]}))
    if setup.rc != 0:
        raise ScenarioFailed("could not make the group and connector the cases use:\n" + setup.tail())
    suite.proxy.reset()
    suite.proxy.plan(mode="reject_password", password="rel-wrong-password", count=-1)
    all_cases = cases(names, suite)
    # The cases in a few playbooks run side by side (each first looks up the group and connector).
    playbooks, dumps = [], []
    for part in range(PARTS):
        tasks = chain_tasks(names)[:2]
        numbers = range(part, len(all_cases), PARTS)
        for number in numbers:
            label, module, args, _expected = all_cases[number]
            tasks.append({"name": label, f"opensearch.ml_commons.{module}": args, "register": f"case{number}", "ignore_errors": True})
        dump = suite.workdir / f"bad-input-{part}.json"
        content = "{{ {%s} | to_nice_json }}" % ", ".join("'case%d': case%d" % (number, number) for number in numbers)
        tasks.append({"name": "dump", "ansible.builtin.copy": {"content": content, "dest": str(dump), "mode": "0600"}})
        playbooks.append((play(tasks, {"url": ENV["OPENSEARCH_URL"]}), {"REL_WRONG_PASSWORD": "rel-wrong-password"}))
        dumps.append(dump)
    before = ml_totals()
    runs = run_playbooks_at_once(suite.workdir, playbooks)
    after = ml_totals()
    suite.proxy.reset()
    suite_cleanup(tag)
    problems = []
    results = {}
    for run, dump in zip(runs, dumps):
        if run.rc != 0 or not dump.exists():
            raise ScenarioFailed("a bad-input playbook did not reach its end:\n" + run.tail(40))
        results.update(json.loads(dump.read_text()))
    if any("Traceback" in run.output for run in runs):
        problems.append("a traceback in a playbook's output")
    for number, (label, module, _args, expected) in enumerate(all_cases):
        outcome = results.get(f"case{number}", {})
        message = str(outcome.get("msg", ""))
        text = json.dumps(outcome)
        if not outcome.get("failed"):
            problems.append(f"{label}: did not fail")
        elif expected not in message:
            problems.append(f"{label}: message lacks {expected!r}: {message[:400]!r}")
        # ansible-core 2.19 adds "exception": "(traceback unavailable)" to every failure; a crash
        # shows as a traceback, module_stderr, or a message of its own.
        crashed = "Traceback (most recent call last)" in text or "module_stderr" in outcome or "MODULE FAILURE" in message
        if crashed or "Module failed:" in message or outcome.get("exception", "(traceback unavailable)") != "(traceback unavailable)":
            problems.append(f"{label}: a Python traceback: {text[:600]}")
    for kind in before:
        if before[kind] != after[kind]:
            difference = after[kind] - before[kind]
            if difference > 0:
                TALLY.duplicated += difference
            else:
                TALLY.lost -= difference
            problems.append(f"{kind}s: {before[kind]} before, {after[kind]} after")
    if problems:
        raise ScenarioFailed(f"{len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return f"{len(all_cases)} malformed inputs, each failed with its message, no traceback, server counts unchanged {after}"
