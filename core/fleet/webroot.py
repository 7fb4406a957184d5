"""Files in a domain's ``/.well-known/acme-challenge/``: challenge responses and probes.

The directories are made 0755 and the files 0644 (the web server's workers read them;
never the umask's modes), written without following a planted symlink, and removed after.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from certwright.core.errors import PluginError
from certwright.core.storage.files import ensure_dir

CHALLENGE_PATH = ".well-known/acme-challenge"


def challenge_dir(webroot: str) -> Path:
    root = Path(webroot)
    if not root.is_dir():
        raise PluginError(f"web root {webroot} does not exist or is not a directory")
    target = root / CHALLENGE_PATH
    for part in (root / ".well-known", target):
        if part.is_symlink():
            raise PluginError(f"{part} is a symbolic link; refusing to write through it")
    ensure_dir(target, 0o755)
    return target


def put(webroot: str, token: str, content: str) -> Path:
    if not token or "/" in token or token.startswith("."):
        raise PluginError(f"refusing the file name {token!r} in {webroot}")
    path = challenge_dir(webroot) / token
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
        try:
            os.fchmod(fd, 0o644)
            os.write(fd, content.encode("ascii"))
        finally:
            os.close(fd)
    except OSError as exc:
        raise PluginError(f"can't write {path}: {exc.strerror}") from None
    return path


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
