"""A tiny in-process http-01 responder for tests that talk ACME without a web server.

    with Http01Responder(port=ca.http_port) as responder:
        responder.add(token, key_authorization)

Serves GET /.well-known/acme-challenge/<token> from a dict on a background thread;
everything else is 404. Requests seen are kept in `requests_seen` (path, Host header).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from tests.servers.process import StartStop

PREFIX = "/.well-known/acme-challenge/"


class Http01Responder(StartStop):
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.tokens: dict[str, str] = {}
        self.requests_seen: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add(self, token: str, key_authorization: str) -> None:
        with self._lock:
            self.tokens[token] = key_authorization

    def remove(self, token: str) -> None:
        with self._lock:
            self.tokens.pop(token, None)

    def start(self) -> Self:
        responder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with responder._lock:
                    responder.requests_seen.append((self.path, self.headers.get("Host", "")))
                    body = None
                    if self.path.startswith(PREFIX):
                        body = responder.tokens.get(self.path[len(PREFIX) :])
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep pytest output clean; requests_seen records what came in

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
