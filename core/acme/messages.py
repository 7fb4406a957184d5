"""ACME resources (RFC 8555 §7.1) as named tuples, decoded from server JSON.

What the CA sends is checked here, before any of it can reach a hook's environment, a file
name or a server config: challenge tokens are base64url (§8.1, full match), resource URLs
are absolute http(s) URLs without blanks or control characters, identifiers are valid DNS
names or IP addresses. Anything else is refused with :class:`UnsafeResponse`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from certwright.core.acme.errors import AcmeError, TransportError, printable
from certwright.core.acme.identifiers import Identifier, normalize_domain
from certwright.core.errors import ConfigError

TOKEN = re.compile(r"[A-Za-z0-9_-]+")
"""RFC 8555 §8.1: a token is base64url without padding; full-match it."""
_URL = re.compile(r"https?://[^\s\x00-\x1f\x7f\\\"'<>`]+", re.IGNORECASE)
_TOKEN_CHALLENGES = ("http-01", "dns-01", "tls-alpn-01")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


class UnsafeResponse(TransportError):
    """The CA sent a value that must not reach a hook, a file name or a config."""

    def __init__(self, what: str, value: object) -> None:
        super().__init__(f"refusing the CA's response: {what} {str(value)[:200]!r} is not "
                         "what RFC 8555 allows there")


def identifier_json(ident: Identifier) -> dict[str, str]:
    return {"type": ident.type, "value": ident.value}


def _identifier(data: object) -> Identifier:
    """A DNS name (normalised as ours are) or an IP address; nothing else."""
    if not isinstance(data, Mapping):
        raise UnsafeResponse("identifier", data)
    kind, value = data.get("type"), data.get("value")
    if not isinstance(value, str) or not value or value != value.strip():
        raise UnsafeResponse("identifier value", value)
    if kind == "dns":
        try:
            return Identifier("dns", normalize_domain(value))
        except ConfigError:
            raise UnsafeResponse("DNS identifier", value) from None
    if kind == "ip":
        try:
            return Identifier("ip", str(ipaddress.ip_address(value)))
        except ValueError:
            raise UnsafeResponse("IP identifier", value) from None
    raise UnsafeResponse("identifier type", kind)


def _url(value: object, what: str) -> str:
    if not isinstance(value, str) or not _URL.fullmatch(value):
        raise UnsafeResponse(what, value)
    return value


def _text(value: object) -> str | None:
    """Text the CA wants shown to the user: one line, no escape sequences."""
    return None if value is None else printable(value)


def _optional_url(value: object, what: str) -> str | None:
    return None if value is None else _url(value, what)


def _token(ctype: str, value: object) -> str:
    if value is None and ctype not in _TOKEN_CHALLENGES:
        return ""
    if not isinstance(value, str) or not TOKEN.fullmatch(value):
        raise UnsafeResponse(f"{ctype or 'challenge'} token", value)
    return value


def _error(data: object) -> AcmeError | None:
    return AcmeError.from_json(data) if isinstance(data, Mapping) else None


class Directory(NamedTuple):
    """The directory object (§7.1.1), plus ARI's ``renewalInfo`` (RFC 9773)."""

    url: str
    new_nonce: str
    new_account: str
    new_order: str
    revoke_cert: str
    key_change: str
    new_authz: str | None = None
    renewal_info: str | None = None
    terms_of_service: str | None = None
    website: str | None = None
    caa_identities: tuple[str, ...] = ()
    external_account_required: bool = False
    profiles: Mapping[str, str] = _EMPTY

    @classmethod
    def from_json(cls, url: str, data: Mapping[str, Any]) -> Directory:
        meta = data.get("meta") or {}
        profiles = meta.get("profiles") or {}
        return cls(
            url=url,
            new_nonce=str(data["newNonce"]),
            new_account=str(data["newAccount"]),
            new_order=str(data["newOrder"]),
            revoke_cert=str(data.get("revokeCert", "")),
            key_change=str(data.get("keyChange", "")),
            new_authz=data.get("newAuthz"),
            renewal_info=data.get("renewalInfo"),
            terms_of_service=_text(meta.get("termsOfService")),
            website=_text(meta.get("website")),
            caa_identities=tuple(meta.get("caaIdentities") or ()),
            external_account_required=bool(meta.get("externalAccountRequired", False)),
            profiles={str(k): str(v) for k, v in profiles.items()}
            if isinstance(profiles, Mapping) else {},
        )


class Account(NamedTuple):
    """An account object (§7.1.2) and its URL (the ``kid``)."""

    url: str
    status: str
    contact: tuple[str, ...] = ()
    terms_of_service_agreed: bool | None = None
    orders: str | None = None
    raw: Mapping[str, Any] = _EMPTY

    @classmethod
    def from_json(cls, url: str, data: Mapping[str, Any]) -> Account:
        return cls(
            url=_url(url, "account URL") if url else url,
            status=str(data.get("status", "valid")),
            contact=tuple(str(c) for c in data.get("contact") or ()),
            terms_of_service_agreed=data.get("termsOfServiceAgreed"),
            orders=data.get("orders"),
            raw=dict(data),
        )


class Challenge(NamedTuple):
    """A challenge object (§7.1.5, §8)."""

    type: str
    url: str
    status: str
    token: str = ""
    validated: str | None = None
    error: AcmeError | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Challenge:
        ctype = str(data.get("type", ""))
        return cls(
            type=ctype,
            url=_url(data.get("url"), "challenge URL"),
            status=str(data.get("status", "pending")),
            token=_token(ctype, data.get("token")),
            validated=data.get("validated"),
            error=_error(data.get("error")),
        )


class Authorization(NamedTuple):
    """An authorization object (§7.1.4)."""

    url: str
    identifier: Identifier
    status: str
    challenges: tuple[Challenge, ...]
    wildcard: bool = False
    expires: str | None = None

    @classmethod
    def from_json(cls, url: str, data: Mapping[str, Any]) -> Authorization:
        ident = _identifier(data.get("identifier"))
        wildcard = bool(data.get("wildcard", False))
        if wildcard and not ident.value.startswith("*."):
            ident = Identifier(ident.type, "*." + ident.value)
        return cls(
            url=url,
            identifier=ident,
            status=str(data.get("status", "pending")),
            challenges=tuple(Challenge.from_json(c) for c in data.get("challenges") or ()
                             if isinstance(c, Mapping)),
            wildcard=wildcard,
            expires=data.get("expires"),
        )

    def failed_challenge_error(self) -> AcmeError | None:
        for chall in self.challenges:
            if chall.error is not None:
                return chall.error
        return None


class Order(NamedTuple):
    """An order object (§7.1.3)."""

    url: str
    status: str
    identifiers: tuple[Identifier, ...]
    authorizations: tuple[str, ...]
    finalize: str
    certificate: str | None = None
    expires: str | None = None
    error: AcmeError | None = None
    profile: str | None = None
    replaces: str | None = None

    @classmethod
    def from_json(cls, url: str, data: Mapping[str, Any]) -> Order:
        return cls(
            url=_url(url, "order URL") if url else url,
            status=str(data.get("status", "pending")),
            identifiers=tuple(_identifier(i) for i in data.get("identifiers") or ()),
            authorizations=tuple(_url(a, "authorization URL")
                                 for a in data.get("authorizations") or ()),
            finalize=_url(data.get("finalize"), "finalize URL"),
            certificate=_optional_url(data.get("certificate"), "certificate URL"),
            expires=data.get("expires"),
            error=_error(data.get("error")),
            profile=data.get("profile"),
            replaces=data.get("replaces"),
        )
