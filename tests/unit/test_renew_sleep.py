"""The random sleep of a non-interactive `renew`: taken only when something is due, and
before the store lock, so a colliding run does not wait through it."""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from certwright.core import cli
from certwright.core.storage.renewal_conf import write_renewal_conf
from tests.unit.test_storage_lineage import create


class _Stop(Exception):
    """Ends the run at the sleep: what follows it is not under test."""


def _lock_is_free(config: Path) -> bool:
    fd = os.open(config / ".certwright.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # releases our flock, never the run's (another open file)
    return True


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[bool]]:
    """Each random sleep of a run, recorded as whether the store lock was free then."""
    seen: list[bool] = []
    real_sleep = time.sleep

    def fake_sleep(seconds: float) -> None:
        if seconds < 1:  # polling elsewhere
            real_sleep(seconds)
            return
        seen.append(_lock_is_free(tmp_path / "etc"))
        raise _Stop()

    monkeypatch.setattr(time, "sleep", fake_sleep)
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # not a terminal: cron, a timer
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        yield seen
    finally:
        for handler in root.handlers[len(handlers):]:
            handler.close()
        root.handlers[:] = handlers


def _renew(tmp_path: Path, *extra: str) -> int:
    return cli.main(["renew", "--config-dir", str(tmp_path / "etc"), "--work-dir",
                     str(tmp_path / "work"), "--logs-dir", str(tmp_path / "logs"), *extra])


def _make_due(tmp_path: Path) -> None:
    lin = create(tmp_path / "etc", "due.example")
    lin.conf.extra["renew_before_expiry"] = "100 days"  # of a 90-day certificate
    write_renewal_conf(lin.conf)


def test_sleeps_before_taking_the_lock_when_something_is_due(
        tmp_path: Path, sleeps: list[bool]) -> None:
    create(tmp_path / "etc", "fresh.example")
    _make_due(tmp_path)
    with contextlib.suppress(_Stop):
        _renew(tmp_path)
    assert sleeps == [True], "one sleep, with the store lock free"


def test_no_sleep_when_nothing_is_due(tmp_path: Path, sleeps: list[bool]) -> None:
    create(tmp_path / "etc", "fresh.example")
    assert _renew(tmp_path) == 0
    assert sleeps == []


def test_no_sleep_when_only_another_certificate_is_due(
        tmp_path: Path, sleeps: list[bool]) -> None:
    create(tmp_path / "etc", "fresh.example")
    _make_due(tmp_path)
    assert _renew(tmp_path, "--cert-name", "fresh.example") == 0
    assert sleeps == []


def test_no_sleep_when_asked_not_to(tmp_path: Path, sleeps: list[bool]) -> None:
    _make_due(tmp_path)
    _renew(tmp_path, "--no-random-sleep-on-renew")  # the renewal itself fails: no CA
    assert sleeps == []
