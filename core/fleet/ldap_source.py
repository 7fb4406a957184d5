"""The LDAP inventory (ldap3): a paged search, and the connection the write-back uses.

``ldap://`` starts TLS (StartTLS) before binding unless ``insecure``; ``ldaps://`` is TLS
from the start; the server's certificate is checked against ``ca_file`` (or the system's
CAs). The bind password is read from a file and kept in this object only: it is never
part of an error message or a log line.
"""

from __future__ import annotations

import logging
import os
import ssl
import stat
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from certwright.core.errors import ConfigError
from certwright.core.fleet.inventory import Listing
from certwright.core.fleet.model import BadEntry, make_domain, raw_names
from certwright.core.fleet.schema import ATTRIBUTES

log = logging.getLogger(__name__)
PAGE_SIZE = 500  # what OpenLDAP allows per page by default (AD: 1000, 389-DS: 2000)
OWN_ATTRIBUTES = tuple(a.name for a in ATTRIBUTES)
# what a search reads of each entry: not the certificate (kilobytes, for every entry)
SEARCHED = tuple(a for a in OWN_ATTRIBUTES if a != "certwrightCertificate")


class LdapError(ConfigError):
    """The directory could not be reached, bound to, searched or written."""


@dataclass(frozen=True)
class LdapOptions:
    url: str
    base_dn: str
    filter: str = "(letsencrypt=TRUE)"
    bind_dn: str | None = None
    password_file: Path | None = None
    insecure: bool = False
    ca_file: Path | None = None
    attr_names: str = "associatedDomain"
    attr_webroot: str = "certwrightWebroot"
    attr_contact: str = "mail"
    attr_customer: str = "o"
    attr_installer: str = "certwrightInstaller"
    timeout: float = 30.0
    page_size: int = PAGE_SIZE


def read_password(path: Path) -> str:
    """The first line of ``path`` (a trailing newline is not part of the password)."""
    try:
        mode = os.stat(path).st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: can't read the bind password: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the bind password file is not UTF-8 text") from None
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        log.warning("%s: the bind password file is readable by others; chmod 600 it", path)
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise ConfigError(f"{path}: the bind password file is empty")
    return lines[0]


def _module() -> Any:
    try:
        import ldap3
    except ImportError:
        raise ConfigError("the LDAP inventory needs ldap3: pip install 'certwright[ldap]'"
                          ) from None
    return ldap3


class LdapInventory:
    writable = True

    def __init__(self, options: LdapOptions) -> None:
        self.options = options
        self._password = read_password(options.password_file) if options.password_file \
            else None
        self._lock = threading.Lock()
        self._conn: Any = None

    # -- connection ---------------------------------------------------------------------
    def _connect(self) -> Any:
        if self._conn is not None:
            return self._conn
        ldap3 = _module()
        opts = self.options
        parts = urlsplit(opts.url)
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            raise ConfigError(f"--ldap-url {opts.url!r}: give ldap://HOST[:PORT] or "
                              "ldaps://HOST[:PORT]")
        secure = parts.scheme == "ldaps"
        tls = None
        if secure or not opts.insecure:
            tls = ldap3.Tls(validate=ssl.CERT_REQUIRED,
                            ca_certs_file=str(opts.ca_file) if opts.ca_file else None)
        server = ldap3.Server(parts.hostname, port=parts.port or (636 if secure else 389),
                              use_ssl=secure, tls=tls, get_info=ldap3.NONE,
                              connect_timeout=int(opts.timeout))
        conn = ldap3.Connection(server, user=opts.bind_dn, password=self._password,
                                read_only=False, receive_timeout=int(opts.timeout),
                                raise_exceptions=False, auto_referrals=False,
                                check_names=False, return_empty_attributes=False)
        tls_hint = " (give --ldap-ca-file for a private CA)"
        step = "can't connect"
        try:
            conn.open()
            if conn.closed:
                raise LdapError(f"{opts.url}: can't connect: {_why(conn)}")
            if not secure and not opts.insecure:
                step = "StartTLS failed"
                if not conn.start_tls():
                    raise LdapError(f"{opts.url}: StartTLS failed: {_why(conn)}{tls_hint}")
            step = f"bind as {opts.bind_dn or 'anonymous'} failed"
            if not conn.bind():
                raise LdapError(f"{opts.url}: {step}: {_why(conn)}")
        except LdapError:
            raise
        except Exception as exc:  # ldap3's socket and TLS errors
            hint = tls_hint if "CERTIFICATE_VERIFY_FAILED" in str(exc) else ""
            raise LdapError(f"{opts.url}: {step}: {_short(exc)}{hint}") from None
        self._conn = conn
        return conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.unbind()
                except Exception as exc:
                    log.debug("unbind: %s", exc)
                self._conn = None

    # -- reading --------------------------------------------------------------------------
    def _wanted(self) -> list[str]:
        o = self.options
        return sorted({o.attr_names, o.attr_webroot, o.attr_contact, o.attr_customer,
                       o.attr_installer,
                       "objectClass", *SEARCHED})

    def read(self) -> Listing:
        """Every entry under the base DN matching the filter, page by page."""
        out = Listing()
        with self._lock:
            conn = self._connect()
            try:
                pages = conn.extend.standard.paged_search(
                    self.options.base_dn, self.options.filter, attributes=self._wanted(),
                    paged_size=self.options.page_size, generator=True)
                for item in pages:
                    if item.get("type") != "searchResEntry":
                        continue
                    self._add(out, item["dn"], _values(item.get("raw_attributes", {})))
            except LdapError:
                raise
            except Exception as exc:
                raise LdapError(f"{self.options.url}: search under {self.options.base_dn} "
                                f"failed: {_short(exc)}") from None
            result = conn.result or {}
            if result.get("result", 0) not in (0,):
                hint = " (lower --ldap-page-size)" if result.get("result") == 11 else ""
                raise LdapError(f"{self.options.url}: search under {self.options.base_dn} "
                                f"failed: {_why(conn)}{hint}")
        return out

    def _add(self, out: Listing, dn: str, attrs: Mapping[str, tuple[str, ...]]) -> None:
        o = self.options

        def one(name: str) -> str | None:
            values = attrs.get(name.lower(), ())
            return values[0] if values else None

        try:
            out.domains.append(make_domain(
                attrs.get(o.attr_names.lower(), ()), dn, webroot=one(o.attr_webroot),
                contact=one(o.attr_contact), customer=one(o.attr_customer), dn=dn,
                current={a: attrs[a.lower()] for a in SEARCHED if a.lower() in attrs},
                object_classes=attrs.get("objectclass", ()),
                installer=_installer(one(o.attr_installer))))
        except ConfigError as exc:
            out.bad.append(BadEntry(dn, str(exc), dn=dn,
                                    names=raw_names(list(attrs.get(o.attr_names.lower(), ())))))

    def entry(self, dn: str) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]] | None:
        """The certwright attributes and object classes of ``dn``; None if it is gone."""
        ldap3 = _module()
        with self._lock:
            conn = self._connect()
            try:
                ok = conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE,
                                 attributes=["objectClass", *OWN_ATTRIBUTES])
            except Exception as exc:  # the connection broke: the next call reconnects
                self._conn = None
                raise LdapError(f"{dn}: read failed: {_short(exc)}") from None
            if not ok:
                if (conn.result or {}).get("result") == 32:  # noSuchObject
                    return None
                raise LdapError(f"{dn}: read failed: {_why(conn)}")
            attrs = _values(conn.response[0].get("raw_attributes", {}))
        current = {a: attrs[a.lower()] for a in OWN_ATTRIBUTES if a.lower() in attrs}
        return current, attrs.get("objectclass", ())

    # -- writing --------------------------------------------------------------------------
    def modify(self, dn: str, changes: Mapping[str, Sequence[tuple[str, Sequence[str]]]]
               ) -> None:
        """``changes``: attribute -> [(op, values)], op "add" / "replace" / "delete"."""
        ldap3 = _module()
        ops = {"add": ldap3.MODIFY_ADD, "replace": ldap3.MODIFY_REPLACE,
               "delete": ldap3.MODIFY_DELETE}
        wire = {attr: [(ops[op], list(values)) for op, values in steps]
                for attr, steps in changes.items()}
        with self._lock:
            conn = self._connect()
            try:
                ok = conn.modify(dn, wire)
            except Exception as exc:  # the connection broke: the next call reconnects
                self._conn = None
                raise LdapError(f"{dn}: write-back failed: {_short(exc)}") from None
            if not ok:
                raise LdapError(f"{dn}: write-back failed: {_why(conn)}")


def _values(raw: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    out = {}
    for name, values in raw.items():
        items = values if isinstance(values, list | tuple) else [values]
        out[name.lower()] = tuple(v.decode("utf-8", "replace") if isinstance(v, bytes)
                                  else str(v) for v in items)
    return out


def _why(conn: Any) -> str:
    result = conn.result or {}
    text = f"{result.get('description', 'error')}"
    if result.get("message"):
        text += f" ({result['message']})"
    return _short(text) if conn.result else _short(conn.last_error or "no answer")


def _short(value: object) -> str:
    return " ".join(str(value).split())[:300]


def _installer(value: str | None) -> str | None:
    """An installer's name as the entry gives it (``nginx``; blank: none)."""
    value = (value or "").strip().lower()
    return value or None
