import stat
import subprocess
import sys
from pathlib import Path

import pytest

from certwright.core.interfaces import ChangePlan, FileChange
from certwright.core.transaction import (
    Transaction,
    TransactionError,
    checkpoints,
    recover,
    temporary,
)
from tests.unit.txn_kit import sha


def plan_for(path: Path, new: bytes | None, title: str = "edit") -> ChangePlan:
    old = path.read_bytes() if path.exists() else None
    return ChangePlan(title, (FileChange(str(path), new, sha(old) if old is not None else None),))


def test_apply_commit_and_rollback_byte_for_byte(tmp_path: Path) -> None:
    conf = tmp_path / "site.conf"
    conf.write_bytes(b"# keep me\nserver {}\n")
    conf.chmod(0o640)
    created = tmp_path / "managed" / "new.conf"
    txn = Transaction(tmp_path / "work", "deploy example.org")
    txn.apply(ChangePlan("deploy", (
        FileChange(str(conf), b"# keep me\nserver { listen 443 ssl; }\n", sha(conf.read_bytes())),
        FileChange(str(created), b"x", None, 0o644),
    )))
    txn.commit()
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640, "mode kept"
    assert created.read_bytes() == b"x"
    [[cp]] = checkpoints(tmp_path / "work")
    assert cp.manifest.title == "deploy example.org"
    cp.rollback(check_after=True)
    assert conf.read_bytes() == b"# keep me\nserver {}\n"
    assert not created.exists()
    assert not created.parent.exists(), "the directory it created is removed too"
    assert checkpoints(tmp_path / "work") == []


def test_refuses_when_a_file_changed_under_us(tmp_path: Path) -> None:
    conf = tmp_path / "a.conf"
    conf.write_bytes(b"one")
    plan = plan_for(conf, b"two")
    conf.write_bytes(b"edited by someone")
    with pytest.raises(TransactionError, match="changed since it was read"):
        Transaction(tmp_path / "w", "t").apply(plan)
    assert conf.read_bytes() == b"edited by someone"


def test_rollback_refuses_to_undo_later_edits(tmp_path: Path) -> None:
    conf = tmp_path / "a.conf"
    conf.write_bytes(b"one")
    txn = Transaction(tmp_path / "w", "t")
    txn.apply(plan_for(conf, b"two"))
    txn.commit()
    conf.write_bytes(b"three")
    with pytest.raises(TransactionError, match="was changed after"):
        txn.rollback(check_after=True)
    assert conf.read_bytes() == b"three"


def test_symlinked_file_is_written_through(tmp_path: Path) -> None:
    target = tmp_path / "sites-available" / "x"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "x"
    link.symlink_to(target)
    txn = Transaction(tmp_path / "w", "t")
    txn.apply(plan_for(link, b"new"))
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_crash_between_apply_and_commit_is_recovered(tmp_path: Path) -> None:
    conf = tmp_path / "a.conf"
    conf.write_bytes(b"original")
    code = (
        "import hashlib, os, sys\n"
        "from pathlib import Path\n"
        "from certwright.core.interfaces import ChangePlan, FileChange\n"
        "from certwright.core.transaction import Transaction\n"
        f"p = Path({str(conf)!r})\n"
        "t = Transaction(Path(sys.argv[1]), 'crashy')\n"
        "t.apply(ChangePlan('x', (FileChange(str(p), b'half', "
        "hashlib.sha256(p.read_bytes()).hexdigest()),)))\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "w")])
    assert proc.returncode == -9
    assert conf.read_bytes() == b"half"
    messages = recover(tmp_path / "w")
    assert len(messages) == 1 and "crashy" in messages[0]
    assert conf.read_bytes() == b"original"
    assert recover(tmp_path / "w") == []


def test_temporary_is_undone_even_when_the_follow_up_fails(tmp_path: Path) -> None:
    conf = tmp_path / "a.conf"
    conf.write_bytes(b"original")

    def failing_test() -> None:
        raise RuntimeError("nginx -t failed")

    with pytest.raises(RuntimeError):
        temporary(tmp_path / "w", plan_for(conf, b"broken"), failing_test)
    assert conf.read_bytes() == b"original"
    undo = temporary(tmp_path / "w", plan_for(conf, b"challenge"), lambda: None)
    assert conf.read_bytes() == b"challenge"
    undo()
    assert conf.read_bytes() == b"original"
    assert not (tmp_path / "w").exists(), "nothing left: the work dir was made by the first"
