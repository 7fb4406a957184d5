"""What the transaction tests share: a file's digest, and one edit made as a transaction."""

from __future__ import annotations

import hashlib
from pathlib import Path

from certwright.core.interfaces import ChangePlan, FileChange
from certwright.core.transaction import Transaction


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def edit(work: Path, path: Path, new: bytes, title: str, *, commit: bool = True,
         temporary: bool = False) -> Transaction:
    """``path`` given the content ``new`` by a transaction titled ``title`` in ``work``."""
    old = path.read_bytes() if path.exists() else None
    txn = Transaction(work, title, temporary=temporary)
    txn.apply(ChangePlan(title, (FileChange(str(path), new, sha(old) if old else None),)))
    if commit:
        txn.commit()
    return txn
