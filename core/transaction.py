"""Every byte written to a server's config goes through a Transaction.

A transaction keeps a journal under ``<work-dir>/transactions/<id>/``: ``manifest.json``
(title, state, and per file its path, SHA-256 before and after, a backup copy, whether it
was created) plus the backups. The manifest is written before any file is touched, so a
crash at any moment leaves a journal that ``recover`` rolls back at the next start.

Committed, non-temporary transactions are the checkpoints ``rollback --checkpoints N``
undoes, newest first. Writes are atomic and keep each file's mode and owner; a symlinked
config file is written through to its target.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from certwright.core.errors import CertwrightError
from certwright.core.interfaces import ChangePlan
from certwright.core.storage.files import atomic_write, ensure_dir, is_temp_name

OPEN, COMMITTED, ROLLED_BACK = "open", "committed", "rolled-back"


class TransactionError(CertwrightError):
    """A file changed under us, or a rollback could not restore a file."""


def sha256_of(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TransactionError(f"{path}: can't read: {exc.strerror}") from None


@dataclass
class FileRecord:
    path: str
    sha_before: str | None
    sha_after: str | None
    backup: str | None
    mode: int


@dataclass
class Manifest:
    id: str
    title: str
    state: str
    temporary: bool
    created: float
    installer: str = ""
    installer_params: dict[str, Any] = field(default_factory=dict)
    files: list[FileRecord] = field(default_factory=list)
    created_dirs: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_bytes())
            data["files"] = [FileRecord(**f) for f in data.get("files", [])]
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise TransactionError(f"{path}: unreadable transaction journal: {exc}") from None


def journal_root(work_dir: Path) -> Path:
    return Path(work_dir) / "transactions"


class Transaction:
    """``apply`` plans, then ``commit`` or ``rollback``. Temporary ones are always undone."""

    def __init__(self, work_dir: Path, title: str, *, temporary: bool = False,
                 installer: str = "", installer_params: dict[str, Any] | None = None) -> None:
        root = journal_root(work_dir)
        ensure_dir(root, 0o700)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        ident = f"{stamp}-{os.getpid()}-{time.monotonic_ns() % 10**9:09d}"
        self.dir = root / ident
        self.dir.mkdir(mode=0o700)
        self.manifest = Manifest(id=ident, title=title, state=OPEN, temporary=temporary,
                                 created=time.time(), installer=installer,
                                 installer_params=dict(installer_params or {}))
        self._save()

    @classmethod
    def reopen(cls, directory: Path) -> Transaction:
        txn = cls.__new__(cls)
        txn.dir = directory
        txn.manifest = Manifest.load(directory / "manifest.json")
        return txn

    def _save(self) -> None:
        data = asdict(self.manifest)
        atomic_write(self.dir / "manifest.json", json.dumps(data, indent=1).encode(), 0o600)

    def apply(self, plan: ChangePlan) -> None:
        """Check every expected SHA-256 first; then back up, journal and write each file."""
        targets = [(Path(os.path.realpath(c.path)), c) for c in plan.changes]
        for path, change in targets:
            found = sha256_of(_read(path))
            if found != change.expected_sha256:
                what = "exists already" if change.expected_sha256 is None else (
                    "is gone" if found is None else "changed since it was read")
                raise TransactionError(f"{path} {what}; nothing was written")
        for path, change in targets:
            before = _read(path)
            index = len(self.manifest.files)
            backup = None
            mode = change.mode
            if before is not None:
                backup = str(self.dir / f"{index}.orig")
                atomic_write(Path(backup), before, 0o600)
                mode = path.stat().st_mode & 0o7777
            self.manifest.files.append(FileRecord(
                path=str(path), sha_before=sha256_of(before),
                sha_after=sha256_of(change.new_content), backup=backup, mode=mode))
            self._save()
            if change.new_content is None:
                path.unlink(missing_ok=True)
            else:
                self._make_parents(path.parent)
                atomic_write(path, change.new_content, mode)

    def _make_parents(self, directory: Path) -> None:
        """Create missing directories, journaled first, so a rollback removes them too."""
        missing = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        if not missing:
            return
        self.manifest.created_dirs += [str(d) for d in missing]  # deepest first
        self._save()
        for folder in reversed(missing):
            ensure_dir(folder, 0o755)

    def commit(self) -> None:
        self.manifest.state = COMMITTED
        self._save()

    def rollback(self, *, check_after: bool = False) -> list[str]:
        """Restore every file (newest first); ``check_after`` refuses to undo a file that
        was edited after this transaction wrote it. Returns the paths restored."""
        records = list(reversed(self.manifest.files))
        if check_after:
            for rec in records:
                if sha256_of(_read(Path(rec.path))) != rec.sha_after:
                    raise TransactionError(
                        f"{rec.path} was changed after {self.manifest.title!r}; not rolled back")
        restored = []
        for rec in records:
            path = Path(rec.path)
            if rec.backup is None:
                path.unlink(missing_ok=True)
            else:
                data = _read(Path(rec.backup))
                if data is None:
                    raise TransactionError(f"backup {rec.backup} of {path} is missing")
                atomic_write(path, data, rec.mode)
            restored.append(str(path))
        # deepest first (the list grows per write, so sort); only those left empty
        for folder in sorted(self.manifest.created_dirs, key=lambda d: d.count("/"),
                             reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        self.manifest.state = ROLLED_BACK
        self._save()
        return restored

    def discard(self) -> None:
        """Forget a finished temporary transaction's journal."""
        shutil.rmtree(self.dir, ignore_errors=True)


def transactions(work_dir: Path) -> list[Transaction]:
    root = journal_root(work_dir)
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        if (root / name / "manifest.json").exists():
            found.append(Transaction.reopen(root / name))
    return found


def recover(work_dir: Path) -> list[str]:
    """Roll back every transaction a crash left open; one message per transaction."""
    root = journal_root(work_dir)
    if not root.is_dir():
        return []
    messages = []
    for txn in transactions(work_dir):
        if txn.manifest.state == OPEN:
            txn.rollback()
            for rec in txn.manifest.files:
                _remove_write_leftovers(Path(rec.path))
            messages.append(f"Rolled back the unfinished change {txn.manifest.title!r} left "
                            "by an interrupted run")
            if txn.manifest.temporary:
                txn.discard()
    return messages


def _remove_write_leftovers(path: Path) -> None:
    """Temp files of an atomic write that a crash cut short (``.<name>.<random>.tmp``)."""
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        if is_temp_name(name) and name.startswith(f".{path.name}."):
            (path.parent / name).unlink(missing_ok=True)


def checkpoints(work_dir: Path) -> list[Transaction]:
    """Committed, non-temporary transactions, oldest first."""
    return [t for t in transactions(work_dir)
            if t.manifest.state == COMMITTED and not t.manifest.temporary]


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Turn SIGTERM (and SIGHUP) into SystemExit so ``finally`` blocks undo temporary
    changes; SIGINT already raises KeyboardInterrupt."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # not the main thread
            previous[int(sig)] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for num, old in previous.items():
            signal.signal(num, old)


def temporary(work_dir: Path, plan: ChangePlan, after_apply: Callable[[], None],
              installer: str = "") -> Callable[[], None]:
    """Apply ``plan`` in a temporary transaction and run ``after_apply`` (config test,
    reload). Returns the undo function; on any failure it is undone before raising."""
    txn = Transaction(work_dir, plan.title, temporary=True, installer=installer)
    try:
        txn.apply(plan)
        after_apply()
    except BaseException:
        txn.rollback()
        txn.discard()
        raise

    def undo() -> None:
        txn.rollback()
        txn.discard()

    return undo
