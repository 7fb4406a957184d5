"""Atomic writes, symlinks, directories and the store lock."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from certwright.core.errors import LockError, StorageError
from certwright.core.storage import files
from certwright.core.storage.files import atomic_symlink, atomic_write, ensure_dir
from certwright.core.storage.lock import lock
from tests.conftest import skip_or_fail


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_atomic_write_creates_file_with_exact_mode(tmp_path: Path) -> None:
    old_umask = os.umask(0o077)
    try:
        atomic_write(tmp_path / "cert.pem", b"public", 0o644)
        atomic_write(tmp_path / "key.pem", b"secret", 0o600)
    finally:
        os.umask(old_umask)
    assert (tmp_path / "cert.pem").read_bytes() == b"public"
    assert mode_of(tmp_path / "cert.pem") == 0o644
    assert mode_of(tmp_path / "key.pem") == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cert.pem", "key.pem"]


def test_temp_file_is_never_wider_than_final_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real_write = os.write

    def spy(fd: int, data: bytes | memoryview) -> int:
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_write(fd, data)

    monkeypatch.setattr(files.os, "write", spy)
    atomic_write(tmp_path / "privkey1.pem", b"k" * 100, 0o600)
    assert seen and all(m == 0o600 for m in seen)


def test_atomic_write_replaces_and_sets_mode(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    os.chmod(target, 0o666)
    atomic_write(target, b"new", 0o640)
    assert target.read_bytes() == b"new"
    assert mode_of(target) == 0o640


def test_atomic_write_keeps_owner_and_group_as_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        skip_or_fail("changing owners needs root")
    target = tmp_path / "f"
    target.write_bytes(b"old")
    os.chown(target, 4321, 8765)
    atomic_write(target, b"new", 0o600)
    info = os.stat(target)
    assert (info.st_uid, info.st_gid) == (4321, 8765)


def test_disk_full_keeps_old_file_and_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "fullchain1.pem"
    target.write_bytes(b"the old bytes")

    def full(fd: int, data: bytes | memoryview) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "write", full)
    with pytest.raises(StorageError) as caught:
        atomic_write(target, b"new bytes", 0o644)
    message = str(caught.value)
    assert str(target) in message
    assert "No space left on device" in message
    assert "\n" not in message
    assert target.read_bytes() == b"the old bytes"
    assert [p.name for p in tmp_path.iterdir()] == ["fullchain1.pem"]


def test_failed_fsync_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(files.os, "fsync", broken)
    with pytest.raises(StorageError, match="Input/output error"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_durable_writes_sync_file_and_directory_and_others_do_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(files.os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    atomic_write(tmp_path / "key.pem", b"k", 0o600)
    assert len(synced) == 2  # the file, then its directory
    synced.clear()
    atomic_write(tmp_path / "token", b"t", 0o644, durable=False)
    assert synced == []
    assert (tmp_path / "token").read_bytes() == b"t"
    assert (tmp_path / "token").stat().st_mode & 0o777 == 0o644


def test_missing_directory_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="No such file or directory"):
        atomic_write(tmp_path / "nope" / "f", b"x")


def test_atomic_symlink_replaces_link(tmp_path: Path) -> None:
    link = tmp_path / "cert.pem"
    atomic_symlink("../archive/cert1.pem", link)
    assert os.readlink(link) == "../archive/cert1.pem"
    atomic_symlink("../archive/cert2.pem", link)
    assert os.readlink(link) == "../archive/cert2.pem"
    assert [p.name for p in tmp_path.iterdir()] == ["cert.pem"]


def test_ensure_dir_creates_parents_with_mode(tmp_path: Path) -> None:
    old_umask = os.umask(0o077)
    try:
        ensure_dir(tmp_path / "a" / "b", 0o755)
    finally:
        os.umask(old_umask)
    assert mode_of(tmp_path / "a") == 0o755
    assert mode_of(tmp_path / "a" / "b") == 0o755
    os.chmod(tmp_path / "a" / "b", 0o711)
    ensure_dir(tmp_path / "a" / "b", 0o755)
    assert mode_of(tmp_path / "a" / "b") == 0o711  # an existing directory is left alone


def test_ensure_dir_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(StorageError, match="not a directory"):
        ensure_dir(tmp_path / "f" / "sub")


HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from certwright.core.storage.lock import lock
    with lock(Path(sys.argv[1])):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def hold_lock_in_child(path: Path, seconds: float) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "locked"
    return child


def test_lock_names_the_holder(tmp_path: Path) -> None:
    path = tmp_path / ".certwright.lock"
    child = hold_lock_in_child(path, 30)
    try:
        with pytest.raises(LockError) as caught, lock(path, timeout=0.2):
            pass
        assert str(caught.value) == (
            f"another certwright process (pid {child.pid}) holds the lock {path} "
            "(waited 0.2 s)"
        )
    finally:
        child.kill()
        child.wait()
    with lock(path):  # the kernel released the dead holder's lock
        assert path.read_text().strip() == str(os.getpid())


def test_lock_waits_for_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    child = hold_lock_in_child(path, 0.3)
    started = time.monotonic()
    with lock(path, timeout=10):
        waited = time.monotonic() - started
    child.wait()
    assert 0.1 < waited < 5


def test_lock_creates_directory(tmp_path: Path) -> None:
    with lock(tmp_path / "new" / "lock"):
        assert (tmp_path / "new" / "lock").exists()
