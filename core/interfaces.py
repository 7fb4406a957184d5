"""Contracts between the core and its plugins (authenticators, installers).

Plugins are found through the entry-point groups ``certwright.authenticators`` and
``certwright.installers``. A plugin class is constructed with the parsed command-line
namespace (``config``) and reads its own options from it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from certwright.core.settings import Settings

if TYPE_CHECKING:
    from certwright.core.http01 import Probe
    from certwright.core.options import PluginOption as PluginOption  # declared options

from certwright.core.acme.identifiers import Identifier as Identifier  # plugins import it here


def __getattr__(name: str) -> Any:
    """``PluginOption`` for plugins, loaded when asked for (verbs without plugins never
    need it)."""
    if name == "PluginOption":
        from certwright.core.options import PluginOption

        return PluginOption
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

AddArgument = Callable[..., Any]
"""``argparse`` ``add_argument`` of the group a plugin adds its options to."""


@dataclass(frozen=True)
class ChallengeTask:
    """One challenge to fulfil.

    ``validation`` is what the CA checks: for http-01 the key authorization served at
    ``/.well-known/acme-challenge/<token>`` (RFC 8555 §8.3); for dns-01 the base64url
    SHA-256 digest of it, published as a TXT record at ``_acme-challenge.<domain>`` (§8.4);
    for tls-alpn-01 the key authorization whose digest goes into the certificate (RFC 8737).
    """

    identifier: Identifier
    challenge_type: str
    token: str
    key_authorization: str
    validation: str
    all_domains: tuple[str, ...] = ()
    remaining: int = 0

    @property
    def domain(self) -> str:
        return self.identifier.base

    @property
    def validation_name(self) -> str:
        """The DNS name a dns-01 TXT record goes to."""
        return "_acme-challenge." + self.domain


@runtime_checkable
class Authenticator(Protocol):
    """Proves control of identifiers to the CA.

    ``present`` MUST return quickly (seconds): the core presents every challenge of an
    order, then tells the CA to validate (RFC 8555 §7.5.1); waiting until a challenge is
    answerable is :class:`SupportsWaitReady`'s. ``cleanup`` is called for every task passed
    to ``present`` (also when ``present`` raised) and must not fail because ``present``
    did; the core calls it once the authorization is final (§7.1.6), valid or not.

    ``__init__`` only reads options: it may be called for an instance that is dropped
    unused (see :class:`SupportsShare`); ``prepare`` does the work of getting ready.

    Optional capabilities, each a small Protocol below: :class:`SupportsPresentAll`
    (every challenge of an order at once), :class:`SupportsWaitReady` (wait for
    propagation with a timeout of its own), :class:`SupportsShare` (one instance serves
    several lineages) and :class:`SupportsSerial` (renewals through what it edits take
    turns).
    """

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, config: Settings) -> None: ...

    @classmethod
    def add_arguments(cls, add: AddArgument) -> None:
        """Add this plugin's own command-line options (Certbot's names where they exist).
        A plugin may declare them instead, typed, as ``typed_options``: a tuple of
        :class:`PluginOption` on the class (the renewal conf is read back as those types)."""

    def prepare(self) -> None:
        """Check options and environment before any order is placed; raise PluginError."""

    def challenge_types(self, identifier: Identifier) -> Sequence[str]:
        """Challenge types this authenticator can fulfil for ``identifier``, best first."""

    def present(self, task: ChallengeTask) -> None: ...

    def cleanup(self, task: ChallengeTask) -> None: ...

    def renewal_params(self) -> Mapping[str, object]:
        """Options to store in the lineage's renewal conf so a renewal can run unattended."""


@runtime_checkable
class SupportsPresentAll(Protocol):
    """An authenticator that sets up all challenges of an order in one go (one DNS zone
    update, one server reload) instead of one ``present`` per task.

    ``present_all`` gets every pending challenge of the order (RFC 8555 §7.5.1) before the
    core tells the CA to validate any of them: the CA may check a challenge as soon as it
    is answered, and for dns-01 (§8.4) a record published later could be missed by a
    resolver that cached the name's TXT set. It MUST return quickly (seconds, not
    propagation time; that is :meth:`SupportsWaitReady.wait_ready`'s). ``cleanup`` is then
    called for every task passed, also when ``present_all`` raised.
    """

    def present_all(self, tasks: Sequence[ChallengeTask]) -> None: ...


@runtime_checkable
class SupportsWaitReady(Protocol):
    """An authenticator whose challenges become answerable only some time after they are
    presented (DNS propagation to the authoritative servers, a CDN picking a file up).

    The core calls ``wait_ready`` once, after every task was presented and before any
    challenge is answered (RFC 8555 §7.5.1: the client responds once it believes the
    server can validate). ``deadline`` is a ``time.monotonic()`` value given by the ready
    timeout (``Options.ready_timeout``), separate from the issuance timeout, which does
    not run while this waits. It MUST return by ``deadline``: normally once every
    challenge is answerable, or raise PluginError naming what is still missing. Returning
    early with some not ready is allowed (the CA has the last word).
    """

    def wait_ready(self, tasks: Sequence[ChallengeTask], deadline: float) -> None: ...


@runtime_checkable
class SupportsShare(Protocol):
    """An authenticator of which one prepared instance may serve several lineages at once
    (parallel ``renew --jobs``): the standalone server on one address and port.

    ``share_key`` is called on a fresh instance, before ``prepare``. Instances giving equal
    keys are interchangeable: the core prepares the first and hands it to every lineage
    whose instance gives the same key, from several threads at once (``present`` and
    ``cleanup`` must be thread-safe); the others are dropped unprepared. The key must hold
    everything that makes instances differ: two lineages with different DNS credentials
    give different keys. None: this instance is not shared.
    """

    def share_key(self) -> Hashable | None: ...


@runtime_checkable
class SupportsSerial(Protocol):
    """An authenticator whose challenges edit something that one renewal at a time may
    change (one server's configuration, reloaded for each change).

    ``serial_key`` names that target, e.g. ``("nginx", <real path of its server root>)``:
    parallel renewals whose authenticators give equal keys take turns proving control;
    different keys (two nginx trees) run at the same time. None: no turns needed.
    """

    def serial_key(self) -> Hashable | None: ...


def share_key(auth: object) -> Hashable | None:
    """``auth``'s share key; None (not shared) for an authenticator without one."""
    return auth.share_key() if isinstance(auth, SupportsShare) else None


def serial_key(auth: object) -> Hashable | None:
    """``auth``'s serial key; None (no turns) for an authenticator without one."""
    return auth.serial_key() if isinstance(auth, SupportsSerial) else None


@dataclass
class PluginInfo:
    """What ``certwright plugins`` shows about one entry point."""

    name: str
    group: str
    target: str
    description: str = ""
    error: str | None = None
    cls: type[Any] | None = field(default=None, repr=False)


# -- installers ---------------------------------------------------------------------------
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


@runtime_checkable
class Installer(Protocol):
    """Puts certificates into one kind of server. Reads config, plans, never writes.

    ``prepare`` raises PluginError when the server is not installed or its config does
    not parse (naming the file and line). ``config_test`` runs the server's own check
    (``nginx -t``…) and raises PluginError with its output; ``reload`` makes the running
    server pick the config up.
    """

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, config: Settings) -> None: ...

    @classmethod
    def add_arguments(cls, add: AddArgument) -> None: ...

    def prepare(self) -> None: ...

    def discover_names(self) -> set[str]: ...

    def plan_deploy(self, req: DeployRequest) -> ChangePlan: ...

    def endpoints(self, req: DeployRequest) -> Sequence[Endpoint]:
        """Where to verify by handshake that the new certificate is served (may be empty)."""

    def config_test(self) -> None: ...

    def reload(self) -> None: ...

    def renewal_params(self) -> Mapping[str, object]: ...


@runtime_checkable
class SupportsEnhancements(Protocol):
    def supported_enhancements(self) -> frozenset[str]: ...

    def plan_enhance(self, req: EnhanceRequest) -> ChangePlan: ...


@runtime_checkable
class SupportsKeyTypes(Protocol):
    """An installer that can tell, while planning, whether the places a deploy would put a
    certificate can serve its key type."""

    def key_type_problem(self, req: DeployRequest, key_type: str) -> str | None:
        """Why a certificate whose key is ``key_type`` (``rsa`` or ``ecdsa``) could not be
        served where ``req`` puts it, naming the file and line; None when it could."""


@runtime_checkable
class SupportsHttp01(Protocol):
    """An installer that can serve http-01 tokens through its own server."""

    def plan_http01(self, tasks: Sequence[ChallengeTask]) -> ChangePlan: ...


@runtime_checkable
class Http01Server(SupportsHttp01, Protocol):
    """The challenge contract of an installer-authenticator (``--nginx`` as authenticator).

    It gives what is specific to its server; :mod:`certwright.core.challenge_session`
    applies the plan (a temporary transaction), runs ``config_test`` and ``reload``, waits
    until every probe is answered, and always rolls back (also on SIGINT/SIGTERM).
    ``plan_http01`` answers every task given (a later plan replaces an earlier one).
    """

    name: ClassVar[str]

    def http01_probes(self, tasks: Sequence[ChallengeTask]) -> Sequence[Probe]:
        """Where the server should answer each task once the plan is live (the readiness
        check: ``GET`` with the task's ``Host`` at each address); may be empty."""

    def config_test(self) -> None: ...

    def reload(self) -> None:
        """Make the running server use the config, returning once it does (bounded)."""


@runtime_checkable
class SupportsActivate(Protocol):
    """An installer that can make a committed change live without reloading the server
    (HAProxy's runtime API ``set ssl cert`` / ``commit ssl cert``).

    ``activate(plan)`` is called instead of ``reload`` once ``plan`` is applied, config
    tested and committed; the core then verifies by handshake that the new certificate is
    served. If it raises, the core falls back to ``reload`` (which must give the same
    result: the files on disk are the truth, the runtime state only a faster way there).
    It must not write files itself. A plan with no changes is activated too (the files
    named in ``live/`` changed under it).
    """

    def activate(self, plan: ChangePlan) -> None: ...


@runtime_checkable
class SupportsDelete(Protocol):
    """An installer that can take a deleted certificate out of its server's configuration."""

    def plan_forget(self, cert_name: str, domains: Sequence[str]) -> ChangePlan:
        """Remove what the installer itself created for the certificate ``cert_name`` of
        ``domains`` (never users' files)."""

    def references(self, prefix: str) -> list[str]:
        """``file:line`` of each configuration line naming a path under ``prefix``."""
