"""Enhancements for Apache: the redirect to https, HSTS, upgrade-insecure-requests.

**Redirect** (mod_rewrite), at the top of every plain-http vhost that answers a name on
the http port (by name, or as the catch-all default: the host condition keeps other names
alone), IPv4 and IPv6 vhosts alike::

    # certwright: redirect to https; the http-01 challenge path stays on plain http
    RewriteEngine on
    RewriteCond %{REQUEST_URI} !^/\\.well-known/acme-challenge/
    RewriteCond %{ENV:REDIRECT_STATUS} ^$
    RewriteCond %{HTTP_HOST} ^(example\\.org|www\\.example\\.org)\\.?(?::[0-9]+)?$ [NC]
    RewriteRule ^ https://%1%{REQUEST_URI} [L,NE,R=permanent]

First in the vhost, so ``[P]`` proxy rules and rewrites below never see a request it
redirects; only original requests (an internal redirect to an ``ErrorDocument`` is not
sent to https); the requested name itself, escaped, so a name that a ``ServerAlias`` glob
matches is redirected to itself. A second run for more names of the same vhost widens
the condition of the block it wrote.

Where the vhost redirects to https already (``Redirect permanent /``, a ``RewriteRule``,
Certbot's own), nothing is added that could loop; the challenge path is let through
instead, before anything else of the vhost::

    # certwright: the http-01 challenge path answers over plain http
    RewriteEngine on
    RewriteRule ^/\\.well-known/acme-challenge/(.*)$ \\
        "%{DOCUMENT_ROOT}/.well-known/acme-challenge/$1" [L]

A rewrite to a file ends URL translation, so mod_alias's ``Redirect`` is not reached
(the directory is the vhost's ``Alias`` for the challenge path when it has one).

**HSTS / UIR** (mod_headers): ``Header always set …`` once in every https vhost serving
a name. Modules are enabled inside the same plan (:mod:`.modules`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence

from certwright.core.errors import PluginError
from certwright.core.http01 import CHALLENGE_PATH
from certwright.core.interfaces import ChangePlan, EnhanceRequest, FileChange
from certwright.core.textedit import ENCODING, ERRORS, managed_change, read_file
from certwright.installers.apache import modules, vhosttext
from certwright.installers.apache.edits import Edit, VhostEdits, insert_top
from certwright.installers.apache.model import ApacheConfig, Node, VirtualHost
from certwright.installers.apache.options import ApacheOptions
from certwright.installers.apache.select import choose

ENHANCEMENTS = frozenset({"redirect", "hsts", "uir"})
MAIN_FILE = "zz-certwright-redirect.conf"
REDIRECT_MARK = "# certwright: redirect to https; the http-01 challenge path stays on plain http"
PASS_MARK = "# certwright: the http-01 challenge path answers over plain http"
CHALLENGE_RE = CHALLENGE_PATH.replace(".", "\\.")
HSTS_HEADER = "Strict-Transport-Security"
HSTS_LINE = f'Header always set {HSTS_HEADER} "max-age=31536000"'
UIR_HEADER = "Content-Security-Policy"
UIR_LINE = f'Header always set {UIR_HEADER} "upgrade-insecure-requests"'
REWRITE = (("rewrite_module", "rewrite"),)
HEADERS = (("headers_module", "headers"),)
_HOST_COND = re.compile(r"^[ \t]*RewriteCond[ \t]+%\{HTTP_HOST\}[ \t]+\^\(([^)]*)\)",
                        re.IGNORECASE)
_REWRITE_RULE = re.compile(r"^[ \t]*RewriteRule[ \t]", re.IGNORECASE)
_ALIAS_REDIRECTS = frozenset({"redirect", "redirectmatch", "redirectpermanent"})


def redirect_lines(names: Sequence[str], https_port: int) -> list[str]:
    hosts = "|".join(re.sub(r"([^A-Za-z0-9-])", r"\\\1", n) for n in names)
    port = "" if https_port == 443 else f":{https_port}"
    return [REDIRECT_MARK, "RewriteEngine on",
            f"RewriteCond %{{REQUEST_URI}} !^{CHALLENGE_RE}",
            "RewriteCond %{ENV:REDIRECT_STATUS} ^$",
            f"RewriteCond %{{HTTP_HOST}} ^({hosts})\\.?(?::[0-9]+)?$ [NC]",
            f"RewriteRule ^ https://%1{port}%{{REQUEST_URI}} [L,NE,R=permanent]"]


def pass_lines(directory: str) -> list[str]:
    target = directory.rstrip("/") + "/$1"
    return [PASS_MARK, "RewriteEngine on",
            f'RewriteRule ^{CHALLENGE_RE}(.*)$ "{target}" [L]']


def _walk(nodes: Sequence[Node]) -> Iterator[Node]:
    for node in nodes:
        yield node
        if node.children:
            yield from _walk(node.children)


def _https_redirects(vhost: VirtualHost) -> list[Node]:
    return [d for d in _walk(vhost.directives)
            if d.name.lower() in (*_ALIAS_REDIRECTS, "rewriterule")
            and any("https://" in a.lower() for a in d.args)]


def _challenge_dir(vhost: VirtualHost) -> str:
    for d in _walk(vhost.directives):
        if d.name.lower() in ("alias", "aliasmatch") and len(d.args) == 2 and \
                d.args[0].strip('"').rstrip("/") == CHALLENGE_PATH.rstrip("/"):
            return d.args[1].strip('"')
    return "%{DOCUMENT_ROOT}" + CHALLENGE_PATH


def _own_block(span: vhosttext.VhostSpan, mark: str) -> tuple[int, int] | None:
    """Line indexes (first, last inclusive) of the block certwright wrote after ``mark``."""
    for i in range(span.first + 1, span.last):
        if span.lines[i].strip() == mark:
            for j in range(i + 1, span.last):
                if _REWRITE_RULE.match(span.lines[j]):
                    return i, j
    return None


def _redirect_edit(names: Sequence[str], port: int, vhost: VirtualHost,
                   notes: list[str]) -> Edit:
    def edit(span: vhosttext.VhostSpan) -> list[str] | None:
        block = _own_block(span, REDIRECT_MARK)
        if block is not None:
            first, last = block
            had: list[str] = []
            for line in span.lines[first:last]:
                if m := _HOST_COND.match(line):
                    had = [re.sub(r"\\(.)", r"\1", n) for n in m.group(1).split("|")]
            wanted = list(dict.fromkeys([*had, *names]))
            if wanted == had:
                return None
            nl = vhosttext.newline(span.lines)
            out = list(span.lines)
            out[first:last + 1] = [span.indent + line + nl
                                   for line in redirect_lines(wanted, port)]
            return out
        existing = _https_redirects(vhost)
        if existing:
            found = existing[0]
            notes.append(f"{vhost.where}: already redirects to https ({found.name} at "
                         f"{found.where}); left as it is, the challenge path let through")
            if _own_block(span, PASS_MARK) is not None:
                return None
            return insert_top(span, pass_lines(_challenge_dir(vhost)))
        return insert_top(span, redirect_lines(names, port))
    return edit


def _header_edit(line: str, header: str) -> Edit:
    def edit(span: vhosttext.VhostSpan) -> list[str] | None:
        for raw in span.body:
            words = raw.split()
            if words and words[0].lower() == "header" and \
                    any(w.strip('"').lower() == header.lower() for w in words):
                return None
        return insert_top(span, [line])
    return edit


def plan_enhance(config: ApacheConfig, req: EnhanceRequest, opts: ApacheOptions) -> ChangePlan:
    unknown = sorted(req.enhancements - ENHANCEMENTS)
    if unknown:
        raise PluginError(f"Apache cannot do: {', '.join(unknown)}")
    edits = VhostEdits()
    notes: list[str] = []
    https = _https_vhosts(config, req)
    if "redirect" in req.enhancements:
        for vhost, names in _http_vhosts(config, req, notes):
            edits.add(vhost, _redirect_edit(names, req.https_port, vhost, notes))
        main = [n for n in req.domains
                if not n.startswith("*.") and choose(config, n, req.http_port).main_server]
        main_change = _main_server_redirect(config, opts, main, req.https_port)
    else:
        main_change = None
    for wanted, text, header in (("hsts", HSTS_LINE, HSTS_HEADER),
                                 ("uir", UIR_LINE, UIR_HEADER)):
        if wanted in req.enhancements:
            for vhost in https:
                edits.add(vhost, _header_edit(text, header))
    changes: dict[str, FileChange] = {c.path: c for c in edits.changes()}
    if main_change is not None:
        changes[main_change.path] = main_change

    def put(change: FileChange | None) -> None:
        if change is not None:
            changes[change.path] = change

    if changes:
        if "redirect" in req.enhancements:
            modules.enable(put, opts, config, REWRITE, "00-certwright-rewrite.conf",
                           "the redirect to https needs it")
        if req.enhancements & {"hsts", "uir"}:
            modules.enable(put, opts, config, HEADERS, "00-certwright-headers.conf",
                           "the HSTS and CSP headers need it")
    what = ", ".join(sorted(req.enhancements))
    return ChangePlan(f"Apache: enable {what} for {', '.join(req.domains)}",
                      tuple(changes.values()), tuple(notes))


def _main_server_redirect(config: ApacheConfig, opts: ApacheOptions, names: Sequence[str],
                          port: int) -> FileChange | None:
    """Where a ``Listen`` on the http port reaches no vhost the main server answers: the
    redirect for ``names`` (and those it had) in a managed server-level file (mod_rewrite's
    rules of the main server are not inherited by vhosts)."""
    if not names:
        return None
    layout = opts.layout
    dirs = [d for d in (os.path.join(opts.server_root, layout.conf_dir),
                        opts.path(layout.sites_enabled)) if d]
    path = modules.included(config, [os.path.join(d, MAIN_FILE) for d in dirs], "redirect")
    had: list[str] = []
    current = read_file(path)
    for line in (current or b"").decode(ENCODING, ERRORS).splitlines():
        if m := _HOST_COND.match(line):
            had = [re.sub(r"\\(.)", r"\1", n) for n in m.group(1).split("|")]
    wanted = list(dict.fromkeys([*had, *(n.lower() for n in names)]))
    return managed_change(path, "\n".join(redirect_lines(wanted, port)) + "\n")


def _https_vhosts(config: ApacheConfig, req: EnhanceRequest) -> list[VirtualHost]:
    """The TLS vhosts serving each name by name; an error naming those none serves (a
    redirect to them would meet another name's certificate)."""
    found: dict[tuple[str, int], VirtualHost] = {}
    missing = []
    for name in req.domains:
        if name.startswith("*."):
            continue
        choice = choose(config, name, req.https_port)
        serving = [a.vhost for a in choice.by_name if a.vhost.ssl_engine]
        if not serving:
            missing.append(name)
        for vhost in serving:
            found[(vhost.file, vhost.line)] = vhost
    if missing:
        raise PluginError(f"no vhost serves {', '.join(missing)} over https on port "
                          f"{req.https_port}; install a certificate first")
    return list(found.values())


def _http_vhosts(config: ApacheConfig, req: EnhanceRequest,
                 notes: list[str]) -> list[tuple[VirtualHost, list[str]]]:
    """Every plain-http vhost answering a name on the http port, with the names it
    answers there (in the order of the request)."""
    out: dict[tuple[str, int], tuple[VirtualHost, list[str]]] = {}
    for name in req.domains:
        if name.startswith("*."):
            notes.append(f"{name}: a wildcard name is redirected by the vhosts of its "
                         "subdomains")
            continue
        choice = choose(config, name, req.http_port)
        if not choice.answers:
            notes.append(f"{name}: no vhost answers plain http on port {req.http_port}; "
                         "nothing to redirect")
        for ans in choice.answers:
            if ans.vhost.ssl_engine or not ans.vhost.file:
                continue
            entry = out.setdefault((ans.vhost.file, ans.vhost.line), (ans.vhost, []))
            if name.lower() not in entry[1]:
                entry[1].append(name.lower())
    return list(out.values())
