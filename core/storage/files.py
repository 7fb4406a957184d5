"""Atomic file, symlink and directory primitives for the store.

Every write goes to a temporary name in the target's directory and is renamed over the
target, so a reader (or a crash) only ever sees the old bytes or the new bytes. A temporary
file is created with its final mode from the start: a private key is never readable by
others, not even for an instant.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from certwright.core.errors import StorageError

TEMP_SUFFIX = ".tmp"
"""Temporary files are named ``.<target>.<random>.tmp``; :func:`is_temp_name` recognises them."""


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temporary file left by an interrupted :func:`atomic_write`."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.urandom(4).hex()}{TEMP_SUFFIX}")


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries to disk (a rename is durable only after this)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise StorageError(f"cannot open directory {path}: {_reason(error)}") from error
    try:
        os.fsync(fd)
    except OSError as error:
        # Some filesystems cannot fsync a directory; the rename itself already happened.
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise StorageError(f"cannot sync directory {path}: {_reason(error)}") from error
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _keep_owner(fd: int, path: Path) -> None:
    """As root, give the new file the owner and group of the file it replaces."""
    if os.geteuid() != 0:
        return
    try:
        old = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return
    os.fchown(fd, old.st_uid, old.st_gid)


def atomic_write(path: Path, data: bytes, mode: int = 0o644,
                 owner: tuple[int, int] | None = None, *, durable: bool = True,
                 sync_dir: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically; the file ends up with exactly ``mode``.

    ``owner`` (uid, gid; -1 keeps one) is given to the new file before it takes the name,
    so it never appears with another owner; otherwise, as root, the replaced file's owner
    is kept.

    On failure (a full disk, a read-only filesystem, ...) the temporary file is removed,
    the old file is left untouched and :class:`StorageError` names the path and the reason.

    ``durable=False`` skips the two fsyncs, for a file a power cut may lose without harm
    (an http-01 token, a README): readers still see only whole files. ``sync_dir=False``
    leaves the directory's fsync to the caller, who writes several files there and then
    calls :func:`fsync_dir` once before anything refers to them.
    """
    temp = _temp_path(path)
    fd = -1
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        os.fchmod(fd, mode)  # the umask may have removed bits; it can only have removed them
        if owner is not None:
            os.fchown(fd, *owner)
        else:
            _keep_owner(fd, path)
        _write_all(fd, data)
        if durable:
            os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(temp, path)
    except OSError as error:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise StorageError(f"cannot write {path}: {_reason(error)}") from error
    if durable and sync_dir:
        fsync_dir(path.parent)


def atomic_symlink(target: str, link: Path) -> None:
    """Make ``link`` point to ``target`` atomically, replacing any file or link there."""
    temp = _temp_path(link)
    try:
        os.symlink(target, temp)
        os.replace(temp, link)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise StorageError(f"cannot link {link} to {target}: {_reason(error)}") from error
    fsync_dir(link.parent)


def ensure_dir(path: str | os.PathLike[str], mode: int = 0o755) -> None:
    """Create ``path`` and missing parents; directories created here get exactly ``mode``.

    An existing directory keeps its mode: users tighten or loosen these on purpose.
    """
    current = os.fspath(path)
    if os.path.isdir(current):  # the usual case, in one stat
        return
    missing: list[str] = []
    while not os.path.isdir(current):
        if os.path.lexists(current) and not os.path.isdir(current):
            # (checked again: another thread may have made it a moment ago)
            raise StorageError(f"{current} exists and is not a directory")
        missing.append(current)
        parent = os.path.dirname(current.rstrip("/")) or "."
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
            os.chmod(directory, mode)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise StorageError(f"{directory} exists and is not a directory") from None
        except OSError as error:
            raise StorageError(f"cannot create {directory}: {_reason(error)}") from error
