"""What a run did, and what the store knows: rows per domain, a summary, JSON, a table;
the live progress line on a terminal (a plain log line per domain otherwise)."""

from __future__ import annotations

import datetime
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from certwright.core.fleet.state import DomainState

FAILED = ("failed", "precheck-failed")
ISSUED = ("new", "expand", "renew", "resume", "resumed")


def timestamp_of(moment: datetime.datetime) -> float:
    return moment.timestamp()


def iso(when: float | None) -> str | None:
    if when is None:
        return None
    return datetime.datetime.fromtimestamp(when, datetime.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Outcome:
    """One domain's result in this run: ``action`` is what happened (new, renew, expand,
    resumed, keep, skip, deferred, delete, failed, precheck-failed, bad)."""

    action: str
    name: str
    dn: str | None
    state: str
    not_after: float | None
    error: str | None
    next_attempt: float | None

    @classmethod
    def of(cls, action: str, state: DomainState, note: str = "",
           next_attempt: float | None = None) -> Outcome:
        error = note if action in (*FAILED, "bad") else state.error
        current = "removed" if action == "delete" else state.state
        if action in FAILED:
            current = action
        return cls(action, state.name, state.dn, current, state.not_after,
                   error or (note or None), next_attempt or state.next_attempt)

    @property
    def attempted_and_failed(self) -> bool:
        return self.action in FAILED or self.action == "bad"

    def row(self) -> dict[str, Any]:
        return {"name": self.name, "dn": self.dn, "state": self.state,
                "not_after": iso(self.not_after), "error": self.error,
                "next_attempt": iso(self.next_attempt), "action": self.action}


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)
    writeback_failed: list[str] = field(default_factory=list)
    ldap_writes: int = 0
    ca_requests: dict[str, int] = field(default_factory=dict)
    status_only: bool = False  # `fleet status`: states, not what a run did

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    @property
    def failed(self) -> bool:
        return bool(self.bad) or any(o.attempted_and_failed for o in self.outcomes)

    def summary(self) -> dict[str, Any]:
        if self.status_only:
            states = Counter(o.state for o in self.outcomes)
            return {**{s: states.get(s, 0) for s in ("valid", "failed", "precheck-failed",
                                                     "pending", "removed")},
                    "total": len(self.outcomes)}
        counts = Counter(o.action for o in self.outcomes)
        out: dict[str, Any] = {k: counts.get(k, 0) for k in (
            "new", "renew", "expand", "resumed", "keep", "skip", "deferred", "delete",
            "failed", "precheck-failed", "installed")}
        out["bad_entries"] = len(self.bad)
        out["writeback_failed"] = len(self.writeback_failed)
        out["ldap_writes"] = self.ldap_writes
        out["ca_requests"] = dict(self.ca_requests)
        out["total"] = len(self.outcomes)
        return out

    def as_json(self) -> str:
        rows = [o.row() for o in sorted(self.outcomes, key=lambda o: o.name)]
        rows += [{"name": None, "dn": where, "state": "bad", "not_after": None,
                  "error": error, "next_attempt": None, "action": "bad"}
                 for where, error in self.bad]
        return json.dumps({"domains": rows, "summary": self.summary()},
                          indent=1 if len(rows) <= 1000 else None)

    def table(self, everything: bool = False, actions: bool = True) -> str:
        """The domains that need attention (all of them with ``everything``), then the
        summary; ``actions``: a column for what this run did (not for ``status``)."""
        shown = [o for o in sorted(self.outcomes, key=lambda o: o.name)
                 if everything or o.action not in ("keep",)]
        lines = []
        if shown:
            width = max(len(o.name) for o in shown)
            act = f"{'ACTION':<15} " if actions else ""
            lines.append(f"{'DOMAIN':<{width}}  {act}{'STATE':<15} {'EXPIRES':<25} "
                         f"{'NEXT ATTEMPT':<25} ERROR")
            for o in shown:
                act = f"{o.action:<15} " if actions else ""
                lines.append(f"{o.name:<{width}}  {act}{o.state:<15} "
                             f"{iso(o.not_after) or '-':<25} {iso(o.next_attempt) or '-':<25} "
                             f"{o.error or ''}".rstrip())
        for _where, error in self.bad:
            lines.append(f"unusable entry: {error}")
        for dn in self.writeback_failed:
            lines.append(f"write-back failed (retried next run): {dn}")
        summary = self.summary()
        parts = [f"{k} {v}" for k, v in summary.items()
                 if isinstance(v, int) and v and k != "total"]
        lines.append(f"{summary['total']} domains: " + (", ".join(parts) or "nothing to do"))
        return "\n".join(lines) + "\n"


def status_report(states: Iterable[DomainState]) -> Report:
    report = Report(status_only=True)
    for state in states:
        report.add(Outcome(state.state, state.name, state.dn, state.state, state.not_after,
                           state.error, state.next_attempt))
    return report


class Progress:
    """Done / failed / remaining and the rate: one rewritten line on a terminal, a log
    line per domain otherwise."""

    def __init__(self, say: Callable[[str], None], stream: IO[str] | None = None,
                 live: bool | None = None) -> None:
        self.say = say
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.total = self.finished = self.failed = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def start(self, total: int) -> None:
        self.total, self.started = total, time.monotonic()

    def done(self, outcome: Outcome) -> None:
        with self._lock:
            self.finished += 1
            self.failed += outcome.attempted_and_failed
            if self.live:
                rate = self.finished / max(1e-6, time.monotonic() - self.started)
                self.stream.write(f"\r{self.finished - self.failed} done, {self.failed} "
                                  f"failed, {self.total - self.finished} remaining, "
                                  f"{rate:.1f}/s  ")
                self.stream.flush()
            else:
                text = f"{outcome.name}: {outcome.action}"
                if outcome.error and outcome.attempted_and_failed:
                    text += f": {outcome.error}"
                self.say(text)

    def finish(self) -> None:
        if self.live and self.total:
            self.stream.write("\n")
            self.stream.flush()
