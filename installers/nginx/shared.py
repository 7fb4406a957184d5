"""Certificate lines in an include file that several server blocks share.

nginx reads an ``include`` as if its text stood in the block, and ``ssl_certificate`` /
``ssl_certificate_key`` may repeat in a block without an error (one pair per key type): of
two certificates of the same key type the later one is served, of two types both are,
and a client picks by the signature algorithms it offers (checked with nginx 1.22). So a
line added next to the included one does not reliably replace it; the included one has to
go from that block.

When every block that reads the file is a target of this certificate, the file itself is
updated. Otherwise, in each target block, the ``include`` line is replaced: by the
certificate lines themselves when the file holds nothing else, else by an ``include`` of a
copy under ``<server root>/certwright/includes/`` with the certificate lines replaced and a
plain ``listen`` on the https port made TLS (the other blocks keep reading the original).
The ``include`` line changed is the block's own, or one in a file that only target blocks
read (the site's snippet including the shared file). Blocks that are not targets are never
touched.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from certwright.core.errors import PluginError
from certwright.core.interfaces import DeployRequest
from certwright.core.textedit import replace_keeping_indent
from certwright.installers.nginx import edit
from certwright.installers.nginx.edit import FileEdits, statement
from certwright.installers.nginx.tree import Directive, NginxTree, ServerBlock, parse_listen

if TYPE_CHECKING:
    from certwright.installers.nginx.plan import _Planner

CERT_LINES = ("ssl_certificate", "ssl_certificate_key")


def sharers(tree: NginxTree, path: str) -> list[ServerBlock]:
    """The server blocks that read ``path`` (through any chain of includes)."""
    return [b for b in tree.servers if any(d.file == path for d in b.directives)]


def shared_beyond(tree: NginxTree, path: str, targets: set[int]) -> bool:
    """Whether ``path`` is read by a block that is not in ``targets`` (block orders), or
    by an ``include`` outside every server block."""
    blocks = sharers(tree, path)
    if any(b.order not in targets for b in blocks):
        return True
    inside = {(d.file, d.start) for b in blocks for d in b.directives
              if d.name == "include" and path in d.includes}
    return len(inside) < tree.include_count(path)


def path_for_copy(planner: _Planner, cert_name: str, path: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", cert_name.replace("*", "wildcard")).lstrip(".")
    return os.path.join(planner.layout.managed_dir, "includes",
                        f"{safe or 'certificate'}-{os.path.basename(path)}")


def detach(planner: _Planner, block: ServerBlock, path: str, req: DeployRequest) -> None:
    """Take ``block``'s certificate lines out of the shared file ``path`` (see above)."""
    key = (block.order, path)
    if key in planner.detached:
        return
    planner.detached.add(key)
    # the include line to change: in the block itself, or in a file only target blocks
    # read (a snippet of the site including the shared one)
    item = next((d for d in block.directives if d.name == "include" and path in d.includes
                 and (d.file == block.file
                      or not shared_beyond(planner.tree, d.file, planner.targets))), None)
    if item is None:
        raise PluginError(
            f"{path}: the certificate lines of the server block at {block.where} come "
            "through includes that server blocks of other names share at every level; "
            "include the file from the server block itself, or move the certificate "
            "lines there, then run again")
    values = {"ssl_certificate": req.fullchain_path, "ssl_certificate_key": req.key_path}
    mine = [d for d in block.directives if d.file == path]
    if all(d.name in CERT_LINES for d in mine):
        names = [n for n in CERT_LINES if any(d.name == n for d in mine)]
        _replace(planner, item, [statement(n, values[n]) for n in names])
        planner.note(f"{item.where}: {path} is shared with other server blocks; its "
                     f"certificate lines were replaced by this certificate's in this block")
        return
    copy = path_for_copy(planner, req.cert_name, path)
    edits = FileEdits(planner.tree.files[path])
    for d in _top_level(path, mine):
        if d.name in CERT_LINES:
            edits.add(edit.replace_statement(d, statement(d.name, values[d.name])))
        elif d.name == "listen" and _plain_on(d, req.https_port):
            edits.add(edit.Edit(d.end - 1, d.end - 1, " ssl"))  # TLS on the https port
    header = (f"# Managed by certwright: a copy of {path} for the certificate "
              f"{req.cert_name} (other server blocks share the original).\n")
    planner.write(copy, header + edits.result())
    _replace(planner, item, [statement("include", copy)])
    planner.note(f"{item.where}: {path} is shared with other server blocks; this block now "
                 f"includes {copy}, a copy with this certificate (edit both when changing "
                 "the other settings there)")


def _plain_on(item: Directive, port: int) -> bool:
    listen = parse_listen(item.args, item)
    return listen.port == port and not listen.ssl


def _top_level(path: str, mine: list[Directive]) -> list[Directive]:
    """Statements of ``path`` itself (not of what it includes), each once."""
    seen: set[int] = set()
    out = []
    for d in mine:
        if d.file == path and d.start not in seen:
            seen.add(d.start)
            out.append(d)
    return out


def _replace(planner: _Planner, item: Directive, lines: list[str]) -> None:
    text = planner.text(item.file)
    planner.edit(item.file, replace_keeping_indent(text, item.start, item.end, lines))
