"""Pre, deploy and post hooks: ``--pre-hook``/``--deploy-hook``/``--post-hook`` and the
executables in ``<config-dir>/renewal-hooks/{pre,deploy,post}/`` (Certbot's layout).

A failing hook is reported and never stops the work on other lineages. Hooks run through
``core/runner.py``: one still running after ``--hook-timeout`` seconds is killed with every
process it started, and reported like a failure.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from certwright.core.errors import CertwrightError, ConfigError
from certwright.core.settings import Settings
from certwright.core.storage.files import ensure_dir

DEFAULT_HOOK_TIMEOUT = 600.0
"""Seconds a hook may run (``--hook-timeout``): generous for a DNS hook that waits for
propagation, short of the hours a hung one would hold the store lock."""

log = logging.getLogger(__name__)
HOOK_DIRS = ("pre", "deploy", "post")
# the hook options checked before anything runs: (option, dest)
HOOK_OPTIONS = (
    ("--pre-hook", "pre_hook"),
    ("--post-hook", "post_hook"),
    ("--deploy-hook", "deploy_hook"),
    ("--manual-auth-hook", "manual_auth_hook"),
    ("--manual-cleanup-hook", "manual_cleanup_hook"),
)
# where Certbot also looks for a hook's program when PATH lacks them (cron's PATH is short)
EXTRA_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def validate_hooks(config: Settings) -> None:
    """Certbot's check, before the CA is contacted or any hook runs: the first word of
    each hook command given must be an executable, by path or on PATH (or in the system
    directories Certbot adds). ``--disable-hook-validation`` turns it off (for commands
    that start with a shell builtin or a variable assignment)."""
    if config.disable_hook_validation:
        return
    for option, dest in HOOK_OPTIONS:
        command = config.option(dest)  # a plugin's hook options too
        if command:
            problem = program_problem(str(command))
            if problem:
                raise ConfigError(f"{option} {command!r}: {problem}; give a path or a "
                                  "command on PATH (or --disable-hook-validation)")


def _with_system_dirs(path: str) -> str:
    """``path`` with the system directories it lacks appended: a hook validated against
    them must also find its program when it runs."""
    have = path.split(os.pathsep)
    return os.pathsep.join([*have, *(d for d in EXTRA_PATH if d not in have)])


def program_problem(command: str) -> str | None:
    """Why the program ``command`` starts with can't be run, or None when it can (for
    every option that names a command to run later, so it fails now, not mid-deploy)."""
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes: the shell will say; judge the first word
        words = command.split()
    while words and _ASSIGNMENT.match(words[0]):  # `LANG=C cmd`: the program is cmd
        words = words[1:]
    if not words:
        return "no program to run"
    program = os.path.expanduser(os.path.expandvars(words[0]))  # as the shell will
    if "/" in program:
        if not os.path.exists(program):
            return f"{program} does not exist"
        if os.path.isdir(program) or not os.access(program, os.X_OK):
            return f"{program} exists but is not an executable file"
        return None
    if shutil.which(program, path=_with_system_dirs(os.environ.get("PATH", os.defpath))) \
            is None:
        return f"{program} is not a command found on PATH ({os.environ.get('PATH', '')})"
    return None


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


def hook_timeout(config: Settings | Any) -> float | None:
    """``--hook-timeout`` in seconds; 0 means no limit (``config``: what a plugin was
    given)."""
    value = getattr(config, "hook_timeout", None)  # a plugin's tests may give less
    if value is None:
        return DEFAULT_HOOK_TIMEOUT
    return float(value) or None


def run_hook(command: str, kind: str, env: Mapping[str, str] | None = None,
             warn: Callable[[str], None] = log.warning,
             timeout: float | None = DEFAULT_HOOK_TIMEOUT) -> bool:
    """Run one hook through the shell; report a failure in one line and return False."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["PATH"] = _with_system_dirs(full_env.get("PATH", os.defpath))
    from certwright.core import runner  # loaded only when a hook runs

    try:
        proc = runner.run(command, timeout=timeout, env=full_env, what=f"{kind} hook")
    except CertwrightError as exc:
        warn(str(exc))
        return False
    if proc.stdout.strip():
        log.info("%s hook %r said: %s", kind, command, proc.stdout.strip())
    if proc.returncode != 0:
        warn(f"{kind} hook {command!r} failed with exit status {proc.returncode}: "
             f"{proc.last_error_line()}")
        return False
    return True


def run_hooks(commands: Sequence[str | None], kind: str, env: Mapping[str, str] | None = None,
              warn: Callable[[str], None] = log.warning,
              timeout: float | None = DEFAULT_HOOK_TIMEOUT) -> bool:
    """Run each distinct command once, in order; True when all succeeded."""
    ok = True
    seen: set[str] = set()
    for command in commands:
        if not command or command in seen:
            continue
        seen.add(command)
        ok = run_hook(command, kind, env, warn, timeout) and ok
    return ok
