"""Every byte written to a server's config goes through a Transaction.

A transaction keeps a journal under ``<work-dir>/transactions/<id>/``: ``manifest.json``
(title, state, and per file its path, SHA-256 before and after, a backup copy, whether it
was created) plus the backups. The manifest is written before any file is touched, so a
crash at any moment leaves a journal that ``recover`` rolls back at the next start.

Committed, non-temporary transactions are the checkpoints ``rollback --checkpoints N``
undoes, newest first. Journals are ordered by a sequence number (the directory name starts
with it), and every transaction made during one command carries that command's id: one
command is one checkpoint, however many plans it applied. Writes are atomic and keep each
file's mode and owner; a symlinked config file is written through to its target.

A journal read back from disk is checked first (``core/journal.py``): one this process could
not have written is refused, and nothing in it is acted on.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from certwright.core.checkpoint import current, journal_root
from certwright.core.errors import CertwrightError
from certwright.core.filestate import (
    TransactionError,
    link_of,
    owner_ids,
    read,
    sha256_of,
    state_of,
    target_path,
)
from certwright.core.installer_types import FILE, SYMLINK, ChangePlan, FileChange, link_digest
from certwright.core.journal import JournalRefused, check_manifest, check_private
from certwright.core.storage.files import atomic_symlink, atomic_write, ensure_dir, is_temp_name

OPEN, COMMITTED, ROLLED_BACK = "open", "committed", "rolled-back"
_SEQ = re.compile(r"([0-9]{10})-")
JOURNAL_NAME = re.compile(r"[0-9]{10}-[0-9]{8}T[0-9]{6}-[0-9]+")
@dataclass
class FileRecord:
    """One change as journaled. A file's ``backup`` holds its bytes before (None: it was
    created); a symlink's ``link_before``/``link_after`` are its targets (None: absent)."""

    path: str
    sha_before: str | None
    sha_after: str | None
    backup: str | None
    mode: int
    kind: str = FILE
    link_before: str | None = None
    link_after: str | None = None


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
    seq: int = 0  # journals written before sequences existed sort first, by time
    command: str = ""

    @property
    def checkpoint(self) -> str:
        """What ``rollback --checkpoints`` counts: the command, or the journal alone."""
        return self.command or self.id

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read and check a manifest (see ``core/journal.py``); refuse a foreign one."""
        check_private(path, directory=False, journal=path.parent)
        try:
            data = json.loads(path.read_bytes())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            check_manifest(data, path.parent)
            data["files"] = [FileRecord(**f) for f in data.get("files", [])]
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise TransactionError(f"{path}: unreadable transaction journal: {exc}") from None


def _private_root(work_dir: Path, create: bool) -> Path | None:
    """The journal root, made 0700 when created. One we own that others can write to (made
    so by hand, or by an old version under umask 000) is tightened; one owned by someone
    else is refused."""
    root = journal_root(work_dir)
    if create:
        ensure_dir(Path(work_dir), 0o755)
        ensure_dir(root, 0o700)
    try:
        info = os.lstat(root)
    except FileNotFoundError:
        return None
    if info.st_uid == os.geteuid() and os.path.isdir(root) and not os.path.islink(root) \
            and info.st_mode & 0o077:
        os.chmod(root, 0o700)
    check_private(root, directory=True, journal=root)
    return root


def _next_seq(root: Path) -> int:
    seqs = [int(m.group(1)) for name in os.listdir(root) if (m := _SEQ.match(name))]
    return max(seqs, default=0) + 1


class Transaction:
    """``apply`` plans, then ``commit`` or ``rollback``. Temporary ones are always undone."""

    def __init__(self, work_dir: Path, title: str, *, temporary: bool = False,
                 installer: str = "", installer_params: dict[str, Any] | None = None) -> None:
        # the folders this one made: a temporary one leaves no trace when it is discarded
        self._made = [d for d in (journal_root(work_dir), Path(work_dir)) if not d.exists()]
        root = _private_root(work_dir, create=True)
        if root is None:  # removed again between creating and checking it
            raise TransactionError(f"{journal_root(work_dir)} disappeared")
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        seq = _next_seq(root)
        while True:  # another thread or process may take the same number: take the next
            ident = f"{seq:010d}-{stamp}-{os.getpid()}"
            try:
                os.mkdir(root / ident, 0o700)
                break
            except FileExistsError:
                seq += 1
        self.dir = root / ident
        self.manifest = Manifest(id=ident, title=title, state=OPEN, temporary=temporary,
                                 created=time.time(), installer=installer,
                                 installer_params=dict(installer_params or {}), seq=seq,
                                 command=current.ident or "")
        self._save()

    @classmethod
    def reopen(cls, directory: Path) -> Transaction:
        check_private(directory, directory=True, journal=directory)
        txn = cls.__new__(cls)
        txn._made = []
        txn.dir = directory
        txn.manifest = Manifest.load(directory / "manifest.json")
        return txn

    def _save(self) -> None:
        current.changed = True
        data = asdict(self.manifest)
        atomic_write(self.dir / "manifest.json", json.dumps(data, indent=1).encode(), 0o600)

    def apply(self, plan: ChangePlan) -> None:
        """Check every expected digest (and every owner) first; then, change by change,
        back up, journal, and write."""
        targets = [(target_path(c), c) for c in plan.changes]
        owners = [owner_ids(c) for c in plan.changes]
        for path, change in targets:
            found = state_of(change.kind, path)
            if change.kind == SYMLINK:
                link_of(path)  # a file where the link goes is refused
            if found != change.expected_sha256:
                what = "exists already" if change.expected_sha256 is None else (
                    "is gone" if found is None else "changed since it was read")
                raise TransactionError(f"{path} {what}; nothing was written")
        for (path, change), owner in zip(targets, owners, strict=True):
            if change.kind == SYMLINK:
                self._apply_link(path, change)
            else:
                self._apply_file(path, change, owner)

    def _apply_file(self, path: Path, change: FileChange,
                    owner: tuple[int, int] | None) -> None:
        before = read(path)
        index = len(self.manifest.files)
        backup = None
        mode = change.create_mode
        if before is not None:
            backup = str(self.dir / f"{index}.orig")
            atomic_write(Path(backup), before, 0o600)  # private, whatever it held
            mode = path.stat().st_mode & 0o7777
            owner = None  # an existing file keeps its owner
        self.manifest.files.append(FileRecord(
            path=str(path), sha_before=sha256_of(before),
            sha_after=sha256_of(change.new_content), backup=backup, mode=mode))
        self._save()
        if change.new_content is None:
            path.unlink(missing_ok=True)
        else:
            self._make_parents(path.parent)
            atomic_write(path, change.new_content, mode, owner)

    def _apply_link(self, path: Path, change: FileChange) -> None:
        before = link_of(path)
        self.manifest.files.append(FileRecord(
            path=str(path), sha_before=None if before is None else link_digest(before),
            sha_after=None if change.link_target is None else link_digest(change.link_target),
            backup=None, mode=0o777, kind=SYMLINK, link_before=before,
            link_after=change.link_target))
        self._save()
        if change.link_target is None:
            path.unlink(missing_ok=True)
        else:
            self._make_parents(path.parent)
            atomic_symlink(change.link_target, path)

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

    def rollback(self, *, check_after: bool = False, recovering: bool = False) -> list[str]:
        """Restore every file (newest first); returns the paths restored.

        ``check_after`` refuses to undo a file that was edited after this transaction wrote
        it. ``recovering`` (a journal a crash left open) restores only files that hold what
        the transaction wrote, skips those still as they were before, and refuses the whole
        journal, touching nothing, when a file holds anything else."""
        records = list(reversed(self.manifest.files))
        found = {rec.path: state_of(rec.kind, Path(rec.path)) for rec in records}
        if check_after:
            for rec in records:
                if found[rec.path] != rec.sha_after:
                    raise TransactionError(
                        f"{rec.path} was changed after {self.manifest.title!r}; not rolled back")
        if recovering:
            for rec in records:
                if found[rec.path] not in (rec.sha_after, rec.sha_before):
                    raise JournalRefused(self.dir, f"{rec.path} holds neither what the "
                                                   "change wrote nor what was there before")
        backups: dict[str, bytes] = {}
        for rec in records:  # every backup read and checked before any file is touched
            if rec.backup is not None:
                check_private(Path(rec.backup), directory=False, journal=self.dir)
                data = read(Path(rec.backup))
                if data is None:
                    raise TransactionError(f"backup {rec.backup} of {rec.path} is missing")
                if sha256_of(data) != rec.sha_before:
                    raise JournalRefused(self.dir, f"backup {rec.backup} does not hold what "
                                                   f"{rec.path} held before")
                backups[rec.backup] = data
        restored = []
        for rec in records:
            path = Path(rec.path)
            if recovering and found[rec.path] == rec.sha_before:
                continue  # the crash came before this file was written
            if rec.kind == SYMLINK and rec.link_before is not None:
                atomic_symlink(rec.link_before, path)
            elif rec.backup is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write(path, backups[rec.backup], rec.mode)
            restored.append(str(path))
        self._remove_created_dirs()
        self.manifest.state = ROLLED_BACK
        self._save()
        return restored

    def _remove_created_dirs(self) -> None:
        """Directories this transaction made, and those other transactions made above files
        this one wrote (a checkpoint undone earlier may have had to leave them because this
        one's files were still there). Deepest first, and only when empty."""
        mine = set(self.manifest.created_dirs)
        files = [rec.path for rec in self.manifest.files if rec.sha_before is None]
        for other in _trusted_siblings(self.dir) if files else ():
            mine.update(d for d in other.created_dirs
                        if any(f.startswith(d + "/") for f in files))
        for folder in sorted(mine, key=lambda d: d.count("/"), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(folder)

    def discard(self) -> None:
        """Forget a finished temporary transaction's journal, and the journal root and
        work dir it made when nothing else is in them (a dry run leaves no trace)."""
        shutil.rmtree(self.dir, ignore_errors=True)
        for folder in self._made:  # innermost first; only when empty
            with contextlib.suppress(OSError):
                os.rmdir(folder)


def _trusted_siblings(directory: Path) -> list[Manifest]:
    """The other journals beside ``directory`` that pass the checks (others are skipped:
    this only decides which empty directories to remove)."""
    found = []
    with contextlib.suppress(OSError):
        for name in os.listdir(directory.parent):
            if name == directory.name:
                continue
            with contextlib.suppress(CertwrightError):
                found.append(Transaction.reopen(directory.parent / name).manifest)
    return found


def transactions(work_dir: Path) -> list[Transaction]:
    """Every journal, oldest first (by sequence). A journal that fails the checks of
    ``core/journal.py`` raises :class:`JournalRefused`."""
    root = _private_root(work_dir, create=False)
    if root is None:
        return []
    found = []
    for name in os.listdir(root):
        if os.path.lexists(root / name / "manifest.json"):
            found.append(Transaction.reopen(root / name))
    found.sort(key=lambda t: (t.manifest.seq, t.manifest.created, t.manifest.id))
    return found


def recover(work_dir: Path) -> list[str]:
    """Roll back every transaction a crash left open; one message per transaction."""
    return recover_journals(transactions(work_dir))


def recover_journals(found: list[Transaction]) -> list[str]:
    """``recover`` over journals already read (``transactions``)."""
    messages = []
    for txn in found:
        if txn.manifest.state == OPEN:
            for rec in txn.manifest.files:  # first: they would keep a directory it made
                _remove_write_leftovers(Path(rec.path))
            txn.rollback(recovering=True)
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


def checkpoints(work_dir: Path) -> list[list[Transaction]]:
    """Committed, non-temporary transactions grouped by the command that made them: the
    checkpoints, oldest first, each one's transactions oldest first."""
    groups: dict[str, list[Transaction]] = {}
    for txn in transactions(work_dir):
        if txn.manifest.state == COMMITTED and not txn.manifest.temporary:
            groups.setdefault(txn.manifest.checkpoint, []).append(txn)
    return sorted(groups.values(), key=lambda g: (g[-1].manifest.seq, g[-1].manifest.created))


def rollback_checkpoint(group: list[Transaction]) -> list[str]:
    """Undo one checkpoint (all its transactions, newest first). Every file must still hold
    what the checkpoint's last write to it left, or nothing is undone."""
    latest: dict[str, tuple[str, str | None]] = {}
    for txn in reversed(group):
        for rec in txn.manifest.files:
            latest.setdefault(rec.path, (rec.kind, rec.sha_after))
    for path, (kind, sha) in latest.items():
        if state_of(kind, Path(path)) != sha:
            title = " + ".join(t.manifest.title for t in group)
            raise TransactionError(f"{path} was changed after {title!r}; not rolled back")
    restored: list[str] = []
    for txn in reversed(group):
        restored += txn.rollback()
    return list(dict.fromkeys(restored))


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
