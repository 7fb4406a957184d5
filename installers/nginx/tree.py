"""Read an nginx configuration tree into plain frozen dataclasses.

This is the only module that imports ``crossplane``. crossplane parses the main file and
follows ``include`` globs; it knows directive names, arguments and *start* lines. Editing
needs more: where each statement starts and ends in the file text, and where each block's
closing ``}`` is. The scanner of :mod:`.scan` reads every file again with nginx's tokenising rules
(quotes, backslash escapes, ``#`` comments, ``${var}``) and records those offsets; its
statements and their tokens are matched one for one with crossplane's, and any
disagreement stops the read (fail closed: an edit never lands at a guessed position).
Names and arguments are then kept as nginx reads them, which is not quite crossplane's
reading: ``\\"``, ``\\'``, ``\\\\`` lose the backslash, ``\\t``/``\\r``/``\\n`` become
control characters, a backslash before anything else stays (``"~^(\\d+)\\."``), quoted or
not, and bytes that are not UTF-8 are kept (crossplane replaces them).

Only ``server`` blocks of the ``http`` context are collected (``stream``/``mail`` servers and
``upstream`` entries are not web servers). A server block's directives include those pulled
in by ``include`` lines inside it; each keeps the file and offsets where it really is.

Known limit: ``*_by_lua_block`` bodies are skipped as balanced braces (Lua strings and
``--`` comments respected); Lua long brackets holding unbalanced braces are not.
"""

from __future__ import annotations

import bisect
import fnmatch
import hashlib
import ipaddress
import os
import re
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import crossplane

from certwright.core.errors import PluginError
from certwright.installers.nginx.scan import (
    ENCODING,
    ERRORS,
    ScanError,
    Scanner,
    Span,
    statement_args,
)

DEFAULT_HTTP_PORT = 80
"""The port of a server block without any ``listen`` (nginx's default when run as root)."""



# -- data -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfigFile:
    """One parsed file: ``path`` as nginx names it, ``real_path`` with links resolved."""

    path: str
    real_path: str
    text: str
    sha256: str

    def encode(self, text: str) -> bytes:
        return text.encode(ENCODING, ERRORS)


@dataclass(frozen=True)
class Directive:
    """A statement: ``name args… ;`` or ``name args… { block }``.

    ``start`` is the offset of its first character in its file's text, ``end`` the offset
    just past its ``;`` (or its closing ``}``). For a block, ``open``/``close`` are the
    offsets of its braces and ``block`` its statements. ``includes`` lists the files an
    ``include`` pulled in.
    """

    name: str
    args: tuple[str, ...]
    file: str
    line: int
    start: int
    end: int
    end_line: int
    block: tuple[Directive, ...] | None = None
    open: int = -1
    close: int = -1
    includes: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Listen:
    """A parsed ``listen``: ``host`` is ``*`` for any IPv4 address, ``[::]``-style for
    IPv6, a name or IP otherwise, or the whole ``unix:…`` argument for a socket."""

    host: str
    port: int | None
    ssl: bool
    default_server: bool
    ipv6: bool
    params: tuple[str, ...]
    directive: Directive | None = None

    @property
    def unix(self) -> bool:
        return self.host.startswith("unix:")

    @property
    def wildcard(self) -> bool:
        return self.host in ("*", "[::]")

    @property
    def key(self) -> tuple[str, int | None]:
        """What nginx groups server blocks by: one address and port."""
        return (self.host, self.port)

    def param(self, prefix: str) -> str | None:
        return next((p for p in self.params if p.startswith(prefix)), None)


@dataclass(frozen=True)
class ServerBlock:
    """An ``http``-context ``server { }`` and what matters about it for TLS.

    ``directives`` are its server-level statements (those of included files inline, after
    the ``include`` that pulls them in); the other fields are views of them. ``line`` and
    ``end_line`` are the lines of ``server {`` and of its ``}``; ``order`` is its position in
    nginx's reading order. ``listens`` is empty when the block has no ``listen`` at all (it
    then listens on ``*:80``: see :meth:`effective_listens`).
    """

    directive: Directive
    order: int
    server_names: tuple[str, ...]
    listens: tuple[Listen, ...]
    ssl_on: bool
    ssl_certificates: tuple[Directive, ...]
    ssl_certificate_keys: tuple[Directive, ...]
    redirects: tuple[Directive, ...]
    includes: tuple[Directive, ...]
    hsts: tuple[Directive, ...]
    headers: tuple[Directive, ...]
    locations: tuple[Directive, ...]
    directives: tuple[Directive, ...]

    @property
    def file(self) -> str:
        return self.directive.file

    @property
    def line(self) -> int:
        return self.directive.line

    @property
    def end_line(self) -> int:
        return self.directive.end_line

    @property
    def where(self) -> str:
        return self.directive.where

    def effective_listens(self) -> tuple[Listen, ...]:
        if self.listens:
            return self.listens
        return (Listen("*", DEFAULT_HTTP_PORT, self.ssl_on, False, False, ()),)

    def listens_on(self, port: int, *, ssl: bool | None = None) -> tuple[Listen, ...]:
        """Listens on ``port``; with ``ssl=True`` only TLS ones, ``ssl=False`` only plain."""
        return tuple(
            item for item in self.effective_listens()
            if item.port == port and (ssl is None or (item.ssl or self.ssl_on) == ssl)
        )


@dataclass(frozen=True)
class NginxTree:
    """The whole configuration as nginx reads it from ``main``."""

    main: str
    files: Mapping[str, ConfigFile]
    servers: tuple[ServerBlock, ...]
    http: Directive | None
    http_includes: tuple[str, ...] = ()
    """Absolute include patterns (globs) read in the ``http`` context."""
    include_refs: Mapping[str, int] = field(default_factory=dict)
    """How many ``include`` statements (anywhere) pull in each file."""
    pid: str | None = None
    """The main context's ``pid`` argument, as written (may be relative to the prefix)."""
    http_statements: tuple[Directive, ...] = ()
    """The ``http`` block's own statements, those of the files it includes inline (each
    where it really is): the settings every server block inherits."""

    @property
    def conf_dir(self) -> str:
        return os.path.dirname(self.main)

    def resolve(self, pattern: str) -> str:
        """An include argument as an absolute pattern (relative ones start at the main
        file's directory, as nginx does)."""
        return pattern if os.path.isabs(pattern) else os.path.join(self.conf_dir, pattern)

    def includes_file(self, path: str) -> bool:
        """Whether an ``http``-context include pattern names ``path`` (glob rules)."""
        return any(glob_matches(pattern, path) for pattern in self.http_includes)

    def include_count(self, path: str) -> int:
        """How many ``include`` statements anywhere pull ``path`` in."""
        return self.include_refs.get(path, 0)


def glob_matches(pattern: str, path: str) -> bool:
    """``glob`` semantics (``*`` stops at ``/``, skips dot files) without the filesystem."""
    pat_parts = os.path.normpath(pattern).split(os.sep)
    path_parts = os.path.normpath(path).split(os.sep)
    return len(pat_parts) == len(path_parts) and all(
        fnmatch.fnmatchcase(q, p) and (p.startswith(".") or not q.startswith("."))
        for p, q in zip(pat_parts, path_parts, strict=True)
    )


# -- listen ---------------------------------------------------------------------------------
def parse_listen(args: Sequence[str], directive: Directive | None = None) -> Listen:
    """Parse ``listen`` arguments: ``80``, ``*:80``, ``1.2.3.4``, ``[::]:443``, ``unix:/p``."""
    if not args:
        raise PluginError(f"{directive.where if directive else 'listen'}: listen without address")
    first, params = args[0], tuple(args[1:])
    ssl = "ssl" in params
    default = "default_server" in params or "default" in params
    if first.startswith("unix:"):
        return Listen(first, None, ssl, default, False, params, directive)
    host, port_text = _split_host_port(first)
    port = int(port_text) if port_text.isascii() and port_text.isdigit() else None
    host, ipv6 = normalize_host(host)
    return Listen(host, port, ssl, default, ipv6, params, directive)


def _split_host_port(text: str) -> tuple[str, str]:
    if text.startswith("["):
        host, _, rest = text.partition("]")
        return host + "]", rest[1:] if rest.startswith(":") else str(DEFAULT_HTTP_PORT)
    if text.isascii() and text.isdigit():
        return "*", text
    host, sep, port = text.rpartition(":")
    if sep:
        return host, port
    return text, str(DEFAULT_HTTP_PORT)


def normalize_host(host: str) -> tuple[str, bool]:
    """``*``/``0.0.0.0`` → ``*``; IPv6 in brackets, compressed; names lower-cased."""
    if host in ("*", "0.0.0.0"):
        return "*", False
    if host.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]", True
        except ValueError:
            return host.lower(), True
    return host.lower(), False


# -- reading --------------------------------------------------------------------------------
ParseCache = dict[str, tuple[tuple[str, tuple[tuple[str, ...], ...]], tuple[Directive, ...]]]
"""Per file: (its SHA-256 and what its includes resolved to) -> its statements."""


def load_tree(main: str, cache: ParseCache | None = None) -> NginxTree:
    """Parse the configuration starting at ``main``; PluginError ``file:line: why``.
    ``server_name $hostname`` is this machine's host name, as nginx takes it.

    ``cache`` (kept by the caller between loads): a file whose bytes and resolved
    includes are what they were is not scanned and matched again; after a change to a
    few files of a large tree, only those are."""
    main = os.path.abspath(main)
    if not os.path.isfile(main):
        raise PluginError(f"{main}: nginx configuration not found")
    payload = _crossplane_parse(main)
    index = [entry["file"] for entry in payload["config"]]
    files: dict[str, ConfigFile] = {}
    parsed: dict[str, tuple[Directive, ...]] = {}
    for entry in payload["config"]:
        path = entry["file"]
        files[path] = _read(path)
        key = (files[path].sha256, _includes(entry["parsed"], index))
        hit = cache.get(path) if cache is not None else None
        if hit is not None and hit[0] == key:
            parsed[path] = hit[1]
            continue
        spans = _scan(files[path])
        newlines = [m.start() for m in re.finditer("\n", files[path].text)]
        parsed[path] = _merge(path, entry["parsed"], spans, index, newlines)
        if cache is not None:
            cache[path] = (key, parsed[path])
    return _Builder(main, files, parsed, socket.gethostname()).build()


def _includes(stmts: Sequence[Mapping[str, Any]], index: Sequence[str]
              ) -> tuple[tuple[str, ...], ...]:
    """The files each include statement of ``stmts`` resolved to, in order."""
    found: list[tuple[str, ...]] = []
    for stmt in stmts:
        if "includes" in stmt:
            found.append(tuple(index[i] for i in stmt["includes"]))
        if "block" in stmt:
            found += _includes(stmt["block"], index)
    return tuple(found)


def _crossplane_parse(main: str) -> dict[str, Any]:
    try:
        payload: dict[str, Any] = crossplane.parse(
            main, comments=True, catch_errors=False, check_ctx=False, check_args=False,
            onerror=lambda exc: exc,
        )
    except Exception as exc:  # crossplane raises bare errors for some I/O failures
        raise PluginError(f"{main}: cannot parse: {exc}") from None
    if payload["errors"]:
        raise _parse_error(payload["errors"][0])
    return payload


def _parse_error(error: Mapping[str, Any]) -> PluginError:
    exc = error.get("callback")
    path, line = error["file"], error.get("line")
    message = getattr(exc, "strerror", None) or str(exc or error.get("error") or "")
    if isinstance(exc, OSError) and exc.filename:
        message = f"cannot include {exc.filename}: {exc.strerror}"
    if not message or line is None:  # crossplane lost the position: ask the scanner
        try:
            _scan(_read(path))
        except PluginError as better:
            return better
    return PluginError(f"{path}:{line if line is not None else '?'}: "
                       f"{message or 'cannot parse'}")


def _read(path: str) -> ConfigFile:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise PluginError(f"{path}: cannot read: {exc.strerror}") from None
    return ConfigFile(path, os.path.realpath(path), data.decode(ENCODING, ERRORS),
                      hashlib.sha256(data).hexdigest())


def _scan(config: ConfigFile) -> list[Span]:
    scanner = Scanner(config.text)
    try:
        return scanner.statements()
    except ScanError as exc:
        raise PluginError(f"{config.path}:{scanner.line(exc.offset)}: {exc}") from None


def _merge(
    path: str, stmts: Sequence[Mapping[str, Any]], spans: Sequence[Span],
    index: Sequence[str], newlines: Sequence[int],
) -> tuple[Directive, ...]:
    """crossplane's statements (names, args, includes) + the scanner's offsets."""
    real = [s for s in stmts if s["directive"] != "#"]
    pairs = list(zip(real, spans, strict=False))
    wrong = [p.line for s, p in pairs if s["directive"] != p.name or s["line"] != p.line]
    if len(real) != len(spans) or wrong:
        line = wrong[0] if wrong else (spans[len(real)].line if len(spans) > len(real) else 1)
        raise PluginError(f"{path}:{line}: cannot locate this statement in the file text "
                          "(the file is not edited at a guessed position)")
    out = []
    for stmt, span in pairs:
        args = statement_args(stmt, span)
        if args is None:
            raise PluginError(f"{path}:{span.line}: cannot read the arguments of this "
                              "statement the way nginx does (the file is not edited at a "
                              "guessed position)")
        block = None
        if span.children is not None:
            block = _merge(path, stmt.get("block", []), span.children, index, newlines)
        elif "block" in stmt:
            raise PluginError(f"{path}:{span.line}: cannot locate this block in the file text")
        out.append(Directive(
            name=span.value or stmt["directive"], args=args, file=path,
            line=span.line, start=span.start, end=span.end,
            end_line=bisect.bisect_left(newlines, max(span.end - 1, 0)) + 1,
            block=block, open=span.open, close=span.close,
            includes=tuple(index[i] for i in stmt.get("includes", ())),
        ))
    return tuple(out)


class _Builder:
    """Walks main → http → server, inlining includes, in nginx's reading order."""

    def __init__(
        self, main: str, files: Mapping[str, ConfigFile],
        parsed: Mapping[str, tuple[Directive, ...]], hostname: str,
    ) -> None:
        self.main, self.files, self.parsed = main, files, parsed
        self.hostname = hostname.lower()
        self.servers: list[ServerBlock] = []
        self.http: Directive | None = None
        self.http_includes: list[str] = []
        self.http_statements: list[Directive] = []

    def expand(
        self, items: Sequence[Directive], chain: tuple[str, ...] = ()
    ) -> Iterator[Directive]:
        for item in items:
            yield item
            if item.name != "include":
                continue
            for path in item.includes:
                if path in chain:
                    raise PluginError(f"{item.where}: include loop through {path}")
                yield from self.expand(self.parsed[path], (*chain, path))

    def build(self) -> NginxTree:
        pid = None
        for item in self.expand(self.parsed[self.main], (self.main,)):
            if item.name == "pid" and item.args:
                pid = item.args[0]
            if item.name == "http" and item.block is not None:
                if self.http is not None:
                    raise PluginError(f"{item.where}: \"http\" directive is duplicate")
                self.http = item
                self.walk_http(item.block)
        seen: set[tuple[str, int]] = set()
        unique = []
        for block in self.servers:
            key = (self.files[block.file].real_path, block.directive.start)
            if key not in seen:
                seen.add(key)
                unique.append(block)
        return NginxTree(self.main, dict(self.files), tuple(unique), self.http,
                         tuple(self.http_includes), self.include_refs(), pid,
                         tuple(self.http_statements))

    def include_refs(self) -> dict[str, int]:
        counts: dict[str, int] = {}

        def walk(items: Sequence[Directive]) -> None:
            for item in items:
                for path in item.includes:
                    counts[path] = counts.get(path, 0) + 1
                if item.block:
                    walk(item.block)

        for items in self.parsed.values():
            walk(items)
        return counts

    def walk_http(self, items: Sequence[Directive]) -> None:
        conf_dir = os.path.dirname(self.main)
        for item in self.expand(items):
            self.http_statements.append(item)
            if item.name == "include" and item.args:
                arg = item.args[0]
                self.http_includes.append(os.path.join(conf_dir, arg))  # keeps an absolute arg
            elif item.name == "server" and item.block is not None:
                self.servers.append(self.server(item, len(self.servers)))

    def server_name(self, arg: str) -> str:
        """A ``server_name`` value as nginx keeps it: a regex (``~…``) as written (nginx
        compiles it caseless; lower-casing would turn ``\\D`` into ``\\d``), other names
        in lower case, and ``$hostname`` (the one variable nginx allows there, in any
        case) replaced by the machine's host name; any other ``$…`` stays a literal name
        that no request matches."""
        if arg.startswith("~"):
            return arg
        name = arg.lower()
        return self.hostname if name == "$hostname" else name

    def server(self, item: Directive, order: int) -> ServerBlock:
        flat = tuple(self.expand(item.block or ()))

        def named(name: str) -> tuple[Directive, ...]:
            return tuple(d for d in flat if d.name == name)

        headers = named("add_header")
        return ServerBlock(
            directive=item,
            order=order,
            server_names=tuple(self.server_name(a) for d in named("server_name")
                               for a in d.args),
            listens=tuple(parse_listen(d.args, d) for d in named("listen")),
            ssl_on=any(d.args[:1] == ("on",) for d in named("ssl")),
            ssl_certificates=named("ssl_certificate"),
            ssl_certificate_keys=named("ssl_certificate_key"),
            redirects=tuple(_https_redirects(flat)),
            includes=named("include"),
            hsts=tuple(d for d in headers
                       if d.args[:1] and d.args[0].lower() == "strict-transport-security"),
            headers=headers,
            locations=named("location"),
            directives=flat,
        )


_REDIRECT_CODES = frozenset({"301", "302", "303", "307", "308"})


def is_https_redirect(item: Directive) -> bool:
    """``return 30x https://…``, ``return https://…`` or ``rewrite … https://… permanent``."""
    args = item.args
    if item.name == "return":
        url = args[1] if len(args) == 2 and args[0] in _REDIRECT_CODES else (
            args[0] if len(args) == 1 else "")
        return url.lower().startswith("https://")
    if item.name == "rewrite" and len(args) >= 2:
        flag = args[2] if len(args) > 2 else ""
        return args[1].lower().startswith("https://") and flag in ("", "permanent", "redirect")
    return False


def _https_redirects(flat: Sequence[Directive]) -> Iterator[Directive]:
    """Redirects to https at server level, inside a server-level ``if``, or in
    ``location /``."""
    for item in flat:
        container = item.name == "if" or (item.name, item.args) == ("location", ("/",))
        inner = item.block or () if container else ()
        if is_https_redirect(item) or any(is_https_redirect(d) for d in inner):
            yield item
