"""`-a apache` / `--apache` against a real apache2 (Pebble validating): the customer
configurations a hosting provider trips over — basic auth, a hidden-path ban, an http→https
redirect, an `.htaccess` that rewrites everything — each answers the challenge, and the
tree is byte for byte what it was once the challenge is over."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import require_binary
from tests.integration.conftest import Cli
from tests.integration.test_apache_deploy import Site, make_site, sans, served
from tests.integration.test_apache_redirect import GRANT, enable_module
from tests.servers import probe
from tests.servers.apache import APACHE_BINARY
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration

VHOST = """\
<VirtualHost *:{{http}}>
    ServerName example.org
    ServerAlias www.example.org
    DocumentRoot {{www}}
{body}</VirtualHost>
"""


def site_text(body: str, server_level: str = "") -> str:
    return server_level + VHOST.format(body=body)


BASIC_AUTH = site_text("""\
    <Location />
        AuthType Basic
        AuthName "members"
        AuthUserFile {www}/../htpasswd
        Require valid-user
    </Location>
""", GRANT)
HIDDEN_BAN = site_text("""\
    <DirectoryMatch "/\\.">
        Require all denied
    </DirectoryMatch>
    <LocationMatch "/\\.">
        Require all denied
    </LocationMatch>
    RedirectMatch 404 /\\..*
""", GRANT)
ALIAS_REDIRECT = site_text("    Redirect permanent / https://example.org/\n", GRANT)
REWRITE_REDIRECT = site_text("""\
    RewriteEngine on
    RewriteCond %{{HTTPS}} off
    RewriteRule ^ https://%{{HTTP_HOST}}%{{REQUEST_URI}} [L,R=301]
""", GRANT)
HTACCESS = site_text("""\
    <Directory {www}>
        AllowOverride All
        Require all granted
    </Directory>
""")

CASES = {
    "basic-auth": (BASIC_AUTH, ()),
    "hidden-path-ban": (HIDDEN_BAN, ()),
    "redirect-alias": (ALIAS_REDIRECT, ()),
    "redirect-rewrite": (REWRITE_REDIRECT, ("rewrite",)),
    "htaccess-rewrites-all": (HTACCESS, ("rewrite",)),
}


@pytest.fixture
def sites(pebble: Pebble) -> Iterator[list[Site]]:
    require_binary(APACHE_BINARY)
    made: list[Site] = []
    yield made
    for s in made:
        s.remove()


def customer_site(made: list[Site], pebble: Pebble, case: str) -> Site:
    text, mods = CASES[case]
    site = make_site(pebble, {"example.conf": text})
    made.append(site)
    enable_module(site, *mods)
    digest = base64.b64encode(hashlib.sha1(b"secret").digest()).decode()
    (site.base / "htpasswd").write_text(f"member:{{SHA}}{digest}\n")
    (site.www / ".htaccess").write_text("RewriteEngine on\nRewriteRule ^ - [F]\n")
    if case != "htaccess-rewrites-all":
        (site.www / ".htaccess").unlink()
    site.server.start(port=site.http_port)
    return site


def system_state() -> dict[str, list[str]]:
    """What a tool would touch outside the given tree: the system tree's enabled links,
    Certbot's challenge and log places."""
    places = ["/etc/apache2/mods-enabled", "/etc/apache2/sites-enabled",
              "/etc/apache2/conf-enabled", "/var/lib/letsencrypt", "/var/log/apache2"]
    return {p: sorted(os.listdir(p)) if os.path.isdir(p) else [] for p in places}


def blocked(site: Site) -> int:
    """What the site answers for a challenge file in its docroot before certwright."""
    directory = site.www / ".well-known" / "acme-challenge"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "t").write_text("x\n")
    status = probe.http_get(site.http_port, "example.org", "/.well-known/acme-challenge/t")
    shutil.rmtree(site.www / ".well-known")
    return status.status


@pytest.mark.parametrize("case", sorted(CASES))
def test_certonly_apache_through_a_customer_configuration(
        cli: Cli, sites: list[Site], pebble: Pebble, case: str) -> None:
    site = customer_site(sites, pebble, case)
    assert blocked(site) != 200, "the configuration keeps a webroot answer from the CA"
    before = site.snapshot()
    generations = site.server.generations()
    proc = cli("certonly", "--apache", *site.args(), "-d", "example.org",
               "-d", "www.example.org")
    assert "Successfully received certificate" in proc.stdout, proc.stdout + proc.stderr
    live = cli.config_dir / "live" / "example.org" / "cert.pem"
    assert live.exists()
    # the temporary change is gone, Apache reloaded back to it
    assert site.snapshot() == before
    assert site.server.generations() == generations + 2
    assert not (site.tree / "certwright").exists()


def test_run_apache_redirect_hsts_end_to_end(cli: Cli, sites: list[Site],
                                            pebble: Pebble) -> None:
    site = customer_site(sites, pebble, "hidden-path-ban")
    before = site.snapshot()
    system = system_state()
    cli("--apache", *site.args(), "-d", "example.org", "-d", "www.example.org",
        "--redirect", "--hsts")
    assert system_state() == system  # everything followed --apache-server-root
    assert site.server.config_test().returncode == 0
    for name in ("example.org", "www.example.org"):
        assert name in sans(served(site, name, root_pem=pebble.root_pem()))
    assert probe.http_get(site.http_port, "example.org", "/x").status == 301
    secure = probe.http_get(site.https_port, "example.org", "/", tls=True)
    assert secure.header("Strict-Transport-Security")
    # renewal answers the challenge through the same Apache, redirect and all
    old = served(site, "example.org").serial_number
    cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False)
    assert served(site, "example.org").serial_number != old
    conf = (cli.config_dir / "renewal" / "example.org.conf").read_text()
    assert "authenticator = apache" in conf and "installer = apache" in conf
    cli("rollback", "--checkpoints", "1", *site.args(), account=False)
    assert site.snapshot() == before


def test_run_apache_redirect_behind_basic_auth(cli: Cli, sites: list[Site],
                                               pebble: Pebble) -> None:
    site = customer_site(sites, pebble, "basic-auth")
    cli("run", "--apache", *site.args(), "-d", "example.org", "--redirect")
    assert "example.org" in sans(served(site, "example.org", root_pem=pebble.root_pem()))
    (site.www / ".well-known" / "acme-challenge").mkdir(parents=True)
    # behind basic auth a docroot file answers 401; the redirect itself leaves it alone
    assert probe.http_get(site.http_port, "example.org",
                          "/.well-known/acme-challenge/f").status == 401
    assert probe.http_get(site.http_port, "example.org", "/x").status == 301


def test_bad_challenge_location_is_one_clear_line(cli: Cli, sites: list[Site],
                                                  pebble: Pebble) -> None:
    site = customer_site(sites, pebble, "basic-auth")
    before = site.snapshot()
    proc = cli("certonly", "--apache", *site.args(), "-d", "example.org",
               "--apache-challenge-location", "/tmp/with space", check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "--apache-challenge-location /tmp/with space" in errors[0], \
        proc.stderr
    assert "Requesting" not in proc.stdout  # refused before any order
    assert site.snapshot() == before


DORMANT = GRANT + """\
<VirtualHost *:{http}>
    ServerName active.test
    DocumentRoot {www}
</VirtualHost>
<IfModule mod_does_not_exist.c>
<VirtualHost *:{http}>
    ServerName dormant.test
    DocumentRoot {www}
</VirtualHost>
</IfModule>
"""


def test_a_name_only_a_dormant_vhost_has_is_answered_where_apache_answers_it(
        cli: Cli, sites: list[Site], pebble: Pebble) -> None:
    site = make_site(pebble, {"example.conf": DORMANT})
    sites.append(site)
    site.server.start(port=site.http_port)
    before = site.snapshot()
    proc = cli("certonly", "--apache", *site.args(), "-d", "dormant.test")
    assert "Successfully received certificate" in proc.stdout, proc.stdout + proc.stderr
    assert site.snapshot() == before
