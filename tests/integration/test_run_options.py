"""Run options of the toolkit through the real CLI against Pebble: ``--hook-timeout``,
``--lock-timeout``, ``--max-checkpoints`` (command line and cli.ini)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Cli, standalone
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration


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


HOLD = """\
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
(fcntl.lockf if sys.argv[3] == "lockf" else fcntl.flock)(fd, fcntl.LOCK_EX)
os.pwrite(fd, str(os.getpid()).encode() + b"\\n", 0)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold(path: Path, seconds: float, kind: str) -> subprocess.Popen[str]:
    """Another process holding the lock for ``seconds`` (``flock`` as certwright does,
    ``lockf`` as Certbot does)."""
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds), kind],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "locked"
    return child


@pytest.mark.parametrize(("name", "kind"), [(".certwright.lock", "flock"),
                                            (".certbot.lock", "lockf")])
def test_an_unattended_run_waits_for_the_lock(cli: Cli, name: str, kind: str) -> None:
    cli.config_dir.mkdir(parents=True)
    child = hold(cli.config_dir / name, 1.5, kind)
    try:
        start = time.monotonic()
        proc = cli("rollback", account=False)  # -n, no terminal: the default waits
        took = time.monotonic() - start
    finally:
        child.kill()
        child.wait()
    assert took >= 1.0, f"it did not wait for the holder ({took:.2f} s)"
    assert "waiting up to 600 s" in proc.stderr
    assert "no configuration changes to roll back" in proc.stdout


@pytest.mark.parametrize(("name", "kind", "says"), [
    (".certwright.lock", "flock", "another certwright process (pid {pid}) holds the lock"),
    (".certbot.lock", "lockf", "another program (Certbot?) holds"),
])
def test_the_wait_is_bounded_and_names_the_holder(cli: Cli, name: str, kind: str,
                                                  says: str) -> None:
    cli.config_dir.mkdir(parents=True)
    child = hold(cli.config_dir / name, 60, kind)
    try:
        start = time.monotonic()
        proc = cli("rollback", "--lock-timeout", "0.5", account=False, check=False)
        took = time.monotonic() - start
        zero = cli("rollback", "--lock-timeout", "0", account=False, check=False)
    finally:
        child.kill()
        child.wait()
    assert proc.returncode != 0 and 0.5 <= took < 20
    assert says.format(pid=child.pid) in proc.stderr and "(waited 0.5 s)" in proc.stderr
    assert zero.returncode != 0 and "--lock-timeout SECONDS waits for it" in zero.stderr


def test_lock_timeout_from_cli_ini(cli: Cli, tmp_path: Path) -> None:
    cli.config_dir.mkdir(parents=True)
    ini = tmp_path / "cli.ini"
    ini.write_text("lock-timeout = 0.3\n")
    child = hold(cli.config_dir / ".certwright.lock", 60, "flock")
    try:
        proc = cli("rollback", "-c", str(ini), account=False, check=False)
    finally:
        child.kill()
        child.wait()
    assert "(waited 0.3 s)" in proc.stderr


def _checkpoints_made(work: Path, count: int, tmp_path: Path) -> None:
    import hashlib

    from certwright.core import checkpoint, transaction
    from certwright.core.interfaces import ChangePlan, FileChange

    conf = tmp_path / "site.conf"
    conf.write_bytes(b"0")
    for i in range(count):
        checkpoint.begin_command()
        old = conf.read_bytes()
        txn = transaction.Transaction(work, f"step {i}")
        txn.apply(ChangePlan("s", (FileChange(str(conf), str(i).encode(),
                                               hashlib.sha256(old).hexdigest()),)))
        txn.commit()
    checkpoint.current.ident = None


@pytest.mark.parametrize("where", ["command line", "cli.ini", "default"])
def test_max_checkpoints_prunes_at_start(cli: Cli, tmp_path: Path, where: str) -> None:
    from certwright.core.transaction import checkpoints

    work = cli.base / "work"
    _checkpoints_made(work, 14, tmp_path)
    args = ["rollback", "--checkpoints", "0"]
    if where == "command line":
        args += ["--max-checkpoints", "3"]
    elif where == "cli.ini":
        ini = tmp_path / "cli.ini"
        ini.write_text("max-checkpoints = 3\n")
        args += ["-c", str(ini)]
    cli(*args, account=False)
    kept = [g[0].manifest.title for g in checkpoints(work)]
    last = 3 if where != "default" else 10
    assert kept == [f"step {i}" for i in range(14 - last, 14)]
