"""Plans for HAProxy: certificates (combined PEMs + a managed crt-list, the https bind),
``--redirect``/``--hsts``, and the http-01 route to certwright's responder.

Everything is a :class:`~certwright.core.interfaces.ChangePlan`; edits of the user's files
are line-anchored insertions (:mod:`certwright.core.textedit`), the rest stays byte for byte.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from certwright.core.errors import PluginError
from certwright.core.interfaces import (
    ChangePlan,
    DeployRequest,
    Endpoint,
    EnhanceRequest,
    FileChange,
)
from certwright.core.textedit import (
    ENCODING,
    ERRORS,
    Edit,
    TextEdits,
    indent_at,
    line_start,
    lines_after,
    managed_change,
    newline_of,
    read_file,
)
from certwright.installers.haproxy.config import Address, HaproxyConfig, Section, Statement

ACL = "certwright_acme"
ACME_BACKEND = "certwright_acme"
CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
ACL_LINE = f"acl {ACL} path_beg {CHALLENGE_PREFIX}"
REDIRECT_LINE = f"http-request redirect scheme https code 301 if !{{ ssl_fc }} !{ACL}"
ROUTE_LINE = f"use_backend {ACME_BACKEND} if {ACL}"
HSTS_VALUE = "max-age=31536000"
ENHANCEMENTS = frozenset({"redirect", "hsts"})
CRT_LIST_HEADER = "# managed by certwright: one certificate per line, with its SNI names\n"
_SAFE_PATH = re.compile(r"[^\s'\"#\\]+")


@dataclass(frozen=True)
class Layout:
    """Where certwright's own files go (``--haproxy-cert-dir``)."""

    cert_dir: str

    @property
    def crt_list(self) -> str:
        return str(Path(self.cert_dir) / "crt-list")

    def pem(self, cert_name: str) -> str:
        if "/" in cert_name or cert_name.startswith(".") or not _SAFE_PATH.fullmatch(cert_name):
            raise PluginError(f"certificate name {cert_name!r} can't name a file in "
                              f"{self.cert_dir}")
        return str(Path(self.cert_dir) / f"{cert_name}.pem")


def safe_path(path: str, what: str) -> str:
    if not _SAFE_PATH.fullmatch(path):
        raise PluginError(f"{what} {path!r}: HAProxy paths here may hold no blanks, quotes, "
                          "'#' or backslashes")
    return path


# -- edits of the configuration -------------------------------------------------------------
class Edits:
    """Text edits across the configuration's files, turned into FileChanges at the end."""

    def __init__(self, cfg: HaproxyConfig) -> None:
        self.cfg = cfg
        self.files: dict[str, TextEdits] = {}

    def of(self, file: str) -> TextEdits:
        if file not in self.files:
            self.files[file] = TextEdits(file, self.cfg.texts[file])
        return self.files[file]

    def after(self, stmt: Statement, lines: Sequence[str], indent: str | None = None) -> None:
        text = self.cfg.texts[stmt.file]
        if indent is None:
            indent = indent_at(text, stmt.start)
        self.of(stmt.file).add(lines_after(text, stmt.end, lines, indent))

    def append_to(self, stmt: Statement, words: str) -> None:
        """Add words at the end of a statement (before any comment)."""
        self.of(stmt.file).add(_insert(stmt.end, " " + words))

    def changes(self) -> list[FileChange]:
        out = []
        for path, edits in self.files.items():
            new = edits.result()
            if new == self.cfg.texts[path]:
                continue
            old = self.cfg.texts[path].encode(ENCODING, ERRORS)
            out.append(FileChange(path, new.encode(ENCODING, ERRORS),
                                  hashlib.sha256(old).hexdigest()))
        return out


def _insert(at: int, text: str) -> Edit:
    return Edit(at, at, text)


def _bodyindent_at(cfg: HaproxyConfig, sec: Section) -> str:
    if sec.body:
        return indent_at(cfg.texts[sec.body[0].file], sec.body[0].start) or "    "
    return "    "


def http_frontends(cfg: HaproxyConfig, port: int) -> list[Section]:
    found = cfg.http_frontends(port)
    if not found:
        raise PluginError(f"{cfg.paths[0]}: no frontend or listen in mode http binds port "
                          f"{port} without ssl (the http frontend to route through)")
    return found


# -- certificates ---------------------------------------------------------------------------
def combined_pem(req: DeployRequest) -> bytes:
    """Full chain then key, without blank lines (the runtime API ends a payload at one)."""
    try:
        chain = Path(req.fullchain_path).read_bytes()
        key = Path(req.key_path).read_bytes()
    except FileNotFoundError:  # planned before the certificate exists (a dry run)
        return b"(the certificate chain and key, once issued)\n"
    except OSError as exc:
        raise PluginError(f"{exc.filename}: cannot read: {exc.strerror}") from None
    text = chain.rstrip(b"\n") + b"\n" + key
    return b"".join(line for line in text.splitlines(keepends=True) if line.strip())


def crt_list_entries(text: str) -> list[tuple[str, str]]:
    """(path, whole line) of each entry of a crt-list."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if words and not words[0].startswith("#"):
            out.append((words[0], line.strip()))
    return out


def crt_list_text(current: str | None, pem: str, domains: Sequence[str]) -> str:
    line = " ".join([pem, *domains])
    entries = crt_list_entries(current or "")
    out, done = [], False
    for path, old in entries:
        if path == pem:
            out.append(line)
            done = True
        else:
            out.append(old)
    if not done:
        out.append(line)
    return CRT_LIST_HEADER + "".join(e + "\n" for e in out)


def plan_deploy(cfg: HaproxyConfig, req: DeployRequest, layout: Layout) -> ChangePlan:
    pem = safe_path(layout.pem(req.cert_name), "certificate file")
    crt_list = safe_path(layout.crt_list, "crt-list")
    changes: list[FileChange] = []
    content = combined_pem(req)
    old = read_file(pem)
    if old != content:
        sha = None if old is None else hashlib.sha256(old).hexdigest()
        changes.append(FileChange(pem, content, sha, 0o600, secret=True))
    current = read_file(crt_list)
    listed = crt_list_text(None if current is None else current.decode(ENCODING, ERRORS),
                           pem, req.domains)
    change = managed_change(crt_list, listed)
    if change is not None:
        changes.append(change)
    edits = Edits(cfg)
    plan_binds(cfg, edits, req, crt_list)
    changes += edits.changes()
    return ChangePlan(f"haproxy: install {req.cert_name}", tuple(changes))


def plan_binds(cfg: HaproxyConfig, edits: Edits, req: DeployRequest, crt_list: str) -> None:
    """Our crt-list on each ssl bind of the https port; an https bind (or frontend) where
    there is none."""
    https = cfg.https_frontends(req.https_port)
    for sec in https:
        for bind in sec.binds:
            if not bind.on(req.https_port):
                continue
            if not bind.ssl:
                raise PluginError(f"{bind.stmt.where}: {sec.kind} {sec.name} binds port "
                                  f"{req.https_port} without ssl; give it 'ssl' or choose "
                                  "another --https-port")
            if crt_list not in bind.crt_lists:
                edits.append_to(bind.stmt, f"crt-list {crt_list}")
    if https:
        return
    for sec in http_frontends(cfg, req.http_port):
        binds = [f"bind {a.raw}:{req.https_port} ssl crt-list {crt_list} alpn h2,http/1.1"
                 for a in _plain(sec, req.http_port)]
        backend = sec.default_backend
        if sec.kind == "listen" or backend is None:
            last_bind = sec.find("bind")[-1]
            edits.after(last_bind, binds)
            continue
        indent = _bodyindent_at(cfg, sec)
        lines = ["", f"frontend certwright-https-{sec.name}", "\tmode http", *[
            "\t" + b for b in binds], f"\tdefault_backend {backend}"]
        edits.after(sec.last, [line.replace("\t", indent) for line in lines],
                    indent=indent_at(cfg.texts[sec.head.file], sec.head.start))


def _plain(sec: Section, port: int) -> list[Address]:
    """The addresses of the section's plain binds on ``port``, each once."""
    out: list[Address] = []
    for bind in sec.binds:
        for address in bind.on(port):
            if not bind.ssl and address.raw not in [a.raw for a in out]:
                out.append(address)
    return out


def https_addresses(cfg: HaproxyConfig, req: DeployRequest) -> list[Address]:
    """Where the https port will be bound once the deploy plan is applied."""
    found = [a for s in cfg.https_frontends(req.https_port) for b in s.binds
             for a in b.on(req.https_port)]
    if found:
        return found
    return [Address(a.host, req.https_port, a.raw) for s in cfg.http_frontends(req.http_port)
            for a in _plain(s, req.http_port)]


def endpoints(cfg: HaproxyConfig, req: DeployRequest) -> list[Endpoint]:
    out: list[Endpoint] = []
    for address in https_addresses(cfg, req):
        host = address.host or "127.0.0.1"
        for name in req.domains:
            sni = "certwright-check" + name[1:] if name.startswith("*.") else name
            endpoint = Endpoint(host, req.https_port, sni)
            if endpoint not in out:
                out.append(endpoint)
    return out


# -- enhancements and the challenge route ---------------------------------------------------
def _has(sec: Section, predicate: Iterable[str]) -> Statement | None:
    words = tuple(predicate)
    return next((s for s in sec.body if s.words[:len(words)] == words), None)


def _anchor(sec: Section) -> Statement:
    """Where our rules go: after the last bind (before any rule of the user's)."""
    binds = sec.find("bind")
    return binds[-1] if binds else sec.head


def plan_rules(cfg: HaproxyConfig, edits: Edits, sec: Section, *, redirect: bool,
               route: bool) -> None:
    """The challenge ACL and the redirect that spares it right after the binds (ahead of
    the user's rules); the route to the responder just before the first ``use_backend`` /
    ``default_backend``, so that HAProxy warns of no rule out of order. Each once."""
    acl = _has(sec, ("acl", ACL))
    have_redirect = _has(sec, ("http-request", "redirect", "scheme", "https"))
    add_redirect = redirect and have_redirect is None
    add_route = route and _has(sec, ("use_backend", ACME_BACKEND)) is None
    if not (add_redirect or add_route):
        return
    indent = _bodyindent_at(cfg, sec)
    anchor = acl or _anchor(sec)
    head = ([ACL_LINE] if acl is None else []) + ([REDIRECT_LINE] if add_redirect else [])
    if head:
        edits.after(anchor, head, indent=indent)
    if not add_route:
        return
    target = next((s for s in sec.body if s.keyword in ("use_backend", "default_backend")
                   and s.start > anchor.start), None)
    if target is None:
        edits.after(sec.last, [ROUTE_LINE], indent=indent)
        return
    text = cfg.texts[target.file]
    at = line_start(text, target.start)
    edits.of(target.file).add(Edit(at, at, indent + ROUTE_LINE + newline_of(text)))


def plan_enhance(cfg: HaproxyConfig, req: EnhanceRequest) -> ChangePlan:
    edits = Edits(cfg)
    if "redirect" in req.enhancements:
        for sec in http_frontends(cfg, req.http_port):
            plan_rules(cfg, edits, sec, redirect=True, route=False)
    if "hsts" in req.enhancements:
        https = [s for s in cfg.https_frontends(req.https_port)
                 if any(b.ssl for b in s.binds)]
        if not https:
            raise PluginError(f"{cfg.paths[0]}: nothing binds port {req.https_port} with "
                              "ssl yet: install a certificate before --hsts")
        for sec in https:
            if any("strict-transport-security" in " ".join(s.words).lower()
                   for s in sec.body):
                continue
            line = f'http-response set-header Strict-Transport-Security "{HSTS_VALUE}"'
            if any(not b.ssl for b in sec.binds):
                line += " if { ssl_fc }"
            edits.after(sec.last, [line], indent=_bodyindent_at(cfg, sec))
    return ChangePlan(f"haproxy: {', '.join(sorted(req.enhancements))}",
                      tuple(edits.changes()))


def redirects_challenges(cfg: HaproxyConfig, port: int) -> list[Statement]:
    """Redirects to https in the http frontends that do not spare the challenge path
    (they name neither our ACL nor ``acme-challenge``): http-01 could not pass them."""
    found = []
    for sec in http_frontends(cfg, port):
        for stmt in sec.body:
            words = stmt.words
            redirect = words[:1] == ("redirect",) or words[:2] == ("http-request", "redirect")
            if redirect and "https" in words and not any(
                    ACL in w or "acme-challenge" in w for w in words):
                found.append(stmt)
    return found


def responder_port(cfg: HaproxyConfig) -> int | None:
    """The port of the responder named in the managed challenge backend, if any."""
    sec = cfg.section("backend", ACME_BACKEND)
    if sec is None:
        return None
    for stmt in sec.find("server"):
        if len(stmt.words) > 2:
            host, _, port = stmt.words[2].rpartition(":")
            if host == "127.0.0.1" and port.isdigit():
                return int(port)
    raise PluginError(f"{sec.head.where}: backend {ACME_BACKEND} has no "
                      "'server … 127.0.0.1:PORT' line")


def plan_route(cfg: HaproxyConfig, http_port: int, port: int) -> ChangePlan:
    """The ACL and ``use_backend`` in each http frontend, and the managed backend
    pointing at the responder on 127.0.0.1:``port``."""
    edits = Edits(cfg)
    for sec in http_frontends(cfg, http_port):
        plan_rules(cfg, edits, sec, redirect=False, route=True)
    if cfg.section("backend", ACME_BACKEND) is None:
        main = cfg.paths[-1]
        text = cfg.texts[main]
        nl = newline_of(text)
        lead = "" if not text or text.endswith("\n") else nl
        block = [f"backend {ACME_BACKEND}",
                 "    # certwright's http-01 responder: it listens only while challenges "
                 "are open",
                 "    mode http",
                 f"    server responder 127.0.0.1:{port}"]
        edits.of(main).add(_insert(len(text), lead + nl + nl.join(block) + nl))
    return ChangePlan("haproxy: route http-01 to certwright", tuple(edits.changes()))


def plan_forget(cfg: HaproxyConfig, cert_name: str, layout: Layout) -> ChangePlan:
    """Take a deleted lineage out: its PEM and crt-list line; when the list is left empty
    (HAProxy refuses an ssl bind without a certificate), the list itself, ``crt-list`` on
    the binds, and the binds and https frontends certwright created for it."""
    pem, crt_list = layout.pem(cert_name), layout.crt_list
    changes: list[FileChange] = []
    old = read_file(pem)
    if old is not None:
        changes.append(FileChange(pem, None, hashlib.sha256(old).hexdigest(), 0o600,
                                  secret=True))
    current = read_file(crt_list)
    if current is None:
        return ChangePlan(f"haproxy: remove {cert_name}", tuple(changes))
    entries = [line for path, line in crt_list_entries(current.decode(ENCODING, ERRORS))
               if path != pem]
    if entries:
        change = managed_change(crt_list, CRT_LIST_HEADER + "".join(e + "\n" for e in entries))
        changes += [change] if change is not None else []
        return ChangePlan(f"haproxy: remove {cert_name}", tuple(changes))
    changes.append(FileChange(crt_list, None, hashlib.sha256(current).hexdigest()))
    edits = Edits(cfg)
    for sec in cfg.of_kind("frontend", "listen"):
        ours = [b for b in sec.binds if crt_list in b.crt_lists]
        if not ours:
            continue
        if sec.name.startswith("certwright-https-") and len(ours) == len(sec.binds):
            _drop_section(cfg, edits, sec)
            continue
        for bind in ours:
            text = cfg.texts[bind.stmt.file]
            line = text[bind.stmt.start:bind.stmt.end]
            others = [w for w in bind.stmt.words if w in ("crt", "crt-list")]
            if len(others) == 1:  # ours alone: the whole bind line goes
                start = line_start(text, bind.stmt.start)
                end = text.find("\n", bind.stmt.end)
                edits.of(bind.stmt.file).add(Edit(start, len(text) if end < 0 else end + 1,
                                                  ""))
                continue
            at = line.find(f" crt-list {crt_list}")
            if at >= 0:
                start = bind.stmt.start + at
                edits.of(bind.stmt.file).add(Edit(start, start + len(
                    f" crt-list {crt_list}"), ""))
    changes += edits.changes()
    return ChangePlan(f"haproxy: remove {cert_name}", tuple(changes))


def _drop_section(cfg: HaproxyConfig, edits: Edits, sec: Section) -> None:
    """Remove a section certwright created, with the blank line put before it."""
    text = cfg.texts[sec.head.file]
    start = line_start(text, sec.head.start)
    if text[:start].endswith("\n\n"):
        start -= 1
    end = text.find("\n", sec.last.end)
    edits.of(sec.head.file).add(Edit(start, len(text) if end < 0 else end + 1, ""))
