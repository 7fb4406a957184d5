"""Identifier validation: DNS names (IDNs to punycode), wildcards, IP addresses (RFC 8738)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from certwright.core.errors import ConfigError
from certwright.core.interfaces import Identifier

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # fullmatch: "$" allows "\n"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (a newline ends a config line)."""
    return _CONTROL.search(text) is not None


def check_cert_name(name: str) -> str:
    """``--cert-name`` as Certbot accepts it: it becomes a file name and lands in server
    configs, so no ``/``, no control characters, not ``.`` or ``..`` (nor any leading
    ``.``: the store's own temporary names start with one)."""
    if not name:
        raise ConfigError("--cert-name: the name is empty")
    if has_control(name):
        raise ConfigError(f"--cert-name {name!r}: control characters (such as a newline) "
                          "are not allowed")
    if "/" in name:
        raise ConfigError(f"--cert-name {name!r}: '/' is not allowed")
    if name.startswith("."):
        raise ConfigError(f"--cert-name {name!r}: a name can't be '.', '..' or start with '.'")
    return name


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


def parse_domains(values: Iterable[str]) -> list[Identifier]:
    """``-d a,b -d c`` → identifiers in order, duplicates dropped (the first stays first)."""
    seen: dict[str, Identifier] = {}
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            ident = parse_identifier(part)
            seen.setdefault(ident.value, ident)
    return list(seen.values())


def name_key(raw: str) -> str:
    """The form a name is compared and mapped under (a dict key: webroots, filters):
    the identifier's value (lower case, punycode, no trailing dot); a name that is not
    valid keeps a plain lower-cased form, for the validation that refuses it to name it."""
    try:
        return parse_identifier(raw).value
    except ConfigError:
        return raw.strip().rstrip(".").lower()
