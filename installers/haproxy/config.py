"""Reading ``haproxy.cfg``: sections, statements and binds, with offsets for line-anchored edits.

The reader keeps what HAProxy keeps: a statement is one line's words (quotes and backslash
escapes resolved, none inside single quotes; an unquoted ``#`` starts a comment). HAProxy
2.6 has no line continuation: a trailing backslash is a word of its own, which ``haproxy
-c`` refuses, and the reader invents none. ``.if``/``.elif``/``.else``/``.endif`` and the
other ``.``-directives are noted (their depth is kept on each statement) and never edited. A
word from the section keywords starts a new section, wherever it is indented. Files given as a
directory are read as HAProxy reads them: the ``*.cfg`` files in it, in lexical order.

Nothing here writes: the planner (:mod:`.plan`) turns what is found into edits.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from certwright.core.errors import PluginError
from certwright.core.textedit import ENCODING, ERRORS

SECTIONS = frozenset({
    "global", "defaults", "frontend", "backend", "listen", "resolvers", "userlist", "peers",
    "mailers", "program", "http-errors", "ring", "cache", "log-forward", "crt-store",
    "traces", "fcgi-app",
})
PROXIES = frozenset({"frontend", "listen"})


@dataclass(frozen=True)
class Statement:
    """One logical line: its words, where it is (1-based line of its first physical line)
    and the offsets of its first and just past its last word in its file's text."""

    file: str
    line: int
    start: int
    end: int
    words: tuple[str, ...]
    depth: int = 0
    """How many ``.if`` blocks it sits in."""

    @property
    def keyword(self) -> str:
        return self.words[0] if self.words else ""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Address:
    host: str
    """'' for every address (``:80``, ``*:80``, ``[::]:80``)."""
    port: int | None
    raw: str = ""
    """The address as written, without its port (``ipv6@[::]``, ``*``, ``127.0.0.1``)."""


@dataclass(frozen=True)
class Bind:
    stmt: Statement
    addresses: tuple[Address, ...]
    ssl: bool
    crt_lists: tuple[str, ...]

    def on(self, port: int) -> list[Address]:
        return [a for a in self.addresses if a.port == port]


@dataclass
class Section:
    kind: str
    name: str
    head: Statement
    body: list[Statement] = field(default_factory=list)
    mode: str = "tcp"
    """The proxy mode in force (its own ``mode``, else the last ``defaults`` before it)."""

    @property
    def last(self) -> Statement:
        """The last statement of the section (its head when empty)."""
        return self.body[-1] if self.body else self.head

    def find(self, keyword: str) -> list[Statement]:
        return [s for s in self.body if s.keyword == keyword]

    @property
    def binds(self) -> list[Bind]:
        return [parse_bind(s) for s in self.find("bind")]

    @property
    def default_backend(self) -> str | None:
        found = self.find("default_backend")
        return found[-1].words[1] if found and len(found[-1].words) > 1 else None


@dataclass
class HaproxyConfig:
    """Every file (in the order HAProxy reads them) and the sections in them."""

    paths: list[str]
    texts: dict[str, str]
    sections: list[Section]

    def of_kind(self, *kinds: str) -> list[Section]:
        return [s for s in self.sections if s.kind in kinds]

    def section(self, kind: str, name: str) -> Section | None:
        return next((s for s in self.sections if s.kind == kind and s.name == name), None)

    def global_statements(self, keyword: str) -> list[Statement]:
        return [s for sec in self.of_kind("global") for s in sec.find(keyword)]

    def http_frontends(self, port: int) -> list[Section]:
        """Frontends and listens in mode http with a plain (not ssl) bind on ``port``."""
        return [s for s in self.of_kind(*PROXIES) if s.mode == "http"
                and any(not b.ssl and b.on(port) for b in s.binds)]

    def https_frontends(self, port: int) -> list[Section]:
        """Frontends and listens with any bind on ``port``."""
        return [s for s in self.of_kind(*PROXIES) if any(b.on(port) for b in s.binds)]


def config_files(path: str) -> list[str]:
    """The files HAProxy reads for ``-f path``: the file, or a directory's ``*.cfg`` files
    in lexical order."""
    if os.path.isdir(path):
        found = sorted(n for n in os.listdir(path) if n.endswith(".cfg"))
        return [os.path.join(path, n) for n in found
                if os.path.isfile(os.path.join(path, n))]
    if not os.path.exists(path):
        raise PluginError(f"{path}: no such HAProxy configuration (see --haproxy-config)")
    return [path]


def load(given: str | Sequence[str]) -> HaproxyConfig:
    """The configuration HAProxy reads for ``-f`` of each path given, in that order."""
    paths: list[str] = []
    for path in [given] if isinstance(given, str) else list(given):
        found = config_files(path)
        if not found:
            raise PluginError(f"{path}: the directory holds no *.cfg file")
        paths += [f for f in found if f not in paths]
    texts: dict[str, str] = {}
    sections: list[Section] = []
    for file in paths:
        try:
            with open(file, "rb") as handle:
                texts[file] = handle.read().decode(ENCODING, ERRORS)
        except OSError as exc:
            raise PluginError(f"{file}: cannot read: {exc.strerror}") from None
        sections += parse(file, texts[file])
    _resolve_modes(sections)
    return HaproxyConfig(paths, texts, sections)


def parse(file: str, text: str) -> list[Section]:
    """The sections of one file (statements before any section are an error)."""
    sections: list[Section] = []
    depth = 0
    for stmt in statements(file, text):
        word = stmt.keyword
        if word.startswith("."):
            if word == ".if":
                depth += 1
            elif word == ".endif":
                depth = max(0, depth - 1)
            continue
        stmt = Statement(stmt.file, stmt.line, stmt.start, stmt.end, stmt.words, depth)
        if word in SECTIONS:
            name = stmt.words[1] if len(stmt.words) > 1 else ""
            sections.append(Section(word, name, stmt))
        elif not sections:
            raise PluginError(f"{stmt.where}: '{word}' is outside of any section")
        else:
            sections[-1].body.append(stmt)
    if depth:
        raise PluginError(f"{file}: an '.if' block is not closed by '.endif'")
    return sections


def _resolve_modes(sections: list[Section]) -> None:
    mode = "tcp"
    for sec in sections:
        own = [s.words[1] for s in sec.find("mode") if len(s.words) > 1]
        if sec.kind == "defaults":
            mode = own[-1] if own else "tcp"
            sec.mode = mode
        else:
            sec.mode = own[-1] if own else mode


def statements(file: str, text: str) -> list[Statement]:
    out: list[Statement] = []
    pos, number = 0, 1
    while pos < len(text):
        words, start, end, nxt, lines = _logical_line(file, text, pos, number)
        if words:
            out.append(Statement(file, number, start, end, tuple(words)))
        pos, number = nxt, number + lines
    return out


def _logical_line(file: str, text: str, pos: int,
                  number: int) -> tuple[list[str], int, int, int, int]:
    """Words of the logical line starting at ``pos``; the offsets of its first and just
    past its last word, where the next line starts, and how many lines it took."""
    words: list[str] = []
    word: list[str] | None = None
    quote = ""
    start = end = -1
    lines = 1
    i = pos
    while i < len(text):
        ch = text[i]
        if ch == "\n" and not quote:
            break
        if ch == "\\" and quote != "'" and i + 1 < len(text) and text[i + 1] not in "\r\n":
            nxt = text[i + 1]
            word = [] if word is None else word
            word.append(nxt)
            start = i if start < 0 else start
            i, end = i + 2, i + 2
            continue
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\n":
                raise PluginError(f"{file}:{number}: a quote is not closed on its line")
            else:
                word = [] if word is None else word
                word.append(ch)
            i += 1
            end = i
            continue
        if ch in "'\"":
            quote = ch
            word = [] if word is None else word
            start = i if start < 0 else start
            i += 1
            continue
        if ch == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
            break
        if ch in " \t\r":
            if word is not None:
                words.append("".join(word))
                word = None
            i += 1
            continue
        word = [] if word is None else word
        word.append(ch)
        start = i if start < 0 else start
        i += 1
        end = i
    if quote:
        raise PluginError(f"{file}:{number}: a quote is not closed on its line")
    if word is not None:
        words.append("".join(word))
    following = i + 1 if i < len(text) else len(text)
    return words, start, end, following, lines


def parse_address(text: str) -> Address | None:
    """``127.0.0.1:80``, ``:80``, ``*:80``, ``[::1]:443``, ``ipv4@…``; None for unix
    sockets, ``fd@``, ``sockpair@`` and the like."""
    written = text
    if "@" in text:
        family, _, text = text.partition("@")
        if family not in ("ipv4", "ipv6", "tcp", "tcp4", "tcp6"):
            return None
    if text.startswith("/") or ":" not in text:
        return None
    host, _, port = text.rpartition(":")
    raw = written[:len(written) - len(port) - 1]
    host = host.strip("[]")
    if host in ("*", "0.0.0.0", "::"):
        host = ""
    return Address(host, int(port) if port.isdigit() else None, raw)


def parse_bind(stmt: Statement) -> Bind:
    words = stmt.words
    addresses = tuple(a for part in (words[1] if len(words) > 1 else "").split(",")
                      if (a := parse_address(part)) is not None)
    lists = tuple(words[i + 1] for i, w in enumerate(words[:-1]) if w == "crt-list")
    return Bind(stmt, addresses, "ssl" in words[2:], lists)
