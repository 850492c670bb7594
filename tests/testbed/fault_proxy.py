"""A small HTTP proxy to put between the modules and OpenSearch, that counts and injects faults.

Tests use it to see what really reached the server (instead of trusting the client's own
counts) and to make the server look unhealthy on demand:

    python tests/testbed/fault_proxy.py --port 9290 --upstream http://127.0.0.1:9200 --lifetime 600

Admin routes (not forwarded):
    POST /_fault/plan   {"status": 503, "count": 2}  the next 2 requests get a 503 without reaching OpenSearch
    GET  /_fault/stats  {"received": N, "injected": N, "forwarded": N, "requests": {"GET /": N, ...}}
    POST /_fault/reset  clears the plan and the counters
    POST /_fault/stop   stops the proxy

It stops by itself after --lifetime seconds, so a test that forgets it leaves nothing behind.
"""

import argparse
import http.client
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization", "proxy-authenticate"}


class ProxyState:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.plan = {"status": None, "count": 0}
        self.stats = {"received": 0, "injected": 0, "forwarded": 0, "requests": {}}

    def record(self, method, path):
        """Count the request; return the status to inject instead of forwarding, if the plan says so."""
        route = "%s %s" % (method, urllib.parse.urlsplit(path).path)
        with self.lock:
            self.stats["received"] += 1
            self.stats["requests"][route] = self.stats["requests"].get(route, 0) + 1
            if self.plan["count"] > 0:
                self.plan["count"] -= 1
                self.stats["injected"] += 1
                return self.plan["status"]
            self.stats["forwarded"] += 1
            return None


def make_handler(upstream, state):
    target = urllib.parse.urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: tests read the stats route instead
            pass

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _reply(self, status, payload):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _admin(self, body):
            if self.path == "/_fault/stats":
                with state.lock:
                    return self._reply(200, state.stats)
            if self.path == "/_fault/reset":
                with state.lock:
                    state.reset()
                return self._reply(200, {"reset": True})
            if self.path == "/_fault/stop":
                self._reply(200, {"stopping": True})
                threading.Thread(target=self.server.shutdown).start()
                return None
            if self.path == "/_fault/plan":
                plan = json.loads(body or b"{}")
                with state.lock:
                    state.plan = {"status": int(plan.get("status", 503)), "count": int(plan.get("count", 1))}
                return self._reply(200, state.plan)
            return self._reply(404, {"error": "unknown admin route %s" % self.path})

        def _forward(self, body):
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
            headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP | {"host"}}
            connection.request(self.command, self.path, body=body or None, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP | {"content-length"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            connection.close()

        def _handle(self):
            body = self._body()
            if self.path.startswith("/_fault/"):
                return self._admin(body)
            injected = state.record(self.command, self.path)
            if injected is not None:
                return self._reply(injected, {"error": {"type": "injected_fault", "reason": "fault injected by the test proxy"}, "status": injected})
            return self._forward(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the OpenSearch URL to forward to")
    parser.add_argument("--lifetime", type=float, default=600, help="seconds before the proxy stops by itself")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args.upstream, ProxyState()))
    lifetime = threading.Timer(args.lifetime, server.shutdown)
    lifetime.daemon = True
    lifetime.start()
    server.serve_forever()
    # Free the port at once: a stopped proxy must not keep accepting connections it never answers.
    server.server_close()


if __name__ == "__main__":
    main()
