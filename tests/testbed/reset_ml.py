"""Remove every model, connector, model group and batch task from the test bed (for re-running
targets by hand).

    python tests/testbed/reset_ml.py http://127.0.0.1:9200

Batch tasks go first, through their own system index: ML Commons refuses to delete a RUNNING
task, and a task whose model is gone stays RUNNING for good (its status can no longer be read),
counting against plugins.ml_commons.max_batch_inference_tasks. Only a test bed, which has no
Security plugin guarding system indices, can do this.
"""

import json
import sys
import time
import urllib.error
import urllib.request


def call(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return json.loads(answer.read() or b"{}")


def ids(base, kind):
    hits = call(base, "POST", "/_plugins/_ml/%s/_search" % kind, {"query": {"match_all": {}}, "size": 1000})
    return [hit["_id"] for hit in hits["hits"]["hits"]]


def delete_batch_tasks(base):
    try:
        answer = call(base, "POST", "/.plugins-ml-task/_delete_by_query?refresh=true&ignore_unavailable=true",
                      {"query": {"term": {"task_type": "BATCH_PREDICTION"}}})
    except urllib.error.HTTPError as error:
        # 2.x's integ-test distribution has no reindex module, hence no delete-by-query.
        print("batch tasks left in place: delete-by-query answered %s" % error.code)
        return
    if answer.get("deleted"):
        print("deleted %d batch tasks" % answer["deleted"])


def main(base):
    delete_batch_tasks(base)
    for model_id in ids(base, "models"):
        call(base, "POST", "/_plugins/_ml/models/%s/_undeploy" % model_id)
    time.sleep(1)
    for kind in ("models", "connectors", "model_groups"):
        for object_id in ids(base, kind):
            call(base, "DELETE", "/_plugins/_ml/%s/%s" % (kind, object_id))
            print("deleted %s %s" % (kind, object_id))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9200")
