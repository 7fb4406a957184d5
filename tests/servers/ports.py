"""Loopback ports for throwaway test servers: pick a free one, wait until one answers.

Every wait here is bounded and polls (about every 10 ms); nothing sleeps a fixed time.
When the server process dies while we wait, the error carries the tail of its log.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

POLL_INTERVAL = 0.01

# Ports this process has handed out. Some are never bound by us (Pebble only connects to
# its http-01 / tls-alpn-01 ports), so the kernel could offer them again: never reuse one.
_handed_out: set[int] = set()


class ServerStartError(RuntimeError):
    """A test server did not come up; the message ends with the tail of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that nothing listens on right now.

    The kernel picks it (bind to port 0). Another process may take it before the
    caller binds it, so callers that start servers should treat "address already in
    use" as a reason to pick again. A port is never returned twice by one process.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no fresh free port on {host}")


def log_tail(path: Path | None, lines: int = 40) -> str:
    """The last `lines` lines of a log file, or a note saying why there are none."""
    if path is None:
        return "(no log file)"
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"({path} is empty)"


def startup_failure(
    what: str, reason: str, proc: subprocess.Popen[bytes] | None, log: Path | None
) -> ServerStartError:
    """Build the error raised when `what` failed to start, with exit code and log tail."""
    status = ""
    if proc is not None and proc.poll() is not None:
        status = f" (process {proc.pid} exited with code {proc.returncode})"
    return ServerStartError(f"{what}: {reason}{status}\n--- log tail of {log} ---\n{log_tail(log)}")


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float = 15.0,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> float:
    """Poll `ready()` until it returns True; return the seconds waited.

    Raises ServerStartError when `proc` exits first or after `timeout` seconds.
    """
    start = time.monotonic()
    deadline = start + timeout
    while True:
        if ready():
            return time.monotonic() - start
        if proc is not None and proc.poll() is not None:
            raise startup_failure(what, "process exited before it was ready", proc, log)
        if time.monotonic() >= deadline:
            raise startup_failure(what, f"not ready after {timeout:.1f} s", proc, log)
        time.sleep(POLL_INTERVAL)


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when a TCP connection to host:port succeeds right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str,
    port: int,
    *,
    timeout: float = 15.0,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    what: str | None = None,
) -> float:
    """Wait until host:port accepts TCP connections; return the seconds waited.

    Raises ServerStartError (with the log tail) when `proc` exits first or on timeout.
    """
    return wait_until(
        lambda: port_accepts(host, port),
        what=what or f"server on {host}:{port}",
        timeout=timeout,
        proc=proc,
        log=log,
    )
