"""The one command runner: a timeout that kills the whole process group, named hooks."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pytest

from certwright.authenticators.manual import ManualAuthenticator
from certwright.core import hooks, runner
from certwright.core.errors import PluginError
from certwright.core.interfaces import ChallengeTask, Identifier


def alive(pid: int, within: float = 2.0) -> bool:
    """Still running after ``within`` seconds (a process killed a moment ago may still be
    exiting: its pipes close before it becomes a zombie)."""
    deadline = time.monotonic() + within
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return _running(pid)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (not yet reaped by its new parent) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def hung(tmp_path: Path) -> tuple[str, Path]:
    """A shell command that starts a child that sleeps forever (and keeps the output
    pipes open), recording the child's pid."""
    pidfile = tmp_path / "sleeper.pid"
    return f"sleep 100000 & echo $! > {pidfile}; echo started; wait", pidfile


def test_output_and_status_are_returned() -> None:
    done = runner.run("echo out; echo err >&2; exit 3", timeout=10)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert runner.run(["printf", "%s", "a b"], timeout=10).stdout == "a b"


def test_a_hung_command_is_killed_with_its_children(tmp_path: Path) -> None:
    command, pidfile = hung(tmp_path)
    start = time.monotonic()
    with pytest.raises(runner.CommandTimeout) as caught:
        runner.run(command, timeout=0.5, what="pre hook")
    took = time.monotonic() - start
    assert took < 5, f"the run waited {took:.1f} s for the hook's children"
    assert str(caught.value).startswith(f"pre hook {command!r} did not finish within 0.5 s")
    assert not alive(int(pidfile.read_text())), "the hook's child outlived the timeout"


def test_a_child_that_ignores_sigterm_is_killed_too(tmp_path: Path) -> None:
    pidfile = tmp_path / "stubborn.pid"
    command = f"sh -c 'trap \"\" TERM; sleep 100000 & echo $! > {pidfile}; wait' ; wait"
    with pytest.raises(runner.CommandTimeout):
        runner.run(command, timeout=0.5)
    assert not alive(int(pidfile.read_text()), within=5)


def test_a_program_that_cannot_start_is_named() -> None:
    with pytest.raises(runner.CommandFailed, match="'/nonexistent/prog' could not run"):
        runner.run(["/nonexistent/prog"], timeout=5)


def test_hook_timeout_option() -> None:
    assert hooks.hook_timeout(argparse.Namespace()) == hooks.DEFAULT_HOOK_TIMEOUT
    assert hooks.hook_timeout(argparse.Namespace(hook_timeout=7)) == 7
    assert hooks.hook_timeout(argparse.Namespace(hook_timeout=0)) is None


def test_a_hung_pre_hook_is_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    command, pidfile = hung(tmp_path)
    warnings: list[str] = []
    start = time.monotonic()
    ok = hooks.run_hooks([command], "pre", warn=warnings.append, timeout=0.5)
    assert not ok and time.monotonic() - start < 5
    assert warnings == [f"pre hook {command!r} did not finish within 0.5 s; it and the "
                        "processes it started were killed"]
    assert not alive(int(pidfile.read_text()))


def test_a_hung_manual_auth_hook_fails_the_challenge_naming_the_hook(tmp_path: Path) -> None:
    command, pidfile = hung(tmp_path)
    auth = ManualAuthenticator(argparse.Namespace(noninteractive=True, manual_auth_hook=command,
                                                  hook_timeout=0.5))
    task = ChallengeTask(Identifier("dns", "example.org"), "dns-01", "t", "t.k", "v",
                         ("example.org",), 0)
    start = time.monotonic()
    with pytest.raises(PluginError, match=r"^--manual-auth-hook .* did not finish within 0\.5 s"):
        auth.present(task)
    assert time.monotonic() - start < 5
    assert not alive(int(pidfile.read_text()))
