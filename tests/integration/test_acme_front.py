"""The ACME front adds RFC 9773 renewal info and profiles to a real Pebble, and a whole
issuance through it works with certwright's own client (in process and as the CLI)."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from certwright.core import ari
from certwright.core.acme import jws
from certwright.core.acme.client import AcmeClient
from certwright.core.acme.errors import AcmeError, TransportError
from certwright.core.acme.transport import Transport
from certwright.core.flow import Issued, Options, obtain
from certwright.core.interfaces import ChallengeTask, Identifier
from certwright.core.keys import make_csr
from tests.integration.conftest import Cli
from tests.servers.acme_front import AcmeFront, default_window
from tests.servers.pebble import Pebble
from tests.servers.tlsca import TestCA

pytestmark = pytest.mark.integration

UTC = dt.UTC
PROFILES = {"classic": "90 days, as always", "shortlived": "about six days"}
WINDOW = (dt.datetime(2030, 1, 2, 4, 0, tzinfo=UTC), dt.datetime(2030, 1, 3, 4, 0, tzinfo=UTC))


class TxtRecords:
    """A dns-01 authenticator publishing TXT records through Pebble's challtestsrv."""

    name = "test-dns"
    description = "TXT records in pebble-challtestsrv"

    def __init__(self, ca: Pebble) -> None:
        self.ca = ca
        self.presented: list[str] = []

    def challenge_types(self, identifier: Identifier) -> Sequence[str]:
        return ("dns-01",)

    def present(self, task: ChallengeTask) -> None:
        self.ca.set_txt(task.validation_name, task.validation)
        self.presented.append(task.validation_name)

    def cleanup(self, task: ChallengeTask) -> None:
        self.ca.clear_txt(task.validation_name)


@pytest.fixture
def front(pebble: Pebble, tmp_path: Path) -> Iterator[AcmeFront]:
    with AcmeFront(pebble, tmp_path / "front", profiles=PROFILES) as server:
        yield server


def transport(front: AcmeFront) -> Transport:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(front.ca_bundle)
    return Transport(front.directory_url, session=session)


def registered_client(front: AcmeFront) -> AcmeClient:
    client = AcmeClient(transport(front), jws.jwk_of(ec.generate_private_key(ec.SECP256R1())))
    client.register(["mailto:admin@example.org"])
    return client


def issue(
    client: AcmeClient, ca: Pebble, name: str, *, profile: str | None = None,
    replaces: str | None = None,
) -> Issued:  # fmt: skip
    identifiers = [Identifier("dns", name)]
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), identifiers)
    opts = Options(timeout=30, profile=profile, replaces=replaces)
    return obtain(client, TxtRecords(ca), identifiers, csr, opts)


def some_cert() -> x509.Certificate:
    """Any certificate with an Authority Key Identifier (not issued by Pebble)."""
    cert, _key = TestCA.create().issue_server_cert(["elsewhere.example.org"], [])
    return cert


# -- the directory ------------------------------------------------------------------------
def test_directory_advertises_renewal_info_and_profiles(front: AcmeFront) -> None:
    directory = transport(front).directory
    assert directory.renewal_info == f"{front.base_url}/renewal-info"
    assert directory.profiles == PROFILES
    for url in (directory.new_nonce, directory.new_account, directory.new_order,
                directory.revoke_cert, directory.key_change):  # fmt: skip
        assert url.startswith(front.base_url + "/"), "every URL leads back to the front"


def test_both_features_can_be_off(pebble: Pebble, tmp_path: Path) -> None:
    with AcmeFront(pebble, tmp_path / "plain", ari=False) as plain:
        directory = plain.directory()
        assert "renewalInfo" not in directory
        assert "profiles" not in directory["meta"]
        assert plain.session.get(f"{plain.base_url}/renewal-info/a.b", timeout=5).status_code == 404


# -- issuance through the front -------------------------------------------------------------
def test_issuance_with_profile_then_renewal_with_replaces(
    front: AcmeFront, pebble: Pebble
) -> None:
    client = registered_client(front)
    assert client.kid is not None and client.kid.startswith(front.base_url)
    first = issue(client, pebble, "front-issue.example.org", profile="shortlived")
    assert first.order.url.startswith(front.base_url + "/")
    assert first.order.profile == "shortlived", "the front echoes the profile in the order"
    assert front.orders[-1] == {
        "identifiers": [{"type": "dns", "value": "front-issue.example.org"}],
        "profile": "shortlived",
    }
    cert = x509.load_pem_x509_certificate(first.cert.encode())
    assert pebble.cert_status(cert.serial_number)["Status"] == "Valid"

    info = ari.fetch(client.transport, client.directory.renewal_info or "", cert)
    assert (info.start, info.end) == default_window(cert)
    assert front.ari_requests == [ari.cert_id(cert)]
    assert ("GET", f"/renewal-info/{ari.cert_id(cert)}") in front.requests_log

    second = issue(client, pebble, "front-issue.example.org", replaces=ari.cert_id(cert))
    assert front.orders[-1]["replaces"] == ari.cert_id(cert)
    assert "profile" not in front.orders[-1]
    assert second.order.replaces == ari.cert_id(cert)
    renewed = x509.load_pem_x509_certificate(second.cert.encode())
    assert renewed.serial_number != cert.serial_number


def test_unknown_profile_is_refused_and_not_forwarded(front: AcmeFront, pebble: Pebble) -> None:
    client = registered_client(front)
    with pytest.raises(AcmeError) as caught:
        client.new_order([Identifier("dns", "bad-profile.example.org")], profile="forever")
    assert caught.value.code == "invalidProfile"
    assert caught.value.status == 400
    assert "classic, shortlived" in caught.value.detail
    assert front.orders[-1]["profile"] == "forever", "recorded even when refused"
    order = client.new_order([Identifier("dns", "bad-profile.example.org")], profile="classic")
    assert order.status == "pending" and order.profile == "classic"


def test_certonly_cli_through_the_front(pebble: Pebble, front: AcmeFront, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "cli", pebble, extra_env={
        "REQUESTS_CA_BUNDLE": str(front.ca_bundle), "SSL_CERT_FILE": str(front.ca_bundle)})
    cli("certonly", "--standalone", "--http-01-port", str(pebble.http_port),
        "--http-01-address", "127.0.0.1", "-d", "front-cli.example.org",
        "--server", front.directory_url)  # fmt: skip
    live = cli.config_dir / "live" / "front-cli.example.org" / "cert.pem"
    cert = x509.load_pem_x509_certificate(live.read_bytes())
    assert pebble.cert_status(cert.serial_number)["Status"] == "Valid"
    assert front.orders[-1]["identifiers"] == [{"type": "dns", "value": "front-cli.example.org"}]
    paths = [path for method, path in front.requests_log if method == "POST"]
    assert any(p.startswith("/finalize-order/") for p in paths)
    assert any(p.startswith("/certZ/") for p in paths)


# -- renewal info ---------------------------------------------------------------------------
def test_configured_window_retry_after_and_explanation(pebble: Pebble, tmp_path: Path) -> None:
    cert = some_cert()
    with AcmeFront(pebble, tmp_path / "f", ari_window=WINDOW, ari_retry_after=3600,
                   ari_explanation_url="https://ca.example/why") as front:  # fmt: skip
        info = ari.fetch(transport(front), front.renewal_info_url, cert)
        assert (info.start, info.end) == WINDOW
        assert info.retry_after == 3600
        assert info.explanation_url == "https://ca.example/why"
        assert front.ari_requests == [ari.cert_id(cert)]


def test_per_cert_override_and_callable_policy(front: AcmeFront) -> None:
    special, other = some_cert(), some_cert()
    override = (WINDOW[0] - dt.timedelta(days=30), WINDOW[1] - dt.timedelta(days=30))
    asked: list[str] = []

    def policy(cert_id: str) -> tuple[dt.datetime, dt.datetime] | None:
        asked.append(cert_id)
        return WINDOW

    front.ari_window = policy
    front.ari_windows[ari.cert_id(special)] = override
    t = transport(front)
    assert ari.fetch(t, front.renewal_info_url, special).start == override[0]
    assert ari.fetch(t, front.renewal_info_url, other).end == WINDOW[1]
    assert asked == [ari.cert_id(other)]
    assert front.ari_requests == [ari.cert_id(special), ari.cert_id(other)]


def test_ari_failure_is_a_transport_error(front: AcmeFront) -> None:
    front.ari_fail = True
    with pytest.raises(TransportError, match="no renewal info: serverInternal"):
        ari.fetch(transport(front), front.renewal_info_url, some_cert())
    assert len(front.ari_requests) == 1


def test_unknown_certificate_is_a_transport_error(front: AcmeFront) -> None:
    with pytest.raises(TransportError, match="no certificate known"):
        ari.fetch(transport(front), front.renewal_info_url, some_cert())


def test_inverted_window_is_an_invalid_answer(front: AcmeFront) -> None:
    front.ari_window = (WINDOW[1], WINDOW[0])
    with pytest.raises(TransportError, match="ends"):
        ari.fetch(transport(front), front.renewal_info_url, some_cert())


def test_malformed_cert_id_is_refused(front: AcmeFront) -> None:
    response = front.session.get(f"{front.renewal_info_url}/not-an-id", timeout=5)
    assert response.status_code == 400
    assert response.json()["type"] == "urn:ietf:params:acme:error:malformed"


# -- lifecycle ------------------------------------------------------------------------------
def test_stop_closes_the_port(pebble: Pebble, tmp_path: Path) -> None:
    front = AcmeFront(pebble, tmp_path / "f").start()
    port = front.port
    assert front.running
    front.stop()
    assert not front.running
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    front.stop()  # twice is fine


def test_stop_ends_kept_alive_connections(pebble: Pebble, tmp_path: Path) -> None:
    front = AcmeFront(pebble, tmp_path / "f").start()
    context = ssl.create_default_context(cafile=str(front.ca_bundle))
    with socket.create_connection(("127.0.0.1", front.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:  # fmt: skip
        conn.sendall(b"HEAD /dir HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert conn.recv(4096).startswith(b"HTTP/1.1 200")
        front.stop()
        assert conn.recv(4096) == b"", "the front closed the kept-alive connection"
