"""Shared fixtures: a scripted local HTTP server standing in for one OpenSearch endpoint.

Unit tests exercise the real client (requests, sockets, timeouts) against it; only integration
tests talk to a real OpenSearch.
"""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.opensearch.ml_commons.tests.unit.plugins.modules.module_harness import UNSCRIPTED


class ScriptedServer:
    """Answers each request by its method and path (:meth:`answer`), else with the next reply of
    :meth:`script`, and records what it received."""

    def __init__(self, ssl_context=None):
        self.routes = {}
        self.replies = []
        self.received = []
        self.default = (200, {"acknowledged": True})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        scheme = "http"
        if ssl_context is not None:
            self.httpd.socket = ssl_context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = "%s://127.0.0.1:%d" % (scheme, self.httpd.server_address[1])
        # A short poll interval: close() waits for the serving loop to notice, once per test.
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def script(self, *replies):
        """Each reply: (status, json_body) or (status, json_body, {"delay": seconds, "headers": {...}})."""
        self.replies.extend(replies)

    def answer(self, method, path, *replies):
        """Requests of ``method`` to ``path`` (without the query; ``*`` at its end matches any rest) get
        ``replies`` in turn, the last one again from then on. Other routes' requests do not move them on."""
        self.routes[(method, path)] = list(replies)

    def reply_to(self, method, path):
        path = path.split("?", 1)[0]
        route = self.routes.get((method, path))
        if route is None:
            prefixes = [key for key in self.routes if key[0] == method and key[1].endswith("*") and path.startswith(key[1][:-1])]
            route = self.routes[max(prefixes, key=lambda key: len(key[1]))] if prefixes else None
        if route is not None:
            return route.pop(0) if len(route) > 1 else route[0]
        return self.replies.pop(0) if self.replies else self.default

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.received.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
                reply = server.reply_to(self.command, self.path)
                status, payload = reply[0], reply[1]
                options = reply[2] if len(reply) > 2 else {}
                if options.get("delay"):
                    time.sleep(options["delay"])
                data = b"" if payload is None else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for name, value in options.get("headers", {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        return Handler

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted_server():
    """A factory: ``scripted_server(ssl_context=None)`` starts one more server, closed after the test."""
    started = []

    def start(ssl_context=None):
        started.append(ScriptedServer(ssl_context))
        return started[-1]

    yield start
    for scripted in started:
        scripted.close()


@pytest.fixture
def server(scripted_server):
    return scripted_server()


@pytest.fixture
def module_test_server(server, monkeypatch):
    """The scripted server as the module tests use it: a request nothing was scripted for fails at once
    (instead of an answer that could keep a wait going until its timeout), and no wait pauses."""
    server.default = UNSCRIPTED
    monkeypatch.setattr("ansible_collections.opensearch.ml_commons.plugins.module_utils.core.wait.time.sleep", lambda seconds: None)
    monkeypatch.setattr("ansible_collections.opensearch.ml_commons.plugins.module_utils.mlcommons.resource.MIN_CREATE_WINDOW", 0)
    return server


@pytest.fixture
def open_umask():
    """The loosest umask, so that only the collection's own care keeps files private."""
    previous = os.umask(0)
    yield
    os.umask(previous)
