"""Checks on a transaction journal read back from disk, before anything acts on it.

A journal names files to overwrite, modes to set and installer options to load; a planted or
hand-edited one would turn recovery or ``rollback`` into a write anywhere as root. So a
journal is trusted only when:

- the journal root, the journal directory, ``manifest.json`` and (before it is restored)
  every backup are owned by the running user, are not symlinks, and are not writable by
  group or others;
- each file path is one an installer plan could name: absolute, normalised (no ``..``),
  not reached through a symlink (for a symlink change: its directory), and without control
  characters; a symlink's record has no backup and its digests are those of its targets;
- each backup is the very file the transaction writes for that record
  (``<journal>/<index>.orig``), and a record has a backup exactly when it had content before;
- digests are SHA-256 hex, modes are permission bits, directories it created are parents of
  its files.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard

from certwright.core.errors import CertwrightError

STATES = ("open", "committed", "rolled-back")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class JournalRefused(CertwrightError):
    """A journal that this process could not have written; nothing in it is acted on."""

    def __init__(self, where: Path, reason: str) -> None:
        super().__init__(f"refusing the transaction journal {where}: {reason}; nothing was "
                         "rolled back (inspect it, then remove it)")


def check_private(path: Path, *, directory: bool, journal: Path) -> None:
    """``path`` is ours, private enough, and of the expected kind (no symlink)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise JournalRefused(journal, f"{path} is missing") from None
    except OSError as exc:
        raise JournalRefused(journal, f"{path}: {exc.strerror}") from None
    kind_ok = stat.S_ISDIR(info.st_mode) if directory else stat.S_ISREG(info.st_mode)
    if not kind_ok:
        want = "a directory" if directory else "a regular file"
        raise JournalRefused(journal, f"{path} is not {want}")
    if info.st_uid != os.geteuid():
        raise JournalRefused(journal, f"{path} is owned by uid {info.st_uid}, "
                                      f"not by this user (uid {os.geteuid()})")
    if info.st_mode & 0o022:
        raise JournalRefused(journal, f"{path} is writable by group or others "
                                      f"(mode {stat.S_IMODE(info.st_mode):04o})")


def _plain_text(path: object) -> TypeGuard[str]:
    """An absolute, normalised path other than ``/``, with no control characters."""
    return (isinstance(path, str) and path.startswith("/") and not _CONTROL.search(path)
            and os.path.normpath(path) == path and path != "/")


def is_plain_path(path: object) -> bool:
    """Absolute, normalised, no control characters, not through a symlink."""
    return _plain_text(path) and os.path.realpath(path) == path


def check_manifest(data: Mapping[str, Any], directory: Path) -> None:
    """The fields of a manifest read from ``directory`` are ones this module writes."""
    if data.get("id") != directory.name:
        raise JournalRefused(directory, f"its id {data.get('id')!r} is not its directory name")
    if data.get("state") not in STATES:
        raise JournalRefused(directory, f"unknown state {data.get('state')!r}")
    for key, kind in (("title", str), ("installer", str), ("command", str),
                      ("temporary", bool), ("seq", int), ("created", (int, float))):
        if key in data and not isinstance(data[key], kind):
            raise JournalRefused(directory, f"{key} {data[key]!r} is not of its type")
    if not isinstance(data.get("installer_params", {}), dict):
        raise JournalRefused(directory, "installer_params is not a mapping")
    files = data.get("files", [])
    if not isinstance(files, list):
        raise JournalRefused(directory, "files is not a list")
    paths = []
    for index, rec in enumerate(files):
        if not isinstance(rec, dict):
            raise JournalRefused(directory, f"file record {index} is not an object")
        _check_record(rec, index, directory)
        paths.append(rec["path"])
    created = data.get("created_dirs", [])
    if not isinstance(created, list):
        raise JournalRefused(directory, "created_dirs is not a list")
    for folder in created:
        if not is_plain_path(folder) or not any(
                p.startswith(str(folder) + "/") for p in paths):
            raise JournalRefused(directory, f"created directory {folder!r} is not a parent "
                                            "of a file it wrote")


def _check_record(rec: Mapping[str, Any], index: int, directory: Path) -> None:
    path = rec.get("path")
    kind = rec.get("kind", "file")
    if kind not in ("file", "symlink"):
        raise JournalRefused(directory, f"file record {index} has an unknown kind {kind!r}")
    plain = is_plain_link_path(path) if kind == "symlink" else is_plain_path(path)
    if not plain:
        raise JournalRefused(directory, f"file path {path!r} is not one a change could name "
                                        "(absolute, normalised, not through a symlink)")
    for key in ("sha_before", "sha_after"):
        value = rec.get(key)
        if value is not None and not (isinstance(value, str) and _SHA256.fullmatch(value)):
            raise JournalRefused(directory, f"{key} of {path} is not a SHA-256 digest")
    mode = rec.get("mode")
    if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o7777:
        raise JournalRefused(directory, f"mode of {path} is not a file mode")
    backup = rec.get("backup")
    if kind == "symlink":
        _check_link_record(rec, str(path), directory)
        return
    if (backup is None) != (rec.get("sha_before") is None):
        raise JournalRefused(directory, f"{path} has a backup without content before, or "
                                        "content before without a backup")
    if backup is not None:
        expected = str(directory / f"{index}.orig")
        if backup != expected:
            raise JournalRefused(directory, f"backup {backup!r} of {path} is not {expected}")
        # its owner and mode are checked when it is about to be restored (an old journal
        # whose backups were cleaned up must not stop every command)


def _check_link_record(rec: Mapping[str, Any], path: str, directory: Path) -> None:
    """A symlink's record has no backup; its digests are those of its targets."""
    from certwright.core.installer_types import link_digest

    if rec.get("backup") is not None:
        raise JournalRefused(directory, f"the symlink {path} has a backup")
    for target_key, sha_key in (("link_before", "sha_before"), ("link_after", "sha_after")):
        target = rec.get(target_key)
        if target is not None and (not isinstance(target, str) or not target
                                   or _CONTROL.search(target)):
            raise JournalRefused(directory, f"{target_key} of {path} is not a link target")
        expected = None if target is None else link_digest(target)
        if rec.get(sha_key) != expected:
            raise JournalRefused(directory, f"{sha_key} of {path} is not the digest of its "
                                            f"{target_key}")


def is_plain_link_path(path: object) -> bool:
    """A symlink's own path: plain, its directory not reached through a symlink."""
    if not _plain_text(path):
        return False
    parent = os.path.dirname(path)
    return os.path.realpath(parent) == parent
