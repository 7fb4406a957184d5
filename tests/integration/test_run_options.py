"""Run options of the toolkit through the real CLI against Pebble: ``--hook-timeout``,
``--lock-timeout``, ``--max-checkpoints`` (command line and cli.ini)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.conftest import Cli
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration


def standalone(ca: Pebble) -> list[str]:
    return ["--standalone", "--http-01-port", str(ca.http_port), "--http-01-address",
            "127.0.0.1"]


def gone(pid: int, within: float = 5.0) -> bool:
    """The process has exited (a zombie awaiting its reaper counts as exited)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_a_hung_pre_hook_is_killed_and_the_certificate_still_issued(
        cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    hook = f"sleep 100000 & echo $! > {pidfile}; wait"
    start = time.monotonic()
    proc = cli("certonly", *standalone(pebble), "-d", "hung.example.org",
               "--disable-hook-validation", "--pre-hook", hook, "--hook-timeout", "1",
               timeout=60)
    assert time.monotonic() - start < 30
    assert f"pre hook {hook!r} did not finish within 1 s" in proc.stderr
    assert (cli.config_dir / "live" / "hung.example.org" / "cert.pem").exists()
    assert gone(int(pidfile.read_text())), "the hook's child outlived the timeout"


def test_hook_timeout_from_cli_ini(cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    ini = tmp_path / "cli.ini"
    ini.write_text("hook-timeout = 1\n")
    proc = cli("certonly", "-c", str(ini), *standalone(pebble), "-d", "ini.example.org",
               "--post-hook", "sleep 100000", timeout=60)
    assert "post hook 'sleep 100000' did not finish within 1 s" in proc.stderr
