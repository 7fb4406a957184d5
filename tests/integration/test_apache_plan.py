"""The Apache deploy planner on real trees: each plan applied through a transaction must
pass ``apache2 -t``, give the map ``apache2 -S`` prints on the https port, serve each
name's certificate by SNI from a running apache2, and roll back byte for byte."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from certwright.core.errors import PluginError
from certwright.core.interfaces import DeployRequest
from certwright.core.transaction import Transaction
from certwright.installers.apache import ApacheInstaller
from tests.conftest import require_binary
from tests.servers import probe
from tests.servers.apache import (
    APACHE_BINARY,
    ApacheServer,
    debian_tree,
    make_base,
    parse_vhost_dump,
    rhel_tree,
)
from tests.servers.ports import free_port

pytestmark = pytest.mark.integration

MODULES = "/usr/lib/apache2/modules"


@pytest.fixture
def base() -> Iterator[Path]:
    require_binary(APACHE_BINARY)
    path = make_base()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def self_signed(base: Path, names: list[str]) -> tuple[Path, Path]:
    key, cert = base / "privkey.pem", base / "fullchain.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                    f"/CN={names[0]}", "-days", "1", "-addext",
                    "subjectAltName=" + ",".join(f"DNS:{n}" for n in names),
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    key.chmod(0o644)  # the test server reads it as www-data's parent: root anyway
    return cert, key


def request(base: Path, names: list[str], http: int, https: int) -> DeployRequest:
    cert, key = self_signed(base, names)
    return DeployRequest(names[0], tuple(names), str(cert), str(key), str(cert), str(cert),
                         https_port=https, http_port=http)


def installer(tree: Path, **options: str) -> ApacheInstaller:
    inst = ApacheInstaller(argparse.Namespace(apache_server_root=str(tree), **options))
    inst.prepare()
    return inst


def snapshot(tree: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for path in sorted(tree.rglob("*")):
        rel = str(path.relative_to(tree))
        out[rel] = ("-> " + os.readlink(path)) if path.is_symlink() else \
            path.read_bytes() if path.is_file() else "dir"
    return out


def sans(cert: x509.Certificate) -> list[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ext.get_values_for_type(x509.DNSName)


def site(http: int, name: str, www: Path, address: str = "*", alias: str = "") -> str:
    extra = f"    ServerAlias {alias}\n" if alias else ""
    return (f"<VirtualHost {address}:{http}>\n    ServerName {name}\n{extra}"
            f"    DocumentRoot {www}\n</VirtualHost>\n")


def test_three_vhosts_in_one_file_ipv6_and_a_catch_all_name(base: Path) -> None:
    http, https = free_port("127.0.0.1"), free_port("127.0.0.1")
    www = base / "www"
    www.mkdir()
    multi = "# three sites in one file\n" + "".join(
        site(http, n, www) for n in ("a.test", "b.test", "c.test"))
    v6 = site(http, "v6.test", www, "[::1]") + site(http, "v6.test", www, "127.0.0.1")
    tree = debian_tree(base / "tree", sites={"multi.conf": multi, "v6.conf": v6},
                       ports=f"Listen {http}\n")
    server = ApacheServer(tree, base / "work")
    server.write_envvars()
    before = snapshot(tree)
    names = ["a.test", "b.test", "c.test", "v6.test", "nobody.test"]
    req = request(base, names, http, https)
    plan = installer(tree).plan_deploy(req)
    twin = tree / "sites-available" / "multi-le-ssl.conf"
    assert str(twin) in [c.path for c in plan.changes]
    assert any("only a catch-all" in n and "nobody.test" in n for n in plan.notes)
    txn = Transaction(base / "work-dir", plan.title)
    txn.apply(plan)
    txn.commit()
    assert server.config_test().returncode == 0, server.config_test().stderr
    assert twin.read_text().count("<VirtualHost") == 3
    v6_twin = (tree / "sites-available" / "v6-le-ssl.conf").read_text()
    assert f"<VirtualHost [::1]:{https}>" in v6_twin
    assert f"<VirtualHost 127.0.0.1:{https}>" in v6_twin
    truth = parse_vhost_dump(server.dump_vhosts())
    on_https = {v.name for address, vs in truth.items() if address.endswith(f":{https}")
                for v in vs}
    assert on_https == set(names)
    # the user's file is byte for byte what it was
    assert (tree / "sites-enabled" / "multi.conf").read_bytes() == \
        before["sites-enabled/multi.conf"]
    server.start(port=http)
    try:
        for name in names:
            assert name in sans(probe.served_cert(https, name))
    finally:
        server.stop()
    txn.rollback()
    assert snapshot(tree) == before


def test_rhel_tree_gets_loadmodule_lines_and_a_listen(base: Path) -> None:
    http, https = free_port("127.0.0.1"), free_port("127.0.0.1")
    tree = rhel_tree(base / "httpd", base, http, pid_file=f'"{base}/work/run/httpd.pid"')
    (base / "www").mkdir()
    (tree / "conf.d" / "site.conf").write_text(site(http, "r.test", base / "www"))
    server = ApacheServer(tree, base / "work", main_file="conf/httpd.conf")
    before = snapshot(tree)
    inst = installer(tree, apache_bin=APACHE_BINARY)  # a RHEL tree on Debian's binary
    plan = inst.plan_deploy(request(base, ["r.test"], http, https))
    paths = {c.path for c in plan.changes}
    assert str(tree / "conf.modules.d" / "00-certwright-ssl.conf") in paths
    assert str(tree / "conf.d" / "site-le-ssl.conf") in paths
    txn = Transaction(base / "work-dir", plan.title)
    txn.apply(plan)
    txn.commit()
    assert server.config_test().returncode == 0, server.config_test().stderr
    server.start(port=http)
    try:
        assert "r.test" in sans(probe.served_cert(https, "r.test"))
    finally:
        server.stop()
    txn.rollback()
    assert snapshot(tree) == before


def test_control_panel_layout_twin_goes_where_it_is_read(base: Path) -> None:
    http, https = free_port("127.0.0.1"), free_port("127.0.0.1")
    tree = debian_tree(base / "tree", sites={}, ports=f"Listen {http}\n")
    main = tree / "apache2.conf"
    main.write_text(main.read_text().replace(
        "IncludeOptional sites-enabled/*.conf", "IncludeOptional conf.d/domains/*.conf"))
    home = base / "home" / "web" / "example.org"
    home.mkdir(parents=True)
    (home / "apache2.conf").write_text(site(http, "example.org", base / "home"))
    (tree / "conf.d" / "domains").mkdir(parents=True)
    (tree / "conf.d" / "domains" / "example.org.conf").symlink_to(home / "apache2.conf")
    server = ApacheServer(tree, base / "work")
    server.write_envvars()
    plan = installer(tree).plan_deploy(request(base, ["example.org"], http, https))
    new = tree / "conf.d" / "domains" / "example.org-le-ssl.conf"
    assert str(new) in {c.path for c in plan.changes}
    assert not any("sites-" in c.path for c in plan.changes)
    txn = Transaction(base / "work-dir", plan.title)
    txn.apply(plan)
    txn.commit()
    truth = parse_vhost_dump(server.dump_vhosts())
    assert [v.file for v in truth[f"*:{https}"]] == [str(new)]


def test_names_only_in_a_macro_or_mdomain_are_refused(base: Path) -> None:
    http, https = free_port("127.0.0.1"), free_port("127.0.0.1")
    tree = debian_tree(base / "tree", sites={"md.conf": "MDomain md.test\n" + site(
        http, "md.test", base)}, ports=f"Listen {http}\n")
    with pytest.raises(PluginError, match=r"md\.test"):
        installer(tree).plan_deploy(request(base, ["md.test"], http, https))


def test_two_443_vhosts_in_one_file_are_both_updated_in_place(base: Path) -> None:
    http, https = free_port("127.0.0.1"), free_port("127.0.0.1")
    (base / "old").mkdir()
    cert, key = self_signed(base / "old", ["a.test", "b.test"])
    block = ("<VirtualHost *:{https}>\n    ServerName {name}\n    SSLEngine on\n"
             "    SSLCertificateFile {cert}\n    SSLCertificateChainFile {cert}\n"
             "    SSLCertificateKeyFile {key}\n</VirtualHost>\n")
    text = "".join(block.format(https=https, name=n, cert=cert, key=key)
                   for n in ("a.test", "b.test"))
    tree = debian_tree(base / "tree", sites={"ssl.conf": text},
                       ports=f"Listen {http}\nListen {https}\n")
    for name in ("ssl.load", "ssl.conf", "socache_shmcb.load"):
        (tree / "mods-enabled" / name).symlink_to(f"../mods-available/{name}")
    server = ApacheServer(tree, base / "work")
    server.write_envvars()
    plan = installer(tree).plan_deploy(request(base, ["a.test", "b.test"], http, https))
    assert [c.path for c in plan.changes] == [str(tree / "sites-enabled" / "ssl.conf")]
    txn = Transaction(base / "work-dir", plan.title)
    txn.apply(plan)
    txn.commit()
    new = (tree / "sites-enabled" / "ssl.conf").read_text()
    assert new.count("<VirtualHost") == 2 and new.count("</VirtualHost>") == 2
    assert new.count("SSLCertificateFile") == 2 and "ChainFile" not in new
    assert str(cert) not in new and new.count(str(base / "fullchain.pem")) == 2
    assert server.config_test().returncode == 0, server.config_test().stderr


def test_twin_of_a_vhost_in_the_main_file_goes_where_apache_reads_it(base: Path) -> None:
    http, https = free_port("127.0.0.1"), free_port("127.0.0.1")
    tree = debian_tree(base / "tree", sites={}, ports=f"Listen {http}\n")
    main = tree / "apache2.conf"
    main.write_text(main.read_text() + site(http, "main.test", base))
    server = ApacheServer(tree, base / "work")
    server.write_envvars()
    inst = installer(tree)
    plan = inst.plan_deploy(request(base, ["main.test"], http, https))
    assert str(tree / "apache2-le-ssl.conf") not in {c.path for c in plan.changes}
    txn = Transaction(base / "work-dir", plan.title)
    txn.apply(plan)
    txn.commit()
    truth = parse_vhost_dump(server.dump_vhosts())
    assert [v.name for v in truth[f"*:{https}"]] == ["main.test"]
    # a --apache-vhost-root that nothing includes is refused, naming it
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    txn.rollback()
    other = installer(tree, apache_vhost_root=str(elsewhere))
    with pytest.raises(PluginError, match="never be loaded"):
        other.plan_deploy(request(base, ["main.test"], http, https))


def test_listen_goes_where_it_is_read_when_conf_enabled_is_not(base: Path) -> None:
    http, https = free_port("127.0.0.1"), free_port("127.0.0.1")
    tree = debian_tree(base / "tree", sites={"s.conf": site(http, "s.test", base)},
                       ports=f"Listen {http}\n")
    main = tree / "apache2.conf"
    main.write_text(main.read_text().replace("IncludeOptional conf-enabled/*.conf", ""))
    server = ApacheServer(tree, base / "work")
    server.write_envvars()
    plan = installer(tree).plan_deploy(request(base, ["s.test"], http, https))
    listen = f"certwright-listen-{https}.conf"
    assert str(tree / "sites-enabled" / listen) in {c.path for c in plan.changes}
    txn = Transaction(base / "work-dir", plan.title)
    txn.apply(plan)
    txn.commit()
    assert server.config_test().returncode == 0, server.config_test().stderr
    assert [v.name for v in parse_vhost_dump(server.dump_vhosts())[f"*:{https}"]] == ["s.test"]
