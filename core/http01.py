"""The http-01 toolkit shared by every authenticator that answers http-01 (webroot,
standalone, and installers serving answers through their own server: nginx, Apache…).

http-01 (RFC 8555 §8.3): the CA fetches ``http://<domain>/.well-known/acme-challenge/<token>``
on port 80 and expects the key authorization as the body. A wildcard identifier can never be
proven this way (§7.1.3 / §8.3), so an http-01 authenticator offers nothing for one.

:func:`wait_until_served` is the readiness check of an installer-served answer: a reload is
asynchronous (the old workers keep answering for a moment), so the server itself is asked
for each answer, polling with a bounded backoff, instead of sleeping a fixed time.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from certwright.core.errors import PluginError
from certwright.core.poll import poll_until

if TYPE_CHECKING:
    from certwright.core.interfaces import ChallengeTask, Identifier

HTTP01 = "http-01"
WELL_KNOWN = ".well-known"
ACME_CHALLENGE = "acme-challenge"
CHALLENGE_PATH = f"/{WELL_KNOWN}/{ACME_CHALLENGE}/"
"""URL path prefix the CA requests; the token follows it."""
SERVE_TIMEOUT = 10.0

_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def http01_types(identifier: Identifier) -> list[str]:
    """``["http-01"]`` for a name or IP address, ``[]`` for a wildcard."""
    return [] if identifier.is_wildcard else [HTTP01]


def http01_port(config: object) -> int:
    """The port the CA asks on (``--http-01-port``, default 80)."""
    return int(getattr(config, "http01_port", None) or 80)


def is_valid_token(token: str) -> bool:
    """A token is base64url without padding (§8.1), so it is always a safe file name."""
    return bool(token) and all(c in _BASE64URL for c in token)


def http01_token(task: ChallengeTask, plugin: str) -> str:
    """The token of an http-01 ``task``; PluginError for another type or an unsafe token."""
    if task.challenge_type != HTTP01:
        raise PluginError(
            f"the {plugin} authenticator cannot answer {task.challenge_type} "
            f"for {task.identifier.value}; it only does http-01"
        )
    if not is_valid_token(task.token):
        raise PluginError(
            f"refusing http-01 token {task.token!r} for {task.domain}: "
            "not base64url as RFC 8555 requires"
        )
    return task.token


class Probe(NamedTuple):
    """``GET path`` with ``Host: domain`` at ``host:port`` should answer ``body``."""

    host: str
    port: int
    domain: str
    path: str
    body: str


def add_probe(probes: list[Probe], hosts: Sequence[str], port: int,
              task: ChallengeTask) -> None:
    """Ask for ``task``'s answer at one of ``hosts`` (the listen addresses of one server
    block or vhost, IPv4 first, a wildcard as loopback), once."""
    if not hosts:
        return
    from certwright.core.serverkit import probe_host

    host = sorted(hosts, key=lambda h: ":" in h)[0]
    probe = Probe(probe_host(host), port, task.domain, CHALLENGE_PATH + task.token,
                  task.key_authorization)
    if probe not in probes:
        probes.append(probe)


Fetch = Callable[[Probe], tuple[int, bytes]]
"""Status and body of a probe's request (``http_get``; tests may stand in for a server)."""


def http_get(probe: Probe, timeout: float = 2.0) -> tuple[int, bytes]:
    """Status and body of a plain HTTP/1.0 request (no proxies, no redirects)."""
    with socket.create_connection((probe.host, probe.port), timeout=timeout) as sock:
        sock.sendall(f"GET {probe.path} HTTP/1.0\r\nHost: {probe.domain}\r\n"
                     "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), body


def wait_until_served(
    probes: Sequence[Probe], *, fetch: Fetch = http_get, timeout: float = SERVE_TIMEOUT,
) -> list[Probe]:
    """Poll until every probe answers 200 with its body; return those that never did."""
    waiting = list(probes)

    def all_served() -> bool | None:
        for probe in list(waiting):
            try:
                status, body = fetch(probe)
            except OSError:
                continue
            if status == 200 and body.strip() == probe.body.encode():
                waiting.remove(probe)
        return True if not waiting else None

    if waiting:
        poll_until(all_served, timeout=timeout, first=0.01, maximum=0.2)
    return waiting
