"""`run --apache --redirect` end to end on the issue's trees (real apache2, Pebble): Debian's
stock tree with one site, three vhosts in one file, basic auth, a hidden-path ban, an
existing redirect, an existing `*:443` vhost, IPv4 + `[::1]` vhosts, a `[::1]` vhost alone
(the CA's IPv4 request reaches the main server), a RHEL-style tree.

In each: `apache2 -t` passes, SNI serves a chain that verifies against Pebble's root for
every name, a challenge file answers 200 over plain http where the site lets anyone read
its docroot (basic auth and the ban keep theirs: never redirected though), other paths get
301, and `rollback --checkpoints 1` puts the tree back byte for byte with Apache serving
the old state."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import require_binary
from tests.integration.conftest import Cli
from tests.integration.test_apache_authenticator import BASIC_AUTH, HIDDEN_BAN
from tests.integration.test_apache_deploy import SITE, Site, make_site, sans, served
from tests.integration.test_apache_redirect import GRANT, TWINS, enable_module
from tests.servers import probe
from tests.servers.apache import APACHE_BINARY, ApacheServer, make_base, rhel_tree
from tests.servers.pebble import Pebble
from tests.servers.ports import free_port

pytestmark = pytest.mark.integration

TWO = ["example.org", "www.example.org"]
THREE = GRANT + "".join(
    f"<VirtualHost *:{{http}}>\n    ServerName {n}\n    DocumentRoot {{www}}\n</VirtualHost>\n"
    for n in ("a.test", "b.test", "c.test"))
REDIRECTED = GRANT + """\
<VirtualHost *:{http}>
    ServerName example.org
    DocumentRoot {www}
    Redirect permanent / https://example.org/
</VirtualHost>
"""
V6_ONLY = GRANT + """\
<VirtualHost [::1]:{http}>
    ServerName example.org
    DocumentRoot {www}
</VirtualHost>
"""
SSL_SITE = """\
<VirtualHost *:{https}>
    ServerName example.org
    ServerAlias www.example.org
    DocumentRoot {www}
    SSLEngine on
    SSLCertificateFile {old}/snakeoil.pem
    SSLCertificateKeyFile {old}/snakeoil.key
</VirtualHost>
"""


def debian(files: dict[str, str]) -> Callable[[Pebble], Site]:
    return lambda pebble: make_site(pebble, files)


def existing_443(pebble: Pebble) -> Site:
    site = make_site(pebble, {"example.conf": SITE})
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                    "/CN=old", "-days", "1", "-keyout", str(site.base / "snakeoil.key"),
                    "-out", str(site.base / "snakeoil.pem")], check=True, capture_output=True)
    (site.base / "snakeoil.key").chmod(0o644)
    (site.tree / "sites-enabled" / "example-ssl.conf").write_text(SSL_SITE.format(
        https=site.https_port, www=site.www, old=site.base))
    (site.tree / "ports.conf").write_text(f"Listen {site.http_port}\nListen {site.https_port}\n")
    enable_module(site, "ssl", "socache_shmcb")
    return site


def rhel(pebble: Pebble) -> Site:
    base = make_base()
    tree, www, http = base / "httpd", base / "www", pebble.http_port
    rhel_tree(tree, base, http)
    www.mkdir()
    (www / "index.html").write_text("plain site\n")
    (tree / "conf.d" / "site.conf").write_text(SITE.format(http=http, www=www))
    server = ApacheServer(tree, base / "work", main_file="conf/httpd.conf")
    return Site(base, tree, www, server, http, free_port("127.0.0.1"))


TREES: dict[str, tuple[Callable[[Pebble], Site], list[str], bool]] = {
    # name: (builder, names, whether a docroot file answers over plain http)
    "stock": (debian({"example.conf": SITE}), TWO, True),
    "three-in-one-file": (debian({"multi.conf": THREE}), ["a.test", "b.test", "c.test"], True),
    "basic-auth": (debian({"example.conf": BASIC_AUTH}), TWO, False),
    "hidden-path-ban": (debian({"example.conf": HIDDEN_BAN}), TWO, False),
    "existing-redirect": (debian({"example.conf": REDIRECTED}), ["example.org"], True),
    "existing-443": (existing_443, TWO, True),
    "ipv4-and-ipv6": (debian({"example.conf": TWINS}), ["example.org"], True),
    # only [::1] has a vhost: the CA's IPv4 request reaches the main server
    "ipv6-only": (debian({"example.conf": V6_ONLY}), ["example.org"], True),
    "rhel": (rhel, TWO, True),
}


@pytest.fixture
def tree_site(request: pytest.FixtureRequest, pebble: Pebble) -> Iterator[Site]:
    require_binary(APACHE_BINARY)
    site = TREES[request.param][0](pebble)
    try:
        site.server.start(port=site.http_port)
        yield site
    finally:
        site.remove()


def challenge_status(site: Site, name: str, address: str) -> int:
    directory = site.www / ".well-known" / "acme-challenge"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "probe-file").write_text("answer\n")
    got = probe.http_get(site.http_port, name, "/.well-known/acme-challenge/probe-file",
                         address=address)
    assert got.status != 301, got.head
    return got.status


@pytest.mark.parametrize("tree_site", sorted(TREES), indirect=True)
def test_run_apache_redirect_on_the_issue_trees(cli: Cli, tree_site: Site,
                                                pebble: Pebble, request: pytest.FixtureRequest
                                                ) -> None:
    site = tree_site
    kind = request.node.callspec.params["tree_site"]
    _, names, open_docroot = TREES[kind]
    args = [*site.args()]
    if kind == "rhel":
        args += ["--apache-bin", APACHE_BINARY]
    before = site.snapshot()
    old = {n: probe.http_get(site.http_port, n, "/").status for n in names}
    cli("run", "--apache", *args, *[f"-d{n}" for n in names], "--redirect")
    assert site.server.config_test().returncode == 0, site.server.config_test().stderr
    addresses = {"ipv4-and-ipv6": ["127.0.0.1", "::1"], "ipv6-only": ["::1"]}.get(
        kind, ["127.0.0.1"])
    root = pebble.root_pem()
    for name in names:
        assert name in sans(served(site, name, root_pem=root))
        for address in addresses:
            status = challenge_status(site, name, address)
            if open_docroot:
                assert status == 200, (name, address)
            moved = probe.http_get(site.http_port, name, "/other", address=address)
            assert moved.status == 301, (name, address, moved.head)
            assert moved.location.startswith(f"https://{name}"), moved.location
    if kind == "ipv6-only":  # over IPv4 the main server answers, and redirects the name
        moved = probe.http_get(site.http_port, names[0], "/other")
        assert moved.status == 301 and moved.location.startswith(f"https://{names[0]}")
        assert probe.http_get(site.http_port, "other.test", "/other").status != 301
    shutil.rmtree(site.www / ".well-known")
    cli("rollback", "--checkpoints", "1", *args, account=False)
    assert site.snapshot() == before
    assert {n: probe.http_get(site.http_port, n, "/").status for n in names} == old
    if kind != "existing-443":
        with pytest.raises(OSError):
            served(site, names[0])

