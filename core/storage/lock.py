"""An exclusive lock on the store, held with ``flock`` on a lock file.

The holder writes its pid into the file so a second process can say who is in its way.
The lock file itself is never removed: removing a locked file lets a third process lock a
fresh file of the same name while the first still holds the old one.

``flock`` locks belong to an open file, not to a process: taking the same lock twice in
one process fails like a second process would. Certbot locks ``.certbot.lock`` files with
``lockf`` (POSIX record locks), which do not exclude ``flock`` locks on Linux.

Both are waited for with a bound (``--lock-timeout``, see :func:`lock_timeout`): at a
terminal the default is to fail at once naming the holder; unattended runs wait.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from certwright.core.errors import LockError, StorageError
from certwright.core.poll import poll_until
from certwright.core.storage.files import ensure_dir

log = logging.getLogger(__name__)

_FIRST_POLL = 0.005
_MAX_POLL = 0.1
UNATTENDED_WAIT = 600.0
"""Default ``--lock-timeout`` without a terminal (cron, systemd, ``-n``): two scheduled runs
that collide should both do their work, the second after the first; a run that is stuck
must not queue the next ones for ever."""


def lock_timeout(given: float | None, *, interactive: bool) -> float:
    """Seconds to wait for the store lock: ``--lock-timeout`` when given; otherwise 0 at a
    terminal (the person is told at once who holds it, as Certbot does) and
    :data:`UNATTENDED_WAIT` without one."""
    if given is not None:
        return max(0.0, float(given))
    return 0.0 if interactive else UNATTENDED_WAIT


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


def _try_flock(fd: int) -> bool | None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return None
    return True


def _try_lockf(fd: int) -> bool | None:
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EACCES, errno.EAGAIN):
            return None
        raise
    return True


def _acquire(fd: int, attempt: Callable[[int], bool | None], timeout: float,
             waiting: str) -> bool:
    """Take the lock, waiting up to ``timeout`` seconds; say once that we wait."""
    if attempt(fd):
        return True
    if timeout <= 0:
        return False
    log.warning("%s; waiting up to %s s for it (--lock-timeout)", waiting, _secs(timeout))
    return bool(poll_until(lambda: attempt(fd), timeout=timeout, first=_FIRST_POLL,
                           maximum=_MAX_POLL))


def _secs(seconds: float) -> str:
    return f"{round(seconds, 1):g}"


def _waited(timeout: float) -> str:
    return f" (waited {_secs(timeout)} s)" if timeout > 0 else \
        " (--lock-timeout SECONDS waits for it)"


def _open(path: Path, mode: int) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
    except OSError as error:
        raise StorageError(f"cannot open lock file {path}: {error.strerror}") from error


@contextlib.contextmanager
def lock(path: Path, timeout: float = 0.0) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the ``with`` block.

    Waits up to ``timeout`` seconds for another holder to finish, then raises
    :class:`LockError` naming that holder's pid.
    """
    ensure_dir(path.parent)
    fd = _open(path, 0o644)
    try:
        holder = f"another certwright process (pid {_holder(fd)}) holds the lock {path}"
        if not _acquire(fd, _try_flock, timeout, holder):
            raise LockError(f"another certwright process (pid {_holder(fd)}) holds the lock "
                            f"{path}{_waited(timeout)}")
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
def certbot_lock(config_dir: Path, timeout: float = 0.0) -> Iterator[None]:
    """Also hold Certbot's own lock (``lockf`` on ``<config-dir>/.certbot.lock``), so
    certwright and Certbot never write one store at the same time; waits up to
    ``timeout`` seconds for a running Certbot."""
    path = config_dir / ".certbot.lock"
    fd = _open(path, 0o600)
    try:
        try:
            got = _acquire(fd, _try_lockf, timeout, f"another program (Certbot?) holds {path}")
        except OSError as error:
            raise StorageError(f"cannot lock {path}: {error.strerror}") from None
        if not got:
            raise LockError(f"another program (Certbot?) holds {path}; try again when it "
                            f"has finished{_waited(timeout)}")
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def store_lock(config_dir: Path, timeout: float) -> Iterator[None]:
    """Both locks on the store, the whole wait bounded by ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with lock(config_dir / ".certwright.lock", timeout=timeout), \
            certbot_lock(config_dir, max(0.0, deadline - time.monotonic())):
        yield
