"""The configuration test, without re-reading everything when only certificates changed.

``haproxy -c -f CONFIG`` loads every certificate of every bind: with hundreds of them it
takes most of a second, and ``renew`` tests once per renewed lineage. One installer
remembers what its last passing test saw (size, mtime and inode of every configuration file
and of each file in certwright's crt-list, and the list's bytes). When only files listed
in that crt-list changed since, those files are checked the way HAProxy loads them (the
chain and key parse, and the key belongs to the certificate: OpenSSL through ``ssl``);
anything else changed means a full ``haproxy -c``.
"""

from __future__ import annotations

import hashlib
import os
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from certwright.core.errors import PluginError

Mark = tuple[int, int, int]


@dataclass(frozen=True)
class Seen:
    config: tuple[tuple[str, Mark | None], ...]
    crt_list: str
    pems: dict[str, Mark | None]


def mark(path: str) -> Mark | None:
    """(size, mtime, inode) of a file; None when it is not there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def seen(config_files: Sequence[str], crt_list: str) -> Seen:
    try:
        with open(crt_list, "rb") as handle:
            data = handle.read()
    except OSError:
        data = b""
    pems = [line.split()[0] for line in data.decode(errors="replace").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
    return Seen(tuple((p, mark(p)) for p in config_files), hashlib.sha256(data).hexdigest(),
                {p: mark(p) for p in pems})


def check_pem(path: str) -> None:
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(path)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        raise PluginError(f"haproxy configuration test failed: {path}: HAProxy can't load "
                          f"it ({reason})") from None


class ConfigCheck:
    """Runs ``full`` (``haproxy -c``), or only the certificate checks when they suffice."""

    def __init__(self, full: Callable[[], None], config_files: Callable[[], Sequence[str]],
                 crt_list: str) -> None:
        self.full, self.config_files, self.crt_list = full, config_files, crt_list
        self.last: Seen | None = None
        self.full_runs = 0

    def __call__(self) -> None:
        now = seen(self.config_files(), self.crt_list)
        last, self.last = self.last, None
        if last is not None and now.config == last.config and now.crt_list == last.crt_list:
            for path, mark in now.pems.items():
                if mark != last.pems.get(path):
                    check_pem(path)
            self.last = now
            return
        self.full()
        self.full_runs += 1
        self.last = now
