"""The inventory: where the list of domains comes from. Two sources behind one interface:
LDAP (:mod:`.ldap_source`) and a TOML file (here)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from certwright.core.errors import ConfigError
from certwright.core.fleet.model import BadEntry, Domain, make_domain, raw_names


@dataclass
class Listing:
    domains: list[Domain] = field(default_factory=list)
    bad: list[BadEntry] = field(default_factory=list)


class Inventory(Protocol):
    """A source of domains. ``writable``: whether :meth:`write` stores attributes back."""

    writable: bool

    def read(self) -> Listing: ...

    def close(self) -> None: ...


class TomlInventory:
    """``--inventory FILE``::

        [[domain]]
        names = ["example.org", "www.example.org"]
        webroot = "/var/www/example.org"
        contact = "admin@example.org"      # optional
        customer = "c42"                   # optional (--account-per customer)
        installer = "nginx"                # optional: installed with one reload per server
        [domain.installer-options]         # optional: that installer's options
        nginx-server-root = "/etc/nginx"

    With an installer the web root may be left out: the installer's own authenticator
    then answers the challenges.
    """

    writable = False

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Listing:
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{self.path}: can't read the inventory: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{self.path}: not UTF-8 text (byte {exc.start})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{self.path}: {exc}") from None
        entries = data.get("domain", [])
        if not isinstance(entries, list):
            raise ConfigError(f"{self.path}: 'domain' must be an array of tables ([[domain]])")
        out = Listing()
        for number, entry in enumerate(entries, 1):
            where = f"{self.path}: domain #{number}"
            try:
                out.domains.append(self._domain(entry, where))
            except ConfigError as exc:
                names = entry.get("names") if isinstance(entry, dict) else None
                out.bad.append(BadEntry(where, str(exc), names=raw_names(names)))
        return out

    @staticmethod
    def _domain(entry: Any, where: str) -> Domain:
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: not a table")
        names = entry.get("names")
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{where}: field 'names' must be a list of strings")
        unknown = set(entry) - {"names", "webroot", "contact", "customer", "installer",
                                "installer-options"}
        if unknown:
            raise ConfigError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        values: dict[str, str | None] = {}
        for key in ("webroot", "contact", "customer", "installer"):
            value = entry.get(key)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{where}: field {key!r} must be a string")
            values[key] = value
        if values["webroot"] is None and values["installer"] is None:
            raise ConfigError(f"{where}: field 'webroot' is missing (or give 'installer')")
        options = entry.get("installer-options", {})
        if not isinstance(options, dict) or not all(
                isinstance(v, str | int) and not isinstance(v, bool) for v in options.values()):
            raise ConfigError(f"{where}: field 'installer-options' must be a table of "
                              "strings or numbers")
        return make_domain(names, where, webroot=values["webroot"],
                           contact=values["contact"], customer=values["customer"],
                           installer=values["installer"],
                           installer_options={str(k): str(v) for k, v in options.items()})

    def close(self) -> None:
        return None
