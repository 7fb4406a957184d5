"""Certificates for IP addresses (RFC 8738) against Pebble: ``--ip-address`` with the
standalone (http-01 and tls-alpn-01), webroot and manual authenticators; the CSR carries
iPAddress SANs, the lineage is named by the first identifier, ``certificates`` lists
them, and the lineage renews."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from cryptography import x509

from tests.integration.conftest import Cli, standalone
from tests.integration.test_nginx import PLAIN_SITE, served, tree  # noqa: F401
from tests.servers.nginx import Nginx
from tests.servers.nginx_tree import NginxTree
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration


def sans(cli: Cli, name: str) -> tuple[list[str], list[str]]:
    pem = (cli.config_dir / "live" / name / "cert.pem").read_bytes()
    ext = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    return (sorted(ext.get_values_for_type(x509.DNSName)),
            sorted(str(a) for a in ext.get_values_for_type(x509.IPAddress)))


def test_an_ip_certificate_through_standalone_is_listed_and_renews(cli: Cli,
                                                                   pebble: Pebble) -> None:
    cli("certonly", *standalone(pebble), "--ip-address", "127.0.0.1")
    assert sans(cli, "127.0.0.1") == ([], ["127.0.0.1"])
    rows = json.loads(cli("certificates", "--json", account=False).stdout)
    assert [(r["name"], r["domains"]) for r in rows] == [("127.0.0.1", ["127.0.0.1"])]
    text = cli("certificates", account=False).stdout
    assert "Certificate Name: 127.0.0.1" in text and "127.0.0.1" in text
    live = cli.config_dir / "live" / "127.0.0.1"
    before = (live / "cert.pem").read_bytes()
    cli("renew", "--force-renewal", "--no-random-sleep-on-renew")
    assert (live / "cert.pem").read_bytes() != before
    assert sans(cli, "127.0.0.1") == ([], ["127.0.0.1"])


def test_names_and_addresses_keep_the_command_lines_order(cli: Cli, pebble: Pebble) -> None:
    cli("certonly", *standalone(pebble), "-d", "ipmix.example.org", "--ip-address",
        "127.0.0.1")
    assert sans(cli, "ipmix.example.org") == (["ipmix.example.org"], ["127.0.0.1"])


def test_an_ip_certificate_through_tls_alpn_01(cli: Cli, pebble: Pebble) -> None:
    cli("certonly", "--standalone", "--preferred-challenges", "tls-alpn-01",
        "--tls-alpn-01-port", str(pebble.tls_port), "--http-01-address", "127.0.0.1",
        "--ip-address", "127.0.0.1", "--cert-name", "ip-alpn")
    assert sans(cli, "ip-alpn") == ([], ["127.0.0.1"])


def test_an_ip_certificate_through_webroot(cli: Cli, web: Nginx, www_root: Path) -> None:
    cli("certonly", "--webroot", "-w", str(www_root), "--ip-address", "127.0.0.1")
    assert sans(cli, "127.0.0.1") == ([], ["127.0.0.1"])
    conf = (cli.config_dir / "renewal" / "127.0.0.1.conf").read_text()
    assert f"127.0.0.1 = {www_root}" in conf, "the webroot map has the address"


def test_an_ip_certificate_through_manual_hooks(cli: Cli, web: Nginx, www_root: Path,
                                                tmp_path: Path) -> None:
    hook = tmp_path / "hook.py"
    hook.write_text(
        "import os, pathlib\n"
        f"d = pathlib.Path({str(www_root)!r}) / '.well-known' / 'acme-challenge'\n"
        "d.mkdir(parents=True, exist_ok=True)\n"
        "(d / os.environ['CERTBOT_TOKEN']).write_text(os.environ['CERTBOT_VALIDATION'])\n"
        "print(os.environ['CERTBOT_DOMAIN'])\n")
    cli("certonly", "--manual", "--preferred-challenges", "http", "--manual-auth-hook",
        f"{shlex.quote(sys.executable)} {shlex.quote(str(hook))}", "--ip-address",
        "127.0.0.1")
    assert sans(cli, "127.0.0.1") == ([], ["127.0.0.1"])


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--standalone", "--ip-address", "192.0.2.300"], 2,
     "Error: argument --ip-address: '192.0.2.300' is not an IP address"),
    (["--manual", "--preferred-challenges", "dns", "--manual-auth-hook", "true",
      "--ip-address", "192.0.2.7"], 1,
     "Error: 192.0.2.7 is an IP address: it needs http-01 or tls-alpn-01 (RFC 8738 has no "
     "dns-01 for addresses), which the manual authenticator can't do here"),
    (["--dns-rfc2136", "--dns-rfc2136-credentials", "/nonexistent", "--ip-address",
      "192.0.2.8"], 1, None),
])
def test_ip_address_input_errors_are_one_line_before_the_ca(
        cli: Cli, args: list[str], code: int, message: str | None, tmp_path: Path) -> None:
    if message is None:  # a DNS authenticator, ready to go
        creds = tmp_path / "rfc2136.ini"
        creds.write_text("dns_rfc2136_server = 127.0.0.1\ndns_rfc2136_name = k.\n"
                         "dns_rfc2136_secret = c2VjcmV0\n")
        creds.chmod(0o600)
        args = [str(creds) if a == "/nonexistent" else a for a in args]
        message = ("Error: 192.0.2.8 is an IP address: it needs http-01 or tls-alpn-01 "
                   "(RFC 8738 has no dns-01 for addresses), which the dns-rfc2136 "
                   "authenticator can't do here")
    proc = cli("certonly", *args, check=False)
    assert proc.returncode == code
    assert proc.stderr.strip().splitlines() == [message]
    assert not cli.config_dir.joinpath("accounts").exists(), "refused before the CA"


def test_run_with_the_nginx_installer_serves_an_ip_certificate(cli: Cli, tree: NginxTree,  # noqa: F811
                                                               pebble: Pebble) -> None:
    tree.site("example", PLAIN_SITE)
    tree.start()
    cli("run", "--nginx", *tree.args(), "-d", "example.org", "--ip-address", "127.0.0.1",
        "--no-redirect")
    cert = served(tree, "example.org", root_pem=pebble.root_pem())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in ext.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
