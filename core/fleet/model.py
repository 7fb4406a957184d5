"""What the fleet works on: a domain from the inventory, and what one run did with it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from certwright.core.errors import ConfigError
from certwright.core.names import has_control, parse_identifier

INSTALLER_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
STATES = ("valid", "failed", "precheck-failed", "pending")


@dataclass(frozen=True)
class Domain:
    """One certificate the inventory asks for.

    ``name`` is the lineage's name: the shortest of ``names``, ties broken lexically (LDAP
    values are unordered, so the order they come in must not matter). ``current`` holds
    the entry's certwright attributes as the source read them (LDAP only), so that the
    write-back changes only what differs. ``installer`` names the certwright installer
    serving the domain (``nginx``, ``apache``); ``installer_options`` are its options by
    dest name (``nginx_server_root``), over the run's own.
    """

    name: str
    names: tuple[str, ...]
    webroot: str | None = None
    contact: str | None = None
    customer: str | None = None
    dn: str | None = None
    installer: str | None = None
    installer_options: tuple[tuple[str, str], ...] = ()
    current: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    object_classes: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class BadEntry:
    """An inventory entry that can't be used: reported, and its lineage left alone."""

    where: str  # the DN, or file and entry number
    error: str
    dn: str | None = None
    names: tuple[str, ...] = ()  # as given, lower-cased: whose lineage to leave alone


def raw_names(values: object) -> tuple[str, ...]:
    """The names an unusable entry seems to give (for protecting its lineage)."""
    items = [values] if isinstance(values, str) else values
    if not isinstance(items, list | tuple):
        return ()
    return tuple(str(v).strip().rstrip(".").lower() for v in items if isinstance(v, str))


def lineage_name(names: Iterable[str]) -> str:
    return min(names, key=lambda n: (len(n), n))


def make_domain(raw_names: Iterable[str], where: str, *, webroot: str | None,
                contact: str | None, customer: str | None, dn: str | None = None,
                current: Mapping[str, tuple[str, ...]] | None = None,
                object_classes: Iterable[str] = (), installer: str | None = None,
                installer_options: Mapping[str, str] | None = None) -> Domain:
    """A Domain from an entry's values; ConfigError naming ``where`` and the bad value."""
    names: set[str] = set()
    for raw in raw_names:
        try:
            ident = parse_identifier(raw)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if ident.type != "dns" or ident.is_wildcard:
            raise ConfigError(f"{where}: {raw!r}: only plain DNS names can be proven with "
                              "a web root (no wildcards, no IP addresses)")
        names.add(ident.value)
    if not names:
        raise ConfigError(f"{where}: no domain name")
    if webroot is not None and (not webroot.startswith("/") or has_control(webroot)):
        raise ConfigError(f"{where}: web root {webroot!r} must be an absolute path")
    for label, value in (("contact", contact), ("customer", customer)):
        if value is not None and has_control(value):
            raise ConfigError(f"{where}: {label} {value!r} holds control characters")
    options = _installer_options(where, installer, installer_options or {})
    return Domain(name=lineage_name(names), names=tuple(sorted(names)), webroot=webroot,
                  contact=contact, customer=customer, dn=dn, current=dict(current or {}),
                  object_classes=tuple(object_classes), installer=installer,
                  installer_options=options)


def _installer_options(where: str, installer: str | None, given: Mapping[str, str]
                       ) -> tuple[tuple[str, str], ...]:
    """The installer's name checked, and its options as (dest, value) pairs: only the
    installer's own (``nginx-server-root`` for nginx), so an entry can't redirect the
    store or the CA."""
    if installer is None:
        if given:
            raise ConfigError(f"{where}: installer options without an installer")
        return ()
    if not INSTALLER_NAME.fullmatch(installer):
        raise ConfigError(f"{where}: installer {installer!r} is not a plugin name")
    from certwright.core import plugins  # the entry points only: no plugin is imported

    known = plugins.names(plugins.INSTALLERS)
    if installer not in known:
        raise ConfigError(f"{where}: no installer {installer!r} is installed here "
                          f"(installed: {', '.join(sorted(known)) or 'none'})")
    prefix = installer.replace("-", "_") + "_"
    out = []
    for key, value in given.items():
        dest = key.removeprefix("--").replace("-", "_")
        if not dest.startswith(prefix) or not INSTALLER_NAME.fullmatch(dest):
            raise ConfigError(f"{where}: option {key!r} is not one of the {installer} "
                              f"installer's (--{prefix.replace('_', '-')}...)")
        if has_control(value):
            raise ConfigError(f"{where}: option {key!r} holds control characters")
        out.append((dest, value))
    return tuple(sorted(out))
