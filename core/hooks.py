"""Pre, deploy and post hooks: ``--pre-hook``/``--deploy-hook``/``--post-hook`` and the
executables in ``<config-dir>/renewal-hooks/{pre,deploy,post}/`` (Certbot's layout).

A failing hook is reported and never stops the work on other lineages.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from certwright.core.errors import CertwrightError
from certwright.core.storage.files import ensure_dir

log = logging.getLogger(__name__)
HOOK_DIRS = ("pre", "deploy", "post")


def directory_hooks(config_dir: Path, kind: str) -> list[str]:
    """Executable files in ``renewal-hooks/<kind>/``, in name order (hidden files skipped)."""
    folder = config_dir / "renewal-hooks" / kind
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    return [e.path for e in entries if not e.name.startswith(".") and e.is_file()
            and os.access(e.path, os.X_OK)]


def ensure_hook_dirs(config_dir: Path) -> None:
    for kind in HOOK_DIRS:
        try:
            ensure_dir(config_dir / "renewal-hooks" / kind, 0o755)
        except CertwrightError:
            return


def run_hook(command: str, kind: str, env: Mapping[str, str] | None = None,
             warn: Callable[[str], None] = log.warning, timeout: float = 600.0) -> bool:
    """Run one hook through the shell; report a failure in one line and return False."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        proc = subprocess.run(command, shell=True, env=full_env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        warn(f"{kind} hook {command!r} did not finish in {timeout:.0f} s")
        return False
    except OSError as exc:
        warn(f"{kind} hook {command!r} could not run: {exc.strerror}")
        return False
    if proc.stdout.strip():
        log.info("%s hook %r said: %s", kind, command, proc.stdout.strip())
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        warn(f"{kind} hook {command!r} failed with exit status {proc.returncode}: {tail}")
        return False
    return True


def run_hooks(commands: Sequence[str | None], kind: str, env: Mapping[str, str] | None = None,
              warn: Callable[[str], None] = log.warning) -> bool:
    """Run each distinct command once, in order; True when all succeeded."""
    ok = True
    seen: set[str] = set()
    for command in commands:
        if not command or command in seen:
            continue
        seen.add(command)
        ok = run_hook(command, kind, env, warn) and ok
    return ok
