"""Plans for nginx: deploy a certificate, enhance server blocks, serve http-01 tokens.

Pure functions from a parsed :class:`~certwright.installers.nginx.tree.NginxTree` (and a
``read`` callable for the few files certwright manages itself) to a ``ChangePlan`` holding
whole new file contents. Edits are line-anchored (see :mod:`.edit`), so everything the plan
does not touch stays byte-identical.

**Deploy.** For each name of the certificate, in this order: the server blocks that answer
it by name over TLS on the https port get their ``ssl_certificate``/``ssl_certificate_key``
replaced (or added); else the blocks answering it by name on the http port gain TLS: for
each address they listen on, ``listen <address>:<https port> ssl;``, the certificate lines
and ``include <managed TLS options>;``; else a new server block in ``<server
root>/certwright/servers/<cert name>.conf`` (that directory's ``*.conf`` is included from
``http`` if it is not yet). A ``default_server`` is never given a certificate for a name it
only answers as the catch-all: that would serve the certificate for every unknown name, and
the next certificate for an unmatched name would take its place. The new block carries a
copy of what the http ``default_server`` does (its directives but ``listen``,
``server_name``, certificates and redirects to https), so the name serves over https what it
served over http.

``listen`` options that nginx allows once per address and port (``default_server``,
``reuseport``, ``backlog=``, ``ipv6only=``…) are not copied onto a new listen, with two
exceptions made only while nobody holds them for that address and port yet:
``default_server`` (no block is the default there; a catch-all stays one over https) and
``ipv6only=`` (no block listens there at all). Otherwise nginx stops with "duplicate listen
options" or "a duplicate default server". ``ssl`` may repeat.

**Redirect.** In the plain-http block(s) for the names, at server level (before the
block's own rewrite directives)::

    set $certwright_redirect "$scheme:$request_uri";
    if ($certwright_redirect ~ "^http:(?!/\\.well-known/acme-challenge/)") {
        return 301 https://$host$request_uri;
    }

One form fits every layout: it only fires for plain http, so a block that listens on both
ports does not loop, and it leaves ``/.well-known/acme-challenge/`` alone, so a webroot's
files and the nginx authenticator's ``location =`` entries keep answering over plain http.
It tests ``$request_uri`` (the request as sent), not ``$uri``: server-level rewrite
directives run again after an internal redirect (``error_page 404 /404.html``,
``try_files … /index.php``), where ``$uri`` is no longer the challenge path and a missing
challenge file would answer 301 instead of 404. The earlier form (``"$scheme:$uri"``) is
upgraded wherever a deploy or a redirect touches the names it serves.
A block that already redirects to https is left as it is. (The target has no port: a
non-default ``--https-port`` usually sits behind a port forward that makes it 443.)

**HSTS / upgrade-insecure-requests.** ``add_header … always;`` in the https block(s),
unless the header is there already.

http-01 plans are in :mod:`.http01`, enhancement plans in :mod:`.enhance`; the planner they
all build on (placing lines in blocks, the statements certwright writes) in :mod:`.planner`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from certwright.core.errors import PluginError
from certwright.core.interfaces import (
    ChangePlan,
    DeployRequest,
)
from certwright.core.textedit import Read, read_file
from certwright.installers.nginx import edit, keytypes, shared
from certwright.installers.nginx.edit import statement
from certwright.installers.nginx.planner import (
    Planner,
    _copy_body,
    _server_text,
)
from certwright.installers.nginx.select import (
    address_groups,
    covers,
    normalize_name,
    select_blocks,
)
from certwright.installers.nginx.targets import (
    Layout,
    _listen_arg,
    _listens_on,
    _names_lineage,
    _new_block_listens,
    _taken_over,
    _tls_hosts,
    _user_blocks,
    loops_over_https,
    proxied_hosts,
    resolve_deploy,
)
from certwright.installers.nginx.tree import (
    Directive,
    Listen,
    NginxTree,
    ServerBlock,
)

ENHANCEMENTS = frozenset({"redirect", "hsts", "uir"})

OPTIONS_TEXT = """\
# TLS settings for server blocks configured by certwright. Created when missing and never
# overwritten: edit freely. (No OCSP stapling: Let's Encrypt ended OCSP in 2025.)
ssl_protocols TLSv1.2 TLSv1.3;
ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
ssl_prefer_server_ciphers off;
ssl_session_cache shared:certwright_tls:10m;
ssl_session_timeout 1d;
ssl_session_tickets off;
"""
OPTION_NAMES = frozenset(
    line.split()[0] for line in OPTIONS_TEXT.splitlines() if line and not line.startswith("#")
)


# -- the deploy planner ---------------------------------------------------------------------
class _Planner(Planner):
    """The planner of a deploy: which blocks get the certificate, and what it replaced."""

    def __init__(self, tree: NginxTree, layout: Layout, read: Read) -> None:
        super().__init__(tree, layout, read)
        self.targets: set[int] = set()
        """The blocks (by order) that get the certificate being deployed."""
        self.replaced: set[tuple[str, int]] = set()
        self.detached: set[tuple[int, str]] = set()

    def certificate_lines(self, block: ServerBlock, req: DeployRequest) -> list[str]:
        """Replace the block's certificate directives in place; return those to add.
        Of several pairs (one per key type), this lineage's, else the one of the key type
        of the certificate being installed, else the first."""
        missing = []
        index = _pair_index(self.tree, block, req)
        for name, found, path in (
            ("ssl_certificate", block.ssl_certificates, req.fullchain_path),
            ("ssl_certificate_key", block.ssl_certificate_keys, req.key_path),
        ):
            if not found:
                missing.append(statement(name, path))
                continue
            target = found[index] if index is not None and index < len(found) else \
                _pick(found, req.cert_name)
            if len(found) > 1:
                self.note(f"{block.where}: several {name} lines; replaced the one at "
                          f"{target.where}")
            if target.args == (path,):
                continue
            if any("$" in a for a in target.args) and _uncovered(block, req.domains,
                                                                  patterns=True):
                raise PluginError(
                    f"{target.where}: {name} names its file with variables (nginx picks "
                    f"the file per handshake), so the server block at {block.where} serves "
                    "a certificate per name; replacing the line would serve this one for "
                    "every name there. Put the files where that line looks for them (a "
                    "deploy hook can copy them), or give the names a server block of "
                    "their own")
            if target.file != block.file and shared.shared_beyond(self.tree, target.file,
                                                                  self.targets):
                shared.detach(self, block, target.file, req)
                continue
            if (target.file, target.start) in self.replaced:
                continue  # a file every target block shares: replaced once
            self.replaced.add((target.file, target.start))
            self.edit(target.file, edit.replace_statement(target, statement(name, path)))
        return missing

    def wants_options(self, block: ServerBlock) -> bool:
        options = os.path.realpath(self.layout.options_file)
        for item in block.includes:
            if item.args and os.path.realpath(self.tree.resolve(item.args[0])) == options:
                return False
        clash = sorted({d.name for d in block.directives if d.name in OPTION_NAMES})
        if clash:
            self.note(f"{block.where}: sets {', '.join(clash)} itself, so certwright's TLS "
                      f"options ({self.layout.options_file}) are not included there")
            return False
        return True

    def update_certificate(self, block: ServerBlock, req: DeployRequest) -> None:
        missing = self.certificate_lines(block, req)
        if missing:
            self.insert_after_listens(block, missing)

    def add_tls(self, block: ServerBlock, req: DeployRequest) -> None:
        lines: list[str] = []
        if not block.listens:  # implicit *:80 stops once any listen is written
            lines.append(statement("listen", str(req.http_port)))
        existing = {item.key: item for item in block.listens if item.port == req.https_port}
        for host, source in _tls_hosts(block, req.http_port):
            key = (host, req.https_port)
            if key in existing:
                current = existing[key]
                item = current.directive
                if current.ssl or item is None:
                    continue
                if item.file != block.file and shared.shared_beyond(self.tree, item.file,
                                                                    self.targets):
                    shared.detach(self, block, item.file, req)  # a copy gets the " ssl"
                elif (item.file, item.start) not in self.replaced:
                    self.replaced.add((item.file, item.start))
                    self.edit(item.file, edit.Edit(item.end - 1, item.end - 1, " ssl"))
                continue
            params = ["ssl"]
            if source is not None and source.default_server and key not in self.defaults:
                params.append("default_server")  # the catch-all stays the catch-all
                self.defaults.add(key)
            v6only = source.param("ipv6only=") if source else None
            if v6only and key not in self.claimed:
                params.append(v6only)
            self.claimed.add(key)
            lines.append(statement("listen", _listen_arg(host, req.https_port), *params))
        lines += self.certificate_lines(block, req)
        if self.wants_options(block):
            lines.append(statement("include", self.layout.options_file))
            self.need_options()
        self.insert_after_listens(block, lines)

    def need_options(self) -> None:
        if self.read(self.layout.options_file) is None:
            self.write(self.layout.options_file, OPTIONS_TEXT)

    def new_tls_server(self, req: DeployRequest, names: Sequence[str], path: str) -> None:
        source = self.catch_all(names, req.http_port, path)
        listens: list[tuple[str, Listen | None]] = list(
            _listens_on(self.tree, req.https_port).items())
        # and every address the names are answered on over http now (IPv6 next to IPv4);
        # never addresses of unrelated blocks (a stub_status on 127.0.0.1:80)
        for item in source.listens_on(req.http_port) if source is not None else ():
            if not item.unix and all(host != item.host for host, _ in listens):
                listens.append((item.host, item))
        body = []
        for host, seen in listens or _new_block_listens(self.tree, req.https_port,
                                                         req.http_port):
            params = ["ssl"]
            key = (host, req.https_port)
            v6only = seen.param("ipv6only=") if seen else None
            if v6only and key not in self.claimed:  # nobody holds it there yet
                params.append(v6only)
            self.claimed.add(key)
            body.append(statement("listen", _listen_arg(host, req.https_port), *params))
        body += [
            statement("server_name", *names),
            statement("ssl_certificate", req.fullchain_path),
            statement("ssl_certificate_key", req.key_path),
            statement("include", self.layout.options_file),
        ]
        copied = _copy_body(self.tree, source) if source is not None else ""
        header = (f"# Managed by certwright for the certificate {req.cert_name}: rewritten "
                  "by each install of it.\n")
        if source is not None:
            header += f"# Serves what {source.where} serves over http.\n"
        self.write(path, header + _server_text(body)[: -len("}\n")] + copied + "}\n")
        self.need_options()
        self.ensure_included(os.path.join(self.layout.servers_dir, "*.conf"), path)
        what = (f"serving what {source.where} serves over http" if source is not None
                else "it serves no content yet")
        self.ensure_bucket(names)
        self.note(f"{', '.join(names)}: no server block answers these names by name; "
                  f"created one in {path} ({what})")

    def catch_all(self, names: Sequence[str], http_port: int, own: str) -> ServerBlock | None:
        """The block whose content a new block for ``names`` copies: one answering them
        over http with nothing but a redirect to https, else the http ``default_server``
        answering them, else nginx's implicit default (the first block on the port)."""
        blocks = _user_blocks(self.tree, self.layout, own)
        for name in names:
            for match in select_blocks(blocks, name, http_port, ssl=False, fallback=False):
                if loops_over_https(match.block):
                    return match.block
            for match in select_blocks(blocks, name, http_port, ssl=False):
                if not match.by_name:
                    return match.block
        for members in address_groups(blocks, http_port, ssl=False).values():
            return members[0][0]
        return None

    def note_uncovered(self, block: ServerBlock, domains: Sequence[str]) -> None:
        left = _uncovered(block, domains)
        if left:
            self.note(f"{block.where}: this server block also answers {', '.join(left)}, "
                      "which the certificate does not cover")



def _uncovered(block: ServerBlock, domains: Sequence[str], *, patterns: bool = False
               ) -> list[str]:
    """The names ``block`` answers that a certificate for ``domains`` does not cover;
    with ``patterns``, its regex and trailing-wildcard names too (they may match
    anything)."""
    plain: list[str] = []
    odd: list[str] = []
    for n in block.server_names:
        if not n or n == "_" or n.startswith("$"):
            continue
        if n.startswith("~") or n.endswith(".*"):
            odd.append(n)
            continue
        plain += [n[1:], "*" + n] if n.startswith(".") else [n]
    left = [n for n in plain if not covers(domains, n)]  # "*.x" only by "*.x"
    return left + odd if patterns else left


def _pair_index(tree: NginxTree, block: ServerBlock, req: DeployRequest) -> int | None:
    found = block.ssl_certificates
    if len(found) < 2 or any(_names_lineage(d, req.cert_name) for d in found):
        return None
    return keytypes.same_type_index(tree, found, req.cert_path)


def _pick(found: Sequence[Directive], cert_name: str) -> Directive:
    """The certificate line of this lineage if there is one, else the first."""
    return next((d for d in found if _names_lineage(d, cert_name)), found[0])



def plan_deploy(
    tree: NginxTree, req: DeployRequest, layout: Layout, read: Read = read_file
) -> ChangePlan:
    planner = _Planner(tree, layout, read)
    targets = resolve_deploy(tree, req, layout)
    planner.upgrade_redirects(_blocks_for(tree, req.domains, req.http_port, ssl=False)[0])
    planner.targets = {b.order for b, _ in (*targets.https, *targets.http)}
    for block, _ in targets.https:
        planner.update_certificate(block, req)
    for block, _ in targets.http:
        planner.add_tls(block, req)
    own = layout.server_file(req.cert_name)
    taken = _taken_over(tree, own, req.cert_name)
    if targets.unmatched and taken and not req.takeover:
        planner.note(f"{', '.join(targets.unmatched)}: not installed; {own} now serves "
                     f"another certificate (install --cert-name {req.cert_name} takes it "
                     "back)")
    elif targets.unmatched:
        planner.new_tls_server(req, targets.unmatched, own)
    elif read(own) is not None and not taken:
        planner.write(own, None)  # every name now has a block of the user's: retire ours
    proxied = proxied_hosts(tree, req.https_port)
    for block, _ in (*targets.https, *targets.http):
        planner.note_uncovered(block, req.domains)
        hosts = {i.host for i in block.listens_on(req.https_port, ssl=True)}
        if hosts and hosts <= proxied:
            planner.note(f"{block.where}: its https listens expect the PROXY protocol, so "
                         "the new certificate is not checked there by a handshake")
    for name, block in targets.held:
        planner.note(f"{name}: left with the other certificate {block.where} serves (it "
                     "also covers names this one does not)")
    return planner.plan(f"nginx: install certificate {req.cert_name}")


def plan_forget(
    tree: NginxTree, cert_name: str, domains: Sequence[str], layout: Layout,
    read: Read = read_file,
) -> ChangePlan:
    """Remove the server blocks certwright made for the certificate: its TLS block and the
    plain-http redirect blocks made for its names."""
    planner = _Planner(tree, layout, read)
    marker = f"/live/{cert_name}/".encode()
    own = layout.server_file(cert_name)
    for path in (own, *map(layout.redirect_file, domains)):
        current = read(path)
        if current is None or (b"ssl_certificate" in current and marker not in current):
            continue  # a block another certificate has taken over stays
        real = os.path.realpath(path)
        named = {n for b in tree.servers if tree.files[b.file].real_path == real
                 for n in b.server_names}
        if path != own and not named <= {normalize_name(d) for d in domains}:
            continue  # a redirect block also serving names of another certificate stays
        planner.write(path, None)
    return planner.plan(f"nginx: remove the server blocks of certificate {cert_name}")


def _blocks_for(
    tree: NginxTree, names: Iterable[str], port: int, ssl: bool
) -> tuple[list[ServerBlock], list[str]]:
    """The blocks answering ``names`` by name (a catch-all is no place for a redirect or a
    header: every unknown name would get it), and the names none answers."""
    found: dict[int, ServerBlock] = {}
    missing: list[str] = []
    for name in names:
        matches = select_blocks(tree.servers, name, port, ssl=ssl, fallback=False)
        for match in matches:
            found.setdefault(match.block.order, match.block)
        if not matches:
            missing.append(name)
    return [found[k] for k in sorted(found)], missing
