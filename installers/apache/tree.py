"""Read Apache configuration files through augeas' ``Httpd`` lens into :class:`Node` trees.

This is the only module that imports ``augeas``. Files are loaded lazily, only those an
``Include`` actually reaches (:mod:`.evaluate` decides which): augeas is started with
``NO_LOAD | NO_MODL_AUTOLOAD`` and each batch of files is added to
``/augeas/load/Httpd/incl`` before one ``load()``. A file is then read back in one call
(augeas' ``print`` of its subtree, in document order) rather than node by node; line
numbers come from augeas' spans, asked only for sections and :data:`LINE_DIRECTIVES`.

A plain vhost file (only ``<VirtualHost>`` sections of unquoted one-line directives, the
bulk of a hosting tree) is read by :mod:`.plainfile` instead, to the same nodes, without
augeas' second per thousand files. A file the lens can't parse stops the read with its
path, line and augeas' message; a file augeas could not read at all stops it too. Nothing
is skipped silently.
"""

from __future__ import annotations

import bisect
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import augeas

from certwright.core.errors import PluginError
from certwright.installers.apache.model import Node
from certwright.installers.apache.plainfile import parse_plain

LENS = "Httpd.lns"
LINE_DIRECTIVES = frozenset(
    {
        "include",
        "includeoptional",
        "servername",
        "serveralias",
        "listen",
        "use",
        "mdomain",
        "loadmodule",
        "define",
        "sslengine",
        "sslcertificatefile",
        "sslcertificatekeyfile",
        "rewriteengine",
        "rewriterule",
        "rewritecond",
        "redirect",
        "redirectmatch",
        "documentroot",
    }
)
"""Directives whose line number is looked up (the others get 0: spans cost time)."""
PLAIN_MAX = 1 << 20
"""Larger files always go to augeas."""


class ApacheParseError(PluginError):
    """A configuration file augeas' Httpd lens can't read."""


_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
"""``incl`` entries are fnmatch patterns: a file named ``a[1].conf`` must be escaped."""
_PATH_SPECIAL = re.compile(r"([\x00-\x2c/:;<=>?@\[\\\]^`{|}\x7f])")


def aug_path(file: str) -> str:
    """The augeas path of a file's tree (special characters escaped)."""
    parts = [_PATH_SPECIAL.sub(r"\\\1", part) for part in file.split("/") if part]
    return "/files/" + "/".join(parts)


_ESCAPES = {"n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11}
_OCTAL = frozenset("01234567")


def _unescape(text: str) -> str:
    """Undo augeas' ``print`` escaping: ``\\n`` style, ``\\"``, and ``\\ooo`` octal bytes
    (every byte outside printable ASCII, so UTF-8 comes back whole; other bytes are kept
    as surrogates, like the rest of certwright's file reading)."""
    if "\\" not in text:
        return text
    raw = text.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(raw):
        byte = raw[i]
        if byte != 0x5C or i + 1 >= len(raw):
            out.append(byte)
            i += 1
            continue
        nxt = chr(raw[i + 1])
        if nxt in _OCTAL:
            j = i + 1
            while j < len(raw) and j < i + 4 and chr(raw[j]) in _OCTAL:
                j += 1
            out.append(int(raw[i + 1 : j], 8) & 0xFF)
            i = j
        else:
            out.append(_ESCAPES.get(nxt, raw[i + 1]))
            i += 2
    return out.decode("utf-8", "surrogateescape")


@dataclass
class _Builder:
    name: str
    aug: str
    section: bool
    args: list[str] = field(default_factory=list)
    children: list[_Builder] = field(default_factory=list)
    line: int = 0


class AugeasReader:
    """Loads files on demand and returns each as a tuple of top-level :class:`Node`."""

    def __init__(self) -> None:
        flags = augeas.Augeas.NO_LOAD | augeas.Augeas.NO_MODL_AUTOLOAD | augeas.Augeas.ENABLE_SPAN
        self._aug: Any = augeas.Augeas(flags=flags)
        self._aug.set("/augeas/load/Httpd/lens", LENS)
        self._loaded: set[str] = set()
        self._trees: dict[str, tuple[Node, ...]] = {}
        self._dumps: dict[str, list[str]] = {}

    def close(self) -> None:
        self._aug.close()

    def __enter__(self) -> AugeasReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def preload(self, files: Iterable[str]) -> None:
        """Load every file not loaded yet in one augeas ``load()``."""
        new = [f for f in dict.fromkeys(files) if f not in self._loaded]
        new = [f for f in new if not self._plain(f)]
        if not new:
            return
        for file in new:
            self._aug.set("/augeas/load/Httpd/incl[last()+1]", _GLOB_SPECIAL.sub(r"\\\1", file))
        self._aug.load()
        self._loaded.update(new)
        present = [file for file in new if self._check(file)]
        self._dump_all(present)

    def read(self, file: str) -> tuple[Node, ...]:
        cached = self._trees.get(file)
        if cached is None:
            self.preload([file])
            cached = self._trees.get(file)  # a plain file is read by now
        if cached is None:
            cached = self._build(file)
            self._trees[file] = cached
        return cached

    # -- internals ----------------------------------------------------------------------
    def _plain(self, file: str) -> bool:
        """Read ``file`` without augeas when it is a plain vhost file (:mod:`.plainfile`)."""
        try:
            with open(file, "rb") as handle:
                data = handle.read(PLAIN_MAX + 1)
        except OSError:
            return False  # augeas says what is wrong with it
        nodes = parse_plain(file, data, LINE_DIRECTIVES) if len(data) <= PLAIN_MAX else None
        if nodes is None:
            return False
        self._trees[file] = nodes
        self._loaded.add(file)
        return True

    def _check(self, file: str) -> bool:
        """Raise for a file augeas could not read; whether it has a tree."""
        base = "/augeas" + aug_path(file) + "/error"
        error = self._aug.get(base)
        if error is None:
            if self._aug.match(aug_path(file)):
                return True
            if _nonempty(file):
                raise ApacheParseError(f"{file}: augeas did not load this file")
            return False
        line = self._aug.get(base + "/line")
        message = self._aug.get(base + "/message") or error
        where = f"{file}:{line}" if line else file
        raise ApacheParseError(f"{where}: Apache config not readable by augeas: {message}")

    def _print(self, files: Sequence[str]) -> list[str]:
        """augeas' ``print`` of each file's tree, in one ``srun`` (a variable per file
        keeps paths out of the command text)."""
        for index, file in enumerate(files):
            self._aug.defvar(f"certwright_file{index}", aug_path(file))
        script = "\n".join(f"print $certwright_file{i}" for i in range(len(files)))
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="surrogateescape") as out:
            self._aug.srun(out, script)
            out.flush()
            out.seek(0)
            return out.read().splitlines()

    def _dump_all(self, files: Sequence[str]) -> None:
        """Print the trees of freshly loaded ``files`` at once and keep each one's lines:
        one ``srun`` for a thousand files instead of a thousand (a file's block starts at
        the first line that is not below the previous file's path)."""
        if not files:
            return
        lines = self._print(files)
        blocks: list[list[str]] = []
        head = None
        for raw in lines:
            if head is None or not raw.startswith(head + "/"):
                head = raw.partition(" = ")[0]
                blocks.append([])
            blocks[-1].append(raw)
        if len(blocks) != len(files):  # not what was expected: each file on its own
            return
        self._dumps.update(zip(files, blocks, strict=True))

    def _build(self, file: str) -> tuple[Node, ...]:
        prefix = aug_path(file)
        dump = self._dumps.pop(file, None)
        if dump is None:
            dump = self._print([file]) if self._aug.match(prefix) else []
        root = _Builder(name="", aug=prefix, section=True)
        nodes: dict[str, _Builder] = {"": root}
        head = dump[0] if dump else prefix
        for raw in dump[1:]:
            path, sep, value = raw.partition(' = "')
            value = _unescape(value[:-1]) if sep else ""
            rel = path[len(head) :]
            parent_rel, _, seg = rel.rpartition("/")
            parent = nodes.get(parent_rel)
            if parent is None:
                raise ApacheParseError(f"{file}: unexpected augeas node {path}")
            label = seg.split("[", 1)[0]
            if label == "arg":
                parent.args.append(value)
            elif label == "directive":
                child = _Builder(name=value, aug=path, section=False)
                parent.children.append(child)
                nodes[rel] = child
            elif label.startswith("#"):
                continue
            else:
                child = _Builder(name=label, aug=path, section=True)
                parent.children.append(child)
                nodes[rel] = child
        lines = _LineIndex(file)
        return tuple(self._freeze(child, file, lines) for child in root.children)

    def _freeze(self, b: _Builder, file: str, lines: _LineIndex) -> Node:
        line = 0
        if b.section or b.name.lower() in LINE_DIRECTIVES:
            span = self._aug.span(b.aug)
            offset = span[1] if b.section else span[3]
            line = lines.line_of(offset)
        if not b.section:
            return Node(b.name, tuple(b.args), file, line)
        children = tuple(self._freeze(c, file, lines) for c in b.children)
        return Node(b.name, tuple(b.args), file, line, children)


class _LineIndex:
    def __init__(self, file: str) -> None:
        with open(file, "rb") as handle:
            data = handle.read()
        self._starts = [0]
        self._starts.extend(m.end() for m in re.finditer(rb"\n", data))

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self._starts, offset)


def _nonempty(file: str) -> bool:
    try:
        with open(file, "rb") as handle:
            return bool(handle.read(4096).strip())
    except OSError as exc:
        raise ApacheParseError(f"{file}: cannot read: {exc.strerror}") from exc
