import base64
import hashlib
import hmac
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy import jwa, jwk

from certwright.core.acme import jws
from certwright.core.acme.errors import AcmeError
from certwright.core.acme.messages import Authorization, Directory, Order
from certwright.core.acme.transport import parse_retry_after
from certwright.core.interfaces import Identifier
from certwright.core.keys import KeySpec, csr_identifiers, make_csr, split_pem_chain


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _decode(signed: dict[str, str]) -> tuple[dict, bytes]:
    header = json.loads(_b64d(signed["protected"]))
    return header, _b64d(signed["payload"])


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (ec.generate_private_key(ec.SECP384R1()), "ES384"),
        (rsa.generate_private_key(65537, 2048), "RS256"),
    ],
)
def test_sign_with_jwk_verifies(key, alg) -> None:
    k = jws.jwk_of(key)
    signed = jws.sign(k, {"a": 1}, url="https://ca/new-acct", nonce="n1", kid=None)
    header, payload = _decode(signed)
    assert header == {"alg": alg, "url": "https://ca/new-acct", "nonce": "n1",
                      "jwk": k.public_key().to_partial_json()}
    assert json.loads(payload) == {"a": 1}
    msg = f"{signed['protected']}.{signed['payload']}".encode()
    algo = {"ES256": jwa.ES256, "ES384": jwa.ES384, "RS256": jwa.RS256}[alg]
    assert algo.verify(key.public_key(), msg, _b64d(signed["signature"]))
    assert not algo.verify(key.public_key(), msg + b"x", _b64d(signed["signature"]))


def test_post_as_get_uses_kid_and_empty_payload() -> None:
    k = jws.jwk_of(ec.generate_private_key(ec.SECP256R1()))
    signed = jws.sign(k, None, url="https://ca/order/1", nonce="n2", kid="https://ca/acct/7")
    header, payload = _decode(signed)
    assert signed["payload"] == "" and payload == b""
    assert header["kid"] == "https://ca/acct/7" and "jwk" not in header


def test_eab_binding_is_hmac_of_account_key() -> None:
    k = jws.jwk_of(ec.generate_private_key(ec.SECP256R1()))
    mac = b"secret-mac-key-0123456789"
    mac_b64 = base64.urlsafe_b64encode(mac).decode().rstrip("=")
    signed = jws.eab_binding(k, kid="kid-1", hmac_key_b64=mac_b64, url="https://ca/new-acct")
    header, payload = _decode(signed)
    assert header == {"alg": "HS256", "kid": "kid-1", "url": "https://ca/new-acct"}
    assert json.loads(payload) == k.public_key().to_partial_json()
    expected = hmac.new(mac, f"{signed['protected']}.{signed['payload']}".encode(),
                        hashlib.sha256).digest()
    assert _b64d(signed["signature"]) == expected


def test_key_change_inner_is_signed_by_new_key() -> None:
    old = jws.jwk_of(ec.generate_private_key(ec.SECP256R1()))
    new_key = ec.generate_private_key(ec.SECP256R1())
    inner = jws.key_change_inner(jws.jwk_of(new_key), old, account_url="https://ca/acct/1",
                                 url="https://ca/key-change")
    header, payload = _decode(inner)
    assert "nonce" not in header and header["jwk"] == jwk.JWKEC(key=new_key).public_key() \
        .to_partial_json()
    assert json.loads(payload) == {"account": "https://ca/acct/1",
                                   "oldKey": old.public_key().to_partial_json()}


def test_problem_document_becomes_typed_error() -> None:
    err = AcmeError.from_json(
        {
            "type": "urn:ietf:params:acme:error:rejectedIdentifier",
            "detail": "some names were rejected",
            "status": 400,
            "subproblems": [{"type": "urn:ietf:params:acme:error:rejectedIdentifier",
                             "detail": "blocked", "identifier": {"type": "dns",
                                                                 "value": "bad.example"}}],
        },
        retry_after=None,
    )
    assert err.code == "rejectedIdentifier" and err.status == 400
    assert err.subproblems[0].identifier == "bad.example"
    assert "bad.example: rejectedIdentifier: blocked" in str(err)
    limited = AcmeError.from_json({"type": "urn:ietf:params:acme:error:rateLimited",
                                   "detail": "too many"}, 429, 3600.0)
    assert "retry after 3600 s" in str(limited)


def test_messages_decode() -> None:
    d = Directory.from_json("https://ca/dir", {
        "newNonce": "n", "newAccount": "a", "newOrder": "o", "revokeCert": "r",
        "keyChange": "k", "renewalInfo": "ri",
        "meta": {"termsOfService": "tos", "externalAccountRequired": True,
                 "profiles": {"classic": "x", "shortlived": "y"}},
    })
    assert d.renewal_info == "ri" and d.external_account_required
    assert set(d.profiles) == {"classic", "shortlived"}
    o = Order.from_json("https://ca/o/1", {
        "status": "invalid", "identifiers": [{"type": "dns", "value": "a.example"}],
        "authorizations": ["https://ca/z/1"], "finalize": "https://ca/f/1",
        "error": {"type": "urn:ietf:params:acme:error:unauthorized", "detail": "no"},
    })
    assert o.identifiers == (Identifier("dns", "a.example"),)
    assert o.error is not None and o.error.code == "unauthorized"
    z = Authorization.from_json("https://ca/z/1", {
        "status": "pending", "identifier": {"type": "dns", "value": "example.org"},
        "wildcard": True, "challenges": [{"type": "dns-01", "url": "https://ca/c/1", "token": "t",
                                          "status": "pending"}],
    })
    assert z.identifier.value == "*.example.org" and z.challenges[0].token == "t"


def test_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == 60.0
    assert parse_retry_after("soon") is None


@pytest.mark.parametrize("spec", [KeySpec(), KeySpec("ecdsa", "secp384r1"),
                                  KeySpec("rsa", rsa_bits=2048)])
def test_csr_carries_all_names(spec: KeySpec) -> None:
    key = spec.generate()
    idents = [Identifier("dns", "example.org"), Identifier("dns", "*.example.org"),
              Identifier("ip", "192.0.2.7")]
    csr = x509.load_der_x509_csr(make_csr(key, idents))
    assert csr.is_signature_valid
    assert csr_identifiers(csr) == idents
    assert spec.matches(key)


def test_key_spec_rejects_bad_values() -> None:
    from certwright.core.errors import ConfigError
    with pytest.raises(ConfigError, match="--elliptic-curve"):
        KeySpec("ecdsa", "secp999r1")
    with pytest.raises(ConfigError, match="--rsa-key-size"):
        KeySpec("rsa", rsa_bits=1024)


def test_split_chain() -> None:
    pem = "junk\n-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n" \
          "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----"
    parts = split_pem_chain(pem)
    assert len(parts) == 2 and parts[1].endswith("-----END CERTIFICATE-----\n")
