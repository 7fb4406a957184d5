"""The log file rotation at start-up: same result as RotatingFileHandler.doRollover."""

from __future__ import annotations

import logging.handlers
import random
from pathlib import Path

import pytest

from certwright.core.cli import rotate_log


def _tree(root: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(root.iterdir())}


def _fill(root: Path, names: list[str]) -> None:
    root.mkdir()
    for name in names:
        (root / name).write_text(f"was {name}\n")


@pytest.mark.parametrize("seed", range(25))
def test_rotation_matches_rotating_file_handler(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    backups = rnd.choice([1, 2, 3, 5, 10, 1000])
    numbers = rnd.sample(range(1, 14), rnd.randint(0, 8))
    names = ["certwright.log", *(f"certwright.log.{n}" for n in numbers)]
    names += rnd.sample(["certwright.log.01", "certwright.log.x", "other.log.1",
                         "certwright.log.", "certwright.log.1.gz"], 2)
    _fill(tmp_path / "ours", names)
    _fill(tmp_path / "stdlib", names)

    rotate_log(tmp_path / "ours" / "certwright.log", backups)
    handler = logging.handlers.RotatingFileHandler(
        tmp_path / "stdlib" / "certwright.log", backupCount=backups, delay=True)
    handler.doRollover()
    handler.close()
    (tmp_path / "stdlib" / "certwright.log").unlink(missing_ok=True)  # reopened empty

    assert _tree(tmp_path / "ours") == _tree(tmp_path / "stdlib")
    assert not (tmp_path / "ours" / "certwright.log").exists()
    assert (tmp_path / "ours" / "certwright.log.1").read_text() == "was certwright.log\n"
