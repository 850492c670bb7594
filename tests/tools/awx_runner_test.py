"""AWX's path, with AWX's engine: playbooks/batch_inference.yml through ansible-runner.

AWX runs a job template by handing ansible-runner a private data directory whose environment its
credentials' injectors filled. This test builds that directory from docs/awx-credential-type.yml
itself: each injector template is rendered the way AWX renders it (a sandboxed Jinja environment,
unset fields rendering as empty strings, unset booleans as False), from the inputs of a credential
that sets the test bed's OpenSearch URL, a password, TLS verification (its default) and the
emulator's OpenAI key and base URL, and leaves the user name, the authentication, the CA and the client
certificate unset (set PEM fields are checked to become files the environment names). The job's extra
variables hold no connection setting. It then runs the playbook twice and tears down, and checks:

- the job succeeds, the batch job completes and its output is downloaded;
- the second run changes nothing;
- no job event, no stdout and no artifact holds the OpenAI key or the password.

Prints "N passed, N failed". Needs the test bed of `make up` (.testbed/env).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import ansible_runner
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def injected_env(credential_type, inputs, files_dir):
    """The environment AWX injects for a credential of this type with these inputs. As AWX does, each file
    injector (``template.<name>``) is rendered into a file of ``files_dir``, whose path the env templates
    read as ``tower.filename.<name>``."""
    namespace = dict(inputs)
    for field in credential_type["inputs"]["fields"]:
        # AWX: "default missing boolean fields to False"; other missing fields are undefined,
        # which Jinja renders as an empty string.
        if field.get("type") == "boolean" and field["id"] not in inputs:
            namespace[field["id"]] = False
    sandbox = ImmutableSandboxedEnvironment()
    filenames = {}
    for label, template in credential_type["injectors"].get("file", {}).items():
        path = os.path.join(files_dir, label.replace(".", "_"))
        with open(path, "w") as handle:
            handle.write(sandbox.from_string(template).render(**namespace))
        filenames[label.split(".", 1)[1] if "." in label else label] = path
    namespace["tower"] = {"filename": filenames.get("template") if list(filenames) == ["template"] else filenames}
    return {name: sandbox.from_string(template).render(**namespace) for name, template in credential_type["injectors"]["env"].items()}


def read_text(path):
    with open(path) as handle:
        return handle.read()


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("PASS  %s" % name)
        else:
            self.failed += 1
            print("FAIL  %s%s" % (name, (": " + detail) if detail else ""))


def run_job(private_data_dir, project_dir, env, extravars, python, ident):
    return ansible_runner.run(
        private_data_dir=private_data_dir,
        project_dir=project_dir,
        playbook="playbooks/batch_inference.yml",
        inventory={"all": {"hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": python}}}},
        envvars=env,
        extravars=extravars,
        ident=ident,
        quiet=True,
    )


def leaks(run, private_data_dir, secrets):
    """Where the secrets show: in job events, stdout, or any artifact file of the run."""
    found = []
    events = list(run.events)
    for secret_name, secret in secrets.items():
        for event in events:
            if secret in json.dumps(event):
                found.append("%s in event %s" % (secret_name, event.get("event")))
                break
        if secret in run.stdout.read():
            found.append("%s in stdout" % secret_name)
        run.stdout.seek(0)
        # The job events and stdout as written to disk. (The artifact "command" records the job's
        # environment, credentials included, as AWX's own private data directory does; AWX keeps
        # neither, it stores the events and stdout.)
        artifacts = os.path.join(private_data_dir, "artifacts")
        for folder, _dirs, files in os.walk(artifacts):
            if os.path.basename(folder) != "job_events":
                files = [name for name in files if name == "stdout"]
            for name in files:
                with open(os.path.join(folder, name), "rb") as handle:
                    if secret.encode() in handle.read():
                        found.append("%s in %s" % (secret_name, os.path.relpath(os.path.join(folder, name), private_data_dir)))
    return found, len(events)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", required=True, help="the collections path holding ansible_collections/opensearch/ml_commons")
    parser.add_argument("--env-file", default=os.path.join(ROOT, ".testbed", "env"))
    args = parser.parse_args()

    sys.path.insert(0, os.path.join(ROOT, "tests", "testbed"))
    from testbed import read_env_file  # pylint: disable=import-outside-toplevel

    testbed = read_env_file(args.env_file)
    project_dir = os.path.join(args.collections, "ansible_collections", "opensearch", "ml_commons")
    with open(os.path.join(ROOT, "docs", "awx-credential-type.yml")) as handle:
        credential_type = yaml.safe_load(handle)
    password = "awx-pw-%d-never-shown" % (time.time_ns() % 10**9)
    inputs = {
        "opensearch_url": testbed["OPENSEARCH_URL"],
        "opensearch_password": password,
        "opensearch_validate_certs": True,
        "openai_api_key": testbed["OPENAI_API_KEY"],
        "openai_base_url": testbed["OPENAI_BASE_URL"],
    }
    workdir = tempfile.mkdtemp(prefix="awx-runner-")
    credential_env = injected_env(credential_type, inputs, workdir)
    checks = Checks()
    checks.check("the unset user name is injected as an empty string", credential_env.get("OPENSEARCH_USERNAME") == "",
                 repr(credential_env.get("OPENSEARCH_USERNAME")))
    # The runs below succeed with them, so the modules take these empty variables as unset.
    unset = ("OPENSEARCH_AUTH_TYPE", "OPENSEARCH_CA_PATH", "OPENSEARCH_CLIENT_CERT", "OPENSEARCH_CLIENT_KEY")
    checks.check("the unset authentication, CA and client certificate fields are injected as empty strings",
                 all(credential_env.get(name) == "" for name in unset), repr({name: credential_env.get(name) for name in unset}))
    checks.check("every injector of the credential type is set", set(credential_env) == set(credential_type["injectors"]["env"]))
    pem = "-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n"
    files_dir = tempfile.mkdtemp(prefix="awx-credential-files-", dir=workdir)
    with_pem = injected_env(credential_type, dict(inputs, opensearch_ca_cert=pem, opensearch_client_cert=pem, opensearch_client_key=pem,
                                                  opensearch_auth_type="cert"), files_dir)
    named = [with_pem.get(name) for name in ("OPENSEARCH_CA_PATH", "OPENSEARCH_CLIENT_CERT", "OPENSEARCH_CLIENT_KEY")]
    checks.check("set PEM fields are injected as paths of files holding them, and the authentication as given",
                 all(path and os.path.dirname(path) == files_dir and read_text(path) == pem for path in named)
                 and with_pem.get("OPENSEARCH_AUTH_TYPE") == "cert", repr(with_pem))

    # What AWX's execution environment provides besides the credential: ansible-playbook on PATH and
    # the collection installed.
    env = dict(credential_env, ANSIBLE_COLLECTIONS_PATH=args.collections, ANSIBLE_FORCE_COLOR="0",
               PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    nonce = time.time_ns()
    with open(os.path.join(workdir, "input.jsonl"), "w") as handle:
        for n in range(3):
            handle.write(json.dumps({"custom_id": "doc-%d" % n, "method": "POST", "url": "/v1/embeddings",
                                     "body": {"model": "text-embedding-ada-002", "input": "awx runner document %d of %d" % (n, nonce)}}) + "\n")
    # The job template's extra variables: what to run, no connection setting.
    extravars = {
        "batch_inference_name": "awx-runner-%d" % nonce,
        "batch_inference_input_file": os.path.join(workdir, "input.jsonl"),
        "batch_inference_download_dir": os.path.join(workdir, "results"),
        "batch_inference_wait_timeout": 300,
        "batch_inference_poll_interval": 1,
    }
    os.makedirs(extravars["batch_inference_download_dir"])
    secrets = {"the OpenAI key": testbed["OPENAI_API_KEY"], "the OpenSearch password": password}

    runs = {}
    for ident, extra in (("first", {}), ("second", {}), ("teardown", {"batch_inference_state": "absent"})):
        private_data_dir = os.path.join(workdir, "private_data_dir_" + ident)
        os.makedirs(private_data_dir)
        started = time.time()
        run = run_job(private_data_dir, project_dir, env, dict(extravars, **extra), sys.executable, ident)
        runs[ident] = run
        print("      %s run: %s, rc %s, %.1f s" % (ident, run.status, run.rc, time.time() - started))
        checks.check("the %s run succeeds" % ident, run.status == "successful" and run.rc == 0,
                     run.stdout.read()[-3000:] if run.status != "successful" else "")
        run.stdout.seek(0)
        # The search can fail: the secrets are in the environment ansible-runner was given.
        with open(os.path.join(private_data_dir, "env", "envvars")) as handle:
            given = handle.read()
        checks.check("the %s run was given the credential's secrets (the leak search has something to find)" % ident,
                     all(secret in given for secret in secrets.values()))
        found, count = leaks(run, private_data_dir, secrets)
        checks.check("the %s run's %d job events, stdout and artifacts hold no secret" % (ident, count), count > 0 and not found, "; ".join(found))

    first = runs["first"]
    results = [event["event_data"]["res"] for event in first.events
               if event.get("event") == "runner_on_ok" and event.get("event_data", {}).get("task") == "Show the result"]
    result = results[0].get("batch_inference_result", {}) if results else {}
    checks.check("the first run provisioned the model and ran the batch job to completion",
                 bool(result.get("model_id")) and str(result.get("status", "")).upper() == "COMPLETED", json.dumps(result)[:1000])
    downloaded = sorted(os.listdir(extravars["batch_inference_download_dir"]))
    checks.check("the job's output was downloaded", any(".attempt-1." in name and name.endswith(".output.jsonl") for name in downloaded), repr(downloaded))
    stats = runs["second"].stats or {}
    checks.check("the second run changes nothing",
                 runs["second"].status == "successful" and "localhost" in stats.get("ok", {}) and stats.get("changed", {}).get("localhost", 0) == 0,
                 json.dumps(stats))
    teardown_stats = runs["teardown"].stats or {}
    checks.check("the teardown removed what the first run made",
                 runs["teardown"].status == "successful" and teardown_stats.get("changed", {}).get("localhost", 0) > 0, json.dumps(teardown_stats))

    # The private data directories hold the credential's secrets in env/envvars, as AWX's do.
    shutil.rmtree(workdir, ignore_errors=True)
    print("awx-runner: %d passed, %d failed" % (checks.passed, checks.failed))
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
