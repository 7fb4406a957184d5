"""ACME resources (RFC 8555 §7.1) as frozen dataclasses, decoded from server JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from certwright.core.acme.errors import AcmeError
from certwright.core.interfaces import Identifier


def identifier_json(ident: Identifier) -> dict[str, str]:
    return {"type": ident.type, "value": ident.value}


def _identifier(data: Mapping[str, Any]) -> Identifier:
    return Identifier(type=str(data.get("type", "dns")), value=str(data.get("value", "")))


def _error(data: object) -> AcmeError | None:
    return AcmeError.from_json(data) if isinstance(data, Mapping) else None


@dataclass(frozen=True)
class Directory:
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
    profiles: Mapping[str, str] = field(default_factory=dict)

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
            terms_of_service=meta.get("termsOfService"),
            website=meta.get("website"),
            caa_identities=tuple(meta.get("caaIdentities") or ()),
            external_account_required=bool(meta.get("externalAccountRequired", False)),
            profiles={str(k): str(v) for k, v in profiles.items()}
            if isinstance(profiles, Mapping) else {},
        )


@dataclass(frozen=True)
class Account:
    """An account object (§7.1.2) and its URL (the ``kid``)."""

    url: str
    status: str
    contact: tuple[str, ...] = ()
    terms_of_service_agreed: bool | None = None
    orders: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, url: str, data: Mapping[str, Any]) -> Account:
        return cls(
            url=url,
            status=str(data.get("status", "valid")),
            contact=tuple(str(c) for c in data.get("contact") or ()),
            terms_of_service_agreed=data.get("termsOfServiceAgreed"),
            orders=data.get("orders"),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Challenge:
    """A challenge object (§7.1.5, §8)."""

    type: str
    url: str
    status: str
    token: str = ""
    validated: str | None = None
    error: AcmeError | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Challenge:
        return cls(
            type=str(data.get("type", "")),
            url=str(data.get("url", "")),
            status=str(data.get("status", "pending")),
            token=str(data.get("token", "")),
            validated=data.get("validated"),
            error=_error(data.get("error")),
        )


@dataclass(frozen=True)
class Authorization:
    """An authorization object (§7.1.4)."""

    url: str
    identifier: Identifier
    status: str
    challenges: tuple[Challenge, ...]
    wildcard: bool = False
    expires: str | None = None

    @classmethod
    def from_json(cls, url: str, data: Mapping[str, Any]) -> Authorization:
        ident = _identifier(data.get("identifier") or {})
        wildcard = bool(data.get("wildcard", False))
        if wildcard and not ident.value.startswith("*."):
            ident = Identifier(ident.type, "*." + ident.value)
        return cls(
            url=url,
            identifier=ident,
            status=str(data.get("status", "pending")),
            challenges=tuple(Challenge.from_json(c) for c in data.get("challenges") or ()),
            wildcard=wildcard,
            expires=data.get("expires"),
        )

    def failed_challenge_error(self) -> AcmeError | None:
        for chall in self.challenges:
            if chall.error is not None:
                return chall.error
        return None


@dataclass(frozen=True)
class Order:
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
            url=url,
            status=str(data.get("status", "pending")),
            identifiers=tuple(_identifier(i) for i in data.get("identifiers") or ()),
            authorizations=tuple(str(a) for a in data.get("authorizations") or ()),
            finalize=str(data.get("finalize", "")),
            certificate=data.get("certificate"),
            expires=data.get("expires"),
            error=_error(data.get("error")),
            profile=data.get("profile"),
            replaces=data.get("replaces"),
        )
