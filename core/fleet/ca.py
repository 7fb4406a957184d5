"""One CA as the fleet shares it between threads: a limit on requests in flight, and the
CA's ``rateLimited`` + ``Retry-After`` honoured by every thread, not only the one told.

A short Retry-After (at most the transport's in-process wait) pauses every request to this
CA until it has passed, then the request is sent again; a longer one blocks new work on
this CA for the rest of the run (domains not yet started are deferred to that time).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from certwright.core.acme.transport import Response, Transport


class CaGate:
    def __init__(self, limit: int) -> None:
        self.slots = threading.BoundedSemaphore(max(1, limit))
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self.blocked_until: float | None = None  # wall clock (time.time)
        self.pauses = 0

    def pause(self, seconds: float) -> None:
        """The CA asked for ``seconds`` of quiet: nobody sends until they have passed."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
            self.pauses += 1

    def hold(self, seconds: float) -> None:
        """:meth:`pause`, and wait it out (the transport's sleep before a retry)."""
        self.pause(seconds)
        self.wait()

    def wait(self) -> None:
        while True:
            with self._lock:
                delay = self._paused_until - time.monotonic()
            if delay <= 0:
                return
            time.sleep(min(delay, 0.5))

    def block(self, retry_after: float) -> None:
        until = time.time() + retry_after
        with self._lock:
            self.blocked_until = max(self.blocked_until or 0.0, until)

    def blocked(self) -> float | None:
        with self._lock:
            if self.blocked_until is not None and self.blocked_until > time.time():
                return self.blocked_until
        return None


class GatedTransport(Transport):
    """A :class:`Transport` whose every request waits for the gate and takes a slot."""

    def __init__(self, directory_url: str, gate: CaGate, **kwargs: Any) -> None:
        super().__init__(directory_url, sleep=gate.hold, **kwargs)
        self.gate = gate
        self.counts = {"GET": 0, "HEAD": 0, "POST": 0}  # requests sent, for the report
        self._count_lock = threading.Lock()

    def _request(self, method: str, url: str, *, timeout: float | None = None,
                 **kwargs: Any) -> Response:
        with self.gate.slots:  # the gate is checked after the wait for a slot, and a
            self.gate.wait()   # 429 closes it before the slot is given to the next one
            with self._count_lock:
                self.counts[method] = self.counts.get(method, 0) + 1
            resp = super()._request(method, url, timeout=timeout, **kwargs)
            if resp.status == 429:
                wait = resp.retry_after
                if wait is not None and wait > self.rate_limit_max_wait:
                    self.gate.block(wait)
                else:
                    self.gate.pause(1.0 if wait is None else wait)
            return resp
