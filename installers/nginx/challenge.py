"""Serving http-01 answers through nginx for as long as the CA needs them.

The nginx authenticator never writes files: it plans (see :func:`.http01.plan_http01`) and
hands the plan to an ``apply`` callable that the core provides. ``apply(plan)`` writes the
plan's files (journalled, as a temporary transaction) and returns a function that puts the
previous files back. :class:`ChallengeSession` adds the server side: config test and reload
after applying, and a reload after undoing. Any failure while presenting undoes at once.

Contract for ``apply``: it raises (having written nothing, or having undone what it wrote)
when it cannot apply the plan; the undo function it returns is called exactly once.

A reload is asynchronous: nginx's master starts new workers and the old ones keep
answering for a moment (about 50 ms here), so a CA asked too early sees a 404.
:func:`wait_until_served` asks nginx itself for each answer, polling with a bounded
backoff, instead of sleeping a fixed time.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from certwright.core.errors import CertwrightError
from certwright.core.interfaces import ChangePlan

log = logging.getLogger(__name__)

Undo = Callable[[], None]
ApplyPlan = Callable[[ChangePlan], Undo]
SERVE_TIMEOUT = 10.0


@dataclass(frozen=True)
class Probe:
    """``GET path`` with ``Host: domain`` at ``host:port`` should answer ``body``."""

    host: str
    port: int
    domain: str
    path: str
    body: str


Fetch = Callable[[Probe], tuple[int, bytes]]


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
    deadline = time.monotonic() + timeout
    delay = 0.01
    while waiting:
        for probe in list(waiting):
            try:
                status, body = fetch(probe)
            except OSError:
                continue
            if status == 200 and body.strip() == probe.body.encode():
                waiting.remove(probe)
        if not waiting or time.monotonic() + delay > deadline:
            break
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    return waiting


class ChallengeSession:
    """At most one applied challenge plan at a time; ``replace`` swaps it for another."""

    def __init__(
        self, apply: ApplyPlan, config_test: Callable[[], None], reload: Callable[[], None]
    ) -> None:
        self._apply = apply
        self._config_test = config_test
        self._reload = reload
        self._undo: Undo | None = None

    @property
    def active(self) -> bool:
        return self._undo is not None

    def replace(self, plan: ChangePlan, ready: Callable[[], None] | None = None) -> None:
        """Undo what is applied, then apply ``plan``, config-test, reload and wait for
        ``ready``; on failure nothing of ``plan`` stays (and the server is reloaded if it
        had been)."""
        self.close()
        if plan.empty:
            return
        undo = self._apply(plan)
        reloaded = False
        try:
            self._config_test()
            reloaded = True
            self._reload()
            if ready is not None:
                ready()
        except BaseException:
            undo()
            if reloaded:
                self._reload_quietly()
            raise
        self._undo = undo

    def close(self) -> None:
        """Put the previous configuration back and reload; safe to call at any time."""
        undo, self._undo = self._undo, None
        if undo is None:
            return
        try:
            undo()
        finally:
            self._reload_quietly()

    def _reload_quietly(self) -> None:
        try:
            self._reload()
        except CertwrightError as exc:
            log.warning("nginx reload after removing the challenge answers failed: %s", exc)
