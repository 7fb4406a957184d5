"""nginx tree reading: includes, offsets of statements and blocks, listen parsing, errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from certwright.core.errors import PluginError
from certwright.installers.nginx.tree import glob_matches, load_tree, parse_listen


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
    return root / "nginx.conf"


MAIN = """\
# main file
events {}
http {
    include conf.d/*.conf;   # relative: from the main file's directory
    server {
        listen 8080;
        server_name main.test;
    }
}
"""


def test_nested_glob_includes_in_reading_order(tmp_path: Path) -> None:
    main = write(tmp_path, {
        "nginx.conf": MAIN,
        "conf.d/b.conf": "server {\n    server_name b.test;\n}\n",
        "conf.d/a.conf": (
            "include sites/*.site;\n"
            "server {\n"
            "    listen 80;\n"
            "    server_name a.test;\n"
            "    include snippets/tls.inc;\n"
            "}\n"
        ),
        "sites/one.site": "server { listen 81; server_name one.test; }\n",
        "sites/two.site": "server { listen 82; server_name two.test; }\n",
        "snippets/tls.inc": "# a snippet\nssl_certificate /etc/ssl/snake.pem;\n",
        "conf.d/ignored.txt": "this is not included {",
    })
    tree = load_tree(str(main))
    names = [b.server_names for b in tree.servers]
    # a.conf is read first (sorted glob) and includes sites/* before its own server
    assert names == [("one.test",), ("two.test",), ("a.test",), ("b.test",), ("main.test",)]
    a = tree.servers[2]
    assert [d.where for d in a.ssl_certificates] == [f"{tmp_path}/snippets/tls.inc:2"]
    assert a.ssl_certificates[0].args == ("/etc/ssl/snake.pem",)
    # both are read in the http context (the second from inside an included file)
    assert tree.http_includes == (f"{tmp_path}/conf.d/*.conf", f"{tmp_path}/sites/*.site")
    assert tree.includes_file(f"{tmp_path}/conf.d/new.conf")
    assert not tree.includes_file(f"{tmp_path}/conf.d/sub/new.conf")
    assert tree.include_count(f"{tmp_path}/snippets/tls.inc") == 1
    for config in tree.files.values():
        assert config.sha256 == hashlib.sha256(Path(config.path).read_bytes()).hexdigest()
    assert f"{tmp_path}/conf.d/ignored.txt" not in tree.files


def test_block_lines_and_offsets_skip_quoted_and_commented_braces(tmp_path: Path) -> None:
    site = (
        "# { a comment with a brace\n"                       # 1
        "server {\n"                                          # 2
        '    listen 80;   # trailing } comment\n'             # 3
        '    server_name "quoted.test" plain.test;\n'         # 4
        "    location / {\n"                                  # 5
        '        return 200 "}{ braces in quotes";\n'         # 6
        "    }\n"                                             # 7
        "    set $x ${host}x;\n"                              # 8
        "    content_by_lua_block {\n"                        # 9
        '        ngx.say("}") -- } in a Lua comment\n'        # 10
        "    }\n"                                             # 11
        "}\n"                                                 # 12
        "server { listen 81; server_name one.line; }\n"       # 13
    )
    main = write(tmp_path, {
        "nginx.conf": "events {}\nhttp {\n    include site.conf;\n}\n", "site.conf": site})
    tree = load_tree(str(main))
    first, second = tree.servers
    assert (first.line, first.end_line) == (2, 12)
    assert (second.line, second.end_line) == (13, 13)
    assert first.server_names == ("quoted.test", "plain.test")
    text = tree.files[first.file].text
    assert text[first.directive.open] == "{" and text[first.directive.close] == "}"
    assert text[first.directive.start:first.directive.end].startswith("server {")
    listen = first.listens[0].directive
    assert listen is not None and text[listen.start:listen.end] == "listen 80;"
    (location,) = first.locations
    assert location.args == ("/",) and (location.line, location.end_line) == (5, 7)
    assert text[second.directive.close:second.directive.end] == "}"


def test_crlf_files_keep_their_line_numbers(tmp_path: Path) -> None:
    main = write(tmp_path, {"nginx.conf": (
        "events {}\r\nhttp {\r\n\r\n    server {\r\n        listen 443 ssl;\r\n"
        "    }\r\n}\r\n")})
    (block,) = load_tree(str(main)).servers
    assert (block.line, block.end_line) == (4, 6)
    assert block.listens[0].ssl


@pytest.mark.parametrize(("site", "where", "message"), [
    ("server {\n    listen 80;\n}\n}\n", 4, 'unexpected "}"'),
    ("server {\n    listen 80\n}\n", 3, 'unexpected "}"'),
    ("server {\n    listen 80;\n", 2, 'expecting "}"'),
    ("\n\nserver { include missing.conf; }\n", 3, "missing.conf"),
])
def test_a_parse_error_names_file_and_line(
    tmp_path: Path, site: str, where: int, message: str
) -> None:
    main = write(tmp_path, {
        "nginx.conf": "events {}\nhttp {\n    include sites/*;\n}\n", "sites/bad": site})
    with pytest.raises(PluginError) as caught:
        load_tree(str(main))
    text = str(caught.value)
    assert text.startswith(f"{tmp_path}/sites/bad:{where}: "), text
    assert message in text


def test_missing_main_file(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="not found"):
        load_tree(str(tmp_path / "nginx.conf"))


def test_unknown_directives_are_fine(tmp_path: Path) -> None:
    main = write(tmp_path, {"nginx.conf": (
        "load_module x.so;\nevents {}\nhttp {\n  more_set_headers 'X: y';\n"
        "  server { listen 80; vhost_traffic_status on on on; brotli on; }\n}\n")})
    assert len(load_tree(str(main)).servers) == 1


def test_only_http_servers_are_collected(tmp_path: Path) -> None:
    main = write(tmp_path, {"nginx.conf": (
        "events {}\n"
        "stream { server { listen 5353 udp; proxy_pass dns; } }\n"
        "http {\n  upstream app { server 127.0.0.1:9000; }\n"
        "  server { listen 80; server_name web.test; }\n}\n")})
    assert [b.server_names for b in load_tree(str(main)).servers] == [("web.test",)]


def test_server_without_listen_listens_on_80(tmp_path: Path) -> None:
    main = write(tmp_path, {"nginx.conf": "events {}\nhttp { server { server_name x; } }\n"})
    (block,) = load_tree(str(main)).servers
    assert block.listens == ()
    assert [(i.host, i.port) for i in block.effective_listens()] == [("*", 80)]
    assert block.listens_on(80) and not block.listens_on(443)


@pytest.mark.parametrize(("args", "expected"), [
    (("80",), ("*", 80, False, False, False)),
    (("*:8080", "default_server"), ("*", 8080, False, True, False)),
    (("0.0.0.0:443", "ssl", "http2"), ("*", 443, True, False, False)),
    (("127.0.0.1",), ("127.0.0.1", 80, False, False, False)),
    (("[::]:443", "ssl", "ipv6only=on"), ("[::]", 443, True, False, True)),
    (("[0:0::0]:80", "default"), ("[::]", 80, False, True, True)),
    (("[::1]",), ("[::1]", 80, False, False, True)),
    (("Example.test:81",), ("example.test", 81, False, False, False)),
    (("unix:/run/app.sock",), ("unix:/run/app.sock", None, False, False, False)),
])
def test_parse_listen(
    args: tuple[str, ...], expected: tuple[str, int | None, bool, bool, bool]
) -> None:
    listen = parse_listen(args)
    assert (listen.host, listen.port, listen.ssl, listen.default_server, listen.ipv6) == expected
    assert listen.params == args[1:]


def test_https_redirects_are_recognised(tmp_path: Path) -> None:
    main = write(tmp_path, {"nginx.conf": (
        "events {}\nhttp {\n"
        "  server { listen 80; server_name a; return 301 https://$host$request_uri; }\n"
        "  server { listen 80; server_name b; rewrite ^ https://b$request_uri permanent; }\n"
        "  server { listen 80; server_name c; location / { return 308 https://c/; } }\n"
        "  server { listen 80; server_name d; if ($scheme = http) { return https://d/; } }\n"
        "  server { listen 80; server_name e; return 301 http://elsewhere/; }\n"
        "  server { listen 80; server_name f; location /x { return 301 https://f/; } }\n"
        "}\n")})
    found = {b.server_names[0]: bool(b.redirects) for b in load_tree(str(main)).servers}
    assert found == {"a": True, "b": True, "c": True, "d": True, "e": False, "f": False}


def test_glob_matches_like_nginx() -> None:
    assert glob_matches("/etc/nginx/sites/*", "/etc/nginx/sites/example")
    assert not glob_matches("/etc/nginx/sites/*", "/etc/nginx/sites/a/b")
    assert not glob_matches("/etc/nginx/sites/*", "/etc/nginx/sites/.hidden")
    assert glob_matches("/etc/nginx/c/*.conf", "/etc/nginx/c/x.conf")
    assert not glob_matches("/etc/nginx/c/*.conf", "/etc/nginx/c/x.conf.bak")


def test_http_block_in_an_included_file_and_the_pid(tmp_path: Path) -> None:
    main = write(tmp_path, {
        "nginx.conf": "pid /run/test.pid;\nevents {}\ninclude web.conf;\n",
        "web.conf": "http {\n    server { listen 80; }\n}\n"})
    tree = load_tree(str(main))
    assert tree.http is not None and tree.http.file == str(tmp_path / "web.conf")
    assert tree.pid == "/run/test.pid" and len(tree.servers) == 1


def test_include_loop_is_an_error(tmp_path: Path) -> None:
    main = write(tmp_path, {"nginx.conf": "events {}\nhttp {\n    include a.conf;\n}\n",
                            "a.conf": "include b.conf;\n", "b.conf": "include a.conf;\n"})
    with pytest.raises(PluginError, match="include loop"):
        load_tree(str(main))


def test_a_reload_scans_only_the_files_that_changed(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from certwright.installers.nginx import tree as tree_mod

    main = write(tmp_path, {
        "nginx.conf": MAIN,
        "conf.d/a.conf": "server {\n    server_name a.test;\n}\n",
        "conf.d/b.conf": "server {\n    server_name b.test;\n}\n",
    })
    scanned: list[str] = []
    real = tree_mod._scan
    monkeypatch.setattr(tree_mod, "_scan", lambda config: (scanned.append(
        Path(config.path).name), real(config))[1])
    cache: tree_mod.ParseCache = {}
    load_tree(str(main), cache)
    assert sorted(scanned) == ["a.conf", "b.conf", "nginx.conf"]
    scanned.clear()
    (tmp_path / "conf.d/b.conf").write_text("server {\n    server_name b2.test;\n}\n")
    again = load_tree(str(main), cache)
    assert scanned == ["b.conf"]
    assert {n for s in again.servers for n in s.server_names} == {"main.test", "a.test", "b2.test"}
    # a new file the (unchanged) main file's glob now matches: main's includes changed
    scanned.clear()
    (tmp_path / "conf.d/c.conf").write_text("server {\n    server_name c.test;\n}\n")
    third = load_tree(str(main), cache)
    assert sorted(scanned) == ["c.conf", "nginx.conf"]
    assert {n for s in third.servers for n in s.server_names} == \
        {"main.test", "a.test", "b2.test", "c.test"}
    assert third == load_tree(str(main))  # the same tree as read from scratch
