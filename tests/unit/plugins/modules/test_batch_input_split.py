"""batch_input_split as a module: its options and return values, and a run as Ansible runs it (the split is tested with it, in module_utils)."""

import hashlib
import json
import subprocess
import sys
import time

from ansible_collections.opensearch.ml_commons.plugins.modules import batch_input_split
from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import FakeModule

LINE = '{"custom_id":"%d","method":"POST","url":"/v1/embeddings","body":{"model":"m","input":"x"}}\n'
# Runs argv[2:] with its output to the file argv[1] and prints its peak RSS in KB, as Linux counts it (ru_maxrss).
MEASURED_LAUNCH = """
import os, subprocess, sys
with open(sys.argv[1], "w") as output:
    process = subprocess.Popen(sys.argv[2:], stdout=output, stderr=subprocess.STDOUT)
    status, usage = os.wait4(process.pid, 0)[1:]
    process.returncode = status
print(usage.ru_maxrss)
"""


def test_the_options_are_the_splits_and_the_parts_are_returned_with_their_paths(tmp_path):
    src = tmp_path / "input.jsonl"
    src.write_text("".join(LINE % n for n in range(3)))
    module = FakeModule(batch_input_split, src=str(src), dest=str(tmp_path / "parts"), max_requests=2, max_bytes=1000, endpoint="/v1/embeddings")
    result = batch_input_split.run(module)
    first = (LINE % 0 + LINE % 1).encode()
    assert result["changed"] and (result["requests"], result["bytes"]) == (3, src.stat().st_size)
    assert result["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert result["parts"][0] == {"index": 1, "path": str(tmp_path / "parts" / "input.part-00001.jsonl"), "first_line": 1, "lines": 2,
                                  "bytes": len(first), "sha256": hashlib.sha256(first).hexdigest()}
    assert result["diff"]["after"] == {"parts": [{"name": "input.part-00001.jsonl", "lines": 2, "bytes": len(first)},
                                                 {"name": "input.part-00002.jsonl", "lines": 1, "bytes": len(LINE % 2)}]}
    assert not batch_input_split.run(module)["changed"]


def test_the_module_splits_a_million_lines_within_100_mb(tmp_path):
    """The module process itself, as Ansible runs it; its peak RSS read from the kernel."""
    src = tmp_path / "million.jsonl"
    with open(str(src), "w") as handle:
        for start in range(0, 1000000, 10000):
            handle.write("".join(LINE % n for n in range(start, start + 10000)))
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"src": str(src), "dest": str(tmp_path / "parts")}}))
    output = tmp_path / "output.json"
    started = time.time()
    # The module runs as a grandchild: a child's peak RSS counts the memory of the process it was forked
    # from (pytest, here), so a small launcher forks it and reports that grandchild's own peak.
    launched = subprocess.run([sys.executable, "-c", MEASURED_LAUNCH, str(output), sys.executable, "-m", batch_input_split.__name__, str(args)],
                              capture_output=True, text=True, check=True)
    elapsed = time.time() - started
    peak_mb = int(launched.stdout) / 1024.0
    answer = output.read_text()
    result = json.loads(answer)
    assert result["changed"] and result["requests"] == 1000000, answer[-2000:]
    assert [part["lines"] for part in result["parts"]] == [50000] * 20
    assert peak_mb < 100, "peak RSS %.1f MB" % peak_mb
    print("split 1,000,000 lines in %.1f s, peak RSS %.1f MB" % (elapsed, peak_mb))
