"""Checkpoints: ordered by a sequence, one per command, and the directories transactions
created are removed whichever order their checkpoints are undone in."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from certwright.core import checkpoint
from certwright.core.checkpoint import begin_command
from certwright.core.transaction import (
    TransactionError,
    checkpoints,
    rollback_checkpoint,
    transactions,
)
from tests.unit.txn_kit import edit


@pytest.fixture(autouse=True)
def no_command_left_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """begin_command() sets the running command: undone after each test."""
    monkeypatch.setattr(checkpoint.current, "ident", None)


def test_order_is_a_sequence_even_when_the_clock_counter_wraps(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the nanosecond counter crosses a whole second between two transactions made in the
    # same wall-clock second: an id built from it modulo 10**9 sorts the newer one first
    ticks = iter([999_999_990 + 20 * i for i in range(100)])
    monkeypatch.setattr(time, "monotonic_ns", lambda: next(ticks))
    monkeypatch.setattr(time, "gmtime", lambda *a: time.struct_time((2026, 1, 1, 0, 0, 0,
                                                                      3, 1, 0)))
    conf = tmp_path / "a.conf"
    conf.write_bytes(b"0")
    for i in range(1, 6):
        edit(tmp_path / "w", conf, str(i).encode(), f"step {i}")
    assert [t.manifest.title for t in transactions(tmp_path / "w")] == \
        [f"step {i}" for i in range(1, 6)]


def test_one_command_is_one_checkpoint_restored_byte_for_byte(
        tmp_path: Path) -> None:
    site, extra = tmp_path / "site.conf", tmp_path / "conf.d" / "hsts.conf"
    site.write_bytes(b"server { listen 80; }\n")
    work = tmp_path / "w"
    begin_command()  # `run`: deploy, then the redirect, then HSTS
    edit(work, site, b"server { listen 80; listen 443 ssl; }\n", "deploy")
    edit(work, site, b"server { listen 80; listen 443 ssl; return 301; }\n", "redirect")
    edit(work, extra, b"add_header Strict-Transport-Security max-age=1;\n", "hsts")
    begin_command()  # a later command
    other = tmp_path / "other.conf"
    edit(work, other, b"x", "other")
    groups = checkpoints(work)
    assert [[t.manifest.title for t in g] for g in groups] == \
        [["deploy", "redirect", "hsts"], ["other"]]
    rollback_checkpoint(groups[-1])
    assert not other.exists()
    rollback_checkpoint(checkpoints(work)[-1])
    assert site.read_bytes() == b"server { listen 80; }\n"
    assert not extra.exists() and not extra.parent.exists()
    assert checkpoints(work) == []


def test_a_checkpoint_with_a_file_changed_afterwards_is_left_whole(tmp_path: Path) -> None:
    a, b = tmp_path / "a.conf", tmp_path / "b.conf"
    a.write_bytes(b"a0")
    b.write_bytes(b"b0")
    work = tmp_path / "w"
    begin_command()
    edit(work, a, b"a1", "one")
    edit(work, b, b"b1", "two")
    b.write_bytes(b"edited by hand")
    with pytest.raises(TransactionError, match=r"b\.conf was changed after"):
        rollback_checkpoint(checkpoints(work)[-1])
    assert a.read_bytes() == b"a1", "nothing of the checkpoint was undone"


@pytest.mark.parametrize("order", ["newest first", "oldest first"])
def test_created_directories_go_whichever_order_checkpoints_are_undone(
        tmp_path: Path, order: str) -> None:
    managed = tmp_path / "certwright" / "servers"
    work = tmp_path / "w"
    begin_command()
    edit(work, managed / "a.conf", b"a", "a")  # creates certwright/ and certwright/servers/
    begin_command()
    edit(work, managed / "b.conf", b"b", "b")  # creates nothing
    groups = checkpoints(work)
    for group in (reversed(groups) if order == "newest first" else groups):
        rollback_checkpoint(group)
    assert not (tmp_path / "certwright").exists()


def test_a_directory_still_holding_a_file_is_kept(tmp_path: Path) -> None:
    managed = tmp_path / "certwright"
    work = tmp_path / "w"
    begin_command()
    edit(work, managed / "a.conf", b"a", "a")
    (managed / "users-own.conf").write_bytes(b"mine")
    rollback_checkpoint(checkpoints(work)[-1])
    assert (managed / "users-own.conf").read_bytes() == b"mine"


def test_outside_a_command_each_transaction_is_its_own_checkpoint(tmp_path: Path) -> None:
    from certwright.core.checkpoint import one_checkpoint

    work, conf = tmp_path / "w", tmp_path / "a.conf"
    with one_checkpoint():
        edit(work, conf, b"1", "in the command")
        edit(work, conf, b"2", "in the command too")
    edit(work, conf, b"3", "a library call after it")
    assert [len(g) for g in checkpoints(work)] == [2, 1]
