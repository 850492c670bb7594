"""The index scenarios: index_batch_input and index_batch_output around a real batch job of the OpenAI emulator,
on an index of the test bed. A document's "own result" is the emulator's embedding of its current text, asked of
the emulator directly; documents are read back from OpenSearch itself (``_search``, ``_stats``), and what was paid
for is counted from the batch inputs uploaded (every line a request) and the emulator's counters, never from what
the modules report.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import urllib.request
from pathlib import Path

from run import ENV, PREFIX, TALLY, TESTBED, Run, ScenarioFailed, emulator_stats, http, opensearch, run_playbook, run_playbooks_at_once

MODEL = "text-embedding-3-small"
DIMENSIONS = 4
TARGET_FIELD = "vector"
FINGERPRINT_FIELD = "vector_fingerprint"
KNN_METHOD = {"name": "hnsw", "engine": "lucene", "space_type": "l2"}
# The emulator's jobs at its start-up timings take seconds; this bounds the wait of one.
JOB_POLLS = 60


def embedding(text: str) -> list[float]:
    """The emulator's answer to the document's request, asked synchronously (not a batch: nothing paid)."""
    status, answer = http("POST", ENV["OPENAI_BASE_URL"] + "/embeddings", {"model": MODEL, "input": text, "dimensions": DIMENSIONS},
                          headers={"Authorization": "Bearer " + ENV["OPENAI_API_KEY"]})
    if status != 200:
        raise ScenarioFailed(f"the emulator's embeddings answered {status}: {answer}")
    return answer["data"][0]["embedding"]


def float32(vector) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)


def output_line(doc_id: str, vector: list[float]) -> str:
    """A batch output line as OpenAI writes one, for a custom_id that is the document's _id alone."""
    return json.dumps({"id": "batch_req_" + doc_id, "custom_id": doc_id, "error": None,
                       "response": {"status_code": 200, "request_id": "req_" + doc_id, "body": {"object": "list", "data": [
                           {"object": "embedding", "index": 0, "embedding": vector}]}}}) + "\n"


class IndexLoop:
    """An index of ``documents`` texts (``_id`` doc-N) with a knn_vector field of DIMENSIONS, and the playbooks of the
    loop around it: ``send`` (export, upload, create the batch) and ``receive`` (wait, download, write back), each run
    numbered, its input and output kept under the work directory."""

    def __init__(self, suite, tag: str, documents: int, shards: int = 1, replicas: int = 0, url: str | None = None):
        self.suite, self.tag = suite, tag
        self.index = f"{PREFIX}{tag}"
        self.dir = suite.workdir / f"index-{tag}"
        self.dir.mkdir(exist_ok=True)
        self.url = url or ENV["OPENSEARCH_URL"]
        self.runs = 0
        self.uploaded: list[Path] = []
        self.texts = {f"doc-{number}": f"reliability {tag} document {number}" for number in range(documents)}
        self.shards, self.replicas = shards, replicas

    # -- the index -------------------------------------------------------------------------------

    def create(self, dimension: int = DIMENSIONS, text_type: str = "text") -> None:
        self.delete()
        status, answer = opensearch("PUT", f"/{self.index}", {
            "settings": {"index": {"knn": True, "number_of_shards": self.shards, "number_of_replicas": self.replicas}},
            "mappings": {"properties": {"text": {"type": text_type},
                                        TARGET_FIELD: {"type": "knn_vector", "dimension": dimension, "method": KNN_METHOD},
                                        FINGERPRINT_FIELD: {"type": "keyword"}}}})
        if status != 200:
            raise ScenarioFailed(f"creating {self.index} answered {status}: {answer}")
        self.bulk([({"index": {"_id": doc_id}}, {"text": text}) for doc_id, text in self.texts.items()])

    def bulk(self, operations: list[tuple[dict, dict | None]]) -> None:
        if not operations:
            return
        body = "".join(json.dumps(action) + "\n" + ("" if source is None else json.dumps(source) + "\n") for action, source in operations)
        request = urllib.request.Request(f"{ENV['OPENSEARCH_URL']}/{self.index}/_bulk?refresh=true", data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/x-ndjson"})
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
        if answer.get("errors"):
            raise ScenarioFailed(f"writing to {self.index} failed: {json.dumps(answer)[:600]}")

    def delete(self) -> None:
        opensearch("DELETE", f"/{self.index}")

    def documents(self) -> dict:
        status, answer = opensearch("POST", f"/{self.index}/_search", {"size": 10000, "query": {"match_all": {}}})
        if status != 200:
            raise ScenarioFailed(f"reading {self.index} answered {status}: {answer}")
        return {hit["_id"]: hit["_source"] for hit in answer["hits"]["hits"]}

    def index_ops(self) -> int:
        status, answer = opensearch("GET", f"/{self.index}/_stats/indexing")
        if status != 200:
            raise ScenarioFailed(f"{self.index}'s stats answered {status}: {answer}")
        return answer["_all"]["primaries"]["indexing"]["index_total"]

    # -- the playbooks ---------------------------------------------------------------------------

    def export_args(self, number: int, **changes) -> dict:
        return dict({"index": self.index, "text_field": "text", "target_field": TARGET_FIELD, "model": MODEL,
                     "body": {"dimensions": DIMENSIONS}, "dest": str(self.dir / f"input-{number}.jsonl")}, **changes)

    def write_args(self, src: Path, **changes) -> dict:
        return dict({"src": str(src), "index": self.index, "target_field": TARGET_FIELD}, **changes)

    def send_tasks(self, number: int) -> list[dict]:
        headers = {"Authorization": "Bearer {{ lookup('ansible.builtin.env', 'REL_OPENAI_KEY') }}"}
        return [
            {"name": "Export", "opensearch.ml_commons.index_batch_input": self.export_args(number), "register": "exported"},
            {"name": "Upload", "opensearch.ml_commons.openai_file": {"src": str(self.dir / f"input-{number}.jsonl"), "endpoint": "/v1/embeddings"},
             "register": "uploaded", "when": "exported.requests > 0"},
            {"name": "Batch", "ansible.builtin.uri": {
                "url": ENV["OPENAI_BASE_URL"] + "/batches", "method": "POST", "headers": headers, "body_format": "json",
                "body": {"input_file_id": "{{ uploaded.file_id }}", "endpoint": "/v1/embeddings", "completion_window": "24h"}},
             "register": "batch", "when": "exported.requests > 0"},
        ]

    def receive_tasks(self, number: int, batch_id: str = "{{ batch.json.id }}", **write_changes) -> list[dict]:
        headers = {"Authorization": "Bearer {{ lookup('ansible.builtin.env', 'REL_OPENAI_KEY') }}"}
        output = self.dir / f"output-{number}.jsonl"
        return [
            {"name": "Wait", "ansible.builtin.uri": {"url": f"{ENV['OPENAI_BASE_URL']}/batches/{batch_id}", "headers": headers},
             "register": "job", "until": "job.json.status in ['completed', 'failed', 'expired', 'cancelled']", "retries": JOB_POLLS, "delay": 1},
            {"name": "Download", "opensearch.ml_commons.openai_file": {"file_id": "{{ job.json.output_file_id }}", "dest": str(output)}},
            {"name": "Write back", "opensearch.ml_commons.index_batch_output": self.write_args(output, **write_changes), "register": "written"},
        ]

    def plays(self, tasks: list[dict], number: int, url: str | None = None) -> tuple[list[dict], Path]:
        """The play of ``tasks`` and the file its registered results are dumped to."""
        dump = self.dir / f"results-{number}.json"
        names = [task["register"] for task in tasks if "register" in task]
        content = "{{ {%s} | to_nice_json }}" % ", ".join(f"'{name}': {name} | default(None)" for name in names)
        tasks = tasks + [{"name": "Dump", "ansible.builtin.copy": {"content": content, "dest": str(dump), "mode": "0600"}}]
        openai = {"api_base_url": ENV["OPENAI_BASE_URL"], "api_key": "{{ lookup('ansible.builtin.env', 'REL_OPENAI_KEY') }}"}
        return [{"name": f"index loop {self.tag} {number}", "hosts": "localhost", "gather_facts": False,
                 "module_defaults": {"group/opensearch.ml_commons.ml_commons": {"url": url or self.url},
                                     "group/opensearch.ml_commons.openai": openai},
                 "tasks": tasks}], dump

    def next_number(self) -> int:
        self.runs += 1
        return self.runs

    def results(self, run: Run, dump: Path, what: str, must_pass: bool = True) -> dict:
        if must_pass and run.rc != 0:
            raise ScenarioFailed(f"{what} failed:\n{run.tail()}")
        found = json.loads(dump.read_text()) if dump.exists() else {}
        exported = found.get("exported") or {}
        if exported.get("requests"):
            self.uploaded.append(Path(exported["dest"]))
        return found

    def run(self, tasks: list[dict], number: int, what: str, must_pass: bool = True) -> dict:
        plays, dump = self.plays(tasks, number)
        return self.results(run_playbook(self.suite.workdir, plays), dump, what, must_pass)

    def loop(self, what: str) -> dict:
        number = self.next_number()
        return self.run(self.send_tasks(number) + [dict(task, when="exported.requests > 0") for task in self.receive_tasks(number)],
                        number, what)

    # -- the judge -------------------------------------------------------------------------------

    def sent_per_document(self) -> dict:
        """How many times each _id was sent in a batch input that was uploaded."""
        sent: dict = {}
        for path in self.uploaded:
            for line in path.read_text().splitlines():
                doc_id = json.loads(line)["custom_id"].split(":", 1)[1]
                sent[doc_id] = sent.get(doc_id, 0) + 1
        return sent

    def own_results(self, expected_ids=None) -> list[str]:
        """Each document holds the embedding of its own current text (as float32, what a knn_vector keeps)."""
        problems = []
        found = self.documents()
        expected_ids = set(self.texts) if expected_ids is None else set(expected_ids)
        if set(found) != expected_ids:
            problems.append(f"documents {sorted(set(found) ^ expected_ids)} are not as expected (missing or re-created)")
        wrong = [doc_id for doc_id, source in sorted(found.items())
                 if not isinstance(source.get(TARGET_FIELD), list) or float32(source[TARGET_FIELD]) != float32(embedding(source["text"]))]
        if wrong:
            TALLY.lost += len(wrong)
            problems.append(f"{len(wrong)} document(s) without their own result: {wrong[:5]}")
        return problems


def require(problems: list[str]) -> None:
    if problems:
        raise ScenarioFailed("; ".join(problems))


# ------------------------------------------------------------------------------------------------
# The scenarios


def deleted_and_edited(suite, tag: str) -> str:
    """A document deleted and one edited while their job runs: the deleted one reported and not re-created, the edited
    one holding the result of the text that was sent, and sent again (alone) by the next run."""
    loop = IndexLoop(suite, tag, 6)
    loop.create()
    batches = emulator_stats()["batches_created"]
    try:
        number = loop.next_number()
        loop.run(loop.send_tasks(number), number, "the export and the batch")
        loop.bulk([({"delete": {"_id": "doc-1"}}, None), ({"index": {"_id": "doc-2"}}, {"text": "edited while its job ran"})])
        batch_id = json.loads((loop.dir / f"results-{number}.json").read_text())["batch"]["json"]["id"]
        number = loop.next_number()
        received = loop.run(loop.receive_tasks(number, batch_id=batch_id), number, "the write-back")
        written = received["written"]
        problems = []
        if written["written"] != 5 or written["failed_documents"] != 1 or [failure["_id"] for failure in written["failures"]] != ["doc-1"]:
            problems.append(f"the write-back wrote {written['written']}, failed {written['failures']} (expected 5 written, doc-1 reported)")
        status, _answer = opensearch("GET", f"/{loop.index}/_doc/doc-1")
        if status != 404:
            TALLY.duplicated += 1
            problems.append("doc-1 was deleted during its job and exists again")
        texts = dict(loop.texts)
        del texts["doc-1"]
        texts["doc-2"] = "edited while its job ran"
        edited = loop.documents()["doc-2"]
        if float32(edited.get(TARGET_FIELD) or []) != float32(embedding(loop.texts["doc-2"])):
            problems.append("doc-2 does not hold the result of the text its job was sent")
        again = loop.loop("the run after the edit")
        if again["exported"]["requests"] != 1 or json.loads(Path(again["exported"]["dest"]).read_text())["custom_id"].split(":", 1)[1] != "doc-2":
            problems.append(f"the next run sent {again['exported']['requests']} request(s), not doc-2 alone")
        loop.texts = texts
        problems += loop.own_results()
        last = loop.loop("the last run")
        if last["exported"]["requests"] != 0:
            problems.append(f"the last run sent {last['exported']['requests']} request(s)")
        sent = loop.sent_per_document()
        twice = {doc_id: count for doc_id, count in sent.items() if count > (2 if doc_id == "doc-2" else 1)}
        if twice:
            TALLY.duplicated += len(twice)
            problems.append(f"paid for more than once: {twice}")
        batches = emulator_stats()["batches_created"] - batches
        if batches != 2:
            problems.append(f"{batches} batches created, not 2")
        require(problems)
        return "doc-1 deleted: reported, not re-created; doc-2 edited: its sent text's result, then sent again alone; 2 batches, 7 requests"
    finally:
        loop.delete()


def concurrent_loops(suite, tag: str, runs: int = 3) -> str:
    """``runs`` loops at once on the same index (each exports every document, pays for its job and writes back), then a run
    that must send and write nothing: they converge, every document holding its own result."""
    loop = IndexLoop(suite, tag, 20, shards=2)
    loop.create()
    try:
        numbers = [loop.next_number() for _run in range(runs)]
        played = [loop.plays(loop.send_tasks(number) + loop.receive_tasks(number), number) for number in numbers]
        done = run_playbooks_at_once(suite.workdir, [(plays, None, ()) for plays, _dump in played])
        problems = []
        failed = 0
        for number, run, (_plays, dump) in zip(numbers, done, played):
            found = loop.results(run, dump, f"concurrent run {number}", must_pass=False)
            if run.rc != 0:
                problems.append(f"concurrent run {number} failed:\n{run.tail(8)}")
            else:
                failed += found["written"]["failed_documents"]
        if failed:
            problems.append(f"the concurrent write-backs reported {failed} failed document(s)")
        problems += loop.own_results()
        before = loop.index_ops()
        last = loop.loop("the run after them")
        if last["exported"]["requests"] != 0 or last["written"]["changed"] or loop.index_ops() != before:
            problems.append(f"the run after them sent {last['exported']['requests']}, changed {last['written']['changed']}")
        require(problems)
        return f"{runs} loops at once, each wrote or found current all {len(loop.texts)} documents; the next run sent and wrote nothing"
    finally:
        loop.delete()


def bad_inputs(suite, tag: str) -> str:
    """A missing index, documents without the field or with a non-text value, a knn_vector of another dimension, a
    read-only index: each fails clearly (or, for documents without text, reports each by _id and sends nothing), and
    nothing is written."""
    loop = IndexLoop(suite, tag, 3)
    missing = IndexLoop(suite, tag + "-missing", 1)
    odd = IndexLoop(suite, tag + "-odd", 0)
    narrow = IndexLoop(suite, tag + "-narrow", 2)
    try:
        loop.create()
        odd.create(text_type="keyword")
        odd.bulk([({"index": {"_id": "no-field"}}, {"other": "x"}), ({"index": {"_id": "a-number"}}, {"count": 7, "text": 42})])
        narrow.create(dimension=3)
        src = loop.dir / "hand-written-output.jsonl"
        src.write_text("".join(output_line(doc_id, embedding(text)) for doc_id, text in loop.texts.items()))
        narrow_src = loop.dir / "narrow-output.jsonl"
        narrow_src.write_text("".join(output_line(doc_id, embedding(text)) for doc_id, text in narrow.texts.items()))
        status, answer = opensearch("PUT", f"/{loop.index}/_settings", {"index.blocks.write": True})
        if status != 200:
            raise ScenarioFailed(f"setting index.blocks.write answered {status}: {answer}")
        ops = {name: index.index_ops() for name, index in (("loop", loop), ("narrow", narrow), ("odd", odd))}
        cases = [
            ("missing index, export", "index_batch_input", missing.export_args(1), f"The index {missing.index} does not exist"),
            ("missing index, write-back", "index_batch_output", missing.write_args(src), f"The index {missing.index} does not exist"),
            ("dimension mismatch in place", "index_batch_output", narrow.write_args(narrow_src), "knn_vector of 3 dimensions"),
            ("read-only index", "index_batch_output", loop.write_args(src), "index.blocks.write"),
        ]
        tasks = [{"name": label, f"opensearch.ml_commons.{module}": args, "register": f"case{number}", "ignore_errors": True}
                 for number, (label, module, args, _words) in enumerate(cases)]
        tasks.append({"name": "Export of documents without text", "opensearch.ml_commons.index_batch_input": odd.export_args(2),
                      "register": "odd_export"})
        found = loop.run(tasks, 1, "the bad inputs' playbook")
        problems = []
        for number, (label, _module, _args, words) in enumerate(cases):
            outcome = found.get(f"case{number}") or {}
            message = str(outcome.get("msg", ""))
            if not outcome.get("failed"):
                problems.append(f"{label}: did not fail")
            elif words not in message or "Traceback" in json.dumps(outcome):
                problems.append(f"{label}: message lacks {words!r} or holds a traceback: {message[:300]!r}")
        exported = found.get("odd_export") or {}
        reasons = {item["_id"]: item["reason"] for item in exported.get("skipped_documents", [])}
        sent = Path(odd.export_args(2)["dest"]).read_text()
        if exported.get("requests") != 0 or reasons != {"no-field": "no text", "a-number": "text is not text"} or sent:
            problems.append(f"documents without text: {exported.get('requests')} requests, skipped {reasons}")
        after = {name: index.index_ops() for name, index in (("loop", loop), ("narrow", narrow), ("odd", odd))}
        if after != ops:
            problems.append(f"something was written: index operations {ops} before, {after} after")
        if any(TARGET_FIELD in source for source in loop.documents().values()) or any(TARGET_FIELD in source for source in narrow.documents().values()):
            problems.append("a vector was written")
        if missing.index in json.dumps(opensearch("GET", "/_cat/indices?format=json")[1]):
            problems.append(f"{missing.index} was created")
        require(problems)
        return (f"{len(cases)} bad inputs each failed with its message, nothing written; documents without text or with a "
                "number reported by _id, none sent")
    finally:
        opensearch("PUT", f"/{loop.index}/_settings", {"index.blocks.write": None})
        for index in (loop, missing, odd, narrow):
            index.delete()


def restart_node(settings: str) -> None:
    """Node 0 killed and started again on its data, with ``settings`` (TESTBED_NODE_SETTINGS) or without."""
    for action in ("stop", "start"):
        env = dict(os.environ, TESTBED_NODE_SETTINGS=settings)
        done = subprocess.run([sys.executable, str(TESTBED / "testbed.py"), "node", action, "0"], env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, check=False, timeout=600)
        if done.returncode != 0:
            raise ScenarioFailed(f"testbed.py node {action} 0 failed:\n{(done.stdout + done.stderr)[-2000:]}")


def write_rejections(node_stats: dict) -> int:
    return sum(node["thread_pool"]["write"]["rejected"] for node in node_stats["nodes"].values())


def bulk_rejections(suite, tag: str, documents: int = 600, shards: int = 8) -> str:
    """A write-back into an index of ``shards`` shards on a node whose write pool has one thread and a queue of one: each
    bulk's shard requests beyond two are rejected (429, es_rejected_execution_exception), the module sends those
    items again after a pause, and every document ends written."""
    status, nodes = opensearch("GET", "/_nodes")
    if status != 200 or len(nodes["nodes"]) != 1:
        raise ScenarioFailed("this scenario restarts the single node of the test bed; it found another shape")
    loop = IndexLoop(suite, tag, documents, shards=shards)
    try:
        # Loaded before the restart: the tiny queue would refuse the loading too.
        loop.create()
        src = loop.dir / "hand-written-output.jsonl"
        src.write_text("".join(output_line(doc_id, embedding(text)) for doc_id, text in loop.texts.items()))
        restart_node("thread_pool.write.size=1 thread_pool.write.queue_size=1")
        opensearch("GET", f"/_cluster/health/{loop.index}?wait_for_status=green&timeout=60s")
        rejected = write_rejections(opensearch("GET", "/_nodes/stats/thread_pool")[1])
        found = loop.run([{"name": "Write back", "opensearch.ml_commons.index_batch_output": loop.write_args(src, bulk_bytes=200000),
                           "register": "written"}], 1, "the write-back")
        rejected = write_rejections(opensearch("GET", "/_nodes/stats/thread_pool")[1]) - rejected
        written = found["written"]
        problems = []
        if rejected == 0:
            problems.append("the node rejected no write: the scenario tested nothing")
        if written["written"] != documents or written["failed_documents"]:
            problems.append(f"written {written['written']} of {documents}, failed {written['failures'][:3]}")
        problems += loop.own_results()
        require(problems)
        return f"{rejected} shard writes rejected by a write queue of 1; all {documents} documents written, each its own result"
    finally:
        loop.delete()
        restart_node("")


def node_killed_mid_write_back(suite, tag: str, proxy_port: int, documents: int = 1500) -> str:
    """On three nodes, an index of three shards with a replica each: a data node SIGKILLed once two bulks of the
    write-back were answered, the write-back run again while it is down, the node started again, then the whole
    loop once more. Every document ends with its own result, and none was paid for twice (one batch)."""
    import cluster  # pylint: disable=import-outside-toplevel
    from run import Proxy, kill_on_answers, playbook_command, playbook_env  # pylint: disable=import-outside-toplevel

    cluster.require_cluster()
    cluster.restore_all_nodes()
    urls, home_url = cluster.node_urls(), ENV["OPENSEARCH_URL"]
    manager = cluster.elected_manager()
    others = [index for index in range(cluster.CLUSTER_SIZE) if index != manager]
    target, upstream = others[-1], others[0]
    ENV["OPENSEARCH_URL"] = urls[upstream]
    proxy = Proxy(proxy_port, urls[upstream])
    loop = IndexLoop(suite, tag, documents, shards=3, replicas=1, url=proxy.url)
    batches = emulator_stats()["batches_created"]
    try:
        loop.create()
        number = loop.next_number()
        loop.run(loop.send_tasks(number), number, "the export and the batch")
        batch_id = json.loads((loop.dir / f"results-{number}.json").read_text())["batch"]["json"]["id"]
        number = loop.next_number()
        # Small bulks, so that the kill lands between them.
        plays, dump = loop.plays(loop.receive_tasks(number, batch_id=batch_id, bulk_bytes=30000), number)
        proxy.reset()
        runner = subprocess.Popen(playbook_command(suite.workdir, plays), env=playbook_env(), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        kill_when, killed = kill_on_answers((r"^POST /_bulk 200$", 2)), False
        while runner.poll() is None:
            if kill_when(proxy.stats(), {}):
                cluster.testbed_node("stop", target)
                killed = True
                break
        first = runner.communicate(timeout=900)[0]
        if not killed:
            raise ScenarioFailed(f"the write-back ended before its second bulk was answered:\n{first[-2000:]}")
        output = loop.dir / f"output-{number}.jsonl"
        cluster.wait_for_nodes(2)
        steps = [f"killed ml-testbed-{target} after 2 bulks, first write-back rc={runner.returncode}"]
        again = loop.run([{"name": "Write back", "opensearch.ml_commons.index_batch_output": loop.write_args(output), "register": "written"}],
                         loop.next_number(), "the write-back with the node down")
        steps.append(f"write-back with the node down: {again['written']['written']} written, {again['written']['unchanged']} unchanged, "
                     f"{again['written']['failed_documents']} failed")
        cluster.testbed_node("start", target)
        cluster.wait_for_nodes(3)
        last = loop.loop("the whole loop with every node back")
        problems = []
        if again["written"]["failed_documents"]:
            problems.append(f"the write-back with the node down failed {again['written']['failures'][:3]}")
        if last["exported"]["requests"] != 0:
            problems.append(f"the last loop sent {last['exported']['requests']} request(s)")
        problems += loop.own_results()
        twice = {doc_id: count for doc_id, count in loop.sent_per_document().items() if count > 1}
        if twice:
            TALLY.duplicated += len(twice)
            problems.append(f"{len(twice)} document(s) paid for more than once")
        batches = emulator_stats()["batches_created"] - batches
        if batches != 1:
            problems.append(f"{batches} batches created, not 1")
        require(problems)
        steps.append(f"the last loop sent nothing; all {documents} documents hold their own result, one batch")
        return "; ".join(steps)
    finally:
        proxy.stop()
        try:
            cluster.restore_all_nodes()
        finally:
            ENV["OPENSEARCH_URL"] = home_url
            loop.delete()
