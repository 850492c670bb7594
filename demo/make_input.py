"""Write the demo's batch input: N embedding requests in OpenAI's batch JSONL format.

    python demo/make_input.py .testbed/demo/input.jsonl 200
"""

import json
import os
import sys

TOPICS = ["search relevance", "vector databases", "batch inference", "observability", "log analytics",
          "anomaly detection", "semantic search", "retrieval augmented generation"]


def main(path, count):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as output:
        for number in range(count):
            body = {"model": "text-embedding-ada-002", "input": "Document %d about %s" % (number, TOPICS[number % len(TOPICS)])}
            output.write(json.dumps({"custom_id": "doc-%d" % number, "method": "POST", "url": "/v1/embeddings", "body": body}) + "\n")
    print("demo: wrote %d embedding requests to %s" % (count, path))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
