"""Hostile nginx trees, end to end: a dry run leaves no trace, symlink games in
sites-enabled, non-UTF-8 and CRLF files."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Cli, nginx_tree
from tests.servers.nginx_tree import NginxTree
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration

SITE = """\
server {{
    listen 127.0.0.1:{http};
    server_name {name};
    root {www};
}}
"""


def tree_state(root: Path) -> dict[str, str]:
    """Every file (by digest) and link under ``root``, nginx's own scratch left out."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir.parts and rel_dir.parts[0] in ("logs", "run", "tmp"):
            continue
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if rel in ("nginx.pid", "server.out"):
                continue
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[rel] = "dir"
    return out


@pytest.fixture
def tree(pebble: Pebble) -> Iterator[NginxTree]:
    with nginx_tree(pebble) as t:
        yield t


def test_dry_run_leaves_no_trace(cli: Cli, tree: NginxTree) -> None:
    tree.site("dry", SITE.replace("{name}", "dry.example.org"))
    tree.start()
    cli("register")
    before = (tree_state(cli.base / "config"), tree_state(cli.base / "work"),
              tree_state(tree.root))
    cli("run", "--nginx", *tree.args(), "-d", "dry.example.org", "--redirect", "--dry-run")
    after = (tree_state(cli.base / "config"), tree_state(cli.base / "work"),
             tree_state(tree.root))
    assert after == before


def test_crlf_site(cli: Cli, tree: NginxTree) -> None:
    path = tree.site("crlf", SITE.replace("{name}", "crlf.example.org"))
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    tree.start()
    cli("run", "--nginx", *tree.args(), "-d", "crlf.example.org", "--redirect")
    text = path.read_bytes()
    assert b"ssl_certificate" in text
    assert text.count(b"\n") == text.count(b"\r\n"), "the CRLF endings are kept"


def test_latin1_site(cli: Cli, tree: NginxTree) -> None:
    path = tree.site("latin", "# caf\xe9 owner\n" + SITE.replace("{name}", "latin.example.org"))
    path.write_bytes(path.read_text().encode("latin-1"))
    tree.start()
    before = path.read_bytes()
    cli("run", "--nginx", *tree.args(), "-d", "latin.example.org")
    after = path.read_bytes()
    assert after.startswith(before.split(b"\n")[0]), "the Latin-1 comment kept byte for byte"
    assert b"ssl_certificate" in after


def test_link_outside(cli: Cli, tree: NginxTree, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.conf"
    outside.write_text(SITE.format(http=tree.http_port, name="out.example.org", www=tree.www))
    (tree.root / "sites-enabled" / "out").symlink_to(outside)
    tree.start()
    cli("run", "--nginx", *tree.args(), "-d", "out.example.org")
    assert (tree.root / "sites-enabled" / "out").is_symlink(), "the link is kept"
    assert "ssl_certificate" in outside.read_text(), "the file it points to is edited"


def test_dangling_and_loop(cli: Cli, tree: NginxTree) -> None:
    tree.site("ok", SITE.replace("{name}", "ok.example.org"))
    tree.start()
    (tree.root / "sites-enabled" / "loop").symlink_to(tree.root / "sites-enabled" / "loop")
    before = tree_state(tree.root)
    proc = cli("run", "--nginx", *tree.args(), "-d", "ok.example.org", check=False)
    assert proc.returncode != 0
    assert "sites-enabled/loop" in proc.stderr and "symbolic links" in proc.stderr
    assert tree_state(tree.root) == before
