"""`run -a webroot -i apache`, `install -i apache`, rollback and a failing config test
against a real apache2 run from a temp tree, with Pebble as the CA."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from tests.conftest import require_binary
from tests.integration.conftest import Cli
from tests.integration.crashpoints import Crash, killed
from tests.servers import probe
from tests.servers.apache import APACHE_BINARY, ApacheServer, debian_tree, make_base
from tests.servers.pebble import Pebble
from tests.servers.ports import free_port, wait_until

pytestmark = pytest.mark.integration

SITE = """\
# example site: comments and layout must survive
<VirtualHost *:{http}>
    ServerName example.org
    ServerAlias www.example.org   # both names
    DocumentRoot {www}
    <Directory {www}>
        Require all granted
    </Directory>
</VirtualHost>
"""


@dataclass
class Site:
    base: Path
    tree: Path
    www: Path
    server: ApacheServer
    http_port: int
    https_port: int

    def args(self) -> list[str]:
        return ["--apache-server-root", str(self.tree), "--https-port", str(self.https_port),
                "--http-01-port", str(self.http_port)]

    def remove(self) -> None:
        """Stop its Apache and remove its tree (safe twice)."""
        self.server.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def snapshot(self) -> dict[str, bytes | str]:
        out: dict[str, bytes | str] = {}
        for path in sorted(self.tree.rglob("*")):
            rel = str(path.relative_to(self.tree))
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                out[rel] = path.read_bytes()
            else:
                out[rel] = "dir"
        return out


def make_site(pebble: Pebble, sites: dict[str, str]) -> Site:
    base = make_base()
    www = base / "www"
    www.mkdir()
    (www / "index.html").write_text("plain site\n")
    http = pebble.http_port
    text = {name: t.format(http=http, www=www) for name, t in sites.items()}
    tree = debian_tree(base / "tree", sites=text, ports=f"Listen {http}\n")
    server = ApacheServer(tree, base / "work")
    server.write_envvars()
    return Site(base, tree, www, server, http, free_port("127.0.0.1"))


@pytest.fixture
def site(pebble: Pebble) -> Iterator[Site]:
    require_binary(APACHE_BINARY)
    s = make_site(pebble, {"example.conf": SITE})
    try:
        yield s
    finally:
        s.remove()


def served(site: Site, name: str, root_pem: bytes | None = None) -> x509.Certificate:
    return probe.served_cert(site.https_port, name, cadata=root_pem)


def sans(cert: x509.Certificate) -> list[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ext.get_values_for_type(x509.DNSName)


def test_run_webroot_then_apache_installer_end_to_end(cli: Cli, site: Site,
                                                       pebble: Pebble) -> None:
    site.server.start(port=site.http_port)
    before = site.snapshot()
    proc = cli("run", "-a", "webroot", "-w", str(site.www), "-i", "apache", *site.args(),
               "-d", "example.org", "-d", "www.example.org")
    assert "Successfully deployed" in proc.stdout, proc.stdout + proc.stderr
    for name in ("example.org", "www.example.org"):
        assert name in sans(served(site, name, root_pem=pebble.root_pem()))
    assert site.server.config_test().returncode == 0
    # `run` redirects by default (Certbot's default): the user's file gains only that
    user = (site.tree / "sites-enabled" / "example.conf").read_bytes()
    assert user.count(b"RewriteRule") == 1
    original = before["sites-enabled/example.conf"]
    assert isinstance(original, bytes) and set(original.splitlines()) <= set(user.splitlines())
    # the twin is enabled the Debian way
    link = site.tree / "sites-enabled" / "example-le-ssl.conf"
    assert os.readlink(link) == "../sites-available/example-le-ssl.conf"
    assert (site.tree / "mods-enabled" / "ssl.load").is_symlink()
    conf = (cli.config_dir / "renewal" / "example.org.conf").read_text()
    assert "installer = apache" in conf and f"apache_server_root = {site.tree}" in conf
    # plain http redirects, except the challenge path
    assert probe.http_get(site.http_port, "example.org", "/").status == 301
    (site.www / ".well-known" / "acme-challenge").mkdir(parents=True)
    (site.www / ".well-known" / "acme-challenge" / "f").write_text("ok\n")
    assert probe.http_get(site.http_port, "example.org",
                          "/.well-known/acme-challenge/f").status == 200
    # installing again changes nothing and duplicates no certificate line
    deployed = site.snapshot()
    cli("install", "--cert-name", "example.org", "-i", "apache", *site.args(), account=False)
    assert site.snapshot() == deployed
    # renewal goes through the stored installer: Apache serves the new serial
    old = served(site, "example.org").serial_number
    cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False)
    assert served(site, "example.org").serial_number != old
    twin = (site.tree / "sites-available" / "example-le-ssl.conf").read_text()
    assert twin.count("SSLCertificateFile") == 1
    # one checkpoint undone: byte-identical to before, Apache serving the old state
    cli("rollback", "--checkpoints", "1", *site.args(), account=False)
    assert site.snapshot() == before
    with pytest.raises(OSError):
        served(site, "example.org")
    assert probe.http_get(site.http_port, "example.org", "/").status == 200


def test_install_updates_an_existing_443_vhost_in_place(cli: Cli, pebble: Pebble) -> None:
    require_binary(APACHE_BINARY)
    ssl_site = """\
<VirtualHost *:{{https}}>
    ServerName example.org
    DocumentRoot {www}
    SSLEngine on
    SSLCertificateFile {old}/snakeoil.pem
    SSLCertificateChainFile {old}/snakeoil.pem
    SSLCertificateKeyFile {old}/snakeoil.key
</VirtualHost>
"""
    s = make_site(pebble, {"example.conf": SITE})
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                        "/CN=old", "-days", "1", "-keyout", str(s.base / "snakeoil.key"),
                        "-out", str(s.base / "snakeoil.pem")], check=True, capture_output=True)
        (s.base / "snakeoil.key").chmod(0o644)
        (s.tree / "sites-enabled" / "example-ssl.conf").write_text(
            ssl_site.replace("{www}", str(s.www)).replace("{{https}}", str(s.https_port))
            .replace("{old}", str(s.base)))
        (s.tree / "ports.conf").write_text(f"Listen {s.http_port}\nListen {s.https_port}\n")
        for name in ("ssl.load", "ssl.conf", "socache_shmcb.load"):
            (s.tree / "mods-enabled" / name).symlink_to(f"../mods-available/{name}")
        s.server.start(port=s.http_port)
        cli("run", "-a", "webroot", "-w", str(s.www), "-i", "apache", *s.args(),
            "-d", "example.org")
        text = (s.tree / "sites-enabled" / "example-ssl.conf").read_text()
        assert text.count("SSLCertificateFile") == 1 and "snakeoil" not in text
        assert text.count("SSLCertificateKeyFile") == 1 and "ChainFile" not in text
        assert "live/example.org/fullchain.pem" in text
        assert not (s.tree / "sites-available" / "example-le-ssl.conf").exists()
        served(s, "example.org", root_pem=pebble.root_pem())
    finally:
        s.remove()


def test_failing_config_test_rolls_back_and_says_so(cli: Cli, site: Site,
                                                     tmp_path: Path) -> None:
    site.server.start(port=site.http_port)
    cli("certonly", "-a", "webroot", "-w", str(site.www), "--http-01-port",
        str(site.http_port), "-d", "example.org")
    before = site.snapshot()
    ctl = tmp_path / "apache-ctl"
    # fails only while certwright's twin is in the tree
    twin = site.tree / "sites-available" / "example-le-ssl.conf"
    ctl.write_text(f'#!/bin/sh\n[ "$1" = configtest ] && [ -e {twin} ] && '
                   f'{{ echo "AH00526: injected failure" >&2; exit 1; }}\n'
                   f'export APACHE_CONFDIR={site.tree}\n'
                   f'case "$1" in configtest) a=-t;; *) a="-k $1";; esac\n'
                   f'. {site.tree}/envvars\n'
                   f'exec {APACHE_BINARY} -d {site.tree} -f {site.tree}/apache2.conf $a\n')
    ctl.chmod(0o755)
    proc = cli("install", "--cert-name", "example.org", "-i", "apache", *site.args(),
               "--apache-ctl", str(ctl), account=False, check=False)
    assert proc.returncode != 0
    assert "config test failed" in proc.stderr and "restored" in proc.stderr, proc.stderr
    assert "injected failure" in proc.stderr
    assert "without this change" not in proc.stderr
    assert site.snapshot() == before
    assert probe.http_get(site.http_port, "example.org", "/").status == 200


def test_config_that_fails_without_the_change_is_named(cli: Cli, site: Site) -> None:
    site.server.start(port=site.http_port)
    cli("certonly", "-a", "webroot", "-w", str(site.www), "--http-01-port",
        str(site.http_port), "-d", "example.org")
    broken = site.tree / "conf-enabled" / "broken.conf"
    broken.write_text("NoSuchDirective on\n")
    before = site.snapshot()
    proc = cli("install", "--cert-name", "example.org", "-i", "apache", *site.args(),
               account=False, check=False)
    assert proc.returncode != 0
    assert "fails the same test without this change" in proc.stderr, proc.stderr
    assert site.snapshot() == before


def test_install_starts_apache_when_it_is_not_running(cli: Cli, site: Site) -> None:
    site.server.start(port=site.http_port)
    cli("certonly", "-a", "webroot", "-w", str(site.www), "--http-01-port",
        str(site.http_port), "-d", "example.org")
    site.server.stop()
    try:
        cli("install", "--cert-name", "example.org", "-i", "apache", *site.args(),
            account=False)
        served(site, "example.org")
    finally:
        pid_file = site.base / "work" / "run" / "apache2.pid"
        if pid_file.exists():  # the daemon certwright started: stop it, wait for its exit
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not Path(f"/proc/{pid}").exists(), what="apache2 stop")


def test_dormant_default_443_without_sslengine_is_refused(cli: Cli, pebble: Pebble) -> None:
    require_binary(APACHE_BINARY)
    dormant = """\
<IfModule mod_ssl.c>
<VirtualHost _default_:{{https}}>
    DocumentRoot {www}
</VirtualHost>
</IfModule>
"""
    s = make_site(pebble, {"example.conf": SITE})
    try:
        (s.tree / "sites-enabled" / "000-default-ssl.conf").write_text(
            dormant.replace("{www}", str(s.www)).replace("{{https}}", str(s.https_port)))
        s.server.start(port=s.http_port)
        cli("certonly", "-a", "webroot", "-w", str(s.www), "--http-01-port",
            str(s.http_port), "-d", "example.org")
        before = s.snapshot()
        proc = cli("install", "--cert-name", "example.org", "-i", "apache", *s.args(),
                   account=False, check=False)
        assert proc.returncode != 0
        assert "AH01916" in proc.stderr and "000-default-ssl.conf:2" in proc.stderr, \
            proc.stderr
        assert s.snapshot() == before
    finally:
        s.remove()


def test_bad_input_is_one_clear_line_and_changes_nothing(cli: Cli, site: Site,
                                                         tmp_path: Path) -> None:
    site.server.start(port=site.http_port)
    cli("certonly", "-a", "webroot", "-w", str(site.www), "--http-01-port",
        str(site.http_port), "-d", "example.org")
    before = site.snapshot()
    empty = tmp_path / "not-apache"
    empty.mkdir()
    broken = site.tree / "conf-enabled" / "broken.conf"
    cases = [
        (["--apache-server-root", str(empty)], f"--apache-server-root {empty}"),
        (["--apache-ctl", str(tmp_path / "no-such-ctl")], "--apache-ctl"),
        (["--apache-bin", "no-such-httpd"], "--apache-bin"),
        (["--apache-handle-modules", "maybe"], "--apache-handle-modules maybe"),
        (["--auto-hsts"], "can't do: auto-hsts"),
        (["--unparsable"], str(broken)),
    ]
    for extra, expected in cases:
        if extra == ["--unparsable"]:
            broken.write_text("<VirtualHost *:80>\n    ServerName x\n")  # never closed
            extra = []
        args = [*site.args(), *extra]
        if "--apache-server-root" in extra:
            args = [a for a in site.args() if a != str(site.tree)]
            args.remove("--apache-server-root")
            args += extra
        proc = cli("install", "--cert-name", "example.org", "-i", "apache", *args,
                   account=False, check=False)
        assert proc.returncode != 0, extra
        errors = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and expected in errors[0], (extra, proc.stderr)
        broken.unlink(missing_ok=True)
        assert site.snapshot() == before, extra


def test_install_dry_run_prints_the_diff_and_changes_nothing(cli: Cli, site: Site) -> None:
    site.server.start(port=site.http_port)
    cli("certonly", "-a", "webroot", "-w", str(site.www), "--http-01-port",
        str(site.http_port), "-d", "example.org")
    before = site.snapshot()
    proc = cli("install", "--cert-name", "example.org", "-i", "apache", *site.args(),
               "--dry-run", account=False)
    assert "+++ " in proc.stdout and "SSLCertificateFile" in proc.stdout, proc.stdout
    assert "mods-enabled/ssl.load" in proc.stdout
    assert site.snapshot() == before


def test_sigkill_between_apply_and_commit_is_recovered(cli: Cli, site: Site) -> None:
    site.server.start(port=site.http_port)
    cli("certonly", "-a", "webroot", "-w", str(site.www), "--http-01-port",
        str(site.http_port), "-d", "example.org")
    before = site.snapshot()
    crash = Crash("certwright.installers.apache.process:ApacheControl.config_test", "before")
    proc = crash.run(cli, "install", "--cert-name", "example.org", "-i", "apache",
                     *site.args(), account=False)
    assert killed(proc), proc.stderr
    assert site.snapshot() != before, "killed with the plan applied"
    again = cli("install", "--cert-name", "example.org", "-i", "apache", *site.args(),
                "--dry-run", account=False)
    assert "Rolled back the unfinished change" in again.stdout, again.stdout
    assert site.snapshot() == before


def test_renew_of_four_lineages_reloads_apache_once(cli: Cli, pebble: Pebble) -> None:
    require_binary(APACHE_BINARY)
    names = ["a.test", "b.test", "c.test", "d.test"]
    multi = "".join(SITE.replace("example.org", n).replace("www.", "www-")
                    .replace("# example site: comments and layout must survive\n", "")
                    for n in names)
    s = make_site(pebble, {"multi.conf": multi})
    try:
        s.server.start(port=s.http_port)
        for name in names:
            cli("run", "-a", "webroot", "-w", str(s.www), "-i", "apache", *s.args(), "-d", name)
        old = {n: served(s, n).serial_number for n in names}
        generations = s.server.generations()
        cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False)
        assert s.server.generations() == generations + 1, "one graceful reload"
        for name in names:
            cert = served(s, name, root_pem=pebble.root_pem())
            assert cert.serial_number != old[name] and name in sans(cert)
    finally:
        s.remove()
