"""Identifier validation: DNS names (IDNs to punycode), wildcards, IP addresses (RFC 8738)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from certwright.core.acme.identifiers import Identifier
from certwright.core.acme.identifiers import normalize_domain as normalize_domain
from certwright.core.acme.identifiers import parse_identifier as parse_identifier
from certwright.core.errors import ConfigError

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
