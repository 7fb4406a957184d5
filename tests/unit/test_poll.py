"""poll_until: backoff, Retry-After style waits, the deadline, with an injected clock."""

from __future__ import annotations

import pytest

from certwright.core.poll import Wait, poll_until


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_backs_off_from_first_to_maximum_and_returns_the_answer() -> None:
    clock = Clock()
    answers = iter([None] * 6 + ["ready"])
    got = poll_until(lambda: next(answers), timeout=60, first=0.02, maximum=0.25,
                     clock=clock, sleep=clock.sleep)
    assert got == "ready"
    assert clock.slept == [0.02, 0.04, 0.08, 0.16, 0.25, 0.25]


def test_a_wait_answer_overrides_the_backoff() -> None:
    clock = Clock()
    answers = iter([Wait(3.0), Wait(0.0), None, 42])
    assert poll_until(lambda: next(answers), timeout=60, clock=clock, sleep=clock.sleep) == 42
    assert clock.slept == [3.0, 0.0, 0.02]


def test_gives_up_at_the_deadline_after_one_last_check() -> None:
    clock = Clock()
    calls: list[float] = []

    def never() -> None:
        calls.append(clock.now)

    assert poll_until(never, timeout=1.0, first=0.4, maximum=0.4, clock=clock,
                      sleep=clock.sleep) is None
    assert calls[0] == 100.0 and calls[-1] == pytest.approx(101.0)
    assert sum(clock.slept) == pytest.approx(1.0), "never sleeps past the deadline"


def test_zero_timeout_checks_once() -> None:
    clock = Clock()
    calls = []
    assert poll_until(lambda: calls.append(1), timeout=0, clock=clock,
                      sleep=clock.sleep) is None
    assert calls == [1] and clock.slept == []


def test_the_earlier_of_deadline_and_timeout_wins() -> None:
    clock = Clock()
    assert poll_until(lambda: Wait(10), timeout=30, deadline=105.0, clock=clock,
                      sleep=clock.sleep) is None
    assert clock.now == pytest.approx(105.0)
    with pytest.raises(ValueError):
        poll_until(lambda: 1)


def test_initial_waits_before_the_first_check_and_the_backoff_starts_after_it() -> None:
    clock = Clock()
    asked_at: list[float] = []
    answers = iter([None, "ready"])

    def check() -> str | None:
        asked_at.append(clock.now)
        return next(answers)

    got = poll_until(check, timeout=60, first=0.02, initial=0.5, clock=clock, sleep=clock.sleep)
    assert got == "ready"
    assert clock.slept == [0.5, 0.02] and asked_at == [100.5, 100.52]


def test_initial_never_waits_past_the_deadline() -> None:
    clock = Clock()
    assert poll_until(lambda: None, timeout=1.0, initial=5.0, clock=clock,
                      sleep=clock.sleep) is None
    assert clock.slept[0] == 1.0
