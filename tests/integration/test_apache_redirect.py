"""`--redirect`, `--hsts`, `--uir` into a real apache2 (Pebble as the CA): http goes to https
permanently except `/.well-known/acme-challenge/`, which answers over plain http; no loop
where a redirect exists; glob aliases, `[P]` rules with an ErrorDocument, IPv4 and IPv6
twins; one checkpoint, undone byte for byte."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.integration.conftest import Cli
from tests.integration.test_apache_deploy import SITE, Site, make_site, sans, served
from tests.servers import probe
from tests.servers.apache import APACHE_BINARY
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration


@pytest.fixture
def sites(pebble: Pebble) -> Iterator[list[Site]]:
    require_binary(APACHE_BINARY)
    made: list[Site] = []
    yield made
    for s in made:
        s.remove()


def new_site(made: list[Site], pebble: Pebble, files: dict[str, str]) -> Site:
    s = make_site(pebble, files)
    made.append(s)
    return s


def challenge_file(site: Site, www: Path | None = None) -> str:
    directory = (www or site.www) / ".well-known" / "acme-challenge"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "probe-file").write_text("answer\n")
    return "/.well-known/acme-challenge/probe-file"


def assert_redirected(site: Site, name: str, *, address: str = "127.0.0.1",
                      target: str | None = None) -> None:
    path = challenge_file(site)
    answer = probe.http_get(site.http_port, name, path, address=address)
    assert answer.status == 200 and answer.body == b"answer\n", answer.head
    moved = probe.http_get(site.http_port, name, "/some/page?q=1", address=address)
    assert moved.status == 301, moved.head
    want = target or f"https://{name}:{site.https_port}/some/page?q=1"
    assert moved.location == want
    secure = probe.http_get(site.https_port, name, "/", tls=True)
    assert secure.status == 200, secure.head  # no loop on the https side


def enable_module(site: Site, *names: str) -> None:
    for name in names:
        for ext in (".load", ".conf"):
            source = site.tree / "mods-available" / (name + ext)
            if source.exists():
                (site.tree / "mods-enabled" / (name + ext)).symlink_to(
                    f"../mods-available/{name}{ext}")


def test_run_redirect_hsts_end_to_end_one_checkpoint(cli: Cli, sites: list[Site],
                                                     pebble: Pebble) -> None:
    site = new_site(sites, pebble, {"example.conf": SITE})
    site.server.start(port=site.http_port)
    before = site.snapshot()
    proc = cli("run", "-a", "webroot", "-w", str(site.www), "-i", "apache", *site.args(),
               "-d", "example.org", "-d", "www.example.org", "--redirect", "--hsts", "--uir")
    assert "Enabled hsts, redirect, uir" in proc.stdout, proc.stdout + proc.stderr
    assert site.server.config_test().returncode == 0
    for name in ("example.org", "www.example.org"):
        assert name in sans(served(site, name, root_pem=pebble.root_pem()))
        assert_redirected(site, name)
    secure = probe.http_get(site.https_port, "example.org", "/", tls=True)
    assert secure.header("Strict-Transport-Security") == "max-age=31536000"
    assert secure.header("Content-Security-Policy") == "upgrade-insecure-requests"
    # an unrelated name on the same address is not sent to a certificate it lacks
    assert probe.http_get(site.http_port, "other.test", "/x").status != 301
    for module in ("rewrite.load", "headers.load"):
        assert (site.tree / "mods-enabled" / module).is_symlink()
    http_vhost = (site.tree / "sites-enabled" / "example.conf").read_text()
    assert http_vhost.count("RewriteRule") == 1
    # once: asking again changes nothing
    enhanced = site.snapshot()
    proc = cli("enhance", "--cert-name", "example.org", "-i", "apache", *site.args(),
               "--redirect", "--hsts", "--uir", account=False)
    assert "Already enabled" in proc.stdout
    assert site.snapshot() == enhanced
    twin = (site.tree / "sites-available" / "example-le-ssl.conf").read_text()
    assert twin.count("Strict-Transport-Security") == 1
    # `run` is one checkpoint: obtain + install + enhancements undone together
    cli("rollback", "--checkpoints", "1", *site.args(), account=False)
    assert site.snapshot() == before
    assert probe.http_get(site.http_port, "example.org", "/").status == 200


GRANT = "<Directory {www}>\n    Require all granted\n</Directory>\n"
GLOBS = GRANT + """\
# three name-based vhosts in one file
<VirtualHost *:{http}>
    ServerName a.test
    DocumentRoot {www}
</VirtualHost>
<VirtualHost *:{http}>
    ServerName b.test
    ServerAlias *.example.net ?.example.org
    DocumentRoot {www}
</VirtualHost>
<VirtualHost *:{http}>
    ServerName c.test
    DocumentRoot {www}
</VirtualHost>
"""


def test_names_of_glob_aliases_are_redirected_to_themselves(cli: Cli, sites: list[Site],
                                                            pebble: Pebble) -> None:
    site = new_site(sites, pebble, {"multi.conf": GLOBS})
    site.server.start(port=site.http_port)
    names = ["a.test", "shop.example.net", "x.example.org"]
    cli("run", "-a", "webroot", "-w", str(site.www), "-i", "apache", *site.args(),
        *[f"-d{n}" for n in names], "--redirect")
    for name in names:
        assert name in sans(served(site, name, root_pem=pebble.root_pem()))
        assert_redirected(site, name)
    # the same vhosts answer names the certificate lacks: those stay on plain http
    for other in ("b.test", "blog.example.net", "c.test"):
        assert probe.http_get(site.http_port, other, "/").status == 200, other
    # a second certificate for more names of one vhost widens the condition it wrote
    cli("run", "-a", "webroot", "-w", str(site.www), "-i", "apache", *site.args(),
        "-d", "b.test", "--redirect", account=False)
    assert_redirected(site, "b.test")
    assert_redirected(site, "shop.example.net")
    text = (site.tree / "sites-enabled" / "multi.conf").read_text()
    assert text.count("RewriteRule") == 2  # a.test's vhost and b.test's, once each


REDIRECTS = {
    "alias": "    Redirect permanent / https://example.org:{https}/\n",
    "certbot": ("    RewriteEngine on\n    RewriteCond %{{SERVER_NAME}} =example.org\n"
                "    RewriteRule ^ https://%{{SERVER_NAME}}:{https}%{{REQUEST_URI}} "
                "[END,NE,R=permanent]\n"),
}


@pytest.mark.parametrize("style", sorted(REDIRECTS))
def test_existing_redirect_no_loop_and_the_challenge_path_let_through(
        cli: Cli, sites: list[Site], pebble: Pebble, style: str) -> None:
    site = new_site(sites, pebble, {"example.conf": SITE})
    if style == "certbot":
        enable_module(site, "rewrite")
    site.server.start(port=site.http_port)
    cli("certonly", "-a", "webroot", "-w", str(site.www), "--http-01-port",
        str(site.http_port), "-d", "example.org")
    conf = site.tree / "sites-enabled" / "example.conf"
    user = REDIRECTS[style].format(https=site.https_port)
    conf.write_text(conf.read_text().replace("</VirtualHost>", user + "</VirtualHost>"))
    site.server.graceful()
    before = site.snapshot()
    proc = cli("install", "--cert-name", "example.org", "-i", "apache", *site.args(),
               "--redirect", account=False)
    assert "already redirects to https" in proc.stdout, proc.stdout
    text = conf.read_text()
    assert user in text and "certwright: redirect to https" not in text
    assert_redirected(site, "example.org",
                      target=f"https://example.org:{site.https_port}/some/page?q=1")
    twin = (site.tree / "sites-available" / "example-le-ssl.conf").read_text()
    assert "https://" not in twin  # the twin does not redirect to itself
    # the next renewal's challenge reaches the webroot over plain http
    old = served(site, "example.org").serial_number
    cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False)
    assert served(site, "example.org").serial_number != old
    cli("rollback", "--checkpoints", "2", *site.args(), account=False)
    assert site.snapshot() == before


PROXIED = GRANT + """\
<VirtualHost *:{http}>
    ServerName example.org
    DocumentRoot {www}
    ErrorDocument 503 /maintenance.html
    RewriteEngine on
    RewriteRule ^/app/(.*)$ http://127.0.0.1:9/$1 [P]
</VirtualHost>
"""


def test_redirect_goes_before_proxy_rules_and_error_documents(
        cli: Cli, sites: list[Site], pebble: Pebble) -> None:
    site = new_site(sites, pebble, {"example.conf": PROXIED})
    enable_module(site, "rewrite", "proxy", "proxy_http")
    (site.www / "maintenance.html").write_text("down\n")
    site.server.start(port=site.http_port)
    assert probe.http_get(site.http_port, "example.org", "/app/x").status == 503
    cli("run", "-a", "webroot", "-w", str(site.www), "-i", "apache", *site.args(),
        "-d", "example.org", "--redirect")
    moved = probe.http_get(site.http_port, "example.org", "/app/x")
    assert moved.status == 301
    assert moved.location == f"https://example.org:{site.https_port}/app/x"
    assert_redirected(site, "example.org")


TWINS = GRANT + """\
<VirtualHost 127.0.0.1:{http}>
    ServerName example.org
    DocumentRoot {www}
</VirtualHost>
<VirtualHost [::1]:{http}>
    ServerName example.org
    DocumentRoot {www}
</VirtualHost>
"""


def test_ipv4_and_ipv6_vhosts_both_redirected(cli: Cli, sites: list[Site],
                                              pebble: Pebble) -> None:
    site = new_site(sites, pebble, {"example.conf": TWINS})
    site.server.start(port=site.http_port)
    cli("run", "-a", "webroot", "-w", str(site.www), "-i", "apache", *site.args(),
        "-d", "example.org", "--redirect", "--hsts")
    for address in ("127.0.0.1", "::1"):
        assert_redirected(site, "example.org", address=address)
        secure = probe.http_get(site.https_port, "example.org", "/", tls=True,
                                address=address)
        assert secure.header("Strict-Transport-Security"), address


CATCH_ALL = GRANT + """\
<VirtualHost *:{http}>
    DocumentRoot {www}
</VirtualHost>
<VirtualHost *:{http}>
    ServerName named.test
    DocumentRoot {www}
</VirtualHost>
"""


def test_a_name_only_the_catch_all_answers_is_redirected_alone(
        cli: Cli, sites: list[Site], pebble: Pebble) -> None:
    site = new_site(sites, pebble, {"catch.conf": CATCH_ALL})
    site.server.start(port=site.http_port)
    before = site.snapshot()
    cli("run", "-a", "webroot", "-w", str(site.www), "-i", "apache", *site.args(),
        "-d", "nobody.test", "--redirect")
    assert "nobody.test" in sans(served(site, "nobody.test", root_pem=pebble.root_pem()))
    assert_redirected(site, "nobody.test")
    # the catch-all still answers every other name over plain http
    for other in ("else.test", "named.test"):
        assert probe.http_get(site.http_port, other, "/x").status == 404, other
    cli("rollback", "--checkpoints", "1", *site.args(), account=False)
    assert site.snapshot() == before


def test_run_apache_dry_run_shows_the_diff_and_changes_nothing(
        cli: Cli, sites: list[Site], pebble: Pebble) -> None:
    site = new_site(sites, pebble, {"example.conf": SITE})
    site.server.start(port=site.http_port)
    before = site.snapshot()
    generations = site.server.generations()
    proc = cli("run", "--apache", *site.args(), "-d", "example.org", "--redirect",
               "--hsts", "--dry-run")
    assert "+++ " in proc.stdout and "SSLCertificateFile" in proc.stdout, proc.stdout
    assert "RewriteRule ^ https://" in proc.stdout and "Strict-Transport-Security" in \
        proc.stdout
    assert site.snapshot() == before
    assert not (cli.config_dir / "live" / "example.org").exists()
    assert site.server.generations() == generations + 2  # the challenge, then undone


DORMANT_REWRITE = GRANT + """\
<VirtualHost *:{http}>
    ServerName example.org
    DocumentRoot {www}
    <IfModule mod_rewrite.c>
        RewriteEngine on
        RewriteRule ^/old$ /new [R=302,L]
    </IfModule>
</VirtualHost>
"""


def test_what_enabling_mod_rewrite_wakes_is_named(cli: Cli, sites: list[Site],
                                                 pebble: Pebble) -> None:
    site = new_site(sites, pebble, {"example.conf": DORMANT_REWRITE})
    site.server.start(port=site.http_port)
    proc = cli("run", "-a", "webroot", "-w", str(site.www), "-i", "apache", *site.args(),
               "-d", "example.org", "--redirect")
    conf = site.tree / "sites-enabled" / "example.conf"
    assert "enabling rewrite_module activates" in proc.stdout, proc.stdout
    assert f"RewriteRule at {conf}:9" in proc.stdout
    assert_redirected(site, "example.org")
