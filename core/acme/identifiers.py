"""ACME identifiers (RFC 8555 §9.7.7, RFC 8738): the value type and how a name or an
address given by a user, or by the CA, is checked and put in canonical form."""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

from certwright.core.errors import ConfigError

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # fullmatch: "$" allows "\n"


class Identifier(NamedTuple):
    """An ACME identifier (RFC 8555 §9.7.7): ``dns`` or ``ip`` (RFC 8738)."""

    type: str
    value: str

    @property
    def is_wildcard(self) -> bool:
        return self.type == "dns" and self.value.startswith("*.")

    @property
    def base(self) -> str:
        """The name validated for this identifier: a wildcard's ``*.`` is removed (§7.1.3)."""
        return self.value[2:] if self.is_wildcard else self.value


def _to_ascii(name: str) -> str:
    if name.isascii():
        return name
    import idna  # only for internationalized names

    try:
        return str(idna.encode(name, uts46=True).decode("ascii"))
    except idna.IDNAError as exc:
        raise ConfigError(f"invalid domain {name!r}: {exc}") from None


def normalize_domain(raw: str) -> str:
    """Lower-case, punycode, check each label; raise ConfigError naming the problem."""
    name = raw.strip().rstrip(".").lower()
    if not name:
        raise ConfigError(f"invalid domain {raw!r}: empty")
    wildcard = name.startswith("*.")
    body = name[2:] if wildcard else name
    if "*" in body:
        raise ConfigError(f"invalid domain {raw!r}: '*' is only allowed as the whole first label")
    labels = body.split(".")
    body = ".".join(_to_ascii(label) if label else label for label in labels)
    labels = body.split(".")
    for label in labels:
        if not label:
            raise ConfigError(f"invalid domain {raw!r}: empty label")
        if len(label) > 63:
            raise ConfigError(f"invalid domain {raw!r}: label {label[:20]}… is over 63 bytes")
        if "_" in label:
            raise ConfigError(f"invalid domain {raw!r}: '_' is not allowed in a host name")
        if not _LABEL.fullmatch(label):
            raise ConfigError(
                f"invalid domain {raw!r}: label {label!r} must be letters, digits and inner '-'"
            )
    if len(labels) < 2:
        raise ConfigError(f"invalid domain {raw!r}: a bare top-level name can't get a certificate")
    if labels[-1].isdigit():
        raise ConfigError(f"invalid domain {raw!r}: the top-level label is numeric")
    if len(body) > 253:
        raise ConfigError(f"invalid domain {raw!r}: longer than 253 bytes")
    return ("*." if wildcard else "") + body


def parse_identifier(raw: str) -> Identifier:
    """An IP address becomes an ``ip`` identifier (RFC 8738), anything else a DNS name."""
    text = raw.strip()
    try:
        addr = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return Identifier("dns", normalize_domain(text))
    return Identifier("ip", str(addr))
