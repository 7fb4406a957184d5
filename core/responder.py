"""A small http-01 responder on one address and port: the standalone authenticator's server,
and the one plugins put behind a server of their own (HAProxy routes
``/.well-known/acme-challenge/`` to it on loopback).

It answers ``GET``/``HEAD`` for ``/.well-known/acme-challenge/<token>`` with the key
authorization and 404 for anything else; it listens from the first ``add`` until ``remove``
takes the last token away. An empty address means every address (IPv6 and IPv4 where the
host has both). Thread-safe: parallel renewals share one responder.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from certwright.core import listen
from certwright.core.http01 import CHALLENGE_PATH

log = logging.getLogger(__name__)

BUSY = "something else listens there"


class Responder:
    def __init__(self, address: str, port: int, *, busy_hint: str = BUSY,
                 logger: logging.Logger = log) -> None:
        self.address, self.port = address, port
        self.busy_hint, self.log = busy_hint, logger
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def bound_port(self) -> int | None:
        """The port actually listened on while it runs (useful with port 0)."""
        return None if self._server is None else int(self._server.server_address[1])

    def add(self, token: str, key_authorization: str) -> None:
        with self._lock:
            self._tokens[token] = key_authorization
            if self._server is None:
                self._start()

    def remove(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)
            if not self._tokens:
                self._stop()

    def close(self) -> None:
        """Stop listening whatever tokens are left."""
        with self._lock:
            self._tokens.clear()
            self._stop()

    def _start(self) -> None:
        server = listen.bind(self.address, self.port, ThreadingHTTPServer,
                             _handler(self._tokens, self.log), what="http-01",
                             busy_hint=self.busy_hint)
        self._thread = listen.serve(server, f"certwright-http01-{self.port}")
        self._server = server
        self.log.debug("http-01 server listening on %s", listen.display(self.address, self.port))

    def _stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        listen.stop(server, thread)
        self.log.debug("http-01 server on %s stopped", listen.display(self.address, self.port))


def _handler(tokens: dict[str, str], logger: logging.Logger) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "certwright"
        sys_version = ""
        timeout = 30  # a stalled client must not hold a thread forever

        def do_GET(self) -> None:
            self._answer(body=True)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def _answer(self, *, body: bool) -> None:
            path = self.path.split("?", 1)[0]
            token = path[len(CHALLENGE_PATH):] if path.startswith(CHALLENGE_PATH) else ""
            answer = tokens.get(token) if token else None
            if answer is None:
                status, data, content_type = 404, b"not found\n", "text/plain; charset=utf-8"
            else:
                status, data, content_type = 200, answer.encode(), "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("http-01 server: " + format, *args)

    return Handler
