"""The values installers hand the core and the core hands installers: change plans,
deploy and enhance requests, endpoints to verify.

Re-exported by :mod:`certwright.core.interfaces` (where the installer Protocols are), which
loads this module only when one of these names is first asked for: a command that
installs nothing (``certonly`` with webroot, ``renew`` of such lineages) never builds
these dataclasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FILE, SYMLINK = "file", "symlink"


def link_digest(target: str) -> str:
    """What ``expected_sha256`` holds for a symlink to ``target`` (a digest of the link
    itself, never of what it points to)."""
    import hashlib

    return hashlib.sha256(b"symlink\0" + target.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class FileChange:
    """One file or symlink in a plan, and the SHA-256 of what it must replace.

    ``kind="file"`` (the default): ``new_content`` is the new bytes, or None to remove the
    file; ``expected_sha256=None`` means it must not exist yet (it is created with ``mode``;
    an existing file keeps its mode and owner). A symlinked file is written through to its
    target.

    ``kind="symlink"``: ``path`` itself becomes a symlink to ``link_target`` (None removes
    it), like ``sites-enabled/x.conf -> ../sites-available/x.conf``; ``expected_sha256`` is
    :func:`link_digest` of the link it replaces (or None: nothing is there). Build these
    with :meth:`symlink` and :meth:`remove_symlink`.

    ``owner`` and ``group`` (a name or a numeric id) are given to a file this change
    creates. ``secret`` marks a private key or a file holding credentials: it is created
    0600 whatever ``mode`` says, and it is never shown in a ``--dry-run`` diff. (Backups of
    every replaced file are 0600 in a 0700 journal.)
    """

    path: str
    new_content: bytes | None
    expected_sha256: str | None
    mode: int = 0o644
    kind: str = FILE
    link_target: str | None = None
    owner: str | int | None = None
    group: str | int | None = None
    secret: bool = False

    def __post_init__(self) -> None:
        from certwright.core.errors import PluginError

        if self.kind not in (FILE, SYMLINK):
            raise PluginError(f"{self.path}: unknown change kind {self.kind!r}")
        if self.kind == SYMLINK and self.new_content is not None:
            raise PluginError(f"{self.path}: a symlink change has a link target, not content")
        if self.kind == FILE and self.link_target is not None:
            raise PluginError(f"{self.path}: a file change has content, not a link target")
        if not 0 <= self.mode <= 0o7777:
            raise PluginError(f"{self.path}: mode {self.mode!r} is not a file mode")
        _refuse_control([("path", self.path), ("link target", self.link_target or "")])

    @property
    def create_mode(self) -> int:
        return 0o600 if self.secret else self.mode

    @classmethod
    def symlink(cls, path: str, target: str, *, replaces: str | None = None) -> FileChange:
        """Make ``path`` a symlink to ``target`` (``replaces``: the target of the link
        there now, if any)."""
        return cls(path, None, None if replaces is None else link_digest(replaces),
                   kind=SYMLINK, link_target=target)

    @classmethod
    def remove_symlink(cls, path: str, target: str) -> FileChange:
        """Remove the symlink ``path``, which must point to ``target``."""
        return cls(path, None, link_digest(target), kind=SYMLINK)


@dataclass(frozen=True)
class ChangePlan:
    """What an installer wants done, as data. Installers never write files themselves."""

    title: str
    changes: tuple[FileChange, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.changes


@dataclass(frozen=True)
class Endpoint:
    """Where the server should now answer TLS for ``server_name`` (checked by handshake),
    and how to reach the handshake: one of ``certwright.core.probe.PROTOCOLS`` (``https``,
    ``smtps``, ``imaps``, ``pop3s``: TLS at once; ``smtp-starttls``, ``imap-starttls``,
    ``pop3-starttls``, ``sieve``: plain text, then STARTTLS)."""

    host: str
    port: int
    server_name: str
    protocol: str = "https"


@dataclass(frozen=True)
class DeployRequest:
    """Install one certificate for ``domains``; paths point into ``live/``."""

    cert_name: str
    domains: tuple[str, ...]
    cert_path: str
    key_path: str
    chain_path: str
    fullchain_path: str
    https_port: int = 443
    http_port: int = 80
    takeover: bool = True
    """False for the install after a renewal: a block the installer made for this
    certificate and another certificate has since taken over stays with that one."""

    def __post_init__(self) -> None:
        """No control character in any field (see _refuse_control)."""
        _refuse_control([("certificate name", self.cert_name),
                         *(("name", d) for d in self.domains),
                         ("certificate path", self.cert_path), ("key path", self.key_path),
                         ("chain path", self.chain_path),
                         ("fullchain path", self.fullchain_path)])


@dataclass(frozen=True)
class EnhanceRequest:
    """Turn on ``enhancements`` (``redirect``, ``hsts``, ``uir``) for ``domains``."""

    domains: tuple[str, ...]
    enhancements: frozenset[str]
    https_port: int = 443
    http_port: int = 80

    def __post_init__(self) -> None:
        _refuse_control([("name", d) for d in self.domains])


def _refuse_control(fields: Sequence[tuple[str, str]]) -> None:
    """Request fields end up in a server's config: a control character (a newline starts
    a new directive) is refused, whoever built the request."""
    from certwright.core.errors import PluginError
    from certwright.core.names import has_control

    for what, value in fields:
        if has_control(value):
            raise PluginError(f"refusing to change the server's config: the {what} {value!r} "
                              "holds a control character")
