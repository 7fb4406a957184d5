"""Measuring a child process (wall and CPU time), and the table of results."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

TAIL_LINES = 25
RUN_TIMEOUT = 300.0


class BenchError(Exception):
    """A tool failed or could not be set up; the message says what and shows output."""


# -- measuring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds from spawn to reap
    cpu: float  # user + sys of the child (and of any children it waited for)


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, sample: Sample) -> None:
        self.wall.append(sample.wall)
        self.cpu.append(sample.cpu)

    def extend(self, other: Samples) -> None:
        self.wall.extend(other.wall)
        self.cpu.extend(other.cpu)

    def total(self) -> Sample:
        return Sample(sum(self.wall), sum(self.cpu))


Argv = Sequence[str] | Callable[[int], Sequence[str]]


def _tail(stream: IO[bytes], lines: int = TAIL_LINES) -> str:
    stream.seek(0)
    text = stream.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def run_once(argv: Sequence[str], env: Mapping[str, str]) -> Sample:
    """Run `argv` to completion, output to temp files; raise BenchError on a non-zero exit
    (a run longer than RUN_TIMEOUT is killed)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err)
        watchdog = threading.Timer(RUN_TIMEOUT, proc.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if proc.returncode != 0:
            why = f" (killed after {RUN_TIMEOUT:.0f} s)" if wall >= RUN_TIMEOUT else ""
            raise BenchError(
                f"{' '.join(argv)}\nexited with {proc.returncode}{why}\n"
                f"--- stderr (last {TAIL_LINES} lines) ---\n{_tail(err)}\n"
                f"--- stdout (last {TAIL_LINES} lines) ---\n{_tail(out)}")
    return Sample(wall, usage.ru_utime + usage.ru_stime)


def measure(argv: Argv, env: Mapping[str, str], repeat: int) -> Samples:
    """Run a command `repeat` times. `argv` may be a function of the run index, called
    before the clock starts (so it can prepare fresh directories)."""
    samples = Samples()
    for index in range(repeat):
        samples.add(run_once(argv(index) if callable(argv) else argv, env))
    return samples


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    metric: str
    certwright: list[float]  # samples; the table shows the median
    certbot: list[float]  # empty for a certwright-only row
    target: float | None = None  # the largest acceptable certwright/certbot ratio
    limit: float | None = None  # certwright-only rows: the largest acceptable median (s)

    @property
    def ratio(self) -> float | None:
        if not self.certbot:
            return None
        return statistics.median(self.certwright) / statistics.median(self.certbot)

    @property
    def verdict(self) -> str:
        if self.limit is not None:
            return "ok" if statistics.median(self.certwright) < self.limit else "NOT OK"
        if self.target is None or self.ratio is None:
            return "-"
        return "ok" if self.ratio <= self.target else "NOT OK"

    @property
    def target_text(self) -> str:
        if self.limit is not None:
            return f"< {self.limit:.2f} s"
        return f"<= {self.target:.2f}x" if self.target is not None else "-"


def rows_for(metric: str, results: Mapping[str, Samples], *, wall_target: float | None = None,
             cpu_target: float | None = None, cpu: bool = True) -> list[Row]:
    """A wall row (and a CPU row) from per-tool samples."""
    cw, cb = results["certwright"], results["certbot"]
    rows = [Row(f"{metric}, wall", cw.wall, cb.wall, wall_target)]
    if cpu:
        rows.append(Row(f"{metric}, CPU", cw.cpu, cb.cpu, cpu_target))
    return rows


def _seconds(samples: Sequence[float]) -> str:
    return f"{statistics.median(samples):.3f} s" if samples else "-"


def _spread(samples: Sequence[float]) -> str:
    if not samples:
        return "-"
    return f"{min(samples):.3f}-{max(samples):.3f} (n={len(samples)})"


def print_table(rows: Sequence[Row]) -> None:
    header = ("metric", "certwright", "certbot", "ratio", "target", "ok")
    cells = [header] + [
        (row.metric, _seconds(row.certwright), _seconds(row.certbot),
         f"{row.ratio:.2f}x" if row.ratio is not None else "-", row.target_text, row.verdict)
        for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]

    def line(values: Sequence[str]) -> str:
        first = values[0].ljust(widths[0])
        rest = [v.rjust(w) for v, w in zip(values[1:-1], widths[1:-1], strict=True)]
        return "  ".join([first, *rest, values[-1]]).rstrip()

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for values in cells[1:]:
        print(line(values))
    print("\nmedians; spread (min-max, n runs):")
    for row in rows:
        print(f"  {row.metric}: certwright {_spread(row.certwright)}, "
              f"certbot {_spread(row.certbot)}")
