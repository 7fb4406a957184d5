"""Reading Apache trees without a server: Include order, conditions, variables, errors,
and the time a 50,000-line tree takes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from certwright.core.errors import PluginError
from certwright.installers.apache.binary import DEFAULT_BINARY, BinaryInfo, module_names
from certwright.installers.apache.evaluate import Evaluator, read_config, version_matches
from certwright.installers.apache.includes import expand
from certwright.installers.apache.layouts import detect_layout, read_envvars
from certwright.installers.apache.reading import read_apache
from certwright.installers.apache.select import choose, wildcard_match
from certwright.installers.apache.tree import ApacheParseError


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def vhost(name: str, addr: str = "*:80") -> str:
    return f"<VirtualHost {addr}>\n    ServerName {name}\n</VirtualHost>\n"


def test_include_order_is_bytewise_and_skips_hidden(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "d/10.conf": "",
            "d/2.conf": "",
            "d/B.conf": "",
            "d/a.conf": "",
            "d/.hidden.conf": "",
            "d/sub/x.conf": "",
        },
    )
    got = expand("d/*.conf", str(tmp_path), optional=False, where="main:1")
    assert [Path(p).name for p in got] == ["10.conf", "2.conf", "B.conf", "a.conf"]
    whole = expand("d", str(tmp_path), optional=False, where="main:1")
    assert [Path(p).name for p in whole] == [
        ".hidden.conf",
        "10.conf",
        "2.conf",
        "B.conf",
        "a.conf",
        "x.conf",
    ]
    assert expand("*/sub/*.conf", str(tmp_path), optional=False, where="m:1")[0].endswith("x.conf")


def test_include_missing_is_an_error_includeoptional_is_not(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"^main:3: Include none/\*\.conf: no file matches"):
        expand("none/*.conf", str(tmp_path), optional=False, where="main:3")
    assert expand("none/*.conf", str(tmp_path), optional=True, where="main:3") == []
    with pytest.raises(PluginError, match="does not exist"):
        expand("gone.conf", str(tmp_path), optional=False, where="main:3")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("2.4",), True),
        (("=", "2.4.71"), True),
        ((">=", "2.4"), True),
        (("<", "2.4"), False),
        (("!=", "2.2"), True),
        (("~", r"^2\.4"), True),
        (("/^2\\.2/",), False),
        ((">", "2.4.70"), True),
        (("<=", "2.4.70"), False),
        (("2.2",), False),
    ],
)
def test_ifversion(args: tuple[str, ...], expected: bool) -> None:
    assert version_matches(args, (2, 4, 71)) is expected


def test_envvars_of_the_stock_file() -> None:
    values = read_envvars("/etc/apache2/envvars")
    assert values["APACHE_LOG_DIR"] == "/var/log/apache2"
    assert values["APACHE_RUN_USER"] == "www-data"


def test_envvars_expansion_and_caller_wins(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "envvars": "unset HOME\nexport A=/x$SUFFIX\nexport B=${A}/y\n"
            "# export C=no\nexport D='q'\n"
        },
    )
    values = read_envvars(str(tmp_path / "envvars"), {"D": "caller"})
    assert values == {"A": "/x", "B": "/x/y", "D": "caller"}


def test_apache_globs_match_like_fnmatch_without_brackets() -> None:
    assert wildcard_match("*.example.net", "a.b.example.NET")
    assert not wildcard_match("*.example.net", "example.net")
    assert wildcard_match("?.example.org", "x.example.org")
    assert not wildcard_match("?.example.org", "xy.example.org")
    assert not wildcard_match("[ab].example.org", "a.example.org")
    assert wildcard_match("[ab].example.org", "[ab].example.org")


def test_module_names() -> None:
    assert module_names("mod_ssl.c") == {"mod_ssl.c", "ssl_module"}
    assert module_names("/usr/lib/apache2/modules/mod_rewrite.so") == {
        "mod_rewrite.c",
        "rewrite_module",
    }
    assert module_names("http_core.c") == {"http_core.c", "http_module"}


def test_conditions_follow_load_order(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "httpd.conf": "<IfModule ssl_module>\nInclude never/*.conf\n</IfModule>\n"
            "<IfModule !mod_ssl.c>\nInclude a.conf\n</IfModule>\n"
            "LoadModule ssl_module modules/mod_ssl.so\n"
            "<IfModule mod_ssl.c>\nInclude b.conf\n</IfModule>\n"
            "<IfFile a.conf>\nDefine HAVE_A\n</IfFile>\n<IfDefine HAVE_A>\nInclude c.conf\n"
            "</IfDefine>\n",
            "a.conf": vhost("a.example"),
            "b.conf": vhost("b.example"),
            "c.conf": vhost("${UNSET}.example"),
        },
    )
    config = read_config(str(tmp_path))
    assert config.layout == "flat"
    assert [v.name for v in config.vhosts] == ["a.example", "b.example", "${unset}.example"]
    assert any("${UNSET} is not defined" in w for w in config.warnings)
    assert "ssl_module" in config.modules and "mod_ssl.c" in config.modules


def test_ifversion_without_binary_version_fails_closed(tmp_path: Path) -> None:
    tree(tmp_path, {"httpd.conf": "<IfVersion >= 2.4>\nServerName a\n</IfVersion>\n"})
    with pytest.raises(PluginError, match=r"httpd\.conf:1: <IfVersion> needs"):
        read_config(str(tmp_path))
    info = BinaryInfo(DEFAULT_BINARY.builtin, (2, 4, 71))
    assert read_config(str(tmp_path), binary=info).main_server_name == "a"


def test_unparsable_file_stops_with_path_and_line(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "httpd.conf": "Include sites/*.conf\n",
            "sites/a.conf": vhost("a.example"),
            "sites/b.conf": vhost("b.example") + "\n<Directory /x>\nRequire all\n",
        },
    )
    with pytest.raises(ApacheParseError) as info:
        read_config(str(tmp_path))
    assert str(info.value).startswith(f"{tmp_path / 'sites' / 'b.conf'}:")


def test_files_no_include_reaches_are_not_parsed(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "apache2.conf": "IncludeOptional sites-enabled/*.conf\n",
            "sites-enabled/a.conf": vhost("a.example"),
            "sites-available/broken.conf": "<VirtualHost *:80\n",
        },
    )
    config = read_config(str(tmp_path))
    assert [v.name for v in config.vhosts] == ["a.example"]
    assert not any("sites-available" in f for f in config.files)


def test_bad_server_root(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=rf"^--apache-server-root {tmp_path}: no Apache main"):
        detect_layout(str(tmp_path))
    with pytest.raises(PluginError, match="not a directory"):
        detect_layout(str(tmp_path / "nope"))


def test_vhost_line_numbers_and_several_per_file(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "httpd.conf": "# c\n\n"
            + vhost("a.example")
            + "\n"
            + vhost("b.example")
            + '<VirtualHost [::1]:80 127.0.0.1:80>\nServerName "c.example:80"\n'
            'ServerAlias "d.example" e.example\n</VirtualHost>\n'
        },
    )
    evaluator = Evaluator(str(tmp_path))
    try:
        config = evaluator.evaluate()
    finally:
        evaluator.close()
    assert [(v.line, v.name) for v in config.vhosts] == [
        (3, "a.example"),
        (7, "b.example"),
        (10, "c.example"),
    ]
    assert config.vhosts[2].aliases == ("d.example", "e.example")
    assert [str(a) for a in config.vhosts[2].addresses] == ["[::1]:80", "127.0.0.1:80"]


def test_fifty_thousand_lines_read_in_seconds(tmp_path: Path) -> None:
    body = "".join(f"    # line {j}\n    Header set X-F{j} v\n" for j in range(22))
    files = {"apache2.conf": "IncludeOptional sites-enabled/*.conf\n"}
    for i in range(1000):
        name = f"s{i:04d}.example.org"
        files[f"sites-enabled/{name}.conf"] = (
            f"<VirtualHost *:80>\n    ServerName {name}\n    ServerAlias www.{name}\n"
            f"    <Directory /var/www/{name}>\n        Require all granted\n    </Directory>\n"
            f"{body}</VirtualHost>\n"
        )
    tree(tmp_path, files)
    lines = sum(text.count("\n") for text in files.values())
    assert lines >= 50_000
    start = time.perf_counter()
    config = read_config(str(tmp_path))
    elapsed = time.perf_counter() - start
    assert len(config.vhosts) == 1000
    assert choose(config, "www.s0999.example.org").by_name[0].vhost.line == 1
    assert elapsed < 10.0, f"{lines} lines took {elapsed:.1f}s"


def test_odd_file_names_and_escapes(tmp_path: Path) -> None:
    """augeas' ``incl`` is a glob and its paths and ``print`` output are escaped: a file
    named ``we[ir]d (1).conf`` in ``s d/`` must load, and values come back byte for byte."""
    tree(tmp_path, {"httpd.conf": 'IncludeOptional "s d/*.conf"\n'})
    sub = tmp_path / "s d"
    sub.mkdir()
    (sub / "we[ir]d (1).conf").write_bytes(
        b"<virtualhost *:80>\n  ServerName caf\xc3\xa9.example\n"
        b'  ServerAlias "a\\\\b" x\\ty b.example \\\n     c.example\n'
        b'  Header set X "a \\"q\\" b"\n</virtualhost>\n'
    )
    (sub / "z.conf").write_bytes(
        b"<VirtualHost *:80>\n  ServerName l\xe9.example\n</VirtualHost>\n"
    )
    config = read_config(str(tmp_path))
    first, second = config.vhosts
    assert first.file == str(sub / "we[ir]d (1).conf")
    assert first.name == "café.example"
    assert first.aliases == ("a\\\\b", "x\\ty", "b.example", "c.example")
    assert [d.args for d in first.directives if d.name == "Header"] == [("set", "X", 'a "q" b')]
    assert second.name == "l\udce9.example"


def test_main_server_answers_where_no_vhost_listens(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "httpd.conf": "Listen 80\nListen 127.0.0.1:8080\nListen 8443\n"
            + vhost("a.example", "127.0.0.1:80")
            + vhost("b.example", "*:8080")
        },
    )
    config = read_config(str(tmp_path))
    a80 = choose(config, "a.example", 80)
    assert a80.by_name and a80.main_server == (f"{tmp_path / 'httpd.conf'}:1",)
    assert a80.needs_own_vhost  # other addresses on port 80 get the main server
    b8080 = choose(config, "b.example", 8080)
    assert b8080.by_name and not b8080.main_server and not b8080.needs_own_vhost
    assert choose(config, "b.example", 8443).main_server == (f"{tmp_path / 'httpd.conf'}:3",)


def test_unparsable_file_with_odd_name(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "httpd.conf": "Include conf.d\n",
            "conf.d/a b[1].conf": vhost("a.example"),
            "conf.d/c d[2].conf": "ServerName x\n<Directory /x>\n",
        },
    )
    with pytest.raises(ApacheParseError) as info:
        read_config(str(tmp_path))
    assert str(info.value).startswith(f"{tmp_path / 'conf.d' / 'c d[2].conf'}:")
    assert "did not load" not in str(info.value)


def test_bad_vhost_address_names_its_line(tmp_path: Path) -> None:
    tree(tmp_path, {"httpd.conf": "\n" + vhost("a.example", "*:http")})
    with pytest.raises(PluginError, match=rf"^{tmp_path / 'httpd.conf'}:2: bad <VirtualHost>"):
        read_config(str(tmp_path))


def test_command_line_defines(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "httpd.conf": "<IfDefine SSL>\n" + vhost("ssl.example") + "</IfDefine>\n"
            "<IfDefine !SSL>\n" + vhost("plain.example") + "</IfDefine>\n"
        },
    )
    for defines, expected in (((), ["plain.example"]), (("SSL",), ["ssl.example"])):
        evaluator = Evaluator(str(tmp_path), defines=defines)
        try:
            assert [v.name for v in evaluator.evaluate().vhosts] == expected
        finally:
            evaluator.close()


def test_what_mod_ssl_would_wake(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "httpd.conf": vhost("a.example") + "<IfModule mod_ssl.c>\n"
            "<VirtualHost _default_:443>\n    ServerName a.example\n</VirtualHost>\n"
            "<VirtualHost *:80>\n    ServerName old.example\n"
            "    RewriteRule ^ https://old.example%{REQUEST_URI} [R=301]\n</VirtualHost>\n"
            "</IfModule>\n<IfModule mod_ssl.c>\n<IfModule mod_rewrite.c>\n"
            "<VirtualHost *:8080>\n</VirtualHost>\n</IfModule>\n</IfModule>\n"
        },
    )
    reading = read_apache(str(tmp_path))
    assert [v.name for v in reading.config.vhosts] == ["a.example"]
    reasons = [w.reason for w in reading.ssl_wakes]
    assert len(reasons) == 2  # the :8080 one needs mod_rewrite as well
    assert reasons[0].startswith(f"{tmp_path / 'httpd.conf'}:5 (a.example): ")
    assert "AH01916" in reasons[0] and "redirect" not in reasons[0]
    assert "would start redirecting (RewriteRule at " in reasons[1]
    assert "AH01916" not in reasons[1]
    tree(tmp_path, {"httpd.conf": "LoadModule ssl_module m/mod_ssl.so\n" + vhost("a.example")})
    assert read_apache(str(tmp_path)).ssl_wakes == ()


def test_include_loop_stops_with_its_line(tmp_path: Path) -> None:
    tree(tmp_path, {"httpd.conf": "Include loop.conf\n", "loop.conf": "\nInclude loop.conf\n"})
    with pytest.raises(PluginError, match=rf"^{tmp_path / 'loop.conf'}:2: Include nested"):
        read_config(str(tmp_path))
