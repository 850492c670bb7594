"""What the module tests share: a stand-in for AnsibleModule, and views of what the scripted server received."""

import json
import os

# What the scripted server answers a request nothing was scripted for, in module tests: a failure at
# once, instead of an answer that could keep a wait going until its timeout.
UNSCRIPTED = (500, {"error": {"type": "test_exception", "reason": "no reply was scripted for this request"}})


class FakeModule:
    """What a module's run() uses of AnsibleModule: its params (``defaults`` with ``params`` over them),
    check and diff mode, warnings, and atomic_move."""

    def __init__(self, defaults, check_mode=False, **params):
        self.params = dict(defaults, **params)
        self.check_mode = check_mode
        self._diff = True
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)

    def atomic_move(self, source, dest):
        os.rename(source, dest)


def hits(*found):
    """A search answer holding ``found``: (ID, source) pairs."""
    return {"hits": {"total": {"value": len(found), "relation": "eq"},
                     "hits": [{"_id": object_id, "_source": source} for object_id, source in found]}}


def body(request):
    return json.loads(request["body"]) if request["body"] else None


def requests_sent(server):
    return [(request["method"], request["path"]) for request in server.received]


def writes(server):
    """Every request that is neither a GET nor a search, with its body."""
    return [(request["method"], request["path"], body(request)) for request in server.received
            if request["method"] != "GET" and not request["path"].endswith("/_search")]
