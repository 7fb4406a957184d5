"""Ask again until something is ready: soon at first, then less often, never past a deadline.

Used wherever certwright waits for something outside it: a server to serve the new
certificate, the CA to finish an order, another process to release the store's lock.
Nothing sleeps a fixed time.

``check`` answers each time: a value other than ``None`` (done: ``poll_until`` returns it),
``None`` (not yet: wait the next backoff delay), or :class:`Wait` (not yet, and the other
side said when to ask again, like ACME's ``Retry-After``). ``check`` always runs at least
once, and once more at the deadline when a wait would pass it; after that ``poll_until``
returns ``None``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import NamedTuple, TypeVar

T = TypeVar("T")


class Wait(NamedTuple):
    """Not ready; ask again after ``seconds`` (0: at once)."""

    seconds: float


class Backoff(NamedTuple):
    """Delays that start at ``first`` and grow by ``factor`` up to ``maximum``."""

    first: float = 0.02
    factor: float = 2.0
    maximum: float = 0.5

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(delay * self.factor, self.maximum)


def poll_until(check: Callable[[], T | Wait | None], *, timeout: float | None = None,
               deadline: float | None = None, first: float = 0.02, maximum: float = 0.5,
               factor: float = 2.0, clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep, initial: float = 0.0) -> T | None:
    """The first answer of ``check`` that is not ``None``/:class:`Wait`, or ``None`` when
    the deadline (``timeout`` seconds from now, or the ``clock`` time ``deadline``; the
    earlier of the two when both are given) passes first. ``initial``: seconds to wait
    before the first ``check`` (what is asked about cannot be ready sooner)."""
    ends = [t for t in (deadline, None if timeout is None else clock() + timeout)
            if t is not None]
    if not ends:
        raise ValueError("poll_until needs a timeout or a deadline")
    end = min(ends)
    delays = Backoff(first, factor, maximum).delays()
    if initial > 0:
        sleep(max(0.0, min(initial, end - clock())))
    while True:
        answer = check()
        if answer is not None and not isinstance(answer, Wait):
            return answer
        wait = answer.seconds if isinstance(answer, Wait) else next(delays)
        left = end - clock()
        if left <= 0:
            return None
        sleep(max(0.0, min(wait, left)))
