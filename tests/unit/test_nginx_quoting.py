"""Quoting and escaping as nginx reads it: every form nginx accepts loads, names and
arguments are what nginx itself makes of them (checked against what a real nginx answers),
and a deploy into such a tree passes ``nginx -t``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from certwright.installers.nginx.select import select_blocks
from certwright.installers.nginx.tree import Directive, NginxTree, load_tree
from tests.servers import probe
from tests.servers.ports import free_port
from tests.unit.test_nginx_nginx_t import (  # noqa: F401  (fixtures used below)
    Tree,
    restart,
    running,
    tls,
    tree,
)

# one location per form; its return text is the form under test
FORMS = {
    "dq": r'"a\"b\\c\d\tx\'y"',      # escaped quotes, backslash, \d kept, \t a tab
    "sq": r"'a\'b\"c\\d\e'",         # the same in single quotes
    "bare": r"a\\b\cd\"e\'f",        # unquoted: nginx resolves the same escapes
    "regex": r'"^(\d+)\.(\d+)\z"',      # a regex: \d, \. and \z stay
    "bytes": '"caf\xe9 \xff"',       # not UTF-8: the bytes are kept
    "specials": r'"{}\;#x"',         # braces, semicolon, hash inside quotes
    "newline": r'"a\nb\rc"',         # \n and \r: LF and CR
    "continued": '"a\\\nb"',          # a backslash before a real line break: both stay
}
MAP = """\
    map $http_x_version $major {
        default none;
        "~^(\\d+)\\.(\\d+)" $1;
        '~^v(\\d+)\\.' "v$1";
        "\\"quoted\\"" quoted;
        'it\\'s' its;
        "caf\xe9" bytes;
    }
"""
SITE = """\
server {{
    listen 127.0.0.1:{http};
    server_name "~^(?<sub>\\w+)\\.example\\.org$" example.org;
    location = /var {{ return 200 "${{major}}-${{host}}"; }}
    location = /bare-var {{ 'return' 200 ${{host}}-x; }}
    location = /header {{ add_header X-Host ${{host}} always; return 200 "h"; }}
{locations}}}
"""


def site_bytes(http: int) -> bytes:
    locations = "".join(f"    location = /{key} {{ return 200 {form}; }}\n"
                        for key, form in FORMS.items())
    return SITE.format(http=http, locations=locations).encode("latin-1")


def get(port: int, path: str, host: str = "example.org", version: str = "") -> bytes:
    answer = probe.http_get(port, host, path, headers={"X-Version": version} if version else None)
    assert answer.status_line.startswith("HTTP/1.1 200"), answer.head
    return answer.body


def write_tree(tree: Tree, http: int) -> None:  # noqa: F811
    """The map goes into the main file's http block, the server into a site."""
    main = tree.main.read_bytes().replace(b"    include ", MAP.encode("latin-1") +
                                          b"    include ", 1)
    tree.main.write_bytes(main)
    (tree.root / "sites" / "quoting").write_bytes(site_bytes(http))


def walk(items: Sequence[Directive]) -> Iterator[Directive]:
    for item in items:
        yield item
        yield from walk(item.block or ())


def http_statements(config: NginxTree) -> list[Directive]:
    assert config.http is not None
    return list(walk(config.http.block or ()))


def test_every_quoting_form_reads_as_nginx_reads_it(
        tree: Tree, running: Tree) -> None:  # noqa: F811
    http = free_port()
    write_tree(tree, http)
    tree.check()  # nginx accepts every form
    config = load_tree(str(tree.main))  # failed before: "cannot locate this statement"
    returns = {loc.args[1]: (loc.block or ())[0].args[1]
               for loc in config.servers[0].locations}
    # a quoted directive name is the name; ${var} unquoted is one argument
    (bare,) = [loc for loc in config.servers[0].locations if loc.args[1] == "/bare-var"]
    assert [(d.name, d.args) for d in bare.block or ()] == [("return", ("200", "${host}-x"))]
    # ${var} and a blank: two arguments for nginx (crossplane 0.5.8 reads one)
    (header,) = [loc for loc in config.servers[0].locations if loc.args[1] == "/header"]
    assert (header.block or ())[0].args == ("X-Host", "${host}", "always")
    restart(tree, running, http)
    for key in FORMS:
        assert returns[f"/{key}"].encode("utf-8", "surrogateescape") == get(http, f"/{key}"), \
            key
    # map keys as nginx reads them: a quoted regex keeps its backslashes, nginx uses it
    (mapping,) = [d for d in http_statements(config) if d.name == "map"]
    assert [d.name for d in mapping.block or ()] == [
        "default", r"~^(\d+)\.(\d+)", r"~^v(\d+)\.", '"quoted"', "it's", "caf\udce9"]
    assert get(http, "/bare-var") == b"example.org-x"
    assert probe.http_get(http, "example.org", "/header").header("X-Host") == "example.org"
    assert get(http, "/var", version="12.5") == b"12-example.org"
    assert get(http, "/var", version="v7.1") == b"v7-example.org"
    assert get(http, "/var", version='"quoted"') == b"quoted-example.org"
    # selection agrees with nginx on the quoted regex server name
    assert config.servers[0].server_names[0] == r"~^(?<sub>\w+)\.example\.org$"
    assert select_blocks(config.servers, "shop.example.org", http, ssl=False)
    assert get(http, "/var", host="shop.example.org", version="1.2") == b"1-shop.example.org"
    # and a deploy into this tree passes nginx -t, leaving the quoted forms as they were
    tree.deploy(tree.request("example.org", https=free_port(), http=http))
    after = (tree.root / "sites" / "quoting").read_bytes()
    assert all(form.encode("latin-1") in after for form in FORMS.values())
