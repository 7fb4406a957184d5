"""The nginx planner: collects line-anchored edits of parsed files (:mod:`.edit`) and the
whole contents of certwright's own files, and turns them into one ``ChangePlan``. It knows
where lines go in a server block (after the ``listen`` lines, before the rewrite
directives, first) and in the ``http`` block (an ``include``, the server-name hash size).
Deploy plans (:mod:`.plan`), enhancements (:mod:`.enhance`) and http-01 answers
(:mod:`.http01`) build on it. The statements certwright writes are defined here too.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Sequence

from certwright.core.errors import PluginError
from certwright.core.interfaces import ChangePlan, FileChange
from certwright.core.textedit import Read, managed_change
from certwright.installers.nginx import edit
from certwright.installers.nginx.edit import FileEdits, statement
from certwright.installers.nginx.targets import REDIRECT_VAR, Layout
from certwright.installers.nginx.tree import Directive, NginxTree, ServerBlock

REDIRECT_SET = f'set {REDIRECT_VAR} "$scheme:$request_uri";'
OLD_REDIRECT_ARGS = (REDIRECT_VAR, "$scheme:$uri")
"""What the redirect's ``set`` held before it survived internal redirects."""
REDIRECT_LINES = (
    REDIRECT_SET,
    f'if ({REDIRECT_VAR} ~ "^http:(?!/\\.well-known/acme-challenge/)") {{',
    "\treturn 301 https://$host$request_uri;",
    "}",
)
CHALLENGE_GUARD = 'if ($request_uri ~ "^/\\.well-known/acme-challenge/") { break; }'
HSTS_HEADER = "Strict-Transport-Security"
HSTS_LINE = f'add_header {HSTS_HEADER} "max-age=31536000" always;'
UIR_HEADER = "Content-Security-Policy"
UIR_VALUE = "upgrade-insecure-requests"
UIR_LINE = f'add_header {UIR_HEADER} "{UIR_VALUE}" always;'
_REWRITE_MODULE = frozenset({"return", "rewrite", "if", "set", "break"})


class Planner:
    """Collects edits of parsed files and whole contents of certwright's own files, and
    places lines in server blocks the way every nginx plan does."""

    def __init__(self, tree: NginxTree, layout: Layout, read: Read) -> None:
        self.tree, self.layout, self.read = tree, layout, read
        self.edits: dict[str, FileEdits] = {}
        self.written: dict[str, str | None] = {}
        self.notes: list[str] = []
        self.claimed = {item.key for b in tree.servers for item in b.listens}
        self.defaults = {item.key for b in tree.servers for item in b.listens
                         if item.default_server}
        self.included: set[str] = set()
        self.bucket = 0
        self.upgraded: set[tuple[str, int]] = set()

    def text(self, path: str) -> str:
        return self.tree.files[path].text

    def edit(self, path: str, change: edit.Edit) -> None:
        self.edits.setdefault(path, FileEdits(self.tree.files[path])).add(change)

    def write(self, path: str, text: str | None) -> None:
        self.written[path] = text

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    def plan(self, title: str) -> ChangePlan:
        changes: list[FileChange] = []
        seen: set[str] = set()
        for path, edits in self.edits.items():
            config = self.tree.files[path]
            if config.real_path in seen:
                raise PluginError(f"{path} is read twice through links; edit it by hand")
            seen.add(config.real_path)
            new = edits.result()
            if new != config.text:
                changes.append(FileChange(config.real_path, config.encode(new), config.sha256))
        for path, text in self.written.items():
            change = managed_change(path, text, self.read)
            if change is not None:
                changes.append(change)
        return ChangePlan(title=title, changes=tuple(changes), notes=tuple(self.notes))

    # -- placing lines in a block ---------------------------------------------------------
    def own(self, block: ServerBlock) -> list[Directive]:
        return list(block.directive.block or ())

    def insert_after_listens(self, block: ServerBlock, lines: Sequence[str]) -> None:
        """After the block's last own ``listen`` (else at its top)."""
        text = self.text(block.file)
        listens = [d for d in self.own(block) if d.name == "listen"]
        near = listens[-1] if listens else None
        indent = edit.child_indent(text, block.directive, near)
        offset = near.end if near else block.directive.open + 1
        self.edit(block.file, edit.lines_after(text, offset, lines, indent))

    def insert_top(self, block: ServerBlock, lines: Sequence[str]) -> None:
        """After ``listen``/``server_name`` when no rewrite directive comes before them;
        else right after ``server {`` (rewrite directives run in order)."""
        text = self.text(block.file)
        near = None
        for item in self.own(block):
            if item.name in _REWRITE_MODULE:
                break
            if item.name in ("listen", "server_name"):
                near = item
        indent = edit.child_indent(text, block.directive, near)
        offset = near.end if near else block.directive.open + 1
        self.edit(block.file, edit.lines_after(text, offset, lines, indent))

    def insert_first(self, block: ServerBlock, lines: Sequence[str]) -> None:
        text = self.text(block.file)
        indent = edit.child_indent(text, block.directive)
        self.edit(block.file, edit.lines_after(text, block.directive.open + 1, lines, indent))

    def ensure_included(self, pattern: str, path: str) -> None:
        """Make the ``http`` block include ``pattern`` (which names ``path``)."""
        if self.tree.includes_file(path) or pattern in self.included:
            return
        http = self.tree.http
        if http is None:
            raise PluginError(f"{self.tree.main}: no http block to include {pattern} from")
        text = self.text(http.file)
        last = [i for i in http.block or () if i.file == http.file][-1:]
        indent = edit.child_indent(text, http, last[0] if last else None)
        self.edit(http.file, edit.lines_at_end(text, http, [statement("include", pattern)],
                                               indent))
        self.included.add(pattern)

    def ensure_bucket(self, names: Sequence[str]) -> None:
        """nginx's server-name hash needs buckets wider than its longest name; the
        default (64) fails ``nginx -t`` from about 47 characters. Raise it, as Certbot
        does, where certwright writes such a name."""
        need = _bucket_for(max((len(n) for n in names), default=0))
        http = self.tree.http
        if need <= max(64, self.bucket) or http is None:
            return
        self.bucket = need  # once per plan, the widest asked for
        found = [i for i in self.tree.http_statements
                 if i.name == "server_names_hash_bucket_size"]  # in an include too
        line = statement("server_names_hash_bucket_size", str(need))
        if found:
            current = found[-1]
            arg = current.args[0] if current.args else ""
            if arg.isascii() and arg.isdigit() and int(arg) >= need:
                return
            self.edit(current.file, edit.Edit(current.start, current.end, line))
            return
        text = self.text(http.file)
        last = [i for i in http.block or () if i.file == http.file][-1:]
        indent = edit.child_indent(text, http, last[0] if last else None)
        self.edit(http.file, edit.lines_at_end(text, http, [line], indent))

    def upgrade_redirects(self, blocks: Iterable[ServerBlock]) -> None:
        """certwright's redirect in its earlier form (``$uri``, which internal redirects
        change) becomes the current one (``$request_uri``)."""
        for block in blocks:
            for item in block.directives:
                key = (item.file, item.start)
                if item.name == "set" and item.args == OLD_REDIRECT_ARGS \
                        and key not in self.upgraded:
                    self.upgraded.add(key)
                    self.edit(item.file, edit.replace_statement(item, REDIRECT_SET))


_NOT_COPIED = frozenset({"listen", "server_name", "http2"})
# what ties a block to its listens and certificates; an include carrying it is not copied
_TLS_OR_LISTEN = re.compile(r"^\s*(?:listen|server_name|ssl\w*|http2)\s", re.MULTILINE)


def _not_copied(tree: NginxTree, item: Directive) -> bool:
    if item.name in _NOT_COPIED or item.name.startswith("ssl"):
        return True
    return item.name == "include" and any(
        path in tree.files and _TLS_OR_LISTEN.search(tree.files[path].text)
        for path in item.includes)


def _copy_body(tree: NginxTree, block: ServerBlock) -> str:
    """``block``'s own statements, re-indented one level, minus what ties it to its
    listens and certificates (``listen``, ``server_name``, ``ssl*``, includes holding
    those, such as Debian's snakeoil snippet) and redirects to https (certwright's own
    included)."""
    text = tree.files[block.file].text
    redirects = {(d.file, d.start) for d in block.redirects}
    out: list[str] = []
    for item in block.directive.block or ():
        if (item.file != block.file or _not_copied(tree, item)
                or (item.file, item.start) in redirects
                or REDIRECT_VAR in item.args or any(REDIRECT_VAR in a for a in item.args)):
            continue
        begin = (edit.line_start(text, item.start) if edit.starts_line(text, item.start)
                 else item.start)
        raw = text[begin:item.end]
        out.append(textwrap.indent(textwrap.dedent(raw.replace("\t", edit.UNIT)), edit.UNIT))
    return "".join(chunk.rstrip() + "\n" for chunk in out)


def _bucket_for(longest: int) -> int:
    size = 64
    while size < longest + 18:  # the name, its length and a pointer, aligned
        size *= 2
    return size


def _server_text(body: Sequence[str]) -> str:
    return "server {\n" + "".join(line + "\n" for line in edit.render(body, edit.UNIT)) + "}\n"
