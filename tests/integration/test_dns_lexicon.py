"""DNS providers through dns-lexicon, end to end: a real PowerDNS (sqlite3 backend, HTTP
API) is the authoritative server Pebble resolves through, and lexicon's powerdns provider
edits it over the API."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.conftest import require_binary
from tests.integration.conftest import Cli
from tests.servers.pebble import Pebble
from tests.servers.powerdns import PowerDns

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pdns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerDns]:
    require_binary("pdns_server")
    with PowerDns(tmp_path_factory.mktemp("pdns"), zones=("example.test",)) as server:
        yield server


@pytest.fixture(scope="module")
def pdns_ca(pdns: PowerDns, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with Pebble(tmp_path_factory.mktemp("pebble-pdns"), dns_server=pdns.address) as ca:
        yield ca


@pytest.fixture
def pdns_cli(pdns_ca: Pebble, tmp_path: Path) -> Cli:
    return Cli(tmp_path, pdns_ca)


def credentials(pdns: PowerDns, path: Path, key: str | None = None) -> Path:
    path.write_text(f"dns_powerdns_auth_token = {key or pdns.api_key}\n"
                    f"dns_powerdns_pdns_server = {pdns.api_url}\n"
                    "dns_powerdns_pdns_server_id = localhost\n")
    os.chmod(path, 0o600)
    return path


def sans(cli: Cli, name: str) -> list[str]:
    pem = (cli.config_dir / "live" / name / "cert.pem").read_bytes()
    ext = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    return sorted(ext.get_values_for_type(x509.DNSName))


def acme_txt(pdns: PowerDns) -> list[tuple[str, str]]:
    return [r for r in pdns.records_of("example.test") if "_acme-challenge" in r[0]]


def test_wildcard_issued_through_powerdns_and_renewed_records_cleaned_up(
        pdns_cli: Cli, pdns: PowerDns, tmp_path: Path) -> None:
    pdns.set_rrset("example.test", "_acme-challenge.example.test", "TXT", ['"not-ours"'])
    creds = credentials(pdns, tmp_path / "pdns.ini")
    pdns_cli("certonly", "--dns-powerdns", "--dns-powerdns-credentials", str(creds),
             "--dns-resolver", pdns.address, "-d", "example.test", "-d", "*.example.test")
    assert sans(pdns_cli, "example.test") == ["*.example.test", "example.test"]
    assert acme_txt(pdns) == [("_acme-challenge.example.test", "not-ours")]
    conf = (pdns_cli.config_dir / "renewal" / "example.test.conf").read_text()
    assert "authenticator = dns-powerdns" in conf and f"dns_resolver = {pdns.address}" in conf
    before = (pdns_cli.config_dir / "live" / "example.test" / "cert.pem").read_bytes()
    proc = pdns_cli("renew", "--force-renewal", "--no-random-sleep-on-renew")  # stored options
    after = (pdns_cli.config_dir / "live" / "example.test" / "cert.pem").read_bytes()
    assert after != before, proc.stdout
    assert acme_txt(pdns) == [("_acme-challenge.example.test", "not-ours")]
    pdns.set_rrset("example.test", "_acme-challenge.example.test", "TXT", [])


def test_a_wrong_api_key_fails_clearly_and_leaves_nothing(pdns_cli: Cli, pdns: PowerDns,
                                                          tmp_path: Path) -> None:
    creds = credentials(pdns, tmp_path / "pdns.ini", key="not-the-key")
    proc = pdns_cli("certonly", "--dns-powerdns", "--dns-powerdns-credentials", str(creds),
                    "--dns-resolver", pdns.address, "-d", "bad.example.test", check=False)
    assert proc.returncode == 1
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: dns-powerdns: log in at powerdns for zone example.test "
                            "failed"), error
    assert "not-the-key" not in proc.stderr
    assert acme_txt(pdns) == []


def test_a_key_the_provider_does_not_know_is_named(pdns_cli: Cli, pdns: PowerDns,
                                                   tmp_path: Path) -> None:
    creds = credentials(pdns, tmp_path / "pdns.ini")
    with creds.open("a") as out:
        out.write("dns_powerdns_api_tokn = typo\n")
    proc = pdns_cli("certonly", "--dns-powerdns", "--dns-powerdns-credentials", str(creds),
                    "--dns-resolver", pdns.address, "-d", "typo.example.test", check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"Error: {creds}:4: dns_powerdns_api_tokn: not a key of "
                                  "dns-powerdns (its keys: dns_powerdns_auth_token,"), \
        proc.stderr


_WITHOUT = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None  # as if not installed: importing it raises ModuleNotFoundError
from certwright.core.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("plugin, hidden, package", [
    ("dns-powerdns", "lexicon", "dns-lexicon"),
    ("dns-cloudflare", "dns", "dnspython"),
    ("dns-rfc2136", "dns", "dnspython"),
])
def test_without_the_extra_the_error_names_the_package(tmp_path: Path, plugin: str,
                                                       hidden: str, package: str) -> None:
    creds = tmp_path / "creds.ini"
    creds.write_text("dns_x = y\n")
    os.chmod(creds, 0o600)
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT, hidden, "certonly", f"--{plugin}",
         f"--{plugin}-credentials", str(creds), "-d", "example.test", "-n",
         "--config-dir", str(tmp_path / "c"), "--work-dir", str(tmp_path / "w"),
         "--logs-dir", str(tmp_path / "l"), "--server", "https://127.0.0.1:9/dir"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"Error: {plugin} needs the Python package {package}, which is not installed; "
        "install it with: pip install 'certwright[dns]'")
