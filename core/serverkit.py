"""What every server installer needs, in one place: its options added once when the
installer and the authenticator of one server both ask and read back the same way (text,
on/off), the binary it drives found or named as missing, a failed command turned into one
line, where to probe an address it listens on, a key authorization safe to write into a
config, and knowing through ``/proc`` when a reload took effect.

The rest of the toolkit lives beside it: :mod:`.textedit` (line-anchored edits, managed
files), :mod:`.runner` (commands with a timeout), :mod:`.poll` (poll-until),
:mod:`.challenge_session` and :mod:`.http01` (serving http-01 through a server, the
reachability probe), :mod:`.deploy` (config test, reload, TLS verification by handshake).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, overload

from certwright.core.errors import PluginError
from certwright.core.poll import poll_until

if TYPE_CHECKING:
    from certwright.core.interfaces import AddArgument, ChallengeTask
    from certwright.core.runner import Completed

RELOAD_POLL = (0.005, 0.1)
"""First and longest wait between two looks at a reloading server's processes (s)."""
_KEY_AUTHORIZATION = re.compile(r"[A-Za-z0-9_.-]+")

Option = tuple[str, dict[str, object]]


def add_options(add: AddArgument, options: Sequence[Option]) -> None:
    """Add ``options`` (flag, argparse keywords); the ``dest`` is the flag's name unless the
    keywords give one. A flag another plugin of the same server added already is left as
    it is."""
    for flag, kwargs in options:
        with contextlib.suppress(argparse.ArgumentError):
            add(flag, **{"dest": flag[2:].replace("-", "_"), **kwargs})


@overload
def text_option(config: object, dest: str, default: str) -> str: ...
@overload
def text_option(config: object, dest: str, default: None = None) -> str | None: ...
def text_option(config: object, dest: str, default: str | None = None) -> str | None:
    """The option ``dest`` as text; ``default`` when it is unset, empty, or ``None`` as a
    renewal conf writes it."""
    value = getattr(config, dest, None)
    return default if value in (None, "", "None") else str(value)


def on_off(config: object, dest: str, flag: str, default: bool = False) -> bool:
    """An on/off option, given on the command line (a bool) or read back from a renewal
    conf or cli.ini (true/false, yes/no, on/off, 1/0); anything else is a PluginError
    naming ``flag``."""
    from certwright.core.options import to_bool

    value = getattr(config, dest, None)
    if value in (None, "", "None"):
        return default
    try:
        return to_bool(value)
    except ValueError:
        raise PluginError(f"{flag} {value}: give true or false") from None


def find_tool(name: str, beside: str | None = None) -> str | None:
    """The full path of the command ``name``: next to ``beside`` (a path given for a
    sibling tool) when it is there, else ``name`` itself when it is a path, else on PATH;
    None when it is nowhere."""
    if beside and os.sep in beside:
        candidate = os.path.join(os.path.dirname(beside), name)
        if os.access(candidate, os.X_OK):
            return candidate
    if os.sep in name:
        return name if os.access(name, os.X_OK) and not os.path.isdir(name) else None
    return shutil.which(name)


def require_tool(command: str, server: str, option: str) -> str:
    """The path of ``server``'s ``command``, or a PluginError saying the server is not
    installed here and which option names another."""
    found = find_tool(command)
    if found is None:
        raise PluginError(f"{server} is not installed here ({command!r} is not found; "
                          f"see {option})")
    return found


def check_command(done: Completed, server: str, what: str) -> None:
    """PluginError naming the step, the exit status and the last lines of output."""
    if done.returncode == 0:
        return
    text = (done.stderr or "") + "\n" + (done.stdout or "")
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and "Syntax OK" not in line]
    detail = ": " + " | ".join(lines[-5:]) if lines else ""
    raise PluginError(f"{server} {what} failed (exit {done.returncode}){detail}")


def probe_host(host: str) -> str:
    """The address to connect to for a listen address: a wildcard is loopback."""
    if host in ("*", "0.0.0.0", ""):
        return "127.0.0.1"
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return "::1" if host == "::" else host


def key_authorization(task: ChallengeTask) -> str:
    """The task's key authorization, refused unless it is base64url and dots (RFC 8555
    §8.1): it is written into a config or a file name."""
    if not _KEY_AUTHORIZATION.fullmatch(task.key_authorization):
        raise PluginError(f"refusing key authorization for {task.domain}: unexpected "
                          "characters")
    return task.key_authorization


# -- processes, through /proc --------------------------------------------------------------
def read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isascii() and text.isdigit() else None


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


def children(parent: int, proc_root: str = "/proc", *, titles: bool = False) -> dict[int, str]:
    """The processes whose parent is ``parent``: pid -> command line ('' unless
    ``titles``)."""
    out: dict[int, str] = {}
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return out
    for entry in entries:
        if not entry.isdigit():
            continue
        stat = _read(os.path.join(proc_root, entry, "stat"))
        if stat is None or ")" not in stat:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if len(fields) >= 2 and fields[1] == str(parent):
            title = _read(os.path.join(proc_root, entry, "cmdline")) if titles else ""
            out[int(entry)] = title or ""
    return out


def watchable(pid: int, proc_root: str = "/proc") -> bool:
    return os.path.isdir(os.path.join(proc_root, str(pid)))


def wait_for(done: Callable[[], bool], timeout: float) -> bool:
    """Poll ``done`` with a bounded backoff until it is true; False on timeout."""
    first, longest = RELOAD_POLL
    return poll_until(lambda: True if done() else None, timeout=timeout, first=first,
                      maximum=longest) is not None
