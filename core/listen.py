"""Listening sockets for the built-in challenge servers (http-01, tls-alpn-01): one address
and port, or every address (an IPv6 socket that also takes IPv4, else plain IPv4), run in a
daemon thread until stopped, with one clear error when the port cannot be had.
"""

from __future__ import annotations

import errno
import socket
import socketserver
import threading
from typing import Any, TypeVar, cast

S = TypeVar("S", bound=socketserver.TCPServer)


def display(address: str, port: int) -> str:
    """``127.0.0.1:80``, ``[::1]:80``, or ``*:80`` for every address."""
    if not address:
        return f"*:{port}"
    if ":" in address:
        return f"[{address}]:{port}"
    return f"{address}:{port}"


def bind(address: str, port: int, base: type[S],
         handler: type[socketserver.BaseRequestHandler], *, what: str,
         busy_hint: str) -> S:
    """A threading server of class ``base`` on ``address``:``port`` (empty address: every
    address, dual-stack where the host has IPv6). PluginError naming the address, ``what``
    it was for and, when the port is taken, ``busy_hint``."""
    from certwright.core.errors import PluginError

    if address:
        families = [socket.AF_INET6 if ":" in address else socket.AF_INET]
    else:
        families = [socket.AF_INET6, socket.AF_INET] if socket.has_ipv6 else [socket.AF_INET]
    for family in families:
        host = address or ("::" if family == socket.AF_INET6 else "0.0.0.0")
        try:
            return cast(S, _server_class(base, family)((host, port), handler))
        except OSError as exc:
            last_try = family == families[-1]
            if exc.errno in (errno.EADDRINUSE, errno.EACCES) or last_try:
                raise PluginError(bind_error(address, port, exc, what, busy_hint)) from None
    raise AssertionError("unreachable")  # pragma: no cover


def bind_error(address: str, port: int, exc: OSError, what: str, busy_hint: str) -> str:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        reason += f" ({busy_hint})"
    elif exc.errno == errno.EACCES and port < 1024:
        reason += f" (port {port} needs root or CAP_NET_BIND_SERVICE)"
    return f"could not bind {display(address, port)} for {what}: {reason}"


def _server_class(base: type[socketserver.TCPServer], family: int) -> Any:
    class Server(base):  # type: ignore[valid-type,misc]
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


def serve(server: socketserver.TCPServer, name: str) -> threading.Thread:
    """Run ``server`` in a daemon thread called ``name``."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name=name, daemon=True)
    thread.start()
    return thread


def stop(server: socketserver.TCPServer, thread: threading.Thread | None) -> None:
    """Stop serving, close the socket and wait for the thread."""
    server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join()
