"""standalone: answer http-01 from a small built-in HTTP server, and tls-alpn-01 (RFC 8737)
from a built-in TLS server.

The server listens on ``--http-01-address`` (``config.http01_address``; empty means every
address, IPv6 and IPv4 where the host has both) and ``--http-01-port``
(``config.http01_port``, default 80). It starts with the first ``present()`` and stops when
``cleanup()`` has removed the last token. It answers ``GET`` and ``HEAD`` for
``/.well-known/acme-challenge/<token>`` with the key authorization and 404 for anything else,
logging requests at debug level only.

tls-alpn-01 (``--preferred-challenges tls-alpn-01``) is answered on ``--tls-alpn-01-port``
(``config.tls_alpn01_port``, default 443) of the same address, by
:class:`certwright.authenticators.tls_alpn.TlsAlpnServer`: only ``acme-tls/1`` handshakes
naming a challenge get its certificate. It too runs while challenges are pending; one
instance (share key: address and both ports) serves parallel renewals.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from certwright.core.errors import PluginError
from certwright.core.http01 import CHALLENGE_PATH, http01_token, http01_types
from certwright.core.settings import Settings

if TYPE_CHECKING:
    import socketserver

    from certwright.core.interfaces import AddArgument, ChallengeTask, Identifier

logger = logging.getLogger(__name__)

DEFAULT_PORT = 80
DEFAULT_TLS_PORT = 443
TLSALPN01 = "tls-alpn-01"


def _display(address: str, port: int) -> str:
    if not address:
        return f"*:{port}"
    if ":" in address:
        return f"[{address}]:{port}"
    return f"{address}:{port}"


class StandaloneAuthenticator:
    """Serves http-01 key authorizations from a thread of this process."""

    name: ClassVar[str] = "standalone"
    description: ClassVar[str] = "Run a temporary built-in web server on port 80 (http-01)"

    def __init__(self, config: Settings) -> None:
        self.config = config
        address = getattr(config, "http01_address", "") or ""
        self.address: str = str(address).strip("[]")
        port = getattr(config, "http01_port", None)
        self.port: int = DEFAULT_PORT if port is None else int(port)
        self.tls_port_raw = getattr(config, "tls_alpn01_port", None)
        self._alpn: Any = None  # the TlsAlpnServer while tls-alpn-01 challenges are pending
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server: socketserver.TCPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def add_arguments(cls, add: AddArgument) -> None:
        """``--tls-alpn-01-port``; ``--http-01-port`` and ``--http-01-address`` are global."""
        add("--tls-alpn-01-port", dest="tls_alpn01_port", default=None, metavar="PORT",
            help=f"port the tls-alpn-01 server listens on (default {DEFAULT_TLS_PORT})")

    @property
    def tls_port(self) -> int:
        raw = self.tls_port_raw
        if raw in (None, "", "None"):
            return DEFAULT_TLS_PORT
        text = str(raw)
        if not text.isdigit() or int(text) > 65535:
            raise PluginError(f"--tls-alpn-01-port {raw!r} is not a TCP port (0-65535)")
        return int(text)

    def prepare(self) -> None:
        if not 0 <= self.port <= 65535:
            raise PluginError(f"--http-01-port {self.port} is not a TCP port (0-65535)")
        _ = self.tls_port

    def challenge_types(self, identifier: Identifier) -> Sequence[str]:
        """http-01; tls-alpn-01 too when --preferred-challenges names it (it takes port
        443, which a running web server usually holds). Neither proves a wildcard."""
        http = http01_types(identifier)
        preferred = getattr(self.config, "pref_challs", None) or ()
        return [*http, TLSALPN01] if http and TLSALPN01 in preferred else http

    def share_key(self) -> Hashable:
        """One server per address and port serves every lineage renewing through it (a
        second one could not bind); its token table is guarded by a lock."""
        return (self.address, self.port, self.tls_port)

    @property
    def bound_port(self) -> int | None:
        """The port actually listened on while the server runs (useful with port 0)."""
        if self._server is None:
            return None
        return int(self._server.server_address[1])

    def present(self, task: ChallengeTask) -> None:
        if task.challenge_type == TLSALPN01:
            self._present_alpn(task)
            return
        token = http01_token(task, self.name)
        with self._lock:
            self._tokens[token] = task.key_authorization
            if self._server is None:
                self._start()

    def cleanup(self, task: ChallengeTask) -> None:
        if task.challenge_type == TLSALPN01:
            with self._lock:
                if self._alpn is not None and self._alpn.remove(task):
                    self._alpn.stop()
                    self._alpn = None
            return
        with self._lock:
            self._tokens.pop(task.token, None)
            if not self._tokens:
                self._stop()

    def renewal_params(self) -> Mapping[str, object]:
        if self.tls_port_raw in (None, "", "None"):
            return {}
        return {"tls_alpn01_port": str(self.tls_port)}

    @property
    def bound_tls_port(self) -> int | None:
        """The port the tls-alpn-01 server listens on while it runs."""
        return None if self._alpn is None else int(self._alpn.bound_port)

    def _present_alpn(self, task: ChallengeTask) -> None:
        from certwright.authenticators._task import check_task
        from certwright.authenticators.tls_alpn import TlsAlpnServer

        check_task(task, self.name)
        with self._lock:
            if self._alpn is None:
                self._alpn = TlsAlpnServer(self.address, self.tls_port)
                logger.debug("tls-alpn-01 server listening on %s",
                             _display(self.address, self.tls_port))
            self._alpn.add(task)

    # -- the server ----------------------------------------------------------------------

    def _start(self) -> None:
        server = _bind(self.address, self.port, self._tokens)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"certwright-http01-{self.port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        logger.debug("http-01 server listening on %s", _display(self.address, self.port))

    def _stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
        logger.debug("http-01 server on %s stopped", _display(self.address, self.port))


def _bind(address: str, port: int, tokens: Mapping[str, str]) -> socketserver.TCPServer:
    """A ThreadingHTTPServer answering from ``tokens``; PluginError when it cannot bind."""
    import socket

    if address:
        families = [socket.AF_INET6 if ":" in address else socket.AF_INET]
    else:  # every address: an IPv6 socket that also takes IPv4, else plain IPv4
        families = [socket.AF_INET6, socket.AF_INET] if socket.has_ipv6 else [socket.AF_INET]
    for family in families:
        host = address or ("::" if family == socket.AF_INET6 else "0.0.0.0")
        try:
            return _server_class(family)((host, port), _handler_class(tokens))
        except OSError as exc:
            last_try = family == families[-1]
            if exc.errno in (errno.EADDRINUSE, errno.EACCES) or last_try:
                raise PluginError(_bind_error(address, port, exc)) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _bind_error(address: str, port: int, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        reason += " (is a web server running? try --webroot or --http-01-port)"
    elif exc.errno == errno.EACCES and port < 1024:
        reason += f" (port {port} needs root or CAP_NET_BIND_SERVICE)"
    return f"could not bind {_display(address, port)} for http-01: {reason}"


def _server_class(family: int) -> type[socketserver.TCPServer]:
    import socket
    import socketserver
    from http.server import ThreadingHTTPServer

    class Server(ThreadingHTTPServer):
        address_family = family
        allow_reuse_address = True
        daemon_threads = True

        def server_bind(self) -> None:
            if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            # HTTPServer.server_bind would look the host name up in DNS (getfqdn): skip it.
            socketserver.TCPServer.server_bind(self)
            self.server_name = str(self.server_address[0])
            self.server_port = int(self.server_address[1])

    return Server


def _handler_class(tokens: Mapping[str, str]) -> Any:
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        server_version = "certwright"
        sys_version = ""
        timeout = 30  # a stalled client must not hold a thread forever

        def do_GET(self) -> None:
            self._answer(with_body=True)

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def _answer(self, *, with_body: bool) -> None:
            path = self.path.split("?", 1)[0]
            token = path[len(CHALLENGE_PATH) :] if path.startswith(CHALLENGE_PATH) else ""
            key_authorization = tokens.get(token) if token else None
            if key_authorization is None:
                status, body = 404, b"not found\n"
                content_type = "text/plain; charset=utf-8"
            else:
                status, body = 200, key_authorization.encode()
                content_type = "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("http-01 server: " + format, *args)

    return Handler
