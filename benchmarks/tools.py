"""The two programs compared: certwright and Certbot (installed into its own venv)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.measure import BenchError

CERTBOT_VERSION = "5.8.0"


# -- the tools -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    name: str
    exe: Path
    extra: tuple[str, ...] = ()  # added to register / certonly

    def argv(self, *args: str) -> list[str]:
        return [str(self.exe), *args]


def certbot_version(exe: Path) -> str | None:
    """What `certbot --version` prints ("certbot 5.8.0" -> "5.8.0"), None if it fails."""
    if not exe.exists():
        return None
    try:
        done = subprocess.run([str(exe), "--version"], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = (done.stdout + done.stderr).split()
    return words[1] if done.returncode == 0 and len(words) >= 2 else None


def pip_install(venv: Path, requirement: str) -> None:
    """`pip install requirement` into `venv` (created when missing)."""
    print(f"installing {requirement} into {venv}", file=sys.stderr, flush=True)
    # A test CA in REQUESTS_CA_BUNDLE would also be all that pip trusts.
    env = {k: v for k, v in os.environ.items()
           if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")}
    python = venv / "bin" / "python"
    steps = [[python.as_posix(), "-m", "pip", "install", "-q", requirement]]
    if not python.exists():
        steps.insert(0, [sys.executable, "-m", "venv", str(venv)])
    for step in steps:
        done = subprocess.run(step, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(step)} failed:\n{done.stderr[-3000:]}")


def lists_installer(plugins_output: str, name: str) -> bool:
    """Whether `plugins --installers` output (either tool) has an entry "* NAME"."""
    return any(line.strip() == f"* {name}" for line in plugins_output.splitlines())


def ensure_certbot_installer(certbot: Tool, name: str, dirs: list[str]) -> None:
    """Certbot's NAME installer: certbot-NAME CERTBOT_VERSION is installed into Certbot's
    venv when `certbot plugins --installers` does not list it."""

    def listed() -> bool:
        done = subprocess.run(certbot.argv("plugins", "--installers", *dirs),
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        return lists_installer(done.stdout, name)

    if listed():
        return
    pip_install(certbot.exe.parent.parent, f"certbot-{name}=={CERTBOT_VERSION}")
    if not listed():
        raise BenchError(f"`certbot plugins --installers` does not list {name} after "
                         f"installing certbot-{name}=={CERTBOT_VERSION}")


def ensure_certbot(venv: Path) -> Path:
    """Certbot CERTBOT_VERSION in its own venv; reused when it is already there."""
    exe = venv / "bin" / "certbot"
    if certbot_version(exe) == CERTBOT_VERSION:
        return exe
    pip_install(venv, f"certbot=={CERTBOT_VERSION}")
    version = certbot_version(exe)
    if version != CERTBOT_VERSION:
        raise BenchError(f"{exe} reports version {version}, expected {CERTBOT_VERSION}")
    return exe


def _ask_python(python: Path, code: str) -> str:
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def dist_version(python: Path, dist: str) -> str:
    return _ask_python(python, f"import importlib.metadata as m; print(m.version({dist!r}))")


def python_version(python: Path) -> str:
    return _ask_python(python, "import platform; print(platform.python_version())")
