"""Which server blocks answer a name: nginx's own choice, as pure functions.

nginx first picks the address and port a connection arrived on; among the server blocks
listening there it takes, for the ``Host`` (or SNI) name:

1. the block with that exact ``server_name``;
2. the longest leading wildcard (``*.example.org``; ``.example.org`` also counts here, and
   matches ``example.org`` itself);
3. the longest trailing wildcard (``www.example.*``);
4. the first regular expression (``~…``) that matches, in configuration order;
5. otherwise the ``default_server`` of that address and port.

Certwright asks the question for every address and port at once (a block may be the answer
on one address and another block on a second), so :func:`select_blocks` returns one match
per address group. ``default_server`` is a fallback only when no group matches by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from certwright.installers.nginx.tree import Listen, ServerBlock


class MatchKind(IntEnum):
    """How a block matched, best first."""

    EXACT = 0
    LEADING_WILDCARD = 1
    TRAILING_WILDCARD = 2
    REGEX = 3
    DEFAULT = 4


@dataclass(frozen=True)
class Match:
    block: ServerBlock
    kind: MatchKind
    pattern: str
    """The ``server_name`` that matched ("" for a default server)."""

    @property
    def by_name(self) -> bool:
        return self.kind != MatchKind.DEFAULT


def normalize_name(name: str) -> str:
    return name.strip().lower().rstrip(".")


def match_name(pattern: str, name: str) -> tuple[MatchKind, int] | None:
    """How ``pattern`` (one ``server_name`` value) matches ``name``, with its specificity
    (longer wins among wildcards); None when it does not match."""
    name = normalize_name(name)
    if pattern.startswith("~"):
        return (MatchKind.REGEX, 0) if _regex_matches(pattern[1:], name) else None
    pattern = pattern.lower()
    if pattern.startswith("*.") or pattern.startswith("."):
        suffix = pattern[1:] if pattern.startswith("*") else pattern  # ".example.org"
        if "*" in suffix:
            return None
        if name.endswith(suffix) and len(name) > len(suffix):
            return (MatchKind.LEADING_WILDCARD, len(suffix))
        if pattern.startswith(".") and name == suffix[1:]:
            return (MatchKind.LEADING_WILDCARD, len(suffix))
        return None
    if pattern.endswith(".*"):
        prefix = pattern[:-1]  # "www.example."
        if "*" in prefix:
            return None
        if name.startswith(prefix) and len(name) > len(prefix):
            return (MatchKind.TRAILING_WILDCARD, len(prefix))
        return None
    if "*" in pattern:
        return None  # nginx refuses a "*" anywhere else
    # nginx drops a trailing dot from the Host header, not from server_name: a name
    # written with one never matches
    return (MatchKind.EXACT, 0) if pattern == name else None


_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")


_PCRE_ESCAPES = {"z": r"\Z", "Z": r"(?=\n?\Z)"}
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def _regex_matches(pattern: str, name: str) -> bool:
    """PCRE as nginx compiles server names: case-insensitive, unanchored unless anchored.
    PCRE's spellings Python lacks are translated: ``(?<name>…)`` is ``(?P<name>…)``,
    ``\\z`` (end of subject) is ``\\Z``, ``\\Z`` (end, or before a final newline)
    a lookahead. A pattern Python can't read matches nothing here."""
    python = _ESCAPED.sub(lambda m: _PCRE_ESCAPES.get(m.group(1), m.group(0)),
                          _NAMED_GROUP.sub("(?P<", pattern))
    try:
        return re.search(python, name, re.IGNORECASE) is not None
    except re.error:
        return False


def best_match(blocks: Iterable[ServerBlock], name: str) -> Match | None:
    """nginx's pick among ``blocks`` (one address group, in configuration order)."""
    best: tuple[tuple[int, int, int], Match] | None = None
    for position, block in enumerate(blocks):
        for pattern in block.server_names:
            found = match_name(pattern, name)
            if found is None:
                continue
            kind, length = found
            # exact: first wins; wildcards: longest, then first; regex: first
            rank = (int(kind), -length, position)
            if best is None or rank < best[0]:
                best = (rank, Match(block, kind, pattern))
    return best[1] if best else None


def address_groups(
    blocks: Sequence[ServerBlock], port: int, *, ssl: bool | None = None
) -> dict[tuple[str, int | None], list[tuple[ServerBlock, Listen]]]:
    """Blocks listening on ``port`` grouped by address, in configuration order."""
    groups: dict[tuple[str, int | None], list[tuple[ServerBlock, Listen]]] = {}
    seen: set[tuple[tuple[str, int | None], int]] = set()
    for block in sorted(blocks, key=lambda b: b.order):
        for listen in block.listens_on(port, ssl=ssl):
            if listen.unix or (listen.key, id(block)) in seen:
                continue
            seen.add((listen.key, id(block)))
            groups.setdefault(listen.key, []).append((block, listen))
    return groups


def select_blocks(
    blocks: Sequence[ServerBlock], name: str, port: int, *,
    ssl: bool | None = None, fallback: bool = True,
) -> tuple[Match, ...]:
    """The blocks that answer ``name`` on ``port``: nginx's pick in every address group
    that has a match by name; when none has, the groups' ``default_server`` blocks (unless
    ``fallback`` is False). Each block appears once."""
    groups = address_groups(blocks, port, ssl=ssl)
    found = [best_match((b for b, _ in members), name) for members in groups.values()]
    matches = [m for m in found if m is not None]
    if not matches and fallback:
        matches = [
            Match(block, MatchKind.DEFAULT, "")
            for members in groups.values()
            for block, listen in members
            if listen.default_server
        ]
    out: list[Match] = []
    for match in matches:
        if all(m.block is not match.block for m in out):
            out.append(match)
    return tuple(out)


def covers(cert_names: Iterable[str], name: str) -> bool:
    """Whether a certificate for ``cert_names`` is valid for ``name`` (one-label wildcards)."""
    name = normalize_name(name)
    for cert_name in cert_names:
        cert_name = normalize_name(cert_name)
        if cert_name == name:
            return True
        suffix = cert_name[1:]  # ".example.org" of "*.example.org"
        label = name[: len(name) - len(suffix)]
        if cert_name.startswith("*.") and name.endswith(suffix) and label and "." not in label:
            return True
    return False
