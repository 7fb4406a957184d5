"""Reading haproxy.cfg (sections, quoting, comments, no continuations, ``.if`` blocks, a conf
dir in HAProxy's order) and planning line-anchored edits, each checked with ``haproxy -c``
where the result must be a configuration HAProxy accepts without a warning (``-dW``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from certwright.core.errors import PluginError
from certwright.core.interfaces import DeployRequest, EnhanceRequest
from certwright.installers.haproxy.config import load, parse_address, statements
from certwright.installers.haproxy.plan import Layout, plan_deploy, plan_enhance, plan_route
from tests.conftest import require_binary
from tests.servers.haproxy import HAPROXY_BINARY
from tests.servers.tlsca import make_tls_files

HEAD = """\
global
    log stderr format short local0 notice   # "quoted" in a comment
defaults
    mode http
    timeout connect 5s
    timeout client 5s
    timeout server 5s
"""

SITE = HEAD + """
.if defined(HAPROXY_MWORKER)
.endif
frontend "www"   # a quoted name
    bind 127.0.0.1:8080,127.0.0.2:8080 name plain
    http-request set-header X-Note "a # not a comment"
    default_backend app

backend app
    server app1 127.0.0.1:9000
"""


def request(tmp_path: Path, names: tuple[str, ...] = ("a.example.org",)) -> DeployRequest:
    files = make_tls_files(tmp_path / "tls", names=names, ips=())
    return DeployRequest(cert_name=names[0], domains=names, cert_path=str(files.cert),
                         key_path=str(files.key), chain_path=str(files.fullchain),
                         fullchain_path=str(files.fullchain), https_port=8443,
                         http_port=8080)


def apply(plan_changes: tuple[object, ...]) -> None:
    for change in plan_changes:
        path = Path(change.path)  # type: ignore[attr-defined]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(change.new_content)  # type: ignore[attr-defined]


def haproxy_check(path: Path) -> subprocess.CompletedProcess[str]:
    require_binary(HAPROXY_BINARY)
    return subprocess.run([HAPROXY_BINARY, "-c", "-dW", "-f", str(path)], capture_output=True,
                          text=True, check=False)


def test_words_quotes_and_comments() -> None:
    found = statements("f", SITE)
    bind = next(s for s in found if s.keyword == "bind")
    assert bind.words == ("bind", "127.0.0.1:8080,127.0.0.2:8080", "name", "plain")
    assert bind.line == 12 and SITE[bind.start:bind.end].endswith("name plain")
    note = next(s for s in found if s.words[:2] == ("http-request", "set-header"))
    assert note.words[-1] == "a # not a comment"
    assert next(s for s in found if s.keyword == "frontend").words == ("frontend", "www")


def test_single_quotes_keep_backslashes_double_quotes_escape() -> None:
    [stmt] = statements("f", "a 'x\\y' \"x\\\"y\" z\\ w\n")
    assert stmt.words == ("a", "x\\y", 'x"y', "z w")


def test_a_trailing_backslash_continues_nothing_as_in_haproxy(tmp_path: Path) -> None:
    """HAProxy 2.6 has no line continuation: the reader must not invent one (haproxy -c
    refuses the '\\' as a keyword, and so the next line is a statement of its own)."""
    found = statements("f", "frontend a\n    bind :80 \\\n    mode http\n")
    assert [s.words for s in found] == [("frontend", "a"), ("bind", ":80", "\\"),
                                        ("mode", "http")]
    main = tmp_path / "h.cfg"
    main.write_text(HEAD + "frontend a\n    bind 127.0.0.1:8080 \\\n    mode http\n")
    assert haproxy_check(main).returncode != 0


def test_sections_modes_and_binds(tmp_path: Path) -> None:
    (tmp_path / "h.cfg").write_text(SITE)
    cfg = load(str(tmp_path / "h.cfg"))
    [fe] = cfg.http_frontends(8080)
    assert (fe.kind, fe.name, fe.mode, fe.default_backend) == ("frontend", "www", "http", "app")
    assert [a.host for a in fe.binds[0].addresses] == ["127.0.0.1", "127.0.0.2"]
    assert cfg.https_frontends(8443) == []


def test_a_conf_dir_is_read_in_haproxys_order(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "20-site.cfg").write_text(SITE.replace(HEAD, ""))
    (conf / "10-global.cfg").write_text(HEAD)
    (conf / "README").write_text("not read\n")
    cfg = load(str(conf))
    assert [Path(p).name for p in cfg.paths] == ["10-global.cfg", "20-site.cfg"]
    assert cfg.http_frontends(8080)[0].mode == "http", "defaults from the earlier file"


def test_an_https_bind_keeps_the_address_as_written(tmp_path: Path) -> None:
    main = tmp_path / "h.cfg"
    main.write_text(SITE.replace("127.0.0.1:8080,127.0.0.2:8080", "ipv6@[::1]:8080,*:8080"))
    plan = plan_deploy(load(str(main)), request(tmp_path), Layout(str(tmp_path / "cw")))
    new = next(c for c in plan.changes if c.path == str(main)).new_content or b""
    assert b"    bind ipv6@[::1]:8443 ssl crt-list" in new and b"    bind *:8443 ssl" in new


@pytest.mark.parametrize("text, host, port", [
    (":80", "", 80), ("*:443", "", 443), ("[::1]:8443", "::1", 8443),
    ("ipv4@127.0.0.1:80", "127.0.0.1", 80), ("/run/sock", None, None),
    ("unix@/run/x", None, None)])
def test_bind_addresses(text: str, host: str | None, port: int | None) -> None:
    address = parse_address(text)
    assert (None if address is None else (address.host, address.port)) == \
        (None if host is None else (host, port))


def test_deploy_adds_an_https_frontend_and_keeps_everything_else(tmp_path: Path) -> None:
    main = tmp_path / "h.cfg"
    main.write_text(SITE)
    req = request(tmp_path)
    plan = plan_deploy(load(str(main)), req, Layout(str(tmp_path / "certwright")))
    apply(plan.changes)
    text = main.read_text()
    assert text.startswith(SITE.split("backend app")[0].rstrip("\n"))
    assert "bind 127.0.0.1:8443 ssl crt-list" in text and "bind 127.0.0.2:8443 ssl" in text
    assert "frontend certwright-https-www" in text and text.endswith(SITE[SITE.index(
        "backend app"):])
    pem = next(c for c in plan.changes if c.path.endswith(".pem"))
    assert pem.secret and b"\n\n" not in (pem.new_content or b"")
    check = haproxy_check(main)
    assert check.returncode == 0, check.stdout + check.stderr
    again = plan_deploy(load(str(main)), req, Layout(str(tmp_path / "certwright")))
    assert again.empty, "a second deploy changes nothing"


def test_an_existing_ssl_bind_is_extended_before_its_comment(tmp_path: Path) -> None:
    req = request(tmp_path)
    site = SITE.replace("    default_backend app\n", f"    bind :8443 ssl crt {req.key_path}"
                        "x   # theirs\n    default_backend app\n", 1)
    main = tmp_path / "h.cfg"
    main.write_text(site)
    plan = plan_deploy(load(str(main)), req, Layout(str(tmp_path / "cw")))
    [cfg_change] = [c for c in plan.changes if c.path == str(main)]
    new = (cfg_change.new_content or b"").decode()
    assert f"bind :8443 ssl crt {req.key_path}x crt-list {tmp_path}/cw/crt-list   # theirs" \
        in new
    assert "frontend certwright-https" not in new


def test_a_plain_bind_on_the_https_port_is_refused_with_its_line(tmp_path: Path) -> None:
    main = tmp_path / "h.cfg"
    text = SITE.replace("name plain\n", "name plain\n    bind :8443\n")
    main.write_text(text)
    line = text[:text.index("bind :8443")].count("\n") + 1
    with pytest.raises(PluginError, match=rf"{main}:{line}: frontend www binds port 8443 "
                                          "without ssl"):
        plan_deploy(load(str(main)), request(tmp_path), Layout(str(tmp_path / "cw")))


def test_no_http_frontend_is_one_clear_error(tmp_path: Path) -> None:
    main = tmp_path / "h.cfg"
    main.write_text(SITE.replace("    mode http\n", "    mode tcp\n"))
    with pytest.raises(PluginError, match="no frontend or listen in mode http binds port 8080"):
        plan_route(load(str(main)), 8080, 9999)


def test_redirect_route_and_hsts_are_added_once_in_order(tmp_path: Path) -> None:
    main = tmp_path / "h.cfg"
    main.write_text(SITE)
    req = request(tmp_path)
    apply(plan_deploy(load(str(main)), req, Layout(str(tmp_path / "cw"))).changes)
    apply(plan_route(load(str(main)), 8080, 9999).changes)
    enhance = EnhanceRequest(("a.example.org",), frozenset({"redirect", "hsts"}), 8443, 8080)
    apply(plan_enhance(load(str(main)), enhance).changes)
    text = main.read_text()
    acl, redirect, route = (text.index(x) for x in (
        "acl certwright_acme", "http-request redirect", "use_backend certwright_acme"))
    assert acl < redirect < route < text.index("default_backend app")
    assert "if !{ ssl_fc } !certwright_acme" in text
    assert plan_route(load(str(main)), 8080, 9999).empty
    assert plan_enhance(load(str(main)), enhance).empty
    check = haproxy_check(main)
    assert check.returncode == 0, check.stdout + check.stderr


def test_an_unclosed_if_block_names_the_file(tmp_path: Path) -> None:
    main = tmp_path / "h.cfg"
    main.write_text(SITE.replace(".endif\n", ""))
    with pytest.raises(PluginError, match=f"{main}: an '.if' block"):
        load(str(main))


def test_the_installer_parses_again_only_when_a_file_changed(tmp_path: Path) -> None:
    import argparse
    import os

    from certwright.installers.haproxy import HaproxyInstaller

    main = tmp_path / "h.cfg"
    main.write_text(SITE)
    installer = HaproxyInstaller(argparse.Namespace(haproxy_config=[str(main)]))
    first = installer.read()
    assert installer.read() is first
    tmp = tmp_path / "h.tmp"
    tmp.write_text(SITE.replace("server app1", "server app2"))
    os.replace(tmp, main)
    second = installer.read()
    assert second is not first and "app2" in second.texts[str(main)]
