"""Plain vhost files read without augeas: the common case of a site file holding only
``<VirtualHost>`` sections of one-line, unquoted directives.

A tree of 1,000 site files is 50,000 lines augeas parses in about a second, though
nearly all of them are this plain. A file qualifies only when every line is blank, a
whole-line comment, a section opener or closer, or a directive whose words need no quoting rules:
printable ASCII with no ``"``, ``'``, ``\\``, ``#`` after the start or line ending
other than ``\\n``; sections balanced, no conditions (``<If…>``), no ``Include``,
``Define``, ``Use``, ``Macro``, ``LoadModule`` and no directive outside a section. For such a
file the result is exactly what :class:`.tree.AugeasReader` builds (the same names, words
and line numbers); any other file returns ``None`` and goes to augeas.
"""

from __future__ import annotations

import re

from certwright.installers.apache.model import Node

_ASCII = frozenset(chr(c) for c in range(0x20, 0x7F)) | {"\t"}
_QUOTING = frozenset("\"'\\#")
_ACTIVE = frozenset({"include", "includeoptional", "define", "undefine", "use", "macro",
                     "loadmodule", "serverroot", "mdomain", "mdomainset"})
_TOP_SECTIONS = frozenset({"virtualhost"})
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


def parse_plain(file: str, data: bytes, line_directives: frozenset[str]
                ) -> tuple[Node, ...] | None:
    """The file's top-level nodes, or None when it is not plain (see the module doc)."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    if "\r" in text:
        return None
    stack: list[tuple[str, tuple[str, ...], int, list[Node]]] = []
    top: list[Node] = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip(" \t")
        if not line or line.startswith("#"):
            continue
        if not set(line) <= _ASCII or _QUOTING & set(line):
            return None
        if line.startswith("</"):
            if not stack or not line.endswith(">") or \
                    line[2:-1].strip().lower() != stack[-1][0].lower():
                return None
            name, args, at, children = stack.pop()
            node = Node(name, args, file, at, tuple(children))
            (stack[-1][3] if stack else top).append(node)
            continue
        if line.startswith("<"):
            if not line.endswith(">"):
                return None
            words = line[1:-1].split()
            if not words or not _NAME.fullmatch(words[0]) or \
                    words[0].lower().startswith("if") or \
                    (not stack and words[0].lower() not in _TOP_SECTIONS) or \
                    (stack and words[0].lower() in _TOP_SECTIONS) or \
                    words[0].lower() in _ACTIVE or "<" in line[1:] or ">" in line[:-1]:
                return None
            stack.append((words[0], tuple(words[1:]), number, []))
            continue
        words = line.split()
        kind = words[0].lower()
        if not stack or kind in _ACTIVE or ">" in line or "<" in line or \
                not _NAME.fullmatch(words[0]):
            return None
        at = number if kind in line_directives else 0
        stack[-1][3].append(Node(words[0], tuple(words[1:]), file, at))
    if stack:
        return None
    return tuple(top)
