"""How long transaction journals are kept.

Every command that changes a server's configuration leaves a journal with backups of the
files it replaced (some of them hold private keys). Only the last ``--max-checkpoints``
checkpoints (default 10) are kept for ``rollback``; older ones are removed, and so are the
journals of changes already undone (rolled back, or temporary and finished). An open
journal (a run that crashed, or one still running) is never removed: recovery needs it.

Pruning runs at start-up, right after recovery (from the one reading of the journals
recovery made), and again after a successful command whose journals changed; both under
the store lock. Keeping the number of journals small is also what keeps start-up fast:
recovery reads every manifest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from certwright.core.checkpoint import journal_root
from certwright.core.errors import UsageError

if TYPE_CHECKING:
    from certwright.core.transaction import Transaction

log = logging.getLogger(__name__)
DEFAULT_MAX_CHECKPOINTS = 10


def max_checkpoints(given: int | None) -> int:
    """``--max-checkpoints``: the default when not given, 0 or more when given."""
    if given is None:
        return DEFAULT_MAX_CHECKPOINTS
    if given < 0:
        raise UsageError(f"--max-checkpoints {given}: give how many checkpoints to keep "
                         "(0 or more)")
    return given


def start_up(work_dir: Path, keep: int) -> list[str]:
    """Roll back what a crash left open, then prune; one message per rollback."""
    if not os.path.lexists(journal_root(work_dir)):
        return []  # no config change was ever journaled here: nothing to load or read
    from certwright.core.transaction import recover_journals, transactions

    found = transactions(work_dir)
    messages = recover_journals(found)
    prune(found, keep)
    _remove_orphans(work_dir, {txn.dir.name for txn in found})
    return messages


def _remove_orphans(work_dir: Path, known: set[str]) -> None:
    """Journal directories without a manifest: a crash came between creating one and
    writing its manifest, or in the middle of removing one. Nothing in them is acted on."""
    from certwright.core.transaction import JOURNAL_NAME

    root = journal_root(work_dir)
    with contextlib.suppress(OSError):
        for name in os.listdir(root):
            if name not in known and JOURNAL_NAME.fullmatch(name) \
                    and not os.path.lexists(root / name / "manifest.json"):
                shutil.rmtree(root / name, ignore_errors=True)


def prune_dir(work_dir: Path, keep: int) -> int:
    """Prune the journals under ``work_dir``; returns how many were removed."""
    from certwright.core.transaction import transactions

    return prune(transactions(work_dir), keep)


def prune(found: list[Transaction], keep: int) -> int:
    """Remove what need not be kept from ``found`` (oldest first, as ``transactions``
    returns them): checkpoints older than the newest ``keep``, and undone journals."""
    from certwright.core.transaction import COMMITTED, OPEN, ROLLED_BACK

    groups: dict[str, list[Transaction]] = {}
    doomed: list[Transaction] = []
    for txn in found:
        if not txn.dir.exists():  # a temporary one recovery just discarded
            continue
        state, temporary = txn.manifest.state, txn.manifest.temporary
        if state == OPEN:
            continue
        if state == ROLLED_BACK or temporary:
            if not _left_dirs(txn):
                doomed.append(txn)
        elif state == COMMITTED:
            groups.setdefault(txn.manifest.checkpoint, []).append(txn)
    ordered = sorted(groups.values(), key=lambda g: (g[-1].manifest.seq, g[-1].manifest.created))
    for group in ordered[:max(0, len(ordered) - keep)]:
        doomed += group
    for txn in doomed:
        _remove(txn)
    if doomed:
        log.debug("removed %d old transaction journal(s)", len(doomed))
    return len(doomed)


def _left_dirs(txn: Transaction) -> bool:
    """An undone journal whose created directories are still there is kept: a newer
    checkpoint's files kept them, and its rollback looks here to remove them too."""
    return any(os.path.isdir(folder) for folder in txn.manifest.created_dirs)


def _remove(txn: Transaction) -> None:
    """Remove the journal: the manifest first (a crash midway leaves no half journal
    that could be taken for a real one), then the rest."""
    with contextlib.suppress(FileNotFoundError):
        (txn.dir / "manifest.json").unlink()
    shutil.rmtree(txn.dir, ignore_errors=True)
