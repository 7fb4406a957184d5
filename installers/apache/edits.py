"""Line-anchored edits of the vhosts of Apache files, several per file and per vhost:
applied from the last vhost of a file to the first (an edit changes the line count below
it, never above), each on the text the previous edits left."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from certwright.core.errors import PluginError
from certwright.core.interfaces import FileChange
from certwright.core.textedit import ENCODING, ERRORS, read_file
from certwright.installers.apache import vhosttext
from certwright.installers.apache.model import VirtualHost

Edit = Callable[[vhosttext.VhostSpan], "list[str] | None"]
"""Given a vhost's span, the file's new lines (None: nothing to change)."""


@dataclass
class VhostEdits:
    """Edits per vhost (file, line of ``<VirtualHost``), in the order they were added."""

    edits: dict[tuple[str, int], list[Edit]] = field(default_factory=dict)

    def add(self, vhost: VirtualHost, edit: Edit) -> None:
        self.edits.setdefault((vhost.file, vhost.line), []).append(edit)

    def changes(self) -> list[FileChange]:
        texts: dict[str, str] = {}
        old: dict[str, bytes] = {}
        for (path, number), edits in sorted(self.edits.items(),
                                            key=lambda kv: (kv[0][0], -kv[0][1])):
            if path not in texts:
                data = read_file(path)
                if data is None:
                    raise PluginError(f"{path}: gone since it was read; run again")
                old[path], texts[path] = data, data.decode(ENCODING, ERRORS)
            for edit in edits:
                new = edit(vhosttext.find_vhost(path, texts[path], number))
                if new is not None:
                    texts[path] = "".join(new)
        return list(_changed(texts, old))


def _changed(texts: dict[str, str], old: dict[str, bytes]) -> Iterator[FileChange]:
    for path, text in texts.items():
        new = text.encode(ENCODING, ERRORS)
        if new != old[path]:
            yield FileChange(path, new, hashlib.sha256(old[path]).hexdigest())


def insert_top(span: vhosttext.VhostSpan, lines: Sequence[str]) -> list[str]:
    """``lines`` (one level in, ``\\t`` for one more) right after the ``<VirtualHost>``."""
    return _insert(span, span.first + 1, lines)


def insert_bottom(span: vhosttext.VhostSpan, lines: Sequence[str]) -> list[str]:
    """``lines`` right before the ``</VirtualHost>``: after every section of the vhost."""
    return _insert(span, span.last, lines)


def _insert(span: vhosttext.VhostSpan, at: int, lines: Sequence[str]) -> list[str]:
    nl = vhosttext.newline(span.lines)
    indent = span.indent
    out = list(span.lines)
    if at > 0 and not out[at - 1].endswith(("\n", "\r")):
        out[at - 1] += nl
    out[at:at] = [(indent + line.replace("\t", indent)).rstrip() + nl for line in lines]
    return out
