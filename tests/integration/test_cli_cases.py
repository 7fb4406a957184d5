"""Options and failure cases of the CLI, end to end against Pebble."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.conftest import Cli, standalone
from tests.servers.nginx import Nginx
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration


def one_error_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize(("name", "fragment"), [
    ("bad..example.org", "empty label"),
    ("under_score.example.org", "'_'"),
    ("org", "bare top-level"),
    ("x" * 64 + ".example.org", "over 63"),
])
def test_malformed_names_are_refused_and_the_store_is_untouched(
        cli: Cli, pebble: Pebble, name: str, fragment: str) -> None:
    cli("certonly", *standalone(pebble), "-d", "ok.example.org")
    before = cli.snapshot()
    proc = cli("certonly", *standalone(pebble), "-d", name, check=False)
    assert fragment in one_error_line(proc)
    assert proc.returncode == 1  # Certbot's code for a refused name
    assert cli.snapshot() == before


def test_a_write_that_fails_midway_loses_nothing(cli: Cli, pebble: Pebble) -> None:
    cli("certonly", *standalone(pebble), "-d", "full.example.org")
    before = cli.snapshot()
    # the key and certificate fit, the chain files do not: the save fails midway
    proc = cli("renew", "--force-renewal", "--no-random-sleep-on-renew", check=False,
               max_file_size=1100)
    assert proc.returncode == 1
    assert "cannot write" in proc.stdout and "File too large" in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr and "Logging error" not in proc.stderr
    assert cli.snapshot() == before
    cli("renew", "--force-renewal", "--no-random-sleep-on-renew")  # and it goes on from there
    assert (cli.config_dir / "archive" / "full.example.org" / "cert2.pem").exists()


def test_idn_is_issued_as_punycode(cli: Cli, pebble: Pebble) -> None:
    cli("certonly", *standalone(pebble), "-d", "bücher.example.org")
    cert = x509.load_pem_x509_certificate(
        (cli.config_dir / "live" / "xn--bcher-kva.example.org" / "cert.pem").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["xn--bcher-kva.example.org"]


def test_wildcard_with_http01_is_refused_before_any_order(
        cli: Cli, pebble: Pebble, www_root: Path) -> None:
    proc = cli("certonly", "--webroot", "-w", str(www_root), "-d", "*.example.org",
               check=False)
    line = one_error_line(proc)
    assert "wildcard" in line and "dns-01" in line
    assert not (cli.config_dir / "accounts").exists(), "no account was registered"


def test_missing_webroot(cli: Cli, tmp_path: Path) -> None:
    proc = cli("certonly", "--webroot", "-w", str(tmp_path / "nope"), "-d", "a.example.org",
               check=False)
    assert str(tmp_path / "nope") in one_error_line(proc)


def test_unreachable_and_non_acme_servers(cli: Cli, web: Nginx, www_root: Path) -> None:
    for url, fragment in (
        ("https://127.0.0.1:9/dir", "could not reach https://127.0.0.1:9/dir"),
        (f"http://127.0.0.1:{web.http_port}/dir", "non-ACME response"),
    ):
        proc = cli("certonly", "--webroot", "-w", str(www_root), "-d", "x.example.org",
                   "--server", url, check=False)
        assert fragment in one_error_line(proc)
    assert not (cli.config_dir / "live").exists()


def test_dry_run_saves_nothing(cli: Cli, pebble: Pebble) -> None:
    proc = cli("certonly", *standalone(pebble), "-d", "dry.example.org", "--dry-run")
    assert "The dry run was successful." in proc.stdout
    assert not (cli.config_dir / "live").exists()
    assert not (cli.config_dir / "renewal").exists()


def test_keep_renew_reuse_key_and_expand(cli: Cli, pebble: Pebble) -> None:
    live = cli.config_dir / "live" / "life.example.org"
    cli("certonly", *standalone(pebble), "-d", "life.example.org", "--reuse-key")
    key1 = (live / "privkey.pem").read_bytes()
    proc = cli("certonly", *standalone(pebble), "-d", "life.example.org")
    assert "not yet due" in proc.stdout
    assert os.readlink(live / "cert.pem").endswith("cert1.pem")
    cli("certonly", *standalone(pebble), "-d", "life.example.org", "--force-renewal")
    assert os.readlink(live / "cert.pem").endswith("cert2.pem")
    assert (live / "privkey.pem").read_bytes() == key1, "reuse_key is stored and honoured"
    cli("certonly", *standalone(pebble), "-d", "life.example.org", "--force-renewal",
        "--new-key")
    assert (live / "privkey.pem").read_bytes() != key1
    proc = cli("certonly", *standalone(pebble), "-d", "life.example.org",
               "-d", "more.example.org", check=False)
    assert "--expand" in one_error_line(proc)
    cli("certonly", *standalone(pebble), "-d", "life.example.org", "-d", "more.example.org",
        "--expand")
    assert os.readlink(live / "cert.pem").endswith("cert4.pem")
    data = json.loads(cli("certificates", "--json", account=False).stdout)
    assert data[0]["domains"] == ["life.example.org", "more.example.org"]
    assert data[0]["days_left"] >= 80


def test_csr_issues_to_the_given_paths(cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csr.example.org")]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("csr.example.org")]),
                          critical=False)
           .sign(key, hashes.SHA256()))
    csr_path = tmp_path / "req.pem"
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    out = tmp_path / "out"
    out.mkdir()
    cli("certonly", *standalone(pebble), "--csr", str(csr_path),
        "--cert-path", str(out / "c.pem"), "--fullchain-path", str(out / "f.pem"),
        "--chain-path", str(out / "ch.pem"))
    cert = x509.load_pem_x509_certificate((out / "c.pem").read_bytes())
    assert cert.public_key() == key.public_key()
    assert len(x509.load_pem_x509_certificates((out / "f.pem").read_bytes())) >= 2
    assert not (cli.config_dir / "live").exists(), "a CSR issuance is not a lineage"
    before = (out / "c.pem").read_bytes()
    proc = cli("certonly", *standalone(pebble), "--csr", str(csr_path),
               "--cert-path", str(out / "c.pem"), check=False)
    assert "exists already" in one_error_line(proc) and proc.returncode == 1
    assert (out / "c.pem").read_bytes() == before
    # default paths, as in Certbot: the first free NNNN_ prefix, nothing overwritten
    here = tmp_path / "here"
    here.mkdir()
    for _ in range(2):
        cli("certonly", *standalone(pebble), "--csr", str(csr_path), "-d", "csr.example.org",
            cwd=here)
    assert sorted(p.name for p in here.iterdir()) == [
        f"{n}_{kind}.pem" for n in ("0000", "0001") for kind in ("cert", "chain", "fullchain")]


def test_reissue_keeps_the_key_type_unless_asked_with_cert_name(
        cli: Cli, pebble: Pebble) -> None:
    cli("certonly", *standalone(pebble), "-d", "kt.example.org", "--key-type", "rsa",
        "--rsa-key-size", "3072")
    cli("certonly", *standalone(pebble), "-d", "kt.example.org", "--force-renewal")
    conf = (cli.config_dir / "renewal" / "kt.example.org.conf").read_text()
    assert "key_type = rsa" in conf and "rsa_key_size = 3072" in conf
    before = cli.snapshot()
    proc = cli("certonly", *standalone(pebble), "-d", "kt.example.org", "--key-type", "ecdsa",
               "--force-renewal", check=False)
    assert "--cert-name and --key-type" in one_error_line(proc) and proc.returncode == 1
    assert cli.snapshot() == before
    cli("certonly", *standalone(pebble), "-d", "kt.example.org", "--key-type", "ecdsa",
        "--cert-name", "kt.example.org", "--force-renewal")
    key = (cli.config_dir / "live" / "kt.example.org" / "privkey.pem").read_bytes()
    assert isinstance(serialization.load_pem_private_key(key, None), ec.EllipticCurvePrivateKey)


def test_dry_run_of_a_certificate_not_due_still_asks_the_ca(cli: Cli, pebble: Pebble) -> None:
    cli("certonly", *standalone(pebble), "-d", "dr.example.org")
    before = cli.snapshot()
    proc = cli("certonly", *standalone(pebble), "-d", "dr.example.org", "--dry-run")
    assert "The dry run was successful" in proc.stdout, proc.stdout
    assert cli.snapshot() == before


def test_allow_subset_of_names_drops_what_fails_validation(
        cli: Cli, web: Nginx, www_root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "not-served"  # a web root nginx does not serve: validation 404s
    elsewhere.mkdir()
    args = ["certonly", "--webroot", "-w", str(www_root), "-d", "good.example.org",
            "-w", str(elsewhere), "-d", "bad.example.org"]
    cli("register")
    before = cli.snapshot()
    proc = cli(*args, check=False)
    assert proc.returncode == 1 and "bad.example.org" in proc.stderr
    assert cli.snapshot() == before
    proc = cli(*args, "--allow-subset-of-names")
    assert "Retrying without: bad.example.org" in proc.stdout, proc.stdout
    pem = (cli.config_dir / "live" / "good.example.org" / "cert.pem").read_bytes()
    sans = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert sans == ["good.example.org"]
    conf = (cli.config_dir / "renewal" / "good.example.org.conf").read_text()
    assert "allow_subset_of_names = True" in conf


def test_unusable_options_are_refused_before_any_account_or_order(
        cli: Cli, pebble: Pebble) -> None:
    for extra, fragment in ((["--preferred-challenges", "dns-01"], "preferred challenges"),
                            (["--key-type", "rsa", "--rsa-key-size", "1024"], "2048..8192")):
        proc = cli("certonly", *standalone(pebble), "-d", "pc.example.org", *extra, check=False)
        assert fragment in one_error_line(proc) and proc.returncode == 1
        assert not cli.config_dir.exists() or not (cli.config_dir / "accounts").exists()
    ini = cli.config_dir / "cli.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    ini.write_bytes(b"\xff\xfe\x00garbage\n")
    proc = cli("certificates", check=False, account=False)
    assert f"{ini}: not UTF-8 text" in one_error_line(proc)


def test_renew_refuses_domains(cli: Cli, pebble: Pebble) -> None:
    proc = cli("renew", "-d", "x.example.org", check=False, account=False)
    assert "certonly" in one_error_line(proc) and proc.returncode == 1


def test_account_verbs(cli: Cli, pebble: Pebble) -> None:
    cli("register")
    again = cli("register", check=False)
    assert "already an account" in one_error_line(again)
    shown = cli("show_account", account=False).stdout
    assert "admin@example.org" in shown and "Account URL" in shown
    url = shown.split("Account URL: ")[1].split()[0]
    cli("update_account", "-m", "new@example.org", account=False)
    assert "new@example.org" in cli("show_account", account=False).stdout
    regr = next((cli.config_dir / "accounts").rglob("regr.json"))
    assert json.loads(regr.read_text())["uri"] == url
    key_file = next((cli.config_dir / "accounts").rglob("private_key.json"))
    assert stat.S_IMODE(key_file.stat().st_mode) & 0o077 == 0
    cli("unregister", account=False)
    assert not list((cli.config_dir / "accounts").rglob("regr.json"))
    # the CA agrees the account is gone: its key can no longer place orders
    status = pebble.session.get(url, timeout=5)
    assert status.status_code in (401, 403, 404, 405)


def test_eab_is_required_and_used(pebble_factory, tmp_path: Path) -> None:
    ca = pebble_factory(eab=True)
    cli = Cli(tmp_path, ca)
    proc = cli("register", check=False)
    assert "--eab-kid" in one_error_line(proc)
    assert ca.eab is not None
    cli("register", "--eab-kid", ca.eab.kid, "--eab-hmac-key", ca.eab.hmac_key)
    cli("certonly", *standalone(ca), "-d", "eab.example.org", account=False)
    assert (cli.config_dir / "live" / "eab.example.org" / "cert.pem").exists()


def test_preferred_chain(pebble_factory, tmp_path: Path) -> None:
    ca = pebble_factory(alternate_roots=1)
    cli = Cli(tmp_path, ca)
    alt_root = x509.load_pem_x509_certificate(ca.root_pem(1))
    alt_cn = alt_root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    cli("certonly", *standalone(ca), "-d", "chain.example.org", "--preferred-chain", alt_cn)
    chain = x509.load_pem_x509_certificates(
        (cli.config_dir / "live" / "chain.example.org" / "chain.pem").read_bytes())
    assert chain[-1].issuer == alt_root.subject
    assert "preferred_chain = " + alt_cn in (
        cli.config_dir / "renewal" / "chain.example.org.conf").read_text()


def test_cli_ini_in_config_dir(cli: Cli, pebble: Pebble) -> None:
    cli.config_dir.mkdir(parents=True)
    (cli.config_dir / "cli.ini").write_text(
        "# defaults\nkey-type = rsa\nrsa-key-size = 3072\nagree-tos\n"
        f"email = ini@example.org\nhttp-01-port = {pebble.http_port}\n")
    cli("certonly", "--standalone", "--http-01-address", "127.0.0.1", "-d", "ini.example.org",
        account=False)
    cert = x509.load_pem_x509_certificate(
        (cli.config_dir / "live" / "ini.example.org" / "cert.pem").read_bytes())
    assert cert.public_key().key_size == 3072
    (cli.config_dir / "cli.ini").write_text("no-such-option = 1\n")
    proc = cli("certificates", account=False)  # warned about, never fatal
    assert "cli.ini:1: unknown option 'no-such-option'" in proc.stderr


def test_help_and_version(cli: Cli) -> None:
    assert "certonly" in cli("--help", account=False).stdout
    text = cli("--help", "certonly", account=False).stdout
    assert "--cert-name" in text and "--preferred-challenges" in text
    assert "--webroot-path" in cli("--help", "webroot", account=False).stdout
    assert cli("--version", account=False).stdout.startswith("certwright ")
    listed = cli("plugins", "--authenticators", account=False).stdout
    assert all(f"* {n}" in listed for n in ("manual", "standalone", "webroot"))


def test_account_forgotten_by_the_ca_gets_a_clear_error(pebble_factory, tmp_path: Path) -> None:
    ca = pebble_factory()
    cli = Cli(tmp_path, ca)
    cli("certonly", *standalone(ca), "-d", "before.example.org")
    ca.restart()  # same directory URL, all accounts forgotten
    before = cli.snapshot()
    proc = cli("certonly", *standalone(ca), "-d", "after.example.org", account=False,
               check=False)
    line = one_error_line(proc)
    assert "accountDoesNotExist" in line and "unknown to the CA" in line
    account_dir = next((cli.config_dir / "accounts").rglob("regr.json")).parent
    assert str(account_dir) in line
    assert cli.snapshot() == before
    # following the advice works: a new account is registered and the order goes through
    account_dir.rename(tmp_path / "old-account")
    cli("certonly", *standalone(ca), "-d", "after.example.org")
    # a lineage whose renewal conf names the old account renews with the new one
    proc = cli("renew", "--cert-name", "before.example.org", "--force-renewal",
               "--no-random-sleep-on-renew", account=False)
    assert "1 renewed" in proc.stdout and "is not in" in proc.stderr
