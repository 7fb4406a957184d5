"""``certwright fleet`` end to end: real slapd (the inventory and the write-back), real
nginx (the customers' web roots), Pebble behind the ACME front (which counts requests)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.conftest import require_binary
from tests.integration.fleet_env import FleetEnv
from tests.servers.acme_front import AcmeFront
from tests.servers.fleet_web import FleetWeb
from tests.servers.nginx import NGINX_BINARY
from tests.servers.pebble import Pebble
from tests.servers.slapd import SLAPD_BINARY, Slapd
from tests.servers.tree_server import new_root

pytestmark = pytest.mark.integration
SPECIAL = {"basic_auth": ["locked.c01.example.org"], "hidden_ban": ["hidden.c01.example.org"],
           "https_redirect": ["tls-only.c01.example.org"]}


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    require_binary(SLAPD_BINARY)
    with Slapd(tmp_path_factory.mktemp("slapd")) as server:
        yield server


@pytest.fixture
def fleet(slapd: Slapd, pebble: Pebble, tmp_path: Path) -> Iterator[FleetEnv]:
    require_binary(NGINX_BINARY)
    www = new_root("certwright-fleet-www-")
    ou = f"ou=f{secrets.token_hex(3)},{slapd.suffix}"
    conn = slapd.connection()
    assert conn.add(ou, ["organizationalUnit"]), conn.result  # type: ignore[attr-defined]
    with AcmeFront(pebble, tmp_path / "front") as front, \
            FleetWeb(tmp_path / "nginx", www, http_port=pebble.http_port, **SPECIAL) as web:
        yield FleetEnv(tmp_path, slapd, pebble, front, web, ou)
    import shutil

    shutil.rmtree(www, ignore_errors=True)


def _verify(env: FleetEnv, name: str) -> x509.Certificate:
    """The stored certificate names the site, matches its key and chains to Pebble's root
    (through the stored chain)."""
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_private_key,
    )

    live = env.config_dir / "live" / name
    cert = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    chain = x509.load_pem_x509_certificates((live / "chain.pem").read_bytes())
    key = load_pem_private_key((live / "privkey.pem").read_bytes(), None)
    assert (live / "privkey.pem").resolve().stat().st_mode & 0o777 == 0o600
    fmt = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert key.public_key().public_bytes(*fmt) == cert.public_key().public_bytes(*fmt)
    cert.verify_directly_issued_by(chain[0])
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert name in sans.get_values_for_type(x509.DNSName)
    return cert


def test_sync_issues_writes_back_then_does_nothing(fleet: FleetEnv) -> None:
    names = fleet.add_sites(12, 4)
    code, out = fleet.sync_json("--jobs", "4")
    assert code == 0, out
    assert out["summary"]["new"] == 12
    for name in names:
        cert = _verify(fleet, name)
        entry = fleet.entry(name)
        assert entry["certwrightStatus"] == ["valid"]
        stored = (fleet.config_dir / "live" / name / "fullchain.pem").read_text()
        assert entry["certwrightCertificate"] == [stored]
        expiry = cert.not_valid_after_utc.strftime("%Y%m%d%H%M%SZ")
        assert entry["certwrightNotAfter"] == [expiry]
        assert "certwrightDomain" in entry["objectClass"]
    assert len(fleet.finalizes()) == 12
    before = len(fleet.front.requests_log)
    code, again = fleet.sync_json()
    assert code == 0, again
    assert again["summary"]["keep"] == 12 and again["summary"]["ldap_writes"] == 0
    assert not [m for m, _ in fleet.front.requests_log[before:] if m == "POST"]
