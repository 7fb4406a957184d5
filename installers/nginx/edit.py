"""nginx's line-anchored edits: the core's text toolkit (:mod:`certwright.core.textedit`)
anchored on crossplane's directives, plus nginx quoting.

New statements go in as whole lines, indented like their neighbours, with the file's own
line ending; a replaced statement keeps whatever surrounds it on its line. Everything
else in the file stays byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence

from certwright.core.textedit import (
    NESTED,
    UNIT,
    Edit,
    TextEdits,
    deeper,
    indent_at,
    line_start,
    lines_after,
    lines_before,
    newline_of,
    render,
    rest_is_blank,
    starts_line,
)
from certwright.installers.nginx.tree import ConfigFile, Directive

__all__ = [
    "NESTED", "UNIT", "Edit", "FileEdits", "child_indent", "indent_at", "line_start",
    "lines_after", "lines_at_end", "newline_of", "quote", "render", "replace_statement",
    "rest_is_blank", "starts_line", "statement",
]


def child_indent(text: str, block: Directive, near: Directive | None = None) -> str:
    """Indentation for a new statement inside ``block``: that of ``near`` (the statement
    it goes next to; default: the first) when it starts a line, else that of the block's
    first statement starting a line, else the block's own plus one level."""
    items = [i for i in block.block or () if i.file == block.file]
    for item in ([near] if near is not None else []) + items:
        if starts_line(text, item.start):
            return indent_at(text, item.start)
    return deeper(indent_at(text, block.start))


def lines_at_end(text: str, block: Directive, lines: Sequence[str], indent: str) -> Edit:
    """New lines just before ``block``'s closing brace."""
    return lines_before(text, block.close, lines, indent, indent_at(text, block.start))


def replace_statement(item: Directive, statement: str) -> Edit:
    return Edit(item.start, item.end, statement)


class FileEdits(TextEdits):
    """Edits of one parsed file, applied together."""

    def __init__(self, config: ConfigFile) -> None:
        super().__init__(config.path, config.text)
        self.config = config


def quote(arg: str) -> str:
    """An argument as nginx reads it back: quoted when it holds blanks or specials."""
    if arg and not any(c.isspace() or c in "\"'{};#\\" for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def statement(name: str, *args: str) -> str:
    return " ".join((name, *(quote(a) for a in args))) + ";"
