"""An exclusive lock on the store, held with ``flock`` on a lock file.

The holder writes its pid into the file so a second process can say who is in its way.
The lock file itself is never removed: removing a locked file lets a third process lock a
fresh file of the same name while the first still holds the old one.

``flock`` locks belong to an open file, not to a process: taking the same lock twice in
one process fails like a second process would. Certbot locks ``.certbot.lock`` files with
``lockf`` (POSIX record locks), which do not exclude ``flock`` locks on Linux.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from certwright.core.errors import LockError, StorageError
from certwright.core.storage.files import ensure_dir

_FIRST_POLL = 0.005
_MAX_POLL = 0.1


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def lock(path: Path, timeout: float = 0.0) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the ``with`` block.

    Waits up to ``timeout`` seconds for another holder to finish, then raises
    :class:`LockError` naming that holder's pid.
    """
    ensure_dir(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise StorageError(f"cannot open lock file {path}: {error.strerror}") from error
    try:
        deadline = time.monotonic() + timeout
        poll = _FIRST_POLL
        while not _try_lock(fd):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockError(
                    f"another certwright process (pid {_holder(fd)}) holds the lock {path}"
                )
            time.sleep(min(poll, remaining))
            poll = min(poll * 2, _MAX_POLL)
        with contextlib.suppress(OSError):  # the pid is a courtesy; a full disk loses it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def certbot_lock(config_dir: Path) -> Iterator[None]:
    """Also hold Certbot's own lock (``lockf`` on ``<config-dir>/.certbot.lock``), so
    certwright and Certbot never write one store at the same time."""
    path = config_dir / ".certbot.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise StorageError(f"cannot open lock file {path}: {error.strerror}") from error
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise LockError(f"another program (Certbot?) holds {path}; try again when it "
                            "has finished") from None
        yield
    finally:
        os.close(fd)
