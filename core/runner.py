"""One seam for every command certwright runs on the operator's behalf (hooks, plugin
commands), with a bounded run time.

A command runs in a session (and process group) of its own, with stdin closed and its
output captured. When it outlives ``timeout`` the whole group is killed, not only the
shell: a ``sleep`` a hook started would otherwise keep the output pipes open, and the run
(holding the store lock) would wait for it forever. Ctrl-C and SIGTERM reaching certwright
kill the group too, so no hook outlives the run that started it.

A string is run through ``/bin/sh -c`` (hooks are shell commands, as in Certbot); a
sequence is run as an argument vector, without a shell.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from certwright.core.errors import PluginError

if TYPE_CHECKING:
    import subprocess

_GRACE = 2.0  # after SIGTERM to the group, before SIGKILL


class CommandTimeout(PluginError):
    """A command did not finish in time; it and every process it started were killed."""


class CommandFailed(PluginError):
    """A command could not be started at all."""


@dataclass(frozen=True)
class Completed:
    """What a finished command left: its exit status (negative: killed by that signal)
    and its output, decoded with invalid bytes replaced."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def last_error_line(self) -> str:
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else "(no output)"


def describe(command: str | Sequence[str]) -> str:
    return command if isinstance(command, str) else shlex.join(command)


def run(command: str | Sequence[str], *, timeout: float | None,
        env: Mapping[str, str] | None = None, what: str = "") -> Completed:
    """Run ``command`` and wait for it, at most ``timeout`` seconds (None or 0: no limit).

    ``what`` names the command in errors (``"--manual-auth-hook"``, ``"deploy hook"``).
    Raises :class:`CommandTimeout` after killing the command's process group, and
    :class:`CommandFailed` when it can't start."""
    import subprocess  # here, not at import: most runs start no command

    argv = ("/bin/sh", "-c", command) if isinstance(command, str) else tuple(command)
    label = f"{what} {describe(command)!r}" if what else repr(describe(command))
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=None if env is None else dict(env),
                                start_new_session=True, text=True, errors="replace")
    except OSError as exc:
        raise CommandFailed(f"{label} could not run: {exc.strerror or exc}") from None
    try:
        out, err = proc.communicate(timeout=timeout or None)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise CommandTimeout(f"{label} did not finish within {timeout:g} s; it and the "
                             "processes it started were killed") from None
    except BaseException:  # Ctrl-C, SIGTERM: the hook must not outlive the run
        _kill_group(proc)
        raise
    return Completed(argv, proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM to the command's whole process group, SIGKILL after a short grace; then
    reap the command and close its pipes (a process that left the group may hold them)."""
    import subprocess

    for sig, wait in ((signal.SIGTERM, _GRACE), (signal.SIGKILL, _GRACE)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.communicate(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
        except ValueError:  # pipes already closed by an earlier communicate
            break
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=_GRACE)
    # the group may still hold a process that ignores SIGTERM and outlived its leader
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
