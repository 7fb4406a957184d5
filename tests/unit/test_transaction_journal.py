"""A journal read back from disk is acted on only if this process could have written it."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from certwright.core.interfaces import ChangePlan, FileChange
from certwright.core.journal import JournalRefused
from certwright.core.transaction import Transaction, checkpoints, recover
from tests.unit.txn_kit import sha

NOBODY = 65534


def open_journal(tmp_path: Path) -> tuple[Path, Path, Transaction]:
    """A genuine journal a crash left open: ``site.conf`` changed from b"old" to b"new"."""
    site = tmp_path / "site.conf"
    site.write_bytes(b"old")
    txn = Transaction(tmp_path / "w", "deploy")
    txn.apply(ChangePlan("deploy", (FileChange(str(site), b"new", sha(b"old")),)))
    return site, txn.dir / "manifest.json", txn


def rewrite(manifest: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(manifest.read_bytes())
    change(data)
    manifest.write_text(json.dumps(data))
    manifest.chmod(0o600)


def test_a_genuine_journal_is_recovered(tmp_path: Path) -> None:
    site, _, _ = open_journal(tmp_path)
    assert len(recover(tmp_path / "w")) == 1
    assert site.read_bytes() == b"old"


def planted(tmp_path: Path, victim: Path, payload: bytes) -> Path:
    """What an attacker writes into a journal root they can write to."""
    evil = tmp_path / "evil.orig"
    evil.write_bytes(payload)
    journal = tmp_path / "w" / "transactions" / "0000000099-x"
    journal.mkdir(parents=True)
    (journal / "manifest.json").write_text(json.dumps({
        "id": journal.name, "title": "t", "state": "open", "temporary": False,
        "created": 0.0, "files": [{"path": str(victim), "sha_before": sha(b"x"),
                                   "sha_after": sha(victim.read_bytes()),
                                   "backup": str(evil), "mode": 0o4777}]}))
    return journal


HOSTILE: dict[str, Callable[[Path, Path], str]] = {}


def case(fn: Callable[[Path, Path], str]) -> Callable[[Path, Path], str]:
    HOSTILE[fn.__name__] = fn
    return fn


@case
def owned_by_someone_else(journal: Path, tmp_path: Path) -> str:
    for path in (journal / "manifest.json", journal):
        os.chown(path, NOBODY, NOBODY)
    return "owned by uid 65534"


@case
def manifest_writable_by_others(journal: Path, tmp_path: Path) -> str:
    (journal / "manifest.json").chmod(0o666)
    return "writable by group or others"


@case
def backup_outside_the_journal(journal: Path, tmp_path: Path) -> str:
    return "is not " + str(journal / "0.orig")


@case
def path_with_dotdot(journal: Path, tmp_path: Path) -> str:
    def change(data: dict[str, Any]) -> None:
        rec = data["files"][0]
        rec["path"] = str(tmp_path / "w" / ".." / Path(rec["path"]).name)
        (journal / "0.orig").write_bytes(b"pwned")
        (journal / "0.orig").chmod(0o600)
        rec["backup"] = str(journal / "0.orig")
    rewrite(journal / "manifest.json", change)
    return "not one a change could name"


@case
def path_through_a_symlink(journal: Path, tmp_path: Path) -> str:
    link = tmp_path / "link"
    link.symlink_to(tmp_path)

    def change(data: dict[str, Any]) -> None:
        rec = data["files"][0]
        rec["path"] = str(link / Path(rec["path"]).name)
    rewrite(journal / "manifest.json", change)
    return "not through a symlink"


@case
def backup_is_a_symlink(journal: Path, tmp_path: Path) -> str:
    (journal / "0.orig").symlink_to(tmp_path / "evil.orig")
    rewrite(journal / "manifest.json",
            lambda d: d["files"][0].update(backup=str(journal / "0.orig")))
    return "is not a regular file"


@case
def disk_holds_something_else(journal: Path, tmp_path: Path) -> str:
    (journal / "0.orig").write_bytes(b"pwned")
    (journal / "0.orig").chmod(0o600)
    rewrite(journal / "manifest.json", lambda d: d["files"][0].update(
        backup=str(journal / "0.orig"), sha_after=sha(b"something else")))
    return "holds neither what the change wrote nor what was there before"


@case
def backup_swapped(journal: Path, tmp_path: Path) -> str:
    """A backup of ours (right place, right owner) whose content is not what was there."""
    (journal / "0.orig").write_bytes(b"pwned")
    (journal / "0.orig").chmod(0o600)
    rewrite(journal / "manifest.json",
            lambda d: d["files"][0].update(backup=str(journal / "0.orig")))
    return "does not hold what"


@case
def created_dir_not_a_parent(journal: Path, tmp_path: Path) -> str:
    (journal / "0.orig").write_bytes(b"pwned")
    (journal / "0.orig").chmod(0o600)
    rewrite(journal / "manifest.json", lambda d: (d.update(created_dirs=["/etc/ssl"]),
                                                  d["files"][0].update(
                                                      backup=str(journal / "0.orig"))))
    return "is not a parent of a file it wrote"


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_planted_journal_is_refused_and_nothing_is_touched(tmp_path: Path, name: str) -> None:
    victim = tmp_path / "shadow"
    victim.write_bytes(b"root:secret\n")
    victim.chmod(0o640)
    journal = planted(tmp_path, victim, b"root::0:0::/:/bin/sh\n")
    expected = HOSTILE[name](journal, tmp_path)
    with pytest.raises(JournalRefused, match="refusing the transaction journal") as err:
        recover(tmp_path / "w")
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert victim.read_bytes() == b"root:secret\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o640
    assert json.loads((journal / "manifest.json").read_bytes())["state"] == "open"


def test_a_committed_planted_journal_is_no_checkpoint(tmp_path: Path) -> None:
    victim = tmp_path / "shadow"
    victim.write_bytes(b"root:secret\n")
    journal = planted(tmp_path, victim, b"evil")
    rewrite(journal / "manifest.json", lambda d: d.update(state="committed"))
    os.chown(journal / "manifest.json", NOBODY, NOBODY)
    with pytest.raises(JournalRefused, match="owned by uid 65534"):
        checkpoints(tmp_path / "w")


def test_a_journal_root_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "w" / "transactions"
    root.mkdir(parents=True)
    os.chown(root, NOBODY, NOBODY)
    with pytest.raises(JournalRefused, match="owned by uid 65534"):
        Transaction(tmp_path / "w", "deploy")
    with pytest.raises(JournalRefused):
        recover(tmp_path / "w")


def test_a_journal_root_of_ours_that_others_can_write_is_tightened(tmp_path: Path) -> None:
    root = tmp_path / "w" / "transactions"
    root.mkdir(parents=True)
    root.chmod(0o777)
    assert recover(tmp_path / "w") == []
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def test_journal_directories_are_private_under_umask_000(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        _site, manifest, txn = open_journal(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "w").stat().st_mode) == 0o755
    for path in (txn.dir.parent, txn.dir):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o600


def test_an_old_journal_whose_backups_were_cleaned_up_blocks_nothing(tmp_path: Path) -> None:
    site, _, txn = open_journal(tmp_path)
    txn.commit()
    (txn.dir / "0.orig").unlink()
    assert recover(tmp_path / "w") == []
    Transaction(tmp_path / "w", "next").commit()
    with pytest.raises(JournalRefused, match=r"0\.orig is missing"):
        txn.rollback(check_after=True)
    assert site.read_bytes() == b"new"
