#!/usr/bin/env python
"""The create race that resource.keep_oldest's second look closes, measured on the test bed.

    PYTHONPATH=<dir holding ansible_collections> python tests/reliability/keep_oldest_race.py \
        [--threads 4] [--rounds 30] [--no-wait]

Each round, THREADS threads released by one barrier look a connector up by name, create it when
they find none, and run keep_oldest, as ml_connector does; then the server must hold exactly one
connector of the name and every thread must have kept the same one. --no-wait sets the wait
before the second look to zero, to show the race it is there for (2 bad rounds of 30 on the
2-core test bed, against 0 of 150 with the wait; see the README). Prints one summary line and
exits 1 when a round went wrong. Uses .testbed/env (`make up`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import threading
import time
from pathlib import Path

from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons import resource
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.client import Client
from ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource import CONNECTOR, find_by_name, keep_oldest, name_filter, search

ENV_FILE = Path(__file__).resolve().parents[2] / ".testbed" / "env"


def opensearch_url() -> str:
    for line in ENV_FILE.read_text().splitlines():
        key, _equals, value = line.partition("=")
        if key == "OPENSEARCH_URL":
            return shlex.split(value)[0]
    sys.exit(f"{ENV_FILE} has no OPENSEARCH_URL: run `make up` first")


def connector_body(name: str) -> dict:
    return {"name": name, "description": "keep_oldest race", "version": "1", "protocol": "http", "parameters": {"model": "m"},
            "credential": {"openAI_key": "sk-race-not-a-secret"},
            "actions": [{"action_type": "predict", "method": "POST", "url": "https://api.openai.com/v1/embeddings",
                         "headers": {"Authorization": "Bearer ${credential.openAI_key}"}, "request_body": "{}"}]}


def one_round(url: str, name: str, threads: int, answer_times: list) -> str | None:
    """None when the round converged, else what went wrong."""
    barrier = threading.Barrier(threads)
    kept = []

    def racer():
        client = Client(url)
        client.get("/")  # connect before the barrier, so the races start together
        barrier.wait()
        found = find_by_name(client, CONNECTOR, name)
        if found:
            kept.append(found["connector_id"])
            return
        own = client.post(CONNECTOR.base_path + "/_create", body=connector_body(name))["connector_id"]
        answer_times.append(client.last_answer_seconds)
        kept.append(keep_oldest(client, CONNECTOR, name, own, lambda duplicate: client.delete(CONNECTOR.path(duplicate))))

    workers = [threading.Thread(target=racer) for _thread in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    time.sleep(resource.DUPLICATE_SETTLE_SECONDS)
    client = Client(url)
    left = search(client, CONNECTOR, [name_filter(name)])
    for connector in left:
        client.delete(CONNECTOR.path(connector["connector_id"]))
    if len(left) != 1 or len(set(kept)) != 1:
        return "%d connectors left, threads kept %d different ones" % (len(left), len(set(kept)))
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--no-wait", action="store_true", help="set the wait before keep_oldest's second look to zero")
    args = parser.parse_args()
    if args.no_wait:
        resource.CREATE_WINDOW_FACTOR = resource.MIN_CREATE_WINDOW = 0.0
    url = opensearch_url()
    answer_times, bad = [], 0
    for round_number in range(args.rounds):
        problem = one_round(url, "rel-keep-oldest-race %d %d" % (round_number, time.time()), args.threads, answer_times)
        if problem:
            bad += 1
            print("round %d: %s" % (round_number + 1, problem), flush=True)
    answer_times.sort()
    print("keep_oldest race: %d rounds of %d threads, %d went wrong; wait %s; create answered in %.3f s (median), %.3f s (max)"
          % (args.rounds, args.threads, bad, "none" if args.no_wait else "2x the create's answer time, 0.25-3 s",
             answer_times[len(answer_times) // 2], answer_times[-1]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
