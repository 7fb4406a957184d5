"""Run the certwright CLI with one function made to crash: ``kill -9`` just before or just
after its n-th call, or fail there as a full disk would (StorageError, ENOSPC). The patch is
made in the child process only; the code under test is not changed."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from tests.integration.conftest import Cli

CHILD = r"""
import errno, importlib, os, signal, sys
where, when, count = sys.argv[1].rsplit(":", 2)
module_name, attr = where.split(":")
owner = importlib.import_module(module_name)
parts = attr.split(".")
for part in parts[:-1]:
    owner = getattr(owner, part)
original = getattr(owner, parts[-1])
calls = [0]

def crash(*args, **kwargs):
    calls[0] += 1
    hit = calls[0] == int(count)
    if hit and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    if hit and when == "fail":
        from certwright.core.errors import StorageError
        raise StorageError(f"cannot write (simulated): {os.strerror(errno.ENOSPC)}")
    result = original(*args, **kwargs)
    if hit and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return result

setattr(owner, parts[-1], crash)
from certwright.core.cli import main
sys.exit(main(sys.argv[2:]))
"""


@dataclass
class Crash:
    """``where``: ``module:attr.path`` as the caller looks it up; ``when``: before, after
    or fail; ``count``: which call (1 = the first)."""

    where: str
    when: str
    count: int = 1

    def run(self, cli: Cli, *args: str, account: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-c", CHILD, f"{self.where}:{self.when}:{self.count}", *args,
                *cli.dirs(), "-n", "--server", cli.ca.directory_url]
        if account:
            argv += ["--agree-tos", "-m", "admin@example.org"]
        env = cli.ca.env(os.environ)
        env.update(cli.extra_env)
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)


def killed(proc: subprocess.CompletedProcess[str]) -> bool:
    return proc.returncode == -9
