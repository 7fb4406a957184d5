"""JSON Web Signatures for ACME requests (RFC 8555 §6.2), built on josepy's JWK and JWA.

Requests use the flattened JSON serialization with a protected header carrying ``alg``,
``nonce``, ``url`` and either ``jwk`` (newAccount, revocation by certificate key) or ``kid``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy import b64 as jose_b64
from josepy import jwa, jwk

from certwright.core.errors import ConfigError

_EC_ALGS: dict[str, jwa.JWASignature] = {
    "secp256r1": jwa.ES256,
    "secp384r1": jwa.ES384,
    "secp521r1": jwa.ES512,
}


def b64(data: bytes) -> str:
    return jose_b64.b64encode(data).decode("ascii")


def jwk_of(private_key: Any) -> jwk.JWK:
    """Wrap a cryptography private key as a josepy JWK."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return jwk.JWKEC(key=private_key)
    if isinstance(private_key, rsa.RSAPrivateKey):
        return jwk.JWKRSA(key=private_key)
    raise ConfigError(f"unsupported account key type: {type(private_key).__name__}")


def alg_for(key: jwk.JWK) -> jwa.JWASignature:
    """ES256/ES384/ES512 for EC keys by curve, RS256 for RSA keys."""
    if isinstance(key, jwk.JWKEC):
        curve = key.key.curve.name
        try:
            return _EC_ALGS[curve]
        except KeyError:
            raise ConfigError(f"unsupported account key curve: {curve}") from None
    return jwa.RS256


def public_jwk_json(key: jwk.JWK) -> dict[str, Any]:
    data: dict[str, Any] = key.public_key().to_partial_json()
    return data


def thumbprint(key: jwk.JWK) -> str:
    """The RFC 7638 thumbprint used in key authorizations (RFC 8555 §8.1)."""
    return b64(key.thumbprint())


def _encode_payload(payload: Mapping[str, Any] | None) -> str:
    if payload is None:  # POST-as-GET (§6.3)
        return ""
    return b64(json.dumps(payload, separators=(",", ":")).encode())


def sign(
    key: jwk.JWK,
    payload: Mapping[str, Any] | None,
    *,
    url: str,
    nonce: str | None,
    kid: str | None,
) -> dict[str, str]:
    """Sign ``payload`` for ``url``; ``kid=None`` embeds the public key as ``jwk``."""
    alg = alg_for(key)
    header: dict[str, Any] = {"alg": alg.name, "url": url}
    if nonce is not None:
        header["nonce"] = nonce
    if kid is None:
        header["jwk"] = public_jwk_json(key)
    else:
        header["kid"] = kid
    protected = b64(json.dumps(header, separators=(",", ":")).encode())
    body = _encode_payload(payload)
    signature = alg.sign(key.key, f"{protected}.{body}".encode("ascii"))
    return {"protected": protected, "payload": body, "signature": b64(signature)}


EAB_ALGS: dict[str, jwa.JWASignature] = {"HS256": jwa.HS256, "HS384": jwa.HS384,
                                         "HS512": jwa.HS512}


def eab_binding(
    account_key: jwk.JWK, *, kid: str, hmac_key_b64: str, url: str, alg: str = "HS256"
) -> dict[str, str]:
    """External Account Binding (§7.3.4): the account's public key signed with the CA's MAC
    key, by the MAC algorithm ``alg`` (HS256, HS384 or HS512)."""
    try:
        mac = EAB_ALGS[alg]
    except KeyError:
        raise ConfigError(f"--eab-hmac-alg {alg!r}: choose one of {', '.join(EAB_ALGS)}") \
            from None
    try:
        mac_key = jose_b64.b64decode(hmac_key_b64.strip())
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"--eab-hmac-key is not base64url: {exc}") from None
    header = {"alg": mac.name, "kid": kid, "url": url}
    protected = b64(json.dumps(header, separators=(",", ":")).encode())
    body = b64(json.dumps(public_jwk_json(account_key), separators=(",", ":")).encode())
    signature = mac.sign(mac_key, f"{protected}.{body}".encode("ascii"))
    return {"protected": protected, "payload": body, "signature": b64(signature)}


def key_change_inner(
    new_key: jwk.JWK, old_key: jwk.JWK, *, account_url: str, url: str
) -> dict[str, str]:
    """The inner JWS of a key rollover (§7.3.5), signed by the new key."""
    payload = {"account": account_url, "oldKey": public_jwk_json(old_key)}
    return sign(new_key, payload, url=url, nonce=None, kid=None)
