"""Server block selection in nginx's order, without nginx."""

from __future__ import annotations

from pathlib import Path

import pytest

from certwright.installers.nginx.select import (
    MatchKind,
    covers,
    match_name,
    select_blocks,
)
from certwright.installers.nginx.tree import ServerBlock, load_tree


def servers(tmp_path: Path, body: str) -> tuple[ServerBlock, ...]:
    (tmp_path / "nginx.conf").write_text(f"events {{}}\nhttp {{\n{body}\n}}\n")
    return load_tree(str(tmp_path / "nginx.conf")).servers


def picked(blocks: tuple[ServerBlock, ...], name: str, port: int = 80, *,
           ssl: bool | None = None, fallback: bool = True) -> list[tuple[str, MatchKind]]:
    return [(m.block.server_names[0], m.kind)
            for m in select_blocks(blocks, name, port, ssl=ssl, fallback=fallback)]


ORDER = """
server { listen 80; server_name ~^(?<sub>web\\d+)\\. regex1; }
server { listen 80; server_name www.example.*  trailing1; }
server { listen 80; server_name www.*  trailing2; }
server { listen 80; server_name *.org leading1; }
server { listen 80; server_name *.example.org leading2; }
server { listen 80; server_name www.example.org exact; }
server { listen 80; server_name ~\\.example\\.(com|net)$ regex2; }
server { listen 80 default_server; server_name _; }
"""


def test_nginx_order_exact_then_wildcards_then_regex(tmp_path: Path) -> None:
    blocks = servers(tmp_path, ORDER)
    assert picked(blocks, "www.example.org") == [("www.example.org", MatchKind.EXACT)]
    assert picked(blocks, "WWW.Example.ORG.") == [("www.example.org", MatchKind.EXACT)]
    # longest leading wildcard beats a shorter one, a trailing one and regexes
    assert picked(blocks, "mail.example.org") == [("*.example.org", MatchKind.LEADING_WILDCARD)]
    assert picked(blocks, "a.b.example.org") == [("*.example.org", MatchKind.LEADING_WILDCARD)]
    # no leading wildcard: the longest trailing one
    assert picked(blocks, "www.example.net") == [("www.example.*", MatchKind.TRAILING_WILDCARD)]
    assert picked(blocks, "www.other.net") == [("www.*", MatchKind.TRAILING_WILDCARD)]
    # only regexes: the first in configuration order
    assert picked(blocks, "web1.example.net") == [("~^(?<sub>web\\d+)\\.", MatchKind.REGEX)]
    assert picked(blocks, "mail.example.com") == [("~\\.example\\.(com|net)$", MatchKind.REGEX)]
    # nothing by name: the default server
    assert picked(blocks, "nothing.net") == [("_", MatchKind.DEFAULT)]
    assert picked(blocks, "nothing.net", fallback=False) == []


def test_port_and_tls_filters(tmp_path: Path) -> None:
    blocks = servers(tmp_path, """
        server { listen 80; server_name a.test; }
        server { listen 443 ssl; server_name a.test; }
        server { listen 8443; server_name a.test; }
        server { server_name implicit.test; }
    """)
    assert [m.block.line for m in select_blocks(blocks, "a.test", 80)] == [4]
    assert [m.block.line for m in select_blocks(blocks, "a.test", 443, ssl=True)] == [5]
    assert select_blocks(blocks, "a.test", 8443, ssl=True) == ()
    assert [m.block.line for m in select_blocks(blocks, "a.test", 8443, ssl=False)] == [6]
    assert picked(blocks, "implicit.test") == [("implicit.test", MatchKind.EXACT)]
    assert picked(blocks, "implicit.test", 443) == []


def test_one_pick_per_address_group(tmp_path: Path) -> None:
    blocks = servers(tmp_path, """
        server { listen 10.0.0.1:80; server_name *.example.org; }
        server { listen 10.0.0.1:80; server_name app.example.org; }
        server { listen 10.0.0.2:80; server_name ~app; }
        server { listen 10.0.0.3:80 default_server; server_name _; }
    """)
    assert picked(blocks, "app.example.org") == [
        ("app.example.org", MatchKind.EXACT), ("~app", MatchKind.REGEX)]


def test_default_server_only_when_no_group_matches_by_name(tmp_path: Path) -> None:
    blocks = servers(tmp_path, """
        server { listen 80 default_server; server_name _; }
        server { listen [::]:80 default_server; server_name _v6; }
        server { listen 127.0.0.1:80; server_name site.test; }
    """)
    assert picked(blocks, "site.test") == [("site.test", MatchKind.EXACT)]
    assert picked(blocks, "other.test") == [("_", MatchKind.DEFAULT), ("_v6", MatchKind.DEFAULT)]


def test_first_exact_duplicate_wins(tmp_path: Path) -> None:
    blocks = servers(tmp_path, """
        server { listen 80; server_name dup.test first; }
        server { listen 80; server_name dup.test second; }
    """)
    assert [m.block.server_names[1] for m in select_blocks(blocks, "dup.test", 80)] == ["first"]


@pytest.mark.parametrize(("pattern", "name", "kind"), [
    (".example.org", "example.org", MatchKind.LEADING_WILDCARD),
    (".example.org", "www.example.org", MatchKind.LEADING_WILDCARD),
    ("*.example.org", "example.org", None),
    ("w*.example.org", "www.example.org", None),
    ("www.example.*", "www.example", None),
    ("~[", "anything", None),
    ("~^(?<name>www)\\.", "www.x", MatchKind.REGEX),
    ("~^WWW", "www.x", MatchKind.REGEX),
    ("*.example.org", "*.example.org", MatchKind.LEADING_WILDCARD),
])
def test_match_name(pattern: str, name: str, kind: MatchKind | None) -> None:
    found = match_name(pattern, name)
    assert (found[0] if found else None) == kind


def test_covers_one_label_wildcards() -> None:
    assert covers(["example.org"], "EXAMPLE.org")
    assert covers(["*.example.org"], "www.example.org")
    assert not covers(["*.example.org"], "a.b.example.org")
    assert not covers(["*.example.org"], "example.org")


def test_server_name_with_a_trailing_dot_never_matches() -> None:
    # nginx strips the dot from the Host header, not from server_name
    assert match_name("dot.example.org.", "dot.example.org") is None
    assert match_name("dot.example.org", "dot.example.org.") is not None
