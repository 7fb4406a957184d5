"""Line-anchored edits of configuration text.

New statements go in as whole lines, indented like their neighbours, with the file's own
line ending; a replaced statement keeps whatever surrounds it on its line. Everything
else in the file stays byte for byte. (Rebuilding a file from a parse would re-quote and
re-flow it, and drop nothing less than the user's layout.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from certwright.core.errors import PluginError
from certwright.installers.nginx.tree import ConfigFile, Directive

UNIT = "    "
NESTED = "\t"
"""A leading tab in a line given to the helpers below means "one level deeper"."""


def newline_of(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def indent_at(text: str, offset: int) -> str:
    """The leading whitespace of the line holding ``offset``."""
    start = line_start(text, offset)
    line = text[start:offset]
    return line[: len(line) - len(line.lstrip(" \t"))]


def starts_line(text: str, offset: int) -> bool:
    return text[line_start(text, offset):offset].strip(" \t") == ""


def rest_is_blank(text: str, offset: int) -> int | None:
    """When only blanks or a comment follow ``offset`` on its line: the offset of the next
    line (``len(text)`` at the end of the file); else None."""
    end = text.find("\n", offset)
    rest = text[offset:] if end < 0 else text[offset:end]
    stripped = rest.strip(" \t\r")
    if stripped and not stripped.startswith("#"):
        return None
    return len(text) if end < 0 else end + 1


def child_indent(text: str, block: Directive, near: Directive | None = None) -> str:
    """Indentation for a new statement inside ``block``: that of ``near`` (the statement
    it goes next to; default: the first) when it starts a line, else that of the block's
    first statement starting a line, else the block's own plus one level."""
    items = [i for i in block.block or () if i.file == block.file]
    for item in ([near] if near is not None else []) + items:
        if starts_line(text, item.start):
            return indent_at(text, item.start)
    base = indent_at(text, block.start)
    return base + ("\t" if "\t" in base else UNIT)


def render(lines: Sequence[str], indent: str) -> list[str]:
    """Indent ``lines`` (a leading tab = one level deeper); no line endings added."""
    unit = "\t" if "\t" in indent else UNIT
    out = []
    for line in lines:
        depth = len(line) - len(line.lstrip(NESTED))
        out.append(indent + unit * depth + line[depth:])
    return out


@dataclass(frozen=True)
class Edit:
    start: int
    end: int
    text: str


def lines_after(text: str, offset: int, lines: Sequence[str], indent: str) -> Edit:
    """New lines right after the statement (or ``{``) ending at ``offset``."""
    nl = newline_of(text)
    body = render(lines, indent)
    after = rest_is_blank(text, offset)
    if after is not None:
        lead = nl if after == len(text) and not text.endswith("\n") else ""
        return Edit(after, after, lead + "".join(line + nl for line in body))
    return Edit(offset, offset, "".join(nl + line for line in body))


def lines_at_end(text: str, block: Directive, lines: Sequence[str], indent: str) -> Edit:
    """New lines just before ``block``'s closing brace."""
    nl = newline_of(text)
    body = render(lines, indent)
    if starts_line(text, block.close):
        at = line_start(text, block.close)
        return Edit(at, at, "".join(line + nl for line in body))
    closing_indent = indent_at(text, block.start)
    return Edit(block.close, block.close,
                "".join(nl + line for line in body) + nl + closing_indent)


def replace_statement(item: Directive, statement: str) -> Edit:
    return Edit(item.start, item.end, statement)


@dataclass
class FileEdits:
    """Edits of one file, applied together; overlapping replacements are a bug."""

    config: ConfigFile
    edits: list[Edit] = field(default_factory=list)

    def add(self, edit: Edit) -> None:
        """An edit asked for twice (one statement reached through two server blocks) is
        made once: two insertions at one offset would both land."""
        if edit not in self.edits:
            self.edits.append(edit)

    def result(self) -> str:
        text = self.config.text
        ordered = sorted(enumerate(self.edits), key=lambda p: (p[1].start, p[1].end, p[0]))
        out, pos = [], 0
        for _, edit in ordered:
            if edit.start < pos:
                raise PluginError(f"{self.config.path}: two planned edits overlap (a bug)")
            out.append(text[pos:edit.start])
            out.append(edit.text)
            pos = edit.end
        out.append(text[pos:])
        return "".join(out)


def quote(arg: str) -> str:
    """An argument as nginx reads it back: quoted when it holds blanks or specials."""
    if arg and not any(c.isspace() or c in "\"'{};#\\" for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def statement(name: str, *args: str) -> str:
    return " ".join((name, *(quote(a) for a in args))) + ";"
