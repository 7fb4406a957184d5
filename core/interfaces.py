"""Contracts between the core and its plugins (authenticators, installers).

Plugins are found through the entry-point groups ``certwright.authenticators`` and
``certwright.installers``. A plugin class is constructed with the parsed command-line
namespace (``config``) and reads its own options from it.

The installers' value types (``FileChange``, ``ChangePlan``, ``DeployRequest``, …) live in
:mod:`certwright.core.installer_types` and are importable from here as well; that module
loads when one of them is first asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol, runtime_checkable

from certwright.core.settings import Settings

if TYPE_CHECKING:
    from certwright.core.http01 import Probe
    from certwright.core.installer_types import FILE as FILE
    from certwright.core.installer_types import SYMLINK as SYMLINK
    from certwright.core.installer_types import ChangePlan as ChangePlan
    from certwright.core.installer_types import DeployRequest as DeployRequest
    from certwright.core.installer_types import Endpoint as Endpoint
    from certwright.core.installer_types import EnhanceRequest as EnhanceRequest
    from certwright.core.installer_types import FileChange as FileChange
    from certwright.core.installer_types import link_digest as link_digest
    from certwright.core.options import PluginOption as PluginOption  # declared options

from certwright.core.acme.identifiers import Identifier as Identifier  # plugins import it here

_INSTALLER_TYPES = frozenset({"FILE", "SYMLINK", "link_digest", "FileChange", "ChangePlan",
                              "Endpoint", "DeployRequest", "EnhanceRequest"})


def __getattr__(name: str) -> Any:
    """``PluginOption`` and the installers' value types (:mod:`installer_types`), loaded
    when first asked for: verbs that install nothing never need them."""
    if name == "PluginOption":
        from certwright.core.options import PluginOption

        return PluginOption
    if name in _INSTALLER_TYPES:
        from certwright.core import installer_types

        return getattr(installer_types, name)
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


class PluginInfo(NamedTuple):
    """What ``certwright plugins`` shows about one entry point."""

    name: str
    group: str
    target: str
    description: str = ""
    error: str | None = None
    cls: type[Any] | None = None


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
