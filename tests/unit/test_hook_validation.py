"""Which hook commands pass Certbot's check (the first word must be a program)."""

from pathlib import Path

import pytest

from certwright.core.hooks import program_problem


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    run = tmp_path / "run.sh"
    run.write_text("#!/bin/sh\n")
    run.chmod(0o755)
    plain = tmp_path / "plain.sh"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    return tmp_path


@pytest.mark.parametrize("command", [
    "true", "sh -c 'exit 0'", "{dir}/run.sh --flag", "'{dir}/run.sh' x",
    "LANG=C A_B=1 {dir}/run.sh", "$HOOKDIR/run.sh", "~/run.sh",
])
def test_runnable(scripts: Path, command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKDIR", str(scripts))
    monkeypatch.setenv("HOME", str(scripts))
    assert program_problem(command.replace("{dir}", str(scripts))) is None


@pytest.mark.parametrize(("command", "problem"), [
    ("{dir}/missing.sh", "does not exist"),
    ("{dir}/plain.sh", "not an executable file"),
    ("{dir}", "not an executable file"),
    ("no-such-program-here x", "not a command found on PATH"),
    ("cd /tmp && ./x", "cd is not a command"),
    ("LANG=C", "no program to run"),
])
def test_refused(scripts: Path, command: str, problem: str) -> None:
    found = program_problem(command.replace("{dir}", str(scripts)))
    assert found is not None and problem in found


def test_the_system_dirs_count_even_when_path_lacks_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert program_problem("sh -c true") is None  # /bin/sh, as Certbot's path surgery
