"""What a DNS authenticator has published, written down before it publishes it, so the
records of a run that was killed (SIGKILL, a power cut: no cleanup ran) are removed by
the next run with the same plugin and credentials.

One JSON file per plugin and credentials file under ``<work-dir>/dns-01/`` (0700; the
file 0600, replaced atomically): ``[{"pid", "zone", "name", "value"}, ...]``. Entries of a
process that is still running are left alone (it may be a parallel run). Updates hold an
exclusive ``flock`` on the work dir itself, so threads and processes sharing it do not lose
each other's entries; once the last entry goes, the file and the directory go too (a
run, a dry run included, leaves no trace).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from certwright.authenticators.dns_base import Record
from certwright.core.storage.files import atomic_write, ensure_dir


class Journal:
    def __init__(self, work_dir: str, plugin: str, credentials: str | None) -> None:
        digest = hashlib.sha256(str(credentials).encode()).hexdigest()[:16]
        self.work_dir = Path(work_dir)
        self.dir = self.work_dir / "dns-01"
        self.path = self.dir / f"{plugin}-{digest}.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[dict[str, Any]]]:
        ensure_dir(self.work_dir, 0o700)  # made by the core already; 0700 if not
        fd = os.open(self.work_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                entries = json.loads(self.path.read_text())
                if not isinstance(entries, list):
                    entries = []
            except (FileNotFoundError, ValueError):
                entries = []
            before = list(entries)
            yield entries
            if entries == before:
                return
            if entries:
                ensure_dir(self.dir, 0o700)
                atomic_write(self.path, json.dumps(entries).encode(), mode=0o600)
            else:
                self.path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # another plugin's file is there
                    self.dir.rmdir()
        finally:
            os.close(fd)

    def add(self, records: Sequence[Record]) -> None:
        with self._locked() as entries:
            entries += [{"pid": os.getpid(), "zone": r.zone, "name": r.name, "value": r.value}
                        for r in records]

    def remove(self, records: Sequence[Record]) -> None:
        gone = {(r.zone, r.name, r.value) for r in records}
        with self._locked() as entries:
            entries[:] = [e for e in entries
                          if not (e.get("pid") == os.getpid()
                                  and (e.get("zone"), e.get("name"), e.get("value")) in gone)]

    def orphans(self) -> list[Record]:
        """Records written down by processes that are gone (their cleanup never ran)."""
        if not self.path.exists():
            return []
        with self._locked() as entries:
            return [Record(str(e["zone"]), str(e["name"]), str(e["value"]))
                    for e in entries if isinstance(e, dict) and not _alive(e.get("pid"))
                    and all(isinstance(e.get(k), str) for k in ("zone", "name", "value"))]

    def forget(self, records: Sequence[Record]) -> None:
        """Drop entries of dead processes for ``records`` (removed from the zone)."""
        gone = {(r.zone, r.name, r.value) for r in records}
        with self._locked() as entries:
            entries[:] = [e for e in entries
                          if _alive(e.get("pid"))
                          or (e.get("zone"), e.get("name"), e.get("value")) not in gone]


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
