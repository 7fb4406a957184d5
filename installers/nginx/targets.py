"""Where a certificate goes in nginx: which server blocks a deploy changes, and where the
new certificate should then be served (checked by handshake). Pure functions over the
parsed tree; the edits themselves are planned in :mod:`.plan`.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass

from certwright.core.interfaces import DeployRequest, Endpoint
from certwright.core.serverkit import probe_host
from certwright.installers.nginx.select import covers, select_blocks
from certwright.installers.nginx.tree import (
    Directive,
    Listen,
    NginxTree,
    ServerBlock,
    is_https_redirect,
)

REDIRECT_VAR = "$certwright_redirect"
REDIRECT_PREFIX = "redirect-"


@dataclass(frozen=True)
class Layout:
    """Where certwright keeps its own nginx files, under the server root."""

    server_root: str

    @property
    def managed_dir(self) -> str:
        return os.path.join(self.server_root, "certwright")

    @property
    def options_file(self) -> str:
        return os.path.join(self.managed_dir, "options-ssl-nginx.conf")

    @property
    def servers_dir(self) -> str:
        return os.path.join(self.managed_dir, "servers")

    @property
    def challenges_dir(self) -> str:
        return os.path.join(self.managed_dir, "challenges")

    @property
    def challenge_file(self) -> str:
        return os.path.join(self.challenges_dir, "http01.conf")

    def redirect_file(self, name: str) -> str:
        return self.server_file(f"{REDIRECT_PREFIX}{name}")

    def is_redirect_file(self, path: str) -> bool:
        """``path``: a real path (as the tree keeps them)."""
        return (os.path.basename(path).startswith(REDIRECT_PREFIX)
                and os.path.dirname(path) == self.servers_real)

    @functools.cached_property
    def servers_real(self) -> str:
        return os.path.realpath(self.servers_dir)

    def server_file(self, name: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name.replace("*", "wildcard")).lstrip(".")
        return os.path.join(self.servers_dir, f"{safe or 'server'}.conf")


# -- where a certificate goes -------------------------------------------------------------
@dataclass(frozen=True)
class DeployTargets:
    """``https``: blocks already serving TLS for some names; ``http``: plain blocks that
    gain TLS; ``unmatched``: names no block answers (they get a new block)."""

    https: tuple[tuple[ServerBlock, tuple[str, ...]], ...]
    http: tuple[tuple[ServerBlock, tuple[str, ...]], ...]
    unmatched: tuple[str, ...]
    held: tuple[tuple[str, ServerBlock], ...] = ()
    """Names another certificate's managed block serves, left with it."""


def loops_over_https(block: ServerBlock) -> bool:
    """Whether a redirect to https in ``block`` would answer https with itself: one to the
    same host (``$host``, ``$server_name``, one of the block's names) that fires whatever
    the scheme (a plain ``return 301 https://$host…``, Certbot's ``if ($host = …)``). TLS
    added to such a block would loop. An ``if`` testing ``$scheme``/``$https``
    (certwright's own redirect) does not fire over https; a redirect to another host (www
    to the apex) does not loop."""
    for item in block.redirects:
        if item.name == "if" and any("$scheme" in a or "$https" in a or REDIRECT_VAR in a
                                     for a in item.args):
            continue
        inner = (item.block or ()) if item.block is not None else ()
        for target in (item, *inner):
            host = _redirect_host(target)
            if host is not None and (host == "$" or host in block.server_names):
                return True
    return False


def _redirect_host(item: Directive) -> str | None:
    """The host an https redirect statement sends to (lower case), else None."""
    if not is_https_redirect(item):
        return None
    args = item.args
    rest = (args[-1] if item.name == "return" else args[1]).lower().removeprefix("https://")
    if rest.startswith("$"):  # $host, $server_name, $http_host: the same host
        return "$"
    return re.split(r"[/:$?]", rest, maxsplit=1)[0].rstrip(".")


def _user_blocks(tree: NginxTree, layout: Layout, own: str) -> list[ServerBlock]:
    """The blocks a deploy may target or copy: all but ``own`` (the managed file being
    written) and certwright's redirect blocks, which answer names over http but are no
    place for TLS and no model for content."""
    return [b for b in tree.servers if not _managed_block(tree, b, own)
            and not layout.is_redirect_file(tree.files[b.file].real_path)]


def _managed_block(tree: NginxTree, block: ServerBlock, path: str) -> bool:
    return bool(path) and tree.files[block.file].real_path == os.path.realpath(path)


def _taken_over(tree: NginxTree, path: str, cert_name: str) -> bool:
    """Whether certwright's block file ``path`` for ``cert_name`` now serves another
    certificate (one that covered all its names was installed after it)."""
    real = os.path.realpath(path)
    found = [d for b in tree.servers if tree.files[b.file].real_path == real
             for d in b.ssl_certificates]
    return bool(found) and not any(_names_lineage(d, cert_name) for d in found)


def _names_lineage(directive: Directive, cert_name: str) -> bool:
    """Whether a certificate line points into ``live/<cert_name>/``."""
    return bool(directive.args) and f"/live/{cert_name}/" in directive.args[0]


def resolve_deploy(tree: NginxTree, req: DeployRequest, layout: Layout) -> DeployTargets:
    own = layout.server_file(req.cert_name)
    if not req.takeover and _taken_over(tree, own, req.cert_name):
        own = ""  # a renewal leaves it to the certificate that took it: its names are held
    blocks = _user_blocks(tree, layout, own)
    https: dict[int, tuple[ServerBlock, list[str]]] = {}
    http: dict[int, tuple[ServerBlock, list[str]]] = {}
    unmatched: list[str] = []
    held: list[tuple[str, ServerBlock]] = []
    for name in req.domains:
        matches = select_blocks(blocks, name, req.https_port, ssl=True, fallback=False)
        # another certificate's managed block is taken over only when this certificate
        # covers all its names (a renamed lineage); else the name stays with it, or the
        # two certificates would take turns in it, one renewal after another
        kept = tuple(m for m in matches if _held_by_another(tree, layout, m.block, req))
        if kept and len(kept) == len(matches):
            held.append((name, kept[0].block))
            continue
        matches = tuple(m for m in matches if m not in kept)
        into = https
        if not matches:  # a block whose redirect fires over https too would loop there
            matches = tuple(m for m in select_blocks(blocks, name, req.http_port, ssl=False,
                                                     fallback=False)
                            if not loops_over_https(m.block))
            into = http
        for match in matches:
            into.setdefault(match.block.order, (match.block, []))[1].append(name)
        if not matches:
            unmatched.append(name)
    for order, (_, names) in list(http.items()):
        if order in https:  # a block with TLS already: only its certificate changes
            https[order][1].extend(names)
            del http[order]
    return DeployTargets(
        tuple((b, tuple(n)) for b, n in sorted(https.values(), key=lambda e: e[0].order)),
        tuple((b, tuple(n)) for b, n in sorted(http.values(), key=lambda e: e[0].order)),
        tuple(unmatched),
        tuple(held),
    )


def _held_by_another(tree: NginxTree, layout: Layout, block: ServerBlock,
                     req: DeployRequest) -> bool:
    """A block certwright made for another certificate (or for this one, since taken
    over): kept by it during renewals, taken over by an install that covers all its
    names (a renamed lineage)."""
    path = tree.files[block.file].real_path
    managed = os.path.dirname(path) == layout.servers_real
    if not managed or any(_names_lineage(d, req.cert_name) for d in block.ssl_certificates):
        return False
    return not req.takeover or not all(covers(req.domains, n) for n in block.server_names)


def _listen_arg(host: str, port: int) -> str:
    return str(port) if host == "*" else f"{host}:{port}"


def _tls_hosts(block: ServerBlock, http_port: int) -> list[tuple[str, Listen | None]]:
    """Addresses a plain block gains TLS on: those it listens on for http."""
    out: list[tuple[str, Listen | None]] = []
    for item in block.listens_on(http_port):
        if not item.unix and all(item.host != host for host, _ in out):
            out.append((item.host, item))
    return out or [("*", None)]


def _listens_on(tree: NginxTree, port: int) -> dict[str, Listen]:
    found: dict[str, Listen] = {}
    for block in tree.servers:
        for item in block.listens_on(port):
            if not item.unix:
                found.setdefault(item.host, item)
    return found


def _new_block_listens(tree: NginxTree, port: int, *also: int) -> list[tuple[str, Listen | None]]:
    """Addresses for a new block on ``port``: every address the config already uses for
    ``port`` (else for the ports in ``also``), so it joins each of those groups, each with
    a listen it was seen on."""
    for candidate in (port, *also):
        found = _listens_on(tree, candidate)
        if found:
            return list(found.items())
    v6 = any(item.ipv6 for block in tree.servers for item in block.listens)
    return [("*", None), ("[::]", None)] if v6 else [("*", None)]


def _new_block_hosts(tree: NginxTree, port: int, *also: int) -> list[str]:
    return [host for host, _ in _new_block_listens(tree, port, *also)]


def _probe_name(name: str) -> str:
    return "certwright-probe." + name[2:] if name.startswith("*.") else name


def deploy_endpoints(tree: NginxTree, req: DeployRequest, layout: Layout) -> list[Endpoint]:
    """Where, once the deploy plan is applied, each name should be served over TLS: one
    address per block (IPv4 first; a wildcard becomes loopback). Addresses whose https
    listens expect a PROXY protocol header (nginx applies it to the whole address and
    port) are left out: a plain handshake there fails whatever is served."""
    targets = resolve_deploy(tree, req, layout)
    proxied = proxied_hosts(tree, req.https_port)
    entries: list[tuple[list[str], tuple[str, ...]]] = []
    for block, names in targets.https:
        hosts = [i.host for i in block.listens_on(req.https_port, ssl=True) if not i.unix]
        entries.append((hosts, names))
    for block, names in targets.http:
        entries.append(([h for h, _ in _tls_hosts(block, req.http_port)], names))
    if targets.unmatched:
        hosts = _new_block_hosts(tree, req.https_port, req.http_port)
        entries.append((hosts, targets.unmatched))
    out: list[Endpoint] = []
    for hosts, names in entries:
        hosts = [h for h in hosts if h not in proxied]
        if not hosts:
            continue
        host = sorted(hosts, key=lambda h: h.startswith("["))[0]
        for name in names:
            endpoint = Endpoint(probe_host(host), req.https_port, _probe_name(name))
            if endpoint not in out:
                out.append(endpoint)
    return out




def proxied_hosts(tree: NginxTree, port: int) -> set[str]:
    """Addresses where a listen on ``port`` expects the PROXY protocol."""
    return {i.host for b in tree.servers for i in b.listens_on(port)
            if "proxy_protocol" in i.params}
