"""Line-anchored edits of text configuration files, and files an installer manages itself.

For any ``#``-commented, line-oriented config (nginx, haproxy.cfg, Postfix's main.cf,
Dovecot, Apache): new statements go in as whole lines, indented like their neighbours, with
the file's own line ending; a replaced range keeps whatever surrounds it on its line.
Everything else stays byte for byte. (Rebuilding a file from a parse would re-quote and
re-flow it, and drop nothing less than the user's layout.) Offsets are ``str`` indexes into
the file's text; the parser of each server finds them.

A *managed file* is one the installer writes whole (TLS options, temporary challenge
answers): it carries a header saying so, and a plan changes it only when its bytes differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from certwright.core.errors import PluginError
from certwright.core.installer_types import FileChange

UNIT = "    "
NESTED = "\t"
"""A leading tab in a line given to :func:`render` means "one level deeper"."""
ENCODING = "utf-8"
ERRORS = "surrogateescape"
"""How config text is decoded and encoded: bytes that are not UTF-8 survive unchanged."""

Read = Callable[[str], bytes | None]
"""Current bytes of a file, None when it does not exist."""


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


def rest_is_blank(text: str, offset: int, comment: str = "#") -> int | None:
    """When only blanks or a comment follow ``offset`` on its line: the offset of the next
    line (``len(text)`` at the end of the file); else None."""
    end = text.find("\n", offset)
    rest = text[offset:] if end < 0 else text[offset:end]
    stripped = rest.strip(" \t\r")
    if stripped and not stripped.startswith(comment):
        return None
    return len(text) if end < 0 else end + 1


def deeper(indent: str) -> str:
    """One level deeper than ``indent`` (a tab where the file indents with tabs)."""
    return indent + ("\t" if "\t" in indent else UNIT)


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
    """Replace ``text[start:end]`` by ``text`` (an insertion when ``start == end``)."""

    start: int
    end: int
    text: str


def lines_after(text: str, offset: int, lines: Sequence[str], indent: str) -> Edit:
    """New lines right after the statement (or block opener) ending at ``offset``: on the
    next line when only a comment follows it, else on new lines right after it."""
    nl = newline_of(text)
    body = render(lines, indent)
    after = rest_is_blank(text, offset)
    if after is not None:
        lead = nl if after == len(text) and not text.endswith("\n") else ""
        return Edit(after, after, lead + "".join(line + nl for line in body))
    return Edit(offset, offset, "".join(nl + line for line in body))


def lines_before(text: str, close: int, lines: Sequence[str], indent: str,
                 closing_indent: str = "") -> Edit:
    """New lines just before the block end at ``close`` (a ``}``, or the end of a
    section): above its line when it starts one, else before it, which then moves to a
    line of its own indented ``closing_indent``."""
    nl = newline_of(text)
    body = render(lines, indent)
    if starts_line(text, close):
        at = line_start(text, close)
        return Edit(at, at, "".join(line + nl for line in body))
    return Edit(close, close, "".join(nl + line for line in body) + nl + closing_indent)


def replace_keeping_indent(text: str, start: int, end: int, lines: Sequence[str]) -> Edit:
    """Replace ``text[start:end]`` by ``lines``; lines after the first get the indentation
    of the line ``start`` is on (when ``start`` begins it)."""
    indent = indent_at(text, start) if starts_line(text, start) else ""
    return Edit(start, end, (newline_of(text) + indent).join(lines))


class TextEdits:
    """Edits of one file's text, applied together; overlapping replacements are a bug."""

    def __init__(self, path: str, text: str) -> None:
        self.path, self.text = path, text
        self.edits: list[Edit] = []

    def add(self, edit: Edit) -> None:
        """An edit asked for twice (one statement reached two ways) is made once: two
        insertions at one offset would both land."""
        if edit not in self.edits:
            self.edits.append(edit)

    def result(self) -> str:
        text = self.text
        ordered = sorted(enumerate(self.edits), key=lambda p: (p[1].start, p[1].end, p[0]))
        out, pos = [], 0
        for _, edit in ordered:
            if edit.start < pos:
                raise PluginError(f"{self.path}: two planned edits overlap (a bug)")
            out.append(text[pos:edit.start])
            out.append(edit.text)
            pos = edit.end
        out.append(text[pos:])
        return "".join(out)


def read_file(path: str) -> bytes | None:
    """A file's bytes, None when it does not exist; PluginError naming it otherwise."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PluginError(f"{path}: cannot read: {exc.strerror}") from None


def managed_text(header: str, body: str, comment: str = "#") -> str:
    """A managed file's text: each header line as a comment, then the body."""
    lines = "".join(f"{comment} {line}".rstrip() + "\n" for line in header.splitlines())
    return lines + body


def managed_change(path: str, text: str | None, read: Read = read_file,
                   mode: int = 0o644) -> FileChange | None:
    """The change that makes ``path`` hold ``text`` (None: removes it), expecting what is
    there now; None when nothing would change."""
    current = read(path)
    content = None if text is None else text.encode(ENCODING, ERRORS)
    if current == content:
        return None
    sha = None if current is None else hashlib.sha256(current).hexdigest()
    return FileChange(path, content, sha, mode)
