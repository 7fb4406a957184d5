"""What `renew` and `certificates` need of each lineage's current certificate, cached.

An entry is keyed by the absolute path of the lineage's ``cert.pem`` link (so two stores
sharing a work dir never meet) and is used only while a fingerprint of what that path
serves is unchanged: the link's own inode and ctime, its target text, and the device,
inode, size, mtime and ctime of the file it leads to. Every store change (issue, renew,
repair, delete and re-issue under the same name, a file rewritten in place with its mtime
put back, a copied store) changes one of these: the ctime cannot be set by hand. While
the fingerprint holds, nothing is parsed (and cryptography is not even imported).

The file lives in the work dir and is only an optimisation: losing it is fine. A file
that is not ours, or that others can write, is ignored (and replaced on save); so is any
entry that does not have exactly the expected shape.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certwright.core.errors import CertwrightError, StorageError
from certwright.core.storage import confine
from certwright.core.storage.files import atomic_write, ensure_dir
from certwright.core.storage.lineage import Lineage

log = logging.getLogger(__name__)
CACHE_FILE = "lineage-cache.json"
_FORMAT = 2
_SUMMARY_TYPES = (float, float, list, str, str)


@dataclass(frozen=True)
class CertSummary:
    not_before: float
    not_after: float
    names: tuple[str, ...]
    serial: str
    key_type: str


def fingerprint(lin: Lineage, cert_link: str) -> list[object]:
    """What identifies the certificate the link ``cert_link`` serves now; StorageError
    when it is not a link into the lineage's archive (Certbot's rule for live files)."""
    try:
        link = os.lstat(cert_link)
        if not stat.S_ISLNK(link.st_mode):
            raise StorageError(f"expected {cert_link} to be a symlink")
        target = os.readlink(cert_link)
        confine.check_target(cert_link, target, lin.conf.archive_dir)
        served = os.stat(cert_link)
    except OSError as error:
        raise StorageError(f"cannot read {cert_link}: {error.strerror}") from error
    return [link.st_ino, link.st_ctime_ns, target, served.st_dev, served.st_ino,
            served.st_size, served.st_mtime_ns, served.st_ctime_ns]


def _read_own(path: Path) -> dict[str, Any]:
    """The cache file's contents if it is a regular file of ours no one else can write."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return {}
    try:
        info = os.fstat(fd)
        if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid()
                or info.st_mode & 0o022):
            log.debug("%s is not private to this user; not used", path)
            return {}
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = json.loads(handle.read())
    except (OSError, ValueError):
        return {}
    finally:
        os.close(fd)
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        return {}
    return data


def _summary_of(entry: object, key: list[object]) -> CertSummary | None:
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    found = entry.get("summary")
    if not isinstance(found, list) or len(found) != len(_SUMMARY_TYPES):
        return None
    if not all(isinstance(v, t) for v, t in zip(found, _SUMMARY_TYPES, strict=True)):
        return None
    names = found[2]
    if not all(isinstance(n, str) for n in names):
        return None
    return CertSummary(found[0], found[1], tuple(names), found[3], found[4])


class LineageCache:
    """``{"format": 2, "lineages": {cert path: {"key": [...], "summary": [...]}},
    "_directories": {...}}``."""

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / CACHE_FILE
        self.dirty = False
        self.data: dict[str, Any] = _read_own(self.path)
        self.data["format"] = _FORMAT
        for section in ("lineages", "_directories"):
            if not isinstance(self.data.get(section), dict):
                self.data[section] = {}

    @property
    def _entries(self) -> dict[str, Any]:
        entries: dict[str, Any] = self.data["lineages"]
        return entries

    def summary(self, lin: Lineage) -> CertSummary:
        path = lin.conf.cert  # absolute, as the lineage's renewal conf holds it
        key = fingerprint(lin, path)
        hit = _summary_of(self._entries.get(path), key)
        if hit is not None:
            return hit
        found = CertSummary(lin.not_before.timestamp(), lin.not_after.timestamp(),
                            tuple(lin.names), f"{lin.serial:x}", lin.key_type)
        self._entries[path] = {"key": key, "summary": [
            found.not_before, found.not_after, list(found.names), found.serial,
            found.key_type]}
        self.dirty = True
        return found

    def prune(self, config_dir: Path, listed: Iterable[Lineage]) -> None:
        """Drop the entries of lineages that no longer exist in the store at
        ``config_dir``: every entry under its ``live/`` that ``listed`` (the whole
        store, as just listed) does not name. Entries of other stores are kept."""
        live = os.path.join(os.path.abspath(config_dir), "live") + os.sep
        keep = {lin.conf.cert for lin in listed}
        gone = [path for path in self._entries if path.startswith(live) and path not in keep]
        for path in gone:
            del self._entries[path]
        if gone:
            self.dirty = True

    def forget(self, lin: Lineage) -> None:
        if self._entries.pop(lin.conf.cert, None) is not None:
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            ensure_dir(self.path.parent, 0o700)  # never the umask's mode
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(self.path).st_uid != os.geteuid():
                    os.unlink(self.path)  # else a root rewrite would keep its owner
            atomic_write(self.path, json.dumps(self.data).encode(), 0o600)
        except (OSError, CertwrightError) as exc:
            log.debug("lineage cache not saved: %s", exc)


def forget(work_dir: Path, lin: Lineage) -> None:
    """Drop ``lin``'s entry (a deleted lineage): never fatal."""
    with contextlib.suppress(Exception):
        cache = LineageCache(work_dir)
        cache.forget(lin)
        cache.save()
