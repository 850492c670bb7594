"""Remove every model, connector and model group from the test bed (for re-running targets by hand).

    python tests/testbed/reset_ml.py http://127.0.0.1:9200
"""

import json
import sys
import time
import urllib.request


def call(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return json.loads(answer.read() or b"{}")


def ids(base, kind):
    hits = call(base, "POST", "/_plugins/_ml/%s/_search" % kind, {"query": {"match_all": {}}, "size": 1000})
    return [hit["_id"] for hit in hits["hits"]["hits"]]


def main(base):
    for model_id in ids(base, "models"):
        call(base, "POST", "/_plugins/_ml/models/%s/_undeploy" % model_id)
    time.sleep(1)
    for kind in ("models", "connectors", "model_groups"):
        for object_id in ids(base, kind):
            call(base, "DELETE", "/_plugins/_ml/%s/%s" % (kind, object_id))
            print("deleted %s %s" % (kind, object_id))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9200")
