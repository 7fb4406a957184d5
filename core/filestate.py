"""What a path holds now, for each kind of change a plan can make (a file's bytes, a
symlink's target), and the owner a created file gets. Used by the transaction to check a
plan against the disk, to write it, and to put things back.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
from collections.abc import Callable
from pathlib import Path

from certwright.core.errors import CertwrightError, PluginError
from certwright.core.installer_types import FILE, SYMLINK, FileChange, link_digest


class TransactionError(CertwrightError):
    """A file changed under us, or a rollback could not restore a file."""


def sha256_of(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TransactionError(f"{path}: can't read: {exc.strerror}") from None


def target_path(change: FileChange) -> Path:
    """Where the change acts: a file through any symlink to it; a symlink itself (its
    directory resolved)."""
    if change.kind == SYMLINK:
        return Path(os.path.realpath(os.path.dirname(change.path))) / \
            os.path.basename(change.path)
    return Path(os.path.realpath(change.path))


def link_of(path: Path) -> str | None:
    """The target of the symlink at ``path``; None when nothing is there. Anything else
    there (a file a symlink change would replace) is refused."""
    try:
        return os.readlink(path)
    except FileNotFoundError:
        return None
    except OSError:
        if os.path.lexists(path):
            raise TransactionError(f"{path} is not a symlink; nothing was written") from None
        return None


def state_of(kind: str, path: Path) -> str | None:
    """The digest the journal and the plan compare: of the bytes for a file, of the link
    for a symlink; None when nothing is there."""
    if kind == SYMLINK:
        if os.path.islink(path):
            return link_digest(os.readlink(path))
        return sha256_of(read(path))  # a file where a link should be: never a link digest
    return sha256_of(read(path))


def owner_ids(change: FileChange) -> tuple[int, int] | None:
    """``(uid, gid)`` for a created file (-1: leave as the process makes it), checked
    before anything is written: an unknown name, or an owner this process can't give,
    is refused naming the path and the field."""
    if change.kind != FILE or (change.owner is None and change.group is None):
        return None
    uid = _id(change.owner, "owner", change.path, lambda n: pwd.getpwnam(n).pw_uid)
    gid = _id(change.group, "group", change.path, lambda n: grp.getgrnam(n).gr_gid)
    if os.geteuid() != 0:
        if uid not in (-1, os.geteuid()):
            raise PluginError(f"{change.path}: can't give the file to owner {change.owner!r}: "
                              "only root can")
        if gid not in (-1, os.getegid(), *os.getgroups()):
            raise PluginError(f"{change.path}: can't give the file to group {change.group!r}: "
                              "this user is not in it")
    return uid, gid


def _id(value: str | int | None, field: str, path: str,
        lookup: Callable[[str], int]) -> int:
    if value is None:
        return -1
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if not isinstance(value, str) or not value:
        raise PluginError(f"{path}: {field} {value!r} is not a name or an id")
    try:
        return lookup(value)
    except KeyError:
        raise PluginError(f"{path}: unknown {field} {value!r}") from None
