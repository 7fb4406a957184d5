"""A small http-01 responder on one address and port, for plugins that put it behind a server
of their own (HAProxy routes ``/.well-known/acme-challenge/`` to it on loopback).

It answers ``GET``/``HEAD`` for ``/.well-known/acme-challenge/<token>`` with the key
authorization and 404 for anything else; it listens from the first ``add`` until ``remove``
takes the last token away. Thread-safe: parallel renewals share one responder.
"""

from __future__ import annotations

import errno
import logging
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from certwright.core.errors import PluginError
from certwright.core.http01 import CHALLENGE_PATH

log = logging.getLogger(__name__)


class Responder:
    def __init__(self, address: str, port: int) -> None:
        self.address, self.port = address, port
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def listening(self) -> bool:
        return self._server is not None

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

    def _start(self) -> None:
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        try:
            server = _server_class(family)((self.address, self.port), _handler(self._tokens))
        except OSError as exc:
            busy = " (something else listens there)" if exc.errno == errno.EADDRINUSE else ""
            raise PluginError(f"could not listen on {self.address}:{self.port} for http-01: "
                              f"{exc.strerror or exc}{busy}") from None
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=f"certwright-responder-{self.port}", daemon=True)
        thread.start()
        self._server, self._thread = server, thread
        log.debug("http-01 responder listening on %s:%d", self.address, self.port)

    def _stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
        log.debug("http-01 responder on %s:%d stopped", self.address, self.port)


def _server_class(family: int) -> type[ThreadingHTTPServer]:
    class Server(ThreadingHTTPServer):
        address_family = family
        allow_reuse_address = True
        daemon_threads = True

        def server_bind(self) -> None:
            # HTTPServer.server_bind would look the host name up in DNS (getfqdn): skip it.
            socketserver.TCPServer.server_bind(self)
            self.server_name = str(self.server_address[0])
            self.server_port = int(self.server_address[1])

    return Server


def _handler(tokens: dict[str, str]) -> type[BaseHTTPRequestHandler]:
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
            status, data = (404, b"not found\n") if answer is None else (200, answer.encode())
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http-01 responder: " + format, *args)

    return Handler
