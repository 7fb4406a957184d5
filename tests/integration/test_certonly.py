"""`certonly` end to end against a real Pebble, for every built-in authenticator."""

from __future__ import annotations

import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.verification import PolicyBuilder, Store

from tests.integration.conftest import Cli
from tests.servers.nginx import Nginx
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration


def check_lineage(cli: Cli, name: str, domains: list[str], version: int = 1) -> x509.Certificate:
    """The lineage is complete, in Certbot's layout, and verifies against Pebble's root."""
    live = cli.config_dir / "live" / name
    for kind in ("cert", "chain", "fullchain", "privkey"):
        link = live / f"{kind}.pem"
        assert link.is_symlink()
        assert os.readlink(link) == f"../../archive/{name}/{kind}{version}.pem"
    key_file = cli.config_dir / "archive" / name / f"privkey{version}.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    pems = x509.load_pem_x509_certificates((live / "fullchain.pem").read_bytes())
    cert = pems[0]
    assert cert == x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(domains)
    key = serialization.load_pem_private_key((live / "privkey.pem").read_bytes(), None)
    assert key.public_key() == cert.public_key()
    roots = [x509.load_pem_x509_certificate(cli.ca.root_pem())]
    verifier = PolicyBuilder().store(Store(roots)).build_server_verifier(
        x509.DNSName(domains[0].removeprefix("*.") if not domains[0].startswith("*") else
                     "x." + domains[0][2:]))
    chain = verifier.verify(cert, pems[1:])
    assert chain[-1] == roots[0]
    assert (cli.config_dir / "renewal" / f"{name}.conf").is_file()
    return cert


def test_webroot_san_certificate(cli: Cli, web: Nginx, www_root: Path) -> None:
    proc = cli("certonly", "--webroot", "-w", str(www_root), "-d", "example.org",
               "-d", "www.example.org")
    assert "Successfully received certificate." in proc.stdout
    check_lineage(cli, "example.org", ["example.org", "www.example.org"])
    conf = (cli.config_dir / "renewal" / "example.org.conf").read_text()
    assert "authenticator = webroot" in conf
    assert f"www.example.org = {www_root}" in conf
    assert not (www_root / ".well-known").exists(), "the challenge dirs it made are removed"
    listed = cli("certificates", account=False).stdout
    assert "Certificate Name: example.org" in listed and "VALID" in listed


def test_webroot_keeps_existing_well_known(cli: Cli, web: Nginx, www_root: Path) -> None:
    (www_root / ".well-known").mkdir(mode=0o755)
    (www_root / ".well-known" / "security.txt").write_text("contact\n")
    cli("certonly", "--webroot", "-w", str(www_root), "-d", "keep.example.org")
    assert (www_root / ".well-known" / "security.txt").read_text() == "contact\n"
    assert not (www_root / ".well-known" / "acme-challenge").exists()


def test_standalone(cli: Cli, pebble: Pebble) -> None:
    cli("certonly", "--standalone", "--http-01-port", str(pebble.http_port),
        "--http-01-address", "127.0.0.1", "-d", "standalone.example.org",
        "--key-type", "rsa", "--rsa-key-size", "2048")
    cert = check_lineage(cli, "standalone.example.org", ["standalone.example.org"])
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    conf = (cli.config_dir / "renewal" / "standalone.example.org.conf").read_text()
    assert "authenticator = standalone" in conf and "key_type = rsa" in conf


def _hook(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\nset -e\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


def test_manual_http01_hooks(cli: Cli, web: Nginx, www_root: Path, tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    auth = _hook(tmp_path / "auth.sh", f"""\
        mkdir -p {www_root}/.well-known/acme-challenge
        printf %s "$CERTBOT_VALIDATION" > {www_root}/.well-known/acme-challenge/$CERTBOT_TOKEN
        echo "auth $CERTBOT_DOMAIN $CERTBOT_REMAINING_CHALLENGES $CERTBOT_ALL_DOMAINS" >> {log}
        echo "out-$CERTBOT_DOMAIN"
        """)
    clean = _hook(tmp_path / "clean.sh", f"""\
        rm -f {www_root}/.well-known/acme-challenge/$CERTBOT_TOKEN
        echo "cleanup $CERTBOT_DOMAIN $CERTBOT_AUTH_OUTPUT" >> {log}
        """)
    cli("certonly", "--manual", "--preferred-challenges", "http", "--manual-auth-hook", auth,
        "--manual-cleanup-hook", clean, "-d", "m1.example.org,m2.example.org")
    check_lineage(cli, "m1.example.org", ["m1.example.org", "m2.example.org"])
    lines = log.read_text().splitlines()
    auths = sorted(line for line in lines if line.startswith("auth"))
    assert [a.split()[1] for a in auths] == ["m1.example.org", "m2.example.org"]
    assert sorted(a.split()[2] for a in auths) == ["0", "1"]
    assert all(a.split()[3] == "m1.example.org,m2.example.org" for a in auths)
    assert sorted(line for line in lines if line.startswith("cleanup")) == [
        "cleanup m1.example.org out-m1.example.org", "cleanup m2.example.org out-m2.example.org"]
    conf = (cli.config_dir / "renewal" / "m1.example.org.conf").read_text()
    assert f"manual_auth_hook = {auth}" in conf and "pref_challs = http-01," in conf


def _dns_hooks(tmp_path: Path, pebble: Pebble) -> tuple[str, str]:
    mgmt = pebble.challtestsrv.management_url
    set_txt = (f"{sys.executable} -c \"import json,os,urllib.request as u; "
               f"u.urlopen(u.Request('{mgmt}/set-txt', json.dumps("
               "{'host': '_acme-challenge.'+os.environ['CERTBOT_DOMAIN']+'.', "
               "'value': os.environ['CERTBOT_VALIDATION']}).encode()))\"")
    clear_txt = (f"{sys.executable} -c \"import json,os,urllib.request as u; "
                 f"u.urlopen(u.Request('{mgmt}/clear-txt', json.dumps("
                 "{'host': '_acme-challenge.'+os.environ['CERTBOT_DOMAIN']+'.'}).encode()))\"")
    auth = _hook(tmp_path / "dns-auth.sh", set_txt + "\n")
    clean = _hook(tmp_path / "dns-clean.sh", clear_txt + "\n")
    return auth, clean


def test_manual_dns01_wildcard(cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    auth, clean = _dns_hooks(tmp_path, pebble)
    proc = cli("certonly", "--manual", "--preferred-challenges", "dns", "--manual-auth-hook",
               auth, "--manual-cleanup-hook", clean, "-d", "*.wild.example.org",
               "-d", "wild.example.org", "--elliptic-curve", "secp384r1")
    assert "Successfully received certificate." in proc.stdout
    cert = check_lineage(cli, "wild.example.org", ["*.wild.example.org", "wild.example.org"])
    pub = cert.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp384r1"


def test_twenty_issuances_with_half_the_nonces_rejected(
    pebble_factory, tmp_path: Path
) -> None:
    ca = pebble_factory(nonce_reject_percent=50)
    cli = Cli(tmp_path, ca)
    for i in range(20):
        cli("certonly", "--standalone", "--http-01-port", str(ca.http_port),
            "--http-01-address", "127.0.0.1", "-d", f"n{i}.example.org")
    assert len(list((cli.config_dir / "live").glob("n*.example.org"))) == 20


@pytest.mark.parametrize("damage", ["garbage", "dangling-link"])
def test_cert_name_whose_conf_cannot_be_read_fails_naming_it(
        cli: Cli, pebble: Pebble, damage: str) -> None:
    """`--cert-name foo` with an unreadable renewal/foo.conf stops, naming the file; no
    `foo-0001` beside it, nothing changed. The same for certonly -d naming its domain."""
    args = ["--standalone", "--http-01-port", str(pebble.http_port),
            "--http-01-address", "127.0.0.1"]
    cli("certonly", *args, "-d", "broken.example.org", "--cert-name", "foo")
    conf = cli.config_dir / "renewal" / "foo.conf"
    if damage == "garbage":
        conf.write_text("this is = not [a renewal conf\n[[[\n")
    else:
        conf.unlink()
        conf.symlink_to(cli.config_dir / "renewal" / "gone.conf")
    before = cli.snapshot()
    for extra in (["--cert-name", "foo"], ["--cert-name", "foo", "--force-renewal"]):
        proc = cli("certonly", *args, "-d", "broken.example.org", *extra, check=False)
        assert proc.returncode != 0, proc.stdout
        assert str(conf) in proc.stderr, proc.stderr
    proc = cli("certonly", *args, "-d", "broken.example.org", check=False)
    assert proc.returncode != 0 and str(conf) in proc.stderr, proc.stdout + proc.stderr
    assert cli.snapshot() == before
    assert not (cli.config_dir / "renewal" / "foo-0001.conf").exists()
