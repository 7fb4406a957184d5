"""Which key types a server block can serve: its ``ssl_ciphers`` and ``ssl_protocols``.

Over TLS 1.3 any certificate works (``ssl_ciphers`` does not touch TLS 1.3 suites). A block
whose protocols stop at TLS 1.2 can serve an ECDSA certificate only with an ECDSA cipher
(``ECDHE-ECDSA-…``) and an RSA one only with an RSA cipher; a block allowing only
``ECDHE-RSA-…`` ciphers would fail every handshake with an ECDSA certificate. The cipher
list is expanded by this machine's OpenSSL (nginx's own, as packaged); a list it cannot
read is left to ``nginx -t``.

Settings are the block's own (through its includes), else those of the ``http`` block,
else nginx's defaults (``HIGH:!aNULL:!MD5``, every protocol to TLS 1.3). A plain block
that gains TLS with certwright's options file gets that file's settings, which serve both.

A block may name one certificate per key type (``ssl_certificate`` may repeat; each pairs
with the ``ssl_certificate_key`` at the same position; of two of one type nginx serves the
later): a deploy replaces the pair of the new certificate's key type.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING

from certwright.core.interfaces import DeployRequest
from certwright.installers.nginx.tree import Directive, NginxTree, ServerBlock

if TYPE_CHECKING:
    from certwright.installers.nginx.targets import Layout

AUTH = {"ecdsa": "auth-ecdsa", "rsa": "auth-rsa"}
LABEL = {"ecdsa": "ECDSA", "rsa": "RSA"}


def key_type_problem(tree: NginxTree, blocks: Sequence[tuple[ServerBlock, bool]],
                     key_type: str) -> str | None:
    """Why a certificate with a ``key_type`` key can't be served by one of ``blocks``
    (each with whether it keeps its own TLS settings), naming the ``ssl_ciphers`` line;
    None when every block can."""
    for block, own_settings in blocks:
        if not own_settings:
            continue
        problem = _block_problem(tree, block, key_type)
        if problem is not None:
            return problem
    return None


def _setting(tree: NginxTree, block: ServerBlock, name: str) -> Directive | None:
    found = [d for d in block.directives if d.name == name]
    if not found:
        found = [d for d in tree.http_statements if d.name == name]
    return found[-1] if found else None


def _block_problem(tree: NginxTree, block: ServerBlock, key_type: str) -> str | None:
    ciphers = _setting(tree, block, "ssl_ciphers")
    if ciphers is None or not ciphers.args:
        return None  # nginx's default list serves both
    protocols = _setting(tree, block, "ssl_protocols")
    if protocols is None or "TLSv1.3" in protocols.args:
        return None
    auths = _auths(ciphers.args[0])
    if auths is None or AUTH[key_type] in auths:
        return None
    return (f"{ciphers.where}: ssl_ciphers allows no {LABEL[key_type]} certificate over "
            f"{' '.join(protocols.args)} ({protocols.where}), so the server block at "
            f"{block.where} could not serve one")


def _auths(ciphers: str) -> set[str] | None:
    """The authentication kinds of ``ciphers`` below TLS 1.3; None when OpenSSL can't
    read the list."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.set_ciphers(ciphers)
    except ssl.SSLError:
        return None
    return {str(c["auth"]) for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3"}


def deploy_problem(tree: NginxTree, req: DeployRequest, layout: Layout,
                   key_type: str) -> str | None:
    """:func:`key_type_problem` for the blocks a deploy of ``req`` would change."""
    from certwright.installers.nginx.plan import OPTION_NAMES
    from certwright.installers.nginx.targets import resolve_deploy

    targets = resolve_deploy(tree, req, layout)
    blocks = [(b, True) for b, _ in targets.https]
    blocks += [(b, any(d.name in OPTION_NAMES for d in b.directives))
               for b, _ in targets.http]
    return key_type_problem(tree, blocks, key_type)


def key_type_of(path: str) -> str | None:
    """``rsa`` or ``ecdsa``: the key type of the (first) certificate in the PEM file at
    ``path``; None when it can't be read."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        with open(path, "rb") as handle:
            public = x509.load_pem_x509_certificate(handle.read()).public_key()
    except (OSError, ValueError):
        return None
    if isinstance(public, rsa.RSAPublicKey):
        return "rsa"
    return "ecdsa" if isinstance(public, ec.EllipticCurvePublicKey) else None


def same_type_index(tree: NginxTree, found: Sequence[Directive], cert_path: str) -> int | None:
    """Of several ``ssl_certificate`` lines (nginx serves one per key type, paired with
    the ``ssl_certificate_key`` line of the same position), the one whose certificate has
    the key type of the one at ``cert_path``; None when that can't be told."""
    wanted = key_type_of(cert_path)
    if wanted is None:
        return None
    for index, item in enumerate(found):
        if item.args and key_type_of(tree.resolve(item.args[0])) == wanted:
            return index
    return None
