"""What one command is: a checkpoint id shared by its transactions, and signal handling.

Kept apart from :mod:`certwright.core.transaction` so a command that changes no server
config (``certonly`` with webroot, ``renew`` of such lineages) never loads the journal code.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def journal_root(work_dir: Path) -> Path:
    """Where transaction journals live (``<work-dir>/transactions``)."""
    return Path(work_dir) / "transactions"


class _Command:
    """The running command: its checkpoint id (None outside one) and whether it wrote or
    removed a journal."""

    ident: str | None = None
    changed = False


current = _Command()


def begin_command() -> str:
    """Start a new command: every transaction from now on belongs to one checkpoint."""
    current.ident = os.urandom(16).hex()  # random, like uuid4 (without its import cost)
    current.changed = False
    return current.ident


@contextlib.contextmanager
def one_checkpoint() -> Iterator[str]:
    """Every transaction made inside is one checkpoint; outside, each is its own."""
    ident = begin_command()
    try:
        yield ident
    finally:
        current.ident = None


def journals_changed() -> bool:
    """Whether this command wrote or removed a journal (then it is worth pruning)."""
    return current.changed


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Turn SIGTERM (and SIGHUP) into SystemExit so ``finally`` blocks undo temporary
    changes; SIGINT already raises KeyboardInterrupt."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # not the main thread
            previous[int(sig)] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for num, old in previous.items():
            signal.signal(num, old)
