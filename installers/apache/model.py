"""Plain frozen dataclasses for an Apache configuration, shared by reading and choosing."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Node:
    """A directive (``children is None``) or a ``<Section args…>`` with its contents.

    ``args`` are as written (quotes kept); ``line`` is 1-based, 0 where it was not asked
    for (see :data:`certwright.installers.apache.tree.LINE_DIRECTIVES`).
    """

    name: str
    args: tuple[str, ...]
    file: str
    line: int
    children: tuple[Node, ...] | None = None

    @property
    def is_section(self) -> bool:
        return self.children is not None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True, order=True)
class Address:
    """A ``<VirtualHost>`` address: ``host`` is ``*`` for any address (``_default_`` too),
    an IP without brackets, or a host name as written; ``port`` is ``None`` for any port."""

    host: str
    port: int | None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{'*' if self.port is None else self.port}"

    @property
    def wildcard(self) -> bool:
        return self.host == "*"


@dataclass(frozen=True)
class VirtualHost:
    """One ``<VirtualHost>`` as Apache reads it, with ``Include``s inside it followed.

    ``server_name`` is the vhost's own ``ServerName`` (host part only); ``name`` is what
    Apache matches: its own, else the main server's. ``directives`` are the vhost's
    contents with conditions evaluated (inactive parts dropped, ``Include``s spliced in).
    """

    file: str
    line: int
    addresses: tuple[Address, ...]
    server_name: str | None
    name: str | None
    aliases: tuple[str, ...]
    directives: tuple[Node, ...]
    ssl_engine: bool

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def exact_aliases(self) -> tuple[str, ...]:
        return tuple(a for a in self.aliases if not _is_glob(a))

    @property
    def wild_aliases(self) -> tuple[str, ...]:
        return tuple(a for a in self.aliases if _is_glob(a))


def _is_glob(name: str) -> bool:
    return "*" in name or "?" in name


@dataclass(frozen=True)
class Listen:
    host: str | None
    port: int
    protocol: str | None
    where: str


@dataclass(frozen=True)
class Mention:
    """A directive certwright leaves alone (``Use``, ``MDomain``), with where it is."""

    name: str
    args: tuple[str, ...]
    where: str


@dataclass(frozen=True)
class ApacheConfig:
    """Everything the reader found, after conditions were evaluated."""

    server_root: str
    main_file: str
    layout: str
    files: tuple[str, ...]
    """Every file read, in the order Apache reads them."""
    modules: frozenset[str]
    """Loaded modules by identifier (``ssl_module``) and source name (``mod_ssl.c``)."""
    defines: dict[str, str]
    main_server_name: str | None
    vhosts: tuple[VirtualHost, ...]
    dormant: tuple[tuple[VirtualHost, str], ...]
    """Vhosts inside a condition that is false, with the condition (``IfModule mod_ssl.c``)."""
    listens: tuple[Listen, ...]
    uses: tuple[Mention, ...]
    mdomains: tuple[Mention, ...]
    not_loaded: tuple[str, ...] = ()
    """Files in the layout's ``sites-enabled`` that no ``Include`` reaches."""
    warnings: tuple[str, ...] = field(default=())
    top_includes: tuple[str, ...] = ()
    """``Include``/``IncludeOptional`` patterns read at server level (absolute, as
    written): a new vhost file is loaded only where one of them matches its path."""

    def includes_path(self, path: str) -> bool:
        """Whether a file at ``path`` would be read by a server-level ``Include``."""
        path = os.path.normpath(path)
        for pattern in self.top_includes:
            if any(c in pattern for c in "*?["):
                parts, want = path.split(os.sep), pattern.split(os.sep)
                if len(parts) == len(want) and all(
                        fnmatch.fnmatchcase(p, w) for p, w in zip(parts, want, strict=True)):
                    return True
            elif path == pattern or os.path.dirname(path) == pattern:
                return True
        return False
