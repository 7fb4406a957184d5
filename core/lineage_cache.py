"""What `renew` and `certificates` need of each lineage's current certificate, cached.

Archive files never change once written, so the target of ``live/<name>/cert.pem`` is a
sound cache key: while it stays the same, nothing is parsed (and cryptography is not even
imported). The cache lives in the work dir and is only an optimisation: losing it is fine.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certwright.core.errors import CertwrightError
from certwright.core.storage.files import atomic_write, ensure_dir
from certwright.core.storage.lineage import Lineage

log = logging.getLogger(__name__)
CACHE_FILE = "lineage-cache.json"


@dataclass(frozen=True)
class CertSummary:
    not_before: float
    not_after: float
    names: tuple[str, ...]
    serial: str
    key_type: str


class LineageCache:
    """``{name: [cert target, not_before, not_after, names, serial hex, key type]}``."""

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / CACHE_FILE
        self.dirty = False
        try:
            self.data: dict[str, Any] = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            self.data = {}

    def summary(self, lin: Lineage) -> CertSummary:
        try:
            target = os.readlink(lin.cert)
        except OSError:
            target = str(lin.cert)
        hit = self.data.get(lin.name)
        if isinstance(hit, list) and len(hit) == 6 and hit[0] == target:
            return CertSummary(float(hit[1]), float(hit[2]), tuple(hit[3]), str(hit[4]),
                               str(hit[5]))
        found = CertSummary(lin.not_before.timestamp(), lin.not_after.timestamp(),
                            tuple(lin.names), f"{lin.serial:x}", lin.key_type)
        self.data[lin.name] = [target, found.not_before, found.not_after, list(found.names),
                               found.serial, found.key_type]
        self.dirty = True
        return found

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            ensure_dir(self.path.parent, 0o755)  # never the umask's mode
            atomic_write(self.path, json.dumps(self.data).encode(), 0o600)
        except (OSError, CertwrightError) as exc:
            log.debug("lineage cache not saved: %s", exc)
