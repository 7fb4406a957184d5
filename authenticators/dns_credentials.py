"""Credentials files of the DNS authenticators, in the format Certbot's DNS plugins read.

One ``key = value`` per line (``key: value`` too); blank lines and lines starting with
``#`` or ``;`` say nothing; a value may be quoted. The keys are the plugin's own
(``dns_rfc2136_secret``, ``dns_cloudflare_api_token``...).

The file holds secrets: it is refused unless only its owner may read it (mode 0600 or
stricter; Certbot only warns), and every error names the file and the key or line at fault.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from certwright.core.errors import PluginError


@dataclass(frozen=True)
class Credentials:
    """The key/value pairs of one credentials file, with the line each came from."""

    path: Path
    values: Mapping[str, str]
    lines: Mapping[str, int]

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)

    def require(self, key: str, what: str) -> str:
        """The value of ``key``; PluginError naming the file and key when it is missing or
        empty."""
        value = self.values.get(key, "")
        if not value:
            raise PluginError(f"{self.path}: {key} is missing ({what})")
        return value

    def where(self, key: str) -> str:
        """``file:line: key`` for an error about that key's value."""
        line = self.lines.get(key)
        return f"{self.path}:{line}: {key}" if line else f"{self.path}: {key}"

    def bad(self, key: str, why: str) -> PluginError:
        return PluginError(f"{self.where(key)}: {why}")


def read_credentials(path: str | os.PathLike[str], option: str) -> Credentials:
    """Read a credentials file given as ``option`` (for the messages)."""
    where = Path(path)
    try:
        fd = os.open(where, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise PluginError(f"{where}: no such credentials file (given with {option})") from None
    except OSError as exc:
        if os.path.islink(where):  # O_NOFOLLOW: a link is read where it points, checked
            return read_credentials(os.path.realpath(where), option)
        raise PluginError(f"{where}: can't read the credentials: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise PluginError(f"{where}: the credentials given with {option} are not a file")
        if info.st_mode & 0o077:
            raise PluginError(
                f"{where}: mode {stat.S_IMODE(info.st_mode):04o} lets other users read these "
                f"DNS credentials; make it 0600 (chmod 600 {where})")
        raw = handle.read(1 << 20)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PluginError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    return parse_credentials(where, text.splitlines())


def parse_credentials(path: Path, lines: Iterable[str]) -> Credentials:
    values: dict[str, str] = {}
    found: dict[str, int] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
        if cut < 0:
            # the line is not echoed: it may be a secret (a file named by a hand-edited
            # renewal conf, or a key pasted without its name)
            raise PluginError(f"{path}:{number}: expected 'key = value'")
        key, value = line[:cut].strip(), line[cut + 1:].strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if not key.replace("_", "").replace("-", "").isalnum() or not key.isascii():
            raise PluginError(f"{path}:{number}: the text before '{line[cut]}' is not a key "
                              "name (letters, digits, '_' and '-')")
        if key in values:
            raise PluginError(f"{path}:{number}: {key} is given twice (also on line "
                              f"{found[key]})")
        values[key], found[key] = value, number
    return Credentials(path, values, found)
