"""Deploy hooks owed by a renewal that was interrupted after its certificate went live.

Before a lineage is renewed, ``<work-dir>/hooks-pending/<name>`` records the version its
``live/`` links serve; once the deploy hooks have run, the record goes. A record found at
the next start means that run never finished: if the lineage serves a newer version now,
it was renewed and its deploy hooks are owed ("renewed, hooks pending"); if not, nothing
was renewed and the record is simply dropped ("not renewed").
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from certwright.core.storage.files import atomic_write, ensure_dir

PENDING_DIR = "hooks-pending"


def _record(work_dir: Path, name: str) -> Path:
    return work_dir / PENDING_DIR / name


def mark(work_dir: Path, name: str, serving: int | None) -> None:
    ensure_dir(work_dir / PENDING_DIR, 0o700)
    atomic_write(_record(work_dir, name), str(serving or 0).encode(), 0o600)


def unmark(work_dir: Path, name: str) -> None:
    with contextlib.suppress(OSError):
        _record(work_dir, name).unlink()


def pending(work_dir: Path) -> dict[str, int]:
    """Lineage name -> the version it served when its renewal began."""
    found: dict[str, int] = {}
    try:
        names = os.listdir(work_dir / PENDING_DIR)
    except OSError:
        return found
    for name in names:
        if name.startswith("."):
            continue
        try:
            found[name] = int(_record(work_dir, name).read_text().strip() or 0)
        except (OSError, ValueError):
            found[name] = 0
    return found


def _serving(live_cert: Path) -> int | None:
    """The version ``live/<name>/cert.pem`` serves (None: no lineage there)."""
    try:
        target = os.readlink(live_cert)
    except OSError:
        return None
    digits = os.path.basename(target).removeprefix("cert").removesuffix(".pem")
    return int(digits) if digits.isdigit() else None


class Owed:
    """Deploy hooks owed around one issuance into lineage ``name``: recorded before, kept
    when the command dies after ``live/`` switched, dropped once they ran (:meth:`done`)
    or when issuing failed with ``live/`` unchanged (:meth:`failed`)."""

    def __init__(self, work_dir: Path, config_dir: Path, name: str, dry_run: bool) -> None:
        self.work_dir, self.name, self.active = work_dir, name, not dry_run
        self.live_cert = Path(os.path.abspath(config_dir)) / "live" / name / "cert.pem"
        self.serving = _serving(self.live_cert)
        earlier = pending(work_dir).get(name) if self.active else None
        if earlier is not None and earlier != (self.serving or 0):
            self.serving = earlier  # an interrupted run's hooks stay owed
        if self.active:
            mark(work_dir, name, self.serving)

    def failed(self) -> None:
        if self.active and _serving(self.live_cert) == self.serving:
            unmark(self.work_dir, self.name)

    def done(self) -> None:
        if self.active:
            unmark(self.work_dir, self.name)
