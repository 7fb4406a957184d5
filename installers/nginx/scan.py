"""nginx's tokenising rules, with offsets: the scanner :mod:`.tree` checks crossplane
against, and what nginx makes of each token.

The scanner reads a file's text into statements (name, argument tokens, where each starts
and ends, a block's braces and children) following the rules crossplane and nginx share:
quotes, backslash escapes, ``#`` comments, ``${var}``. Each token is read twice: as
crossplane reads it (to check the two parsers agree, token for token) and as nginx reads it
(what certwright keeps): ``\\"``, ``\\'`` and ``\\\\`` lose the backslash, ``\\t``, ``\\r``,
``\\n`` become control characters, a backslash before anything else stays, quoted or not;
crossplane only unescapes a quote of the kind that encloses it.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ENCODING = "utf-8"
ERRORS = "surrogateescape"
"""Files are decoded so that encoding the text again gives back the very same bytes."""

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<quoted>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
  | (?P<special>[{};])
  | (?P<word>(?:\\.|\$\{[^}\s]*\}?|[^\s{};\\])+)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    start: int
    end: int


@dataclass
class Span:
    name: str
    line: int
    start: int
    end: int = -1
    open: int = -1
    close: int = -1
    children: list[Span] | None = None
    args: list[Token] | None = None
    """The argument tokens (None for a Lua block, whose body is not tokenised)."""
    value: str = ""
    """The name as nginx reads it (``name`` is crossplane's reading, to compare)."""


class ScanError(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class Scanner:
    """Statements with offsets, following the tokenising rules crossplane and nginx use."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.newlines = [m.start() for m in re.finditer("\n", text)]
        self.pos = 0

    def line(self, offset: int) -> int:
        return bisect.bisect_left(self.newlines, offset) + 1

    def next_token(self) -> Token | None:
        while self.pos < len(self.text):
            match = _TOKEN.match(self.text, self.pos)
            if match is None:
                raise ScanError("unexpected end of file", self.pos)
            self.pos = match.end()
            kind = match.lastgroup or ""
            if kind in ("space", "comment"):
                continue
            return Token(kind, match.group(), match.start(), match.end())
        return None

    def statements(self, depth: int = 0) -> list[Span]:
        out: list[Span] = []
        while True:
            token = self.next_token()
            if token is None:
                if depth:
                    raise ScanError('unexpected end of file, expecting "}"', len(self.text))
                return out
            if token.kind == "special":
                if token.text == "}" and depth:
                    self.pos = token.start  # the caller consumes it
                    return out
                raise ScanError(f'unexpected "{token.text}"', token.start)
            out.append(self.statement(token, depth))

    def statement(self, first: Token, depth: int) -> Span:
        name = _crossplane_value(first)
        span = Span(name, self.line(first.start), first.start, value=nginx_value(first))
        if name.endswith("_by_lua_block"):
            return self.lua_block(span)
        args: list[Token] = []
        span.args = args
        while True:
            token = self.next_token()
            if token is None:
                raise ScanError('unexpected end of file, expecting ";" or "}"', len(self.text))
            if token.kind != "special":
                args.append(token)
                continue
            if token.text == ";":
                span.end = token.end
                return span
            if token.text == "}":
                raise ScanError('unexpected "}"', token.start)
            span.open = token.start
            span.children = self.statements(depth + 1)
            close = self.next_token()
            if close is None or close.text != "}":  # statements() stops only at "}"
                raise ScanError('unexpected end of file, expecting "}"', len(self.text))
            span.close, span.end = close.start, close.end
            return span

    def lua_block(self, span: Span) -> Span:
        """Skip a Lua body as balanced braces, minding Lua strings and ``--`` comments."""
        text, i = self.text, self.pos
        brace = text.find("{", i)
        if brace < 0:
            raise ScanError("expected { to start Lua block", i)
        depth, i = 0, brace
        while i < len(text):
            ch = text[i]
            if ch == "\\":
                i += 2
                continue
            if text.startswith("--", i):
                nl = text.find("\n", i)
                i = len(text) if nl < 0 else nl
            elif ch in "\"'":
                i += 1
                while i < len(text) and text[i] != ch:
                    i += 2 if text[i] == "\\" else 1
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    span.open, span.close, span.end = brace, i, i + 1
                    self.pos = i + 1
                    return span
            i += 1
        raise ScanError("unexpected end of file in Lua block", brace)


_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_NGINX_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


def nginx_value(token: Token) -> str:
    """What nginx makes of a token (``ngx_conf_read_token``): quotes removed; ``\\"``,
    ``\\'`` and ``\\\\`` give the character, ``\\t``/``\\r``/``\\n`` a tab, CR, LF;
    a backslash before any other character stays (``\\d`` in a regex), quoted or not."""
    body = token.text[1:-1] if token.kind == "quoted" else token.text
    return _ESCAPE.sub(lambda m: _NGINX_ESCAPES.get(m.group(1), m.group(0)), body)


def _crossplane_value(token: Token) -> str:
    """What crossplane makes of a token, to check the two readings agree: inside quotes
    only an escaped quote of the same kind loses its backslash; text is read as UTF-8
    with undecodable bytes replaced and universal newlines."""
    text = token.text
    if token.kind == "quoted":
        quote = text[0]
        text = _ESCAPE.sub(lambda m: m.group(1) if m.group(1) == quote else m.group(0),
                           text[1:-1])
    text = text.encode(ENCODING, ERRORS).decode(ENCODING, "replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _readings(token: Token) -> tuple[str, str]:
    """crossplane's and nginx's reading of ``token``; the same, without a backslash, a CR
    or a byte beyond ASCII (nearly every token: checked first, it is cheap)."""
    body = token.text[1:-1] if token.kind == "quoted" else token.text
    if body.isascii() and "\\" not in body and "\r" not in body:
        return body, body
    return _crossplane_value(token), nginx_value(token)


def statement_args(stmt: Mapping[str, Any], span: Span) -> tuple[str, ...] | None:
    """The statement's arguments as nginx reads them (escapes resolved as nginx does,
    bytes kept), once the scanner's tokens agree with crossplane's; None when they do not.
    A Lua block's body is crossplane's alone."""
    given = tuple(stmt.get("args", ()))
    if span.args is None:
        return given
    ours = [_readings(t) for t in span.args]
    if stmt["directive"] == "if":
        ours = _if_args(ours)
    if tuple(x for x, _ in ours) != given and not _crossplane_var_merge(ours, given):
        return None
    return tuple(value for _, value in ours)


def _crossplane_var_merge(ours: list[tuple[str, str]], given: tuple[str, ...]) -> bool:
    """crossplane 0.5.8 misreads what follows an unquoted ``${var}``: a blank and the next
    word join it (``${host} always`` is one argument there), a quote after it is kept as a
    character. Its arguments are not compared where they hold ``${``: ours (nginx's
    tokens) stand, the statement itself having matched."""
    return any("${" in a for a in given)


def _if_args(args: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """crossplane's treatment of ``if (…)``: the parentheses are not arguments."""
    if not args or not args[0][0].startswith("(") or not args[-1][0].endswith(")"):
        return args
    args = list(args)
    args[0] = (args[0][0][1:].lstrip(), args[0][1][1:].lstrip())
    args[-1] = (args[-1][0][:-1].rstrip(), args[-1][1][:-1].rstrip())
    start = int(not args[0][0])
    end = len(args) - int(not args[-1][0])
    return args[start:end]
