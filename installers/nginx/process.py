"""Knowing when an nginx reload has taken effect (Linux ``/proc``).

``nginx -s reload`` only signals the master and returns. The master then reads the
configuration, starts new worker processes and tells the old ones to stop accepting
connections; an old worker retitles itself "worker process is shutting down" and closes
its listening sockets. A reload has taken effect once a worker started after the signal is
running and every worker from before is gone or shutting down. Where ``/proc`` or the pid
file is missing, nothing can be watched and callers go on without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass

from certwright.core.serverkit import children, read_pid, wait_for, watchable

__all__ = ["Workers", "read_pid", "reloaded", "snapshot", "wait_for_reload", "workers"]

DEFAULT_PID_FILE = "/run/nginx.pid"
RELOAD_TIMEOUT = 10.0
WORKER = "nginx: worker process"
SHUTTING_DOWN = "is shutting down"


@dataclass(frozen=True)
class Workers:
    master: int
    pids: frozenset[int]


def workers(master: int, proc_root: str = "/proc") -> dict[int, str]:
    """The master's worker processes: pid -> process title."""
    return {pid: title for pid, title in children(master, proc_root, titles=True).items()
            if title.startswith(WORKER)}


def snapshot(pid_file: str, proc_root: str = "/proc") -> Workers | None:
    """The running master and its workers, or None when there is nothing to watch."""
    master = read_pid(pid_file)
    if master is None or not watchable(master, proc_root):
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
    return wait_for(lambda: reloaded(before, proc_root), timeout)
