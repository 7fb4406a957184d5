"""One child process of a test server: started with its output in a log file, stopped by pid.

`stop()` ends only the process this object started: SIGTERM, a bounded wait, then
SIGKILL. It never looks processes up by name.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol, Self


class ManagedProcess:
    """A child process whose stdout and stderr go to `log_path` (truncated on start)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self._proc

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> subprocess.Popen[bytes]:
        if self.running:
            raise RuntimeError(f"{self.argv[0]} already running as pid {self.pid}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
        )
        return self._proc

    def stop(self, timeout: float = 5.0) -> int | None:
        """Terminate, wait up to `timeout` s, then kill. Returns the exit code (None if never
        started). Safe to call twice."""
        proc, self._proc = self._proc, None
        code: int | None = None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
            code = proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


def clean_env(
    base: Mapping[str, str] | None = None, drop_prefixes: Sequence[str] = ()
) -> dict[str, str]:
    """A copy of `base` (default: os.environ) without variables starting with any prefix."""
    source = os.environ if base is None else base
    return {k: v for k, v in source.items() if not k.startswith(tuple(drop_prefixes))}


class StartStop:
    """A test server used as ``with Server(...) as server:``: ``start()`` (which returns the
    server) on entry, ``stop()`` (safe twice) on exit, whatever happened inside."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HoldsProcess(Protocol):
    _process: ManagedProcess | None


def stop_process(holder: HoldsProcess) -> None:
    """Stop the ``ManagedProcess`` ``holder`` started, if any, and forget it."""
    if holder._process is not None:
        holder._process.stop()
        holder._process = None
