"""Journals are pruned: the last N checkpoints kept, undone ones removed, open ones never;
backups stay private."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from certwright.core import checkpoint
from certwright.core.checkpoint import begin_command, one_checkpoint
from certwright.core.errors import UsageError
from certwright.core.retention import max_checkpoints, prune_dir, start_up
from certwright.core.transaction import (
    checkpoints,
    journal_root,
    rollback_checkpoint,
    transactions,
)
from tests.unit.txn_kit import edit


@pytest.fixture(autouse=True)
def no_command_left_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint.current, "ident", None)


def titles(work: Path) -> list[str]:
    return [t.manifest.title for t in transactions(work)]


def test_keeps_the_last_n_checkpoints(tmp_path: Path) -> None:
    work, conf = tmp_path / "w", tmp_path / "a.conf"
    conf.write_bytes(b"0")
    for i in range(1, 16):
        begin_command()
        edit(work, conf, str(i).encode(), f"step {i}")
    assert prune_dir(work, 10) == 5
    assert titles(work) == [f"step {i}" for i in range(6, 16)]
    rollback_checkpoint(checkpoints(work)[-1])  # the kept ones still roll back
    assert conf.read_bytes() == b"14"


def test_a_checkpoint_of_several_journals_is_kept_or_removed_whole(tmp_path: Path) -> None:
    work, a, b = tmp_path / "w", tmp_path / "a.conf", tmp_path / "b.conf"
    for run in range(1, 4):
        begin_command()
        edit(work, a, f"a{run}".encode(), f"run {run} a")
        edit(work, b, f"b{run}".encode(), f"run {run} b")
    prune_dir(work, 2)
    assert titles(work) == ["run 2 a", "run 2 b", "run 3 a", "run 3 b"]


def test_undone_journals_go_and_open_ones_stay(tmp_path: Path) -> None:
    work, conf = tmp_path / "w", tmp_path / "a.conf"
    conf.write_bytes(b"0")
    edit(work, conf, b"1", "undone").rollback()
    edit(work, conf, b"2", "challenge", temporary=True).rollback()  # discard never came
    edit(work, conf, b"3", "kept")
    edit(work, conf, b"4", "running", commit=False)
    assert prune_dir(work, 0) == 3
    assert titles(work) == ["running"]
    assert conf.read_bytes() == b"4", "pruning never touches a configuration file"


def test_an_undone_journal_whose_directory_is_still_there_is_kept(tmp_path: Path) -> None:
    work = tmp_path / "w"
    made = tmp_path / "managed" / "x.conf"
    first = edit(work, made, b"x", "makes managed/")
    other = tmp_path / "managed" / "y.conf"
    edit(work, other, b"y", "adds to managed/")
    rollback_checkpoint(checkpoints(work)[0])  # managed/ stays: y.conf is in it
    assert made.parent.is_dir()
    prune_dir(work, 10)
    assert first.dir.exists()
    rollback_checkpoint(checkpoints(work)[-1])
    assert not made.parent.exists(), "the later rollback still removes what the first made"
    prune_dir(work, 10)
    assert titles(work) == []


def test_start_up_recovers_then_prunes_and_removes_half_journals(tmp_path: Path) -> None:
    work, conf = tmp_path / "w", tmp_path / "a.conf"
    conf.write_bytes(b"0")
    for i in range(1, 4):
        begin_command()
        edit(work, conf, str(i).encode(), f"step {i}")
    edit(work, conf, b"crashed", "crashed", commit=False)
    orphan = journal_root(work) / "0000000099-20260101T000000-1"
    orphan.mkdir(mode=0o700)
    (orphan / "0.orig").write_bytes(b"secret")
    messages = start_up(work, 1)
    assert len(messages) == 1 and conf.read_bytes() == b"3"
    assert titles(work) == ["step 3"]
    assert not orphan.exists()


def test_the_option_is_checked() -> None:
    assert max_checkpoints(None) == 10 and max_checkpoints(0) == 0
    with pytest.raises(UsageError, match="--max-checkpoints -1"):
        max_checkpoints(-1)


def test_journals_changed_only_when_the_command_wrote_one(tmp_path: Path) -> None:
    with one_checkpoint():
        assert not checkpoint.journals_changed()
        edit(tmp_path / "w", tmp_path / "a.conf", b"1", "t")
        assert checkpoint.journals_changed()


def test_backups_of_secret_files_are_private(tmp_path: Path) -> None:
    key = tmp_path / "privkey.pem"
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    key.chmod(0o600)
    conf = tmp_path / "site.conf"
    conf.write_bytes(b"public\n")
    conf.chmod(0o644)
    old = os.umask(0)
    try:
        txn = edit(tmp_path / "w", key, b"new key", "key")
        other = edit(tmp_path / "w", conf, b"new", "conf")
    finally:
        os.umask(old)
    for journal in (txn, other):
        backup = Path(journal.manifest.files[0].backup or "")
        assert stat.S_IMODE(backup.stat().st_mode) == 0o600
        assert stat.S_IMODE(journal.dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(key.stat().st_mode) == 0o600, "the key keeps its mode"


def test_start_up_with_a_thousand_journals_reads_them_once_then_few(tmp_path: Path) -> None:
    work, conf = tmp_path / "w", tmp_path / "a.conf"
    conf.write_bytes(b"0")
    for i in range(1, 1001):
        begin_command()
        edit(work, conf, str(i).encode(), f"step {i}")
    first = time.perf_counter()
    start_up(work, 10)
    first = time.perf_counter() - first
    second = time.perf_counter()
    start_up(work, 10)
    second = time.perf_counter() - second
    assert len(os.listdir(journal_root(work))) == 10
    assert second < first / 10, (first, second)


def test_a_command_that_wrote_journals_prunes_after_itself(tmp_path: Path) -> None:
    import argparse

    from certwright.core.commands import _locked

    work, conf = tmp_path / "w", tmp_path / "a.conf"
    conf.write_bytes(b"0")
    runs = iter(range(1, 100))

    def command(config: argparse.Namespace, say: object, ask: object) -> int:
        for _ in range(2):  # two journals, one checkpoint
            edit(work, conf, str(next(runs)).encode(), "step")
        return 0

    config = argparse.Namespace(config_dir=str(tmp_path / "c"), work_dir=str(work),
                                noninteractive=True, lock_timeout=0, max_checkpoints=2)
    for _ in range(4):
        _locked(command)(config, print, None)
        assert len(checkpoints(work)) <= 2
    assert [len(g) for g in checkpoints(work)] == [2, 2]
    assert conf.read_bytes() == b"8"
