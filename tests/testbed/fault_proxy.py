"""A small HTTP proxy to put between the modules and OpenSearch, that counts and injects faults.

Tests use it to see what really reached the server (instead of trusting the client's own
counts) and to make the server look unhealthy on demand:

    python tests/testbed/fault_proxy.py --port 9290 --upstream http://127.0.0.1:9200 --lifetime 600

Admin routes (not forwarded):
    POST /_fault/plan   {"status": 503, "count": 2}  the next 2 requests get a 503 without reaching OpenSearch
                        {"mode": M, "count": N, "method": "POST", "path": REGEX, ...}  the next N requests
                        whose method and path (a regex searched in the path) match get fault M:
                          status       answer "status" (503 by default) without forwarding
                          drop_before  close the connection without forwarding: OpenSearch never sees it
                          drop_after   forward, let OpenSearch answer, then close the client's connection
                                       without passing the answer on
                          delay        wait "delay" seconds, then forward and answer (slower than a timeout)
                          reject_password  answer 401, as the security plugin would, to requests whose basic
                                       auth password is "password"; the others are forwarded
                        "count": -1 keeps the plan for every matching request.
    GET  /_fault/stats  {"received": N, "injected": N, "forwarded": N, "requests": {"GET /": N, ...},
                         "answers": {"GET / 200": N, ...}}  (answers: OpenSearch's statuses, per route)
    POST /_fault/reset  clears the plan and the counters
    POST /_fault/stop   stops the proxy

It stops by itself after --lifetime seconds, so a test that forgets it leaves nothing behind.
With --tls-cert and --tls-key it serves HTTPS (a TLS front for tests of ca_path and validate_certs).
With --sigv4-services es,aoss it plays Amazon OpenSearch Service's front door: every request must be signed with
SigV4 for one of those services with the key in $SIGV4_ACCESS_KEY_ID / $SIGV4_SECRET_ACCESS_KEY; botocore recomputes
the signature (payload hash included, sigv4_verify.py) and a missing or wrong one is answered 403 as AWS answers,
without reaching OpenSearch. The stats count them: "signatures": {"verified": N, "refused": N}.
"""

import argparse
import base64
import http.client
import json
import os
import re
import socket
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization", "proxy-authenticate"}


class ProxyState:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.plan = {"mode": "status", "status": None, "count": 0}
        self.stats = {"received": 0, "injected": 0, "forwarded": 0, "requests": {}, "faults": {}, "answers": {},
                      "signatures": {"verified": 0, "refused": 0}}

    def set_plan(self, plan):
        mode = plan.get("mode", "status")
        if mode not in FAULT_MODES:
            raise ValueError("mode must be one of %s" % ", ".join(sorted(FAULT_MODES)))
        self.plan = {
            "mode": mode, "status": int(plan.get("status", 503)), "count": int(plan.get("count", 1)),
            "method": plan.get("method"), "path": plan.get("path"), "delay": float(plan.get("delay", 0)),
            "password": plan.get("password"),
        }
        return self.plan

    def _matches(self, method, path, password):
        plan = self.plan
        if plan["count"] == 0:
            return False
        if plan["method"] and plan["method"].upper() != method:
            return False
        if plan["path"] and not re.search(plan["path"], path):
            return False
        if plan["mode"] == "reject_password" and password != plan["password"]:
            return False
        return True

    def record(self, method, path, password=None):
        """Count the request; return the fault to inject, (mode, plan) or None to forward as is."""
        route = "%s %s" % (method, urllib.parse.urlsplit(path).path)
        with self.lock:
            self.stats["received"] += 1
            self.stats["requests"][route] = self.stats["requests"].get(route, 0) + 1
            if self._matches(method, path, password):
                if self.plan["count"] > 0:
                    self.plan["count"] -= 1
                self.stats["injected"] += 1
                fault = "%s %s" % (self.plan["mode"], route)
                self.stats["faults"][fault] = self.stats["faults"].get(fault, 0) + 1
                if self.plan["mode"] not in ("status", "reject_password", "drop_before"):
                    self.stats["forwarded"] += 1
                return self.plan["mode"], dict(self.plan)
            self.stats["forwarded"] += 1
            return None

    def count_answer(self, method, path, status):
        """Count the status OpenSearch answered a forwarded request with."""
        key = "%s %s %d" % (method, urllib.parse.urlsplit(path).path, status)
        with self.lock:
            self.stats["answers"][key] = self.stats["answers"].get(key, 0) + 1


FAULT_MODES = frozenset(("status", "drop_before", "drop_after", "delay", "reject_password"))


def basic_auth_password(header):
    """The password of a basic Authorization header, None without one."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        return base64.b64decode(header.split(None, 1)[1]).decode("utf-8", "replace").split(":", 1)[1]
    except (ValueError, IndexError):
        return None


def make_handler(upstream, state, verifier=None):
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
                try:
                    with state.lock:
                        plan = state.set_plan(json.loads(body or b"{}"))
                except ValueError as error:
                    return self._reply(400, {"error": str(error)})
                return self._reply(200, plan)
            return self._reply(404, {"error": "unknown admin route %s" % self.path})

        def _drop(self):
            """Close the client's connection without a word: it sees the connection break."""
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def _forward(self, body, drop_answer=False):
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
            headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP | {"host"}}
            connection.request(self.command, self.path, body=body or None, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
            state.count_answer(self.command, self.path, answer.status)
            if drop_answer:
                connection.close()
                return self._drop()
            self.send_response(answer.status)
            # A HEAD answer has no body but announces the length of the GET's (S3's object size).
            length = answer.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP | {"content-length"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", length)
            self.end_headers()
            self.wfile.write(data)
            connection.close()

        def _refuse_unsigned(self, body):
            """True when the SigV4 check refused the request (and answered it), as AWS refuses before anything else."""
            try:
                verifier.check(self.command, self.path, self.headers, body)
            except verifier.refusal as refused:
                with state.lock:
                    state.stats["signatures"]["refused"] += 1
                self._reply(refused.status, {"message": refused.message})
                return True
            with state.lock:
                state.stats["signatures"]["verified"] += 1
            return False

        def _handle(self):
            body = self._body()
            if self.path.startswith("/_fault/"):
                return self._admin(body)
            if verifier is not None and self._refuse_unsigned(body):
                return None
            fault = state.record(self.command, self.path, basic_auth_password(self.headers.get("Authorization")))
            if fault is None:
                return self._forward(body)
            mode, plan = fault
            if mode == "status":
                status = plan["status"]
                return self._reply(status, {"error": {"type": "injected_fault", "reason": "fault injected by the test proxy"}, "status": status})
            if mode == "reject_password":
                # What the security plugin answers to wrong credentials: text, and a challenge header.
                data = b"Unauthorized"
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="OpenSearch Security"')
                self.send_header("Content-Type", "text/plain; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None
            if mode == "drop_before":
                return self._drop()
            if mode == "delay":
                time.sleep(plan["delay"])
                try:
                    return self._forward(body)
                except OSError:  # the client gave up meanwhile
                    return None
            return self._forward(body, drop_answer=True)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the OpenSearch URL to forward to")
    parser.add_argument("--lifetime", type=float, default=600, help="seconds before the proxy stops by itself")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="the private key of --tls-cert (PEM)")
    parser.add_argument("--sigv4-services", help="comma-separated signing names (es,aoss): refuse requests not signed for one of "
                                                 "them with the key of $SIGV4_ACCESS_KEY_ID and $SIGV4_SECRET_ACCESS_KEY")
    args = parser.parse_args()
    verifier = None
    if args.sigv4_services:
        # botocore only in this mode: the proxy runs without it otherwise.
        from sigv4_verify import SigV4Verifier
        verifier = SigV4Verifier({os.environ["SIGV4_ACCESS_KEY_ID"]: os.environ["SIGV4_SECRET_ACCESS_KEY"]},
                                 args.sigv4_services.split(","), time.time)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args.upstream, ProxyState(), verifier))
    server.daemon_threads = True
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    lifetime = threading.Timer(args.lifetime, server.shutdown)
    lifetime.daemon = True
    lifetime.start()
    server.serve_forever()
    # Free the port at once: a stopped proxy must not keep accepting connections it never answers.
    server.server_close()


if __name__ == "__main__":
    main()
