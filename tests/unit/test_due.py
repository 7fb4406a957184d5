"""The one "is it due" rule (certwright.core.due.should_renew), on a stand-in lineage."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

from certwright.core.due import should_renew

START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
DAY = 86400.0


def lineage(days: int = 90, extra: dict[str, Any] | None = None, **params: Any) -> Any:
    return SimpleNamespace(
        name="due.example.org", params=params, conf=SimpleNamespace(extra=extra or {}),
        not_before=START, not_after=START + dt.timedelta(days=days), serial=0x1234)


class Ari:
    """Answers a fixed moment and records what it was asked."""

    def __init__(self, moment: float | None) -> None:
        self.moment = moment
        self.asked: list[tuple[str, float, str]] = []

    def renewal_time(self, lin: Any, now: float, serial: str = "") -> float | None:
        self.asked.append((lin.name, now, serial))
        return self.moment


def at(days: float) -> float:
    return START.timestamp() + days * DAY


def test_lifetime_rule() -> None:
    assert not should_renew(lineage(), at(59))
    assert should_renew(lineage(), at(60))
    assert should_renew(lineage(days=6), at(3)) and not should_renew(lineage(days=6), at(2.9))


def test_renew_before_expiry_replaces_the_lifetime_rule() -> None:
    lin = lineage(extra={"renew_before_expiry": "10 days"})
    assert not should_renew(lin, at(70)) and should_renew(lin, at(80))
    early = lineage(extra={"renew_before_expiry": "2 weeks"})
    assert should_renew(early, at(76))


def test_the_cas_moment_makes_it_due_earlier_and_is_asked_with_the_serial() -> None:
    ari = Ari(at(20))
    assert not should_renew(lineage(), at(19), ari=ari)  # type: ignore[arg-type]
    assert should_renew(lineage(), at(21), ari=ari)  # type: ignore[arg-type]
    assert ari.asked == [("due.example.org", at(19), "1234"), ("due.example.org", at(21), "1234")]


def test_the_ca_is_not_asked_about_a_certificate_already_due() -> None:
    ari = Ari(at(200))
    assert should_renew(lineage(), at(95), ari=ari)  # type: ignore[arg-type]
    assert ari.asked == []


def test_autorenew_off_and_force() -> None:
    off = lineage(autorenew="no")
    ari = Ari(at(1))
    assert not should_renew(off, at(89), ari=ari)  # type: ignore[arg-type]
    assert ari.asked == []
    assert should_renew(off, at(1), force=True)
    assert should_renew(lineage(autorenew="True"), at(60))
