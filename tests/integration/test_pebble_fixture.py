"""The Pebble fixtures really work: a real CA answers, its DNS serves what we set, a
certificate can be issued over http-01 and dns-01, the knobs (nonce rejection, EAB,
validity, block list) reach Pebble, and stop() leaves no process behind.

The small ACME client here is deliberately independent of core/: it checks the test
servers, not certwright.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import pwd
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.servers.dnsquery import query_a, query_aaaa, query_txt
from tests.servers.fsperm import blocking_ancestor
from tests.servers.http01 import Http01Responder
from tests.servers.pebble import Pebble
from tests.servers.ports import ServerStartError

pytestmark = pytest.mark.integration

PebbleFactory = Callable[..., Pebble]
ACME_ERROR = "urn:ietf:params:acme:error:"
# picks a challenge from an authorization's list, sets it up, returns its URL
Presenter = Callable[[list[dict[str, Any]], str], str]


# -- a minimal ACME client (RFC 8555), only for exercising the test servers -----------------
def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class MiniAcme:
    def __init__(self, ca: Pebble) -> None:
        self.ca = ca
        self.http = ca.session
        self.dir = ca.directory()
        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        self.jwk = {
            "crv": "P-256",
            "kty": "EC",
            "x": b64(numbers.x.to_bytes(32, "big")),
            "y": b64(numbers.y.to_bytes(32, "big")),
        }
        self.kid: str | None = None
        self.certificate_response: requests.Response | None = None

    @property
    def thumbprint(self) -> str:
        canonical = json.dumps(self.jwk, sort_keys=True, separators=(",", ":"))
        return b64(hashlib.sha256(canonical.encode()).digest())

    def nonce(self) -> str:
        return self.http.head(self.dir["newNonce"], timeout=5).headers["Replay-Nonce"]

    def jws(self, url: str, payload: Any, nonce: str, use_jwk: bool = False) -> dict[str, str]:
        protected: dict[str, Any] = {"alg": "ES256", "nonce": nonce, "url": url}
        if use_jwk or self.kid is None:
            protected["jwk"] = self.jwk
        else:
            protected["kid"] = self.kid
        body = "" if payload is None else b64(json.dumps(payload).encode())
        signing_input = f"{b64(json.dumps(protected).encode())}.{body}".encode()
        r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return {
            "protected": signing_input.split(b".")[0].decode(),
            "payload": body,
            "signature": b64(r.to_bytes(32, "big") + s.to_bytes(32, "big")),
        }

    def post(self, url: str, payload: Any, nonce: str | None = None) -> requests.Response:
        """POST a JWS (payload None = POST-as-GET)."""
        body = self.jws(url, payload, nonce or self.nonce())
        return self.http.post(
            url, json=body, headers={"Content-Type": "application/jose+json"}, timeout=10
        )

    def eab_binding(self, kid: str, hmac_key: str) -> dict[str, str]:
        protected = b64(
            json.dumps({"alg": "HS256", "kid": kid, "url": self.dir["newAccount"]}).encode()
        )
        payload = b64(json.dumps(self.jwk).encode())
        mac = hmac.new(b64decode(hmac_key), f"{protected}.{payload}".encode(), hashlib.sha256)
        return {"protected": protected, "payload": payload, "signature": b64(mac.digest())}

    def register(self, **extra: Any) -> requests.Response:
        response = self.post(self.dir["newAccount"], {"termsOfServiceAgreed": True, **extra})
        if response.status_code in (200, 201):
            self.kid = response.headers["Location"]
        return response

    def poll(self, url: str, until: set[str], timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            obj: dict[str, Any] = self.post(url, None).json()
            if obj.get("status") in until or time.monotonic() > deadline:
                return obj
            time.sleep(0.02)

    def issue(self, name: str, present: Presenter) -> bytes:
        """Order a certificate for `name`; `present(challenges, key_authz_prefix)` picks and
        sets up a challenge and returns its URL. Returns the PEM chain."""
        assert self.register().status_code in (200, 201)
        new_order = self.post(
            self.dir["newOrder"], {"identifiers": [{"type": "dns", "value": name}]}
        )
        assert new_order.status_code == 201, new_order.text
        order_url, order = new_order.headers["Location"], new_order.json()
        for authz_url in order["authorizations"]:
            authz = self.post(authz_url, None).json()
            if authz["status"] == "valid":
                continue
            challenge_url = present(authz["challenges"], self.thumbprint)
            assert self.post(challenge_url, {}).status_code == 200
            authz = self.poll(authz_url, {"valid", "invalid"})
            assert authz["status"] == "valid", authz
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        der = csr.public_bytes(serialization.Encoding.DER)
        finalized = self.post(order["finalize"], {"csr": b64(der)})
        assert finalized.status_code == 200, finalized.text
        order = self.poll(order_url, {"valid", "invalid"})
        assert order["status"] == "valid", order
        self.certificate_response = self.post(order["certificate"], None)
        return self.certificate_response.content


def challenge(challenges: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(c for c in challenges if c["type"] == kind)


def error_type(response: requests.Response) -> str:
    return str(response.json().get("type", ""))


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- the session fixture ------------------------------------------------------------------
def test_directory_lists_acme_resources(pebble: Pebble) -> None:
    directory = pebble.directory()
    for resource in ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange"):
        assert directory[resource].startswith(f"https://127.0.0.1:{pebble.listen_port}/")
    assert directory["meta"]["externalAccountRequired"] is False


def test_api_certificate_is_trusted_through_env(pebble: Pebble) -> None:
    env = pebble.env({"PATH": "/usr/bin"})
    assert env["REQUESTS_CA_BUNDLE"] == str(pebble.ca_bundle)
    assert env["PATH"] == "/usr/bin"
    assert "127.0.0.1" in env["NO_PROXY"].split(",")
    response = requests.get(pebble.directory_url, verify=env["REQUESTS_CA_BUNDLE"], timeout=5)
    assert response.status_code == 200


def test_root_pem_is_a_ca_certificate(pebble: Pebble) -> None:
    root = x509.load_pem_x509_certificate(pebble.root_pem())
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert root.issuer == root.subject
    intermediate = x509.load_pem_x509_certificate(pebble.intermediate_pem())
    assert intermediate.issuer == root.subject
    intermediate.verify_directly_issued_by(root)


def test_txt_records_are_served_by_challtestsrv_dns(pebble: Pebble) -> None:
    name = "_acme-challenge.txt-check.example.org"
    pebble.set_txt(name, "first")
    pebble.set_txt(name + ".", "second")  # a trailing dot is fine; values accumulate
    assert sorted(query_txt(name, "127.0.0.1", pebble.dns_port)) == ["first", "second"]
    pebble.clear_txt(name)
    assert query_txt(name, "127.0.0.1", pebble.dns_port) == []


def test_every_name_resolves_to_loopback_ipv4_only(pebble: Pebble) -> None:
    assert query_a("anything.example.net", "127.0.0.1", pebble.dns_port) == ["127.0.0.1"]
    assert query_aaaa("anything.example.net", "127.0.0.1", pebble.dns_port) == []
    pebble.add_a("moved.example.net", ["127.0.0.2"])
    assert query_a("moved.example.net", "127.0.0.1", pebble.dns_port) == ["127.0.0.2"]
    pebble.clear_a("moved.example.net")
    assert query_a("moved.example.net", "127.0.0.1", pebble.dns_port) == ["127.0.0.1"]


def test_issue_over_http01(pebble: Pebble) -> None:
    client = MiniAcme(pebble)
    name = "http01.example.org"
    with Http01Responder(pebble.http_port) as responder:

        def present(challenges: list[dict[str, Any]], thumbprint: str) -> str:
            chall = challenge(challenges, "http-01")
            responder.add(chall["token"], f"{chall['token']}.{thumbprint}")
            return str(chall["url"])

        chain = client.issue(name, present)
    assert any(host.startswith(name) for _path, host in responder.requests_seen)
    certs = x509.load_pem_x509_certificates(chain)
    leaf = certs[0]
    assert leaf.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName) == [name]
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert abs(lifetime - dt.timedelta(days=90)) < dt.timedelta(minutes=5)
    status = pebble.cert_status(leaf.serial_number)
    assert status["Status"] == "Valid"
    assert x509.load_pem_x509_certificate(status["Certificate"].encode()) == leaf
    assert pebble.cert_status(f"{leaf.serial_number:X}")["Serial"] == status["Serial"]
    with pytest.raises(LookupError):
        pebble.cert_status(leaf.serial_number + 1)


def test_issue_over_dns01(pebble: Pebble) -> None:
    client = MiniAcme(pebble)
    name = "dns01.example.org"

    def present(challenges: list[dict[str, Any]], thumbprint: str) -> str:
        chall = challenge(challenges, "dns-01")
        key_authz = f"{chall['token']}.{thumbprint}"
        pebble.set_txt(f"_acme-challenge.{name}", b64(hashlib.sha256(key_authz.encode()).digest()))
        return str(chall["url"])

    try:
        chain = client.issue(name, present)
    finally:
        pebble.clear_txt(f"_acme-challenge.{name}")
    assert b"BEGIN CERTIFICATE" in chain


# -- extra instances with other options ----------------------------------------------------
def test_validity_seconds_reaches_pebble(pebble_factory: PebbleFactory) -> None:
    ca = pebble_factory(validity_seconds=3600)
    client = MiniAcme(ca)
    name = "short.example.org"

    def present(challenges: list[dict[str, Any]], thumbprint: str) -> str:
        chall = challenge(challenges, "dns-01")
        digest = hashlib.sha256(f"{chall['token']}.{thumbprint}".encode()).digest()
        ca.set_txt(f"_acme-challenge.{name}", b64(digest))
        return str(chall["url"])

    leaf = x509.load_pem_x509_certificates(client.issue(name, present))[0]
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert dt.timedelta(minutes=55) < lifetime < dt.timedelta(minutes=65)


def test_chain_length_and_alternate_roots(pebble_factory: PebbleFactory) -> None:
    ca = pebble_factory(chain_length=2, alternate_roots=1)
    client = MiniAcme(ca)
    name = "chain.example.org"

    def present(challenges: list[dict[str, Any]], thumbprint: str) -> str:
        chall = challenge(challenges, "dns-01")
        digest = hashlib.sha256(f"{chall['token']}.{thumbprint}".encode()).digest()
        ca.set_txt(f"_acme-challenge.{name}", b64(digest))
        return str(chall["url"])

    chain = x509.load_pem_x509_certificates(client.issue(name, present))
    assert len(chain) == 3  # leaf + chain_length intermediates
    roots = [x509.load_pem_x509_certificate(ca.root_pem(i)) for i in (0, 1)]
    assert roots[0].subject != roots[1].subject
    assert client.certificate_response is not None
    assert 'rel="alternate"' in client.certificate_response.headers.get("Link", "")


def test_nonce_rejection_gives_bad_nonce(pebble_factory: PebbleFactory) -> None:
    ca = pebble_factory(nonce_reject_percent=100)
    client = MiniAcme(ca)
    response = client.register()
    assert response.status_code == 400
    assert error_type(response) == ACME_ERROR + "badNonce"
    assert response.headers.get("Replay-Nonce")  # a fresh nonce to retry with


def test_stale_nonce_is_bad_nonce_even_without_rejection(pebble: Pebble) -> None:
    client = MiniAcme(pebble)
    response = client.post(client.dir["newAccount"], {"termsOfServiceAgreed": True}, "AAAA")
    assert error_type(response) == ACME_ERROR + "badNonce"


def test_eab_is_required_and_accepted(pebble_factory: PebbleFactory) -> None:
    ca = pebble_factory(eab=True)
    assert ca.eab is not None
    client = MiniAcme(ca)
    assert client.dir["meta"]["externalAccountRequired"] is True
    refused = client.register()
    assert error_type(refused) == ACME_ERROR + "externalAccountRequired"
    accepted = client.register(
        externalAccountBinding=client.eab_binding(ca.eab.kid, ca.eab.hmac_key)
    )
    assert accepted.status_code == 201, accepted.text
    wrong = MiniAcme(ca)
    bad_key = b64(b"\x00" * 32)
    refused = wrong.register(externalAccountBinding=wrong.eab_binding(ca.eab.kid, bad_key))
    assert refused.status_code >= 400


def test_domain_blocklist_rejects_order(pebble_factory: PebbleFactory) -> None:
    ca = pebble_factory(domain_blocklist=["blocked.example"])
    client = MiniAcme(ca)
    assert client.register().status_code == 201
    identifiers = [{"type": "dns", "value": "www.blocked.example"}]
    response = client.post(client.dir["newOrder"], {"identifiers": identifiers})
    assert error_type(response) == ACME_ERROR + "rejectedIdentifier"


def test_restart_keeps_url_but_forgets_accounts_and_root(pebble_factory: PebbleFactory) -> None:
    ca = pebble_factory()
    client = MiniAcme(ca)
    assert client.register().status_code == 201
    url, root = ca.directory_url, ca.root_pem()
    ca.restart()
    assert ca.directory_url == url
    assert ca.root_pem() != root
    client.http = ca.session  # the old session was closed with the old process
    response = client.post(
        client.dir["newOrder"], {"identifiers": [{"type": "dns", "value": "a.example"}]}
    )
    assert error_type(response) == ACME_ERROR + "accountDoesNotExist"


def test_stop_leaves_no_process(pebble_factory: PebbleFactory) -> None:
    ca = pebble_factory()
    pids = ca.pids
    ports = (ca.listen_port, ca.management_port, ca.challtestsrv.management_port)
    assert len(pids) == 2 and all(pid_exists(pid) for pid in pids)
    ca.stop()
    assert not any(pid_exists(pid) for pid in pids)
    assert ca.pids == () and not ca.running
    for port in ports:
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
    ca.stop()  # twice is fine


def test_startup_failure_carries_log_tail(tmp_path_factory: pytest.TempPathFactory) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ca = Pebble(tmp_path_factory.mktemp("pebble-fail"), listen_port=taken, startup_timeout=10)
        with pytest.raises(ServerStartError, match="address already in use"):
            ca.start()
    assert ca.pids == ()  # the challtestsrv it had started is gone too


# -- the web root fixture -------------------------------------------------------------------
def test_www_root_is_readable_by_web_server_workers(www_root: Path) -> None:
    challenge_dir = www_root / ".well-known" / "acme-challenge"
    challenge_dir.mkdir(parents=True)
    (challenge_dir / "token").write_text("key-authorization")
    assert stat.S_IMODE(www_root.stat().st_mode) == 0o755
    assert blocking_ancestor(challenge_dir) is None
    if os.geteuid() != 0 or not has_user("www-data"):
        return  # cannot switch users here; the mode checks above are what we can do
    result = subprocess.run(
        ["cat", str(challenge_dir / "token")], user="www-data", capture_output=True, check=False
    )
    assert result.stdout == b"key-authorization", result.stderr


def has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
