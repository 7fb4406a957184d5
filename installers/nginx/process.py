"""Knowing when an nginx reload has taken effect (Linux ``/proc``).

``nginx -s reload`` only signals the master and returns. The master then reads the
configuration, starts new worker processes and tells the old ones to stop accepting
connections; an old worker retitles itself "worker process is shutting down" and closes
its listening sockets. A reload has taken effect once a worker started after the signal is
running and every worker from before is gone or shutting down. Where ``/proc`` or the pid
file is missing, nothing can be watched and callers go on without waiting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from certwright.core.poll import poll_until

DEFAULT_PID_FILE = "/run/nginx.pid"
RELOAD_TIMEOUT = 10.0
WORKER = "nginx: worker process"
SHUTTING_DOWN = "is shutting down"


@dataclass(frozen=True)
class Workers:
    master: int
    pids: frozenset[int]


def read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isascii() and text.isdigit() else None


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


def workers(master: int, proc_root: str = "/proc") -> dict[int, str]:
    """The master's worker processes: pid -> process title."""
    out: dict[int, str] = {}
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return out
    for entry in entries:
        if not entry.isdigit():
            continue
        stat = _read(os.path.join(proc_root, entry, "stat"))
        if stat is None or ")" not in stat:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if len(fields) < 2 or fields[1] != str(master):
            continue
        title = _read(os.path.join(proc_root, entry, "cmdline")) or ""
        if title.startswith(WORKER):
            out[int(entry)] = title
    return out


def snapshot(pid_file: str, proc_root: str = "/proc") -> Workers | None:
    """The running master and its workers, or None when there is nothing to watch."""
    master = read_pid(pid_file)
    if master is None or not os.path.isdir(os.path.join(proc_root, str(master))):
        return None
    return Workers(master, frozenset(workers(master, proc_root)))


def reloaded(before: Workers, proc_root: str = "/proc") -> bool:
    now = workers(before.master, proc_root)
    fresh = [pid for pid in now if pid not in before.pids]
    stale = [pid for pid in before.pids if pid in now and SHUTTING_DOWN not in now[pid]]
    return bool(fresh) and not stale


def wait_for_reload(
    before: Workers, proc_root: str = "/proc", timeout: float = RELOAD_TIMEOUT
) -> bool:
    """Poll (bounded backoff) until the reload took effect; False on timeout."""
    return poll_until(lambda: True if reloaded(before, proc_root) else None,
                      timeout=timeout, first=0.005, maximum=0.1) is not None
