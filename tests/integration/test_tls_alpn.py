"""tls-alpn-01 (RFC 8737) from the standalone authenticator: against Pebble's TLS-ALPN
validation, and by hand with TLS clients that do and do not speak ``acme-tls/1``."""

from __future__ import annotations

import argparse
import hashlib
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from certwright.authenticators.standalone import StandaloneAuthenticator
from certwright.authenticators.tls_alpn import ACME_IDENTIFIER_OID
from certwright.core.interfaces import ChallengeTask, Identifier
from tests.integration.conftest import Cli
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration


def alpn_args(pebble: Pebble) -> list[str]:
    return ["--standalone", "--preferred-challenges", "tls-alpn-01", "--tls-alpn-01-port",
            str(pebble.tls_port), "--http-01-address", "127.0.0.1"]


def test_certificate_through_tls_alpn_01_and_parallel_renewals_share_the_server(
        cli: Cli, pebble: Pebble) -> None:
    for name in ("alpn1.example.org", "alpn2.example.org"):
        cli("certonly", *alpn_args(pebble), "-d", name)
        assert (cli.config_dir / "live" / name / "cert.pem").exists()
    conf = (cli.config_dir / "renewal" / "alpn1.example.org.conf").read_text()
    assert "pref_challs = tls-alpn-01," in conf
    assert f"tls_alpn01_port = {pebble.tls_port}" in conf
    before = {n: (cli.config_dir / "live" / n / "cert.pem").read_bytes()
              for n in ("alpn1.example.org", "alpn2.example.org")}
    proc = cli("renew", "--force-renewal", "--jobs", "2", "--no-random-sleep-on-renew")
    for name, old in before.items():  # two renewals at once on one port: one server
        assert (cli.config_dir / "live" / name / "cert.pem").read_bytes() != old, proc.stdout


def task(identifier: Identifier, token: str) -> ChallengeTask:
    key_authz = f"{token}.thumbprint"
    return ChallengeTask(identifier, "tls-alpn-01", token, key_authz, key_authz)


def handshake(port: int, sni: str, alpn: list[str] | None) -> x509.Certificate:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=sni) as tls:
        assert tls.selected_alpn_protocol() == "acme-tls/1"
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_only_acme_tls_handshakes_naming_a_challenge_get_its_certificate(
        tmp_path: Path) -> None:
    auth = StandaloneAuthenticator(argparse.Namespace(
        http01_address="127.0.0.1", http01_port=0, tls_alpn01_port="0",
        pref_challs=["tls-alpn-01"]))
    auth.prepare()
    name = task(Identifier("dns", "a.example.org"), "tokenA")
    address = task(Identifier("ip", "192.0.2.10"), "tokenB")
    auth.present(name)
    auth.present(address)
    port = auth.bound_tls_port
    assert port
    try:
        cert = handshake(port, "a.example.org", ["acme-tls/1"])
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["a.example.org"]
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(ACME_IDENTIFIER_OID))
        assert ext.critical
        digest = hashlib.sha256(b"tokenA.thumbprint").digest()
        assert ext.value.public_bytes() == b"\x04\x20" + digest
        # an IP address is named in SNI by its reverse name (RFC 8738 §6)
        cert = handshake(port, "10.2.0.192.in-addr.arpa", ["acme-tls/1"])
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["192.0.2.10"]
        for sni, alpn in (("a.example.org", None), ("a.example.org", ["h2", "http/1.1"]),
                          ("other.example.org", ["acme-tls/1"])):
            with pytest.raises((ssl.SSLError, ConnectionError)):
                handshake(port, sni, alpn)
    finally:
        auth.cleanup(name)
        auth.cleanup(address)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
