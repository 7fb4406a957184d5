"""FileChange kinds: symlinks, owner and group of created files, secret files; each applied
and rolled back, and recovered after kill -9 at every step of applying it."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from certwright.core.deploy import plan_diff
from certwright.core.errors import PluginError
from certwright.core.interfaces import ChangePlan, FileChange, link_digest
from certwright.core.journal import JournalRefused
from certwright.core.retention import start_up
from certwright.core.transaction import (
    Transaction,
    TransactionError,
    checkpoints,
    recover,
    rollback_checkpoint,
    transactions,
)
from tests.conftest import skip_or_fail
from tests.unit.txn_kit import sha


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under ``root`` but the journals: kind, content or target, mode, owner."""
    out: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel.split("/")[0] == "work":
            continue
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            out[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            out[rel] = ("dir", stat.S_IMODE(info.st_mode))
        else:
            out[rel] = ("file", sha(path.read_bytes()), stat.S_IMODE(info.st_mode),
                        info.st_uid, info.st_gid)
    return out


def debian_tree(root: Path) -> Path:
    """``sites-available/{a,b}.conf``, with ``b`` enabled; returns the server root."""
    server = root / "etc"
    (server / "sites-available").mkdir(parents=True)
    (server / "sites-enabled").mkdir()
    (server / "sites-available" / "a.conf").write_text("server a\n")
    (server / "sites-available" / "b.conf").write_text("server b\n")
    (server / "sites-enabled" / "b.conf").symlink_to("../sites-available/b.conf")
    (server / "main.conf").write_text("include sites-enabled/*;\n")
    return server


def full_plan(server: Path) -> ChangePlan:
    """Enable a, disable b, edit the main file, add a secret key owned by nobody in a new
    directory."""
    main = server / "main.conf"
    return ChangePlan("enable a", (
        FileChange.symlink(str(server / "sites-enabled" / "a.conf"), "../sites-available/a.conf"),
        FileChange.remove_symlink(str(server / "sites-enabled" / "b.conf"),
                                  "../sites-available/b.conf"),
        FileChange(str(main), b"include sites-enabled/*;\nssl on;\n", sha(main.read_bytes())),
        FileChange(str(server / "keys" / "a.key"), b"-----BEGIN PRIVATE KEY-----\n", None,
                   mode=0o644, secret=True, owner="nobody", group="nogroup"),
    ))


def test_symlinks_are_made_removed_and_rolled_back(tmp_path: Path) -> None:
    server = debian_tree(tmp_path)
    before = snapshot(tmp_path)
    txn = Transaction(tmp_path / "work", "enable a")
    txn.apply(full_plan(server))
    txn.commit()
    enabled = server / "sites-enabled"
    assert os.readlink(enabled / "a.conf") == "../sites-available/a.conf"
    assert not os.path.lexists(enabled / "b.conf")
    assert (enabled / "a.conf").read_text() == "server a\n"
    (enabled / "a.conf").unlink()  # someone repoints the link after the checkpoint
    (enabled / "a.conf").symlink_to("../sites-available/b.conf")
    with pytest.raises(TransactionError, match=r"a\.conf was changed after"):
        rollback_checkpoint(checkpoints(tmp_path / "work")[-1])
    (enabled / "a.conf").unlink()
    (enabled / "a.conf").symlink_to("../sites-available/a.conf")
    rollback_checkpoint(checkpoints(tmp_path / "work")[-1])
    assert snapshot(tmp_path) == before


def test_created_files_get_owner_group_and_secret_mode(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        skip_or_fail("giving a file away needs root")
    import grp
    import pwd

    server = debian_tree(tmp_path)
    old = os.umask(0)  # modes are explicit, never the umask's
    try:
        txn = Transaction(tmp_path / "work", "enable a")
        txn.apply(full_plan(server))
    finally:
        os.umask(old)
    info = (server / "keys" / "a.key").stat()
    assert stat.S_IMODE(info.st_mode) == 0o600, "a secret file is created 0600"
    assert info.st_uid == pwd.getpwnam("nobody").pw_uid
    assert info.st_gid == grp.getgrnam("nogroup").gr_gid
    assert (server / "main.conf").stat().st_uid == 0, "an existing file keeps its owner"


def test_an_unknown_owner_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    server = debian_tree(tmp_path)
    before = snapshot(tmp_path)
    plan = ChangePlan("x", (
        FileChange(str(server / "main.conf"), b"new", sha((server / "main.conf").read_bytes())),
        FileChange(str(server / "new.conf"), b"x", None, owner="no-such-user-here"),
    ))
    with pytest.raises(PluginError, match=r"new\.conf: unknown owner 'no-such-user-here'"):
        Transaction(tmp_path / "work", "x").apply(plan)
    assert snapshot(tmp_path) == before


def test_a_symlink_change_refuses_what_it_did_not_expect(tmp_path: Path) -> None:
    server = debian_tree(tmp_path)
    enabled = server / "sites-enabled"
    (enabled / "a.conf").write_text("a copy, not a link\n")
    before = snapshot(tmp_path)
    for change, what in [
        (FileChange.symlink(str(enabled / "a.conf"), "../sites-available/a.conf"),
         "a.conf is not a symlink"),
        (FileChange.remove_symlink(str(enabled / "b.conf"), "../sites-available/other.conf"),
         "changed since it was read"),
        (FileChange.symlink(str(enabled / "a.conf"), "x", replaces="../sites-available/a.conf"),
         "is not a symlink"),
    ]:
        with pytest.raises(TransactionError, match=what):
            Transaction(tmp_path / "work", "x").apply(ChangePlan("x", (change,)))
    assert snapshot(tmp_path) == before


def test_contract_checks() -> None:
    with pytest.raises(PluginError, match="not content"):
        FileChange("/a", b"x", None, kind="symlink")
    with pytest.raises(PluginError, match="unknown change kind"):
        FileChange("/a", b"x", None, kind="fifo")
    with pytest.raises(PluginError, match="control character"):
        FileChange.symlink("/a", "../x\nlisten 80;")
    assert FileChange.remove_symlink("/a", "t").expected_sha256 == link_digest("t")


def test_dry_run_shows_links_and_hides_secrets(tmp_path: Path) -> None:
    server = debian_tree(tmp_path)
    diff = plan_diff(full_plan(server))
    assert f"symlink {server}/sites-enabled/a.conf: (none) -> ../sites-available/a.conf" \
        in diff
    assert f"symlink {server}/sites-enabled/b.conf: ../sites-available/b.conf -> (removed)" \
        in diff
    assert "PRIVATE KEY" not in diff and "secret file" in diff
    assert "+ssl on;" in diff


def test_a_journal_with_a_forged_link_record_is_refused(tmp_path: Path) -> None:
    server = debian_tree(tmp_path)
    txn = Transaction(tmp_path / "work", "enable a")
    txn.apply(ChangePlan("x", (FileChange.symlink(str(server / "sites-enabled" / "a.conf"),
                                                  "../sites-available/a.conf"),)))
    manifest = txn.dir / "manifest.json"
    data = json.loads(manifest.read_bytes())
    data["files"][0]["link_after"] = "/etc/shadow"  # its digest no longer matches
    manifest.write_text(json.dumps(data))
    with pytest.raises(JournalRefused, match=r"sha_after .* is not the digest"):
        recover(tmp_path / "work")


CHILD = """
import json, os, signal, sys
from pathlib import Path
crash_at = int(sys.argv[2])
calls = [0]
def step(fn):
    def wrapped(*a, **k):
        calls[0] += 1
        if calls[0] == crash_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*a, **k)
    return wrapped
for name in ("replace", "symlink", "unlink", "fsync", "fchown", "mkdir", "rmdir", "chmod"):
    setattr(os, name, step(getattr(os, name)))
sys.path.insert(0, sys.argv[3])
from test_transaction_kinds import full_plan
from certwright.core.transaction import Transaction
root = Path(sys.argv[1])
txn = Transaction(root / "work", "enable a")
txn.apply(full_plan(root / "etc"))
if sys.argv[4] == "rollback":
    txn.rollback()
print(calls[0])
"""


@pytest.mark.parametrize("then", ["crash", "rollback"])
def test_kill_9_at_every_step_is_recovered(tmp_path: Path, then: str) -> None:
    """Apply (and, for ``rollback``, undo) the full plan in a child killed with SIGKILL
    before its Nth file-system step, for every N; recovery at the next start must leave
    exactly what was there before."""
    steps = None
    crash_at = 1
    while steps is None or crash_at <= steps:
        root = tmp_path / f"run{crash_at}"
        debian_tree(root)
        before = snapshot(root)
        done = subprocess.run([sys.executable, "-c", CHILD, str(root), str(crash_at),
                               str(Path(__file__).parent), then],
                              capture_output=True, text=True, timeout=60)
        if done.returncode == 0:  # ran to the end: that many steps exist
            steps = int(done.stdout.strip())
            if crash_at > steps:
                break
        else:
            assert done.returncode == -signal.SIGKILL, done.stderr
        start_up(root / "work", 10)
        assert snapshot(root) == before, f"after a crash at step {crash_at}"
        assert all(t.manifest.state != "open" for t in transactions(root / "work"))
        crash_at += 1
    assert steps is not None and steps > 10, "the sweep covered every step"
