"""Plan the install before the order: what the installer would refuse after issuing
(a configuration it can't edit, a key type the server can't serve) is refused first, so no
certificate is wasted, no rate limit spent, and ``--dry-run`` contacts no CA to find out.

For ``run`` and ``certonly -i``: the installer plans the deploy of the certificate the
order would bring (its ``live/`` paths; the plan is thrown away), and an installer that
knows its server's TLS settings (:class:`~certwright.core.interfaces.SupportsKeyTypes`)
says whether the key type fits. A key type given (``--key-type``, a configuration file,
or an existing certificate's, which stays) must fit; without one the default (``ecdsa``)
gives way to ``rsa`` when only RSA fits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from certwright.core import names
from certwright.core.errors import PluginError
from certwright.core.interfaces import (
    Authenticator,
    ChallengeTask,
    Identifier,
    Installer,
    SupportsHttp01,
    SupportsKeyTypes,
)
from certwright.core.settings import Settings
from certwright.core.storage.lineage import Lineage

if TYPE_CHECKING:
    from certwright.core.installer_types import DeployRequest

Say = Callable[[str], None]
KEY_TYPES = ("ecdsa", "rsa")


def check(config: Settings, installer: Installer, say: Say) -> Settings:
    """Raise the installer's refusal (PluginError) before any order. Returns the settings
    to go on with: with ``key_type`` ``rsa`` when none was given and only RSA fits."""
    from certwright.core.verbs import install, issue

    target = issue.choose_target(config, names.parse_domains(config.domains))
    if target.action == "keep":
        return config  # nothing is ordered
    req = install._would_be(config, target)
    installer.plan_deploy(req)
    if not isinstance(installer, SupportsKeyTypes):
        return config
    given = _given_key_type(config, target.lineage)
    if given is not None:
        problem = installer.key_type_problem(req, given)
        if problem is not None:
            other = next(t for t in KEY_TYPES if t != given)
            hint = ""
            if installer.key_type_problem(req, other) is None:
                hint = f"; give --key-type {other}"
                if target.lineage is not None:
                    hint += f" --cert-name {target.lineage.name} to change its key type"
            raise PluginError(problem + hint)
        return config
    problem = installer.key_type_problem(req, "ecdsa")
    if problem is None:
        return config
    if installer.key_type_problem(req, "rsa") is not None:
        raise PluginError(problem)
    say(f"Using an RSA key: {problem}.")
    return config.derive(key_type="rsa")


def _given_key_type(config: Settings, lineage: Lineage | None) -> str | None:
    """The key type this run will use when something decides it: an existing
    certificate's (unless --key-type changes it), else the configured one."""
    if lineage is not None and not config.given("key_type"):
        from cryptography.hazmat.primitives.asymmetric import rsa

        public = lineage.certificate.public_key()
        return "rsa" if isinstance(public, rsa.RSAPublicKey) else "ecdsa"
    return config.key_type or None


def check_certificate(installer: Installer, req: DeployRequest) -> None:
    """Before installing ``req``'s certificate: refuse, saying why, when the places it
    goes can't serve its key type (else the handshake check after the reload fails with
    only a TLS alert). A certificate not there yet (a dry run's) is not checked."""
    if not isinstance(installer, SupportsKeyTypes):
        return
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        with open(req.cert_path, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
    except (OSError, ValueError):
        return  # the deploy reports an unreadable certificate itself
    key_type = "rsa" if isinstance(cert.public_key(), rsa.RSAPublicKey) else "ecdsa"
    problem = installer.key_type_problem(req, key_type)
    if problem is not None:
        raise PluginError(f"{problem} (the certificate {req.cert_path} has an "
                          f"{key_type.upper()} key)")


PLACEHOLDER_TOKEN = "certwright-preflight"


def check_challenges(auth: Authenticator, idents: list[Identifier],
                     preferred: Sequence[str] | None) -> None:
    """An authenticator that answers http-01 through its server's configuration plans
    that change for placeholder tokens before the order: a configuration it can't edit
    is refused before authorizations are created (the plan is thrown away)."""
    if not isinstance(auth, SupportsHttp01) or (preferred and "http-01" not in preferred):
        return
    key_authorization = f"{PLACEHOLDER_TOKEN}.preflight"
    tasks = [ChallengeTask(i, "http-01", PLACEHOLDER_TOKEN, key_authorization,
                           key_authorization)
             for i in idents if "http-01" in auth.challenge_types(i)]
    if tasks:
        auth.plan_http01(tasks)
