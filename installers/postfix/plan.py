"""What a deploy changes in Postfix, as ``postconf`` edits; and where to check it by handshake.

Pure functions over :class:`~.postconf.Settings`. The edits:

- Postfix >= 3.4: ``smtpd_tls_chain_files = KEY, FULLCHAIN`` (one list, so key and chain are
  read together), and every older certificate/key pair setting removed (they would be
  ignored, and a reader would take them for the truth); older Postfix gets
  ``smtpd_tls_cert_file``/``smtpd_tls_key_file``.
- ``smtpd_tls_security_level = may`` unless ``may``/``encrypt`` (or a ``$reference``) is set.
- A protocol floor (``>=TLSv1.2``) for ``smtpd_tls_protocols`` and
  ``smtpd_tls_mandatory_protocols`` unless main.cf sets them.
- With ``client_tls``: ``smtp_tls_security_level = may`` unless something is set.
- master.cf ``-o`` overrides of the certificate settings: updated when they name only the
  files main.cf named before (or the new ones); otherwise reported by service, and that
  listener is left out of the check (it serves its own certificate).
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from certwright.core.interfaces import DeployRequest, Endpoint
from certwright.installers.postfix.postconf import Service, Settings

CHAIN = "smtpd_tls_chain_files"
PAIRS = ("smtpd_tls_cert_file", "smtpd_tls_key_file", "smtpd_tls_eccert_file",
         "smtpd_tls_eckey_file", "smtpd_tls_dcert_file", "smtpd_tls_dkey_file")
CERT_SETTINGS = (CHAIN, *PAIRS)
LEVEL = "smtpd_tls_security_level"
CLIENT_LEVEL = "smtp_tls_security_level"
PROTOCOLS = ("smtpd_tls_protocols", "smtpd_tls_mandatory_protocols")
FLOOR = ">=TLSv1.2"
OLD_FLOOR = "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"  # before 3.6 there is no ">=" form
ENOUGH = frozenset({"may", "encrypt"})
LISTENING = frozenset({"smtpd", "postscreen"})
WELL_KNOWN = {"smtp": 25, "submission": 587, "smtps": 465, "submissions": 465}


@dataclass(frozen=True)
class Edit:
    """One ``postconf`` change: main.cf (``service`` None) or a master.cf ``-o`` override
    of ``service`` (``name/type``); ``value`` None removes the setting."""

    name: str
    value: str | None
    service: str | None = None

    def argv(self) -> list[str]:
        if self.service is None:
            if self.value is None:
                return ["-X", self.name]
            return ["-e", f"{self.name} = {self.value}"]
        target = f"{self.service}/{self.name}"
        return ["-PX", target] if self.value is None else ["-P", f"{target}={self.value}"]


@dataclass
class DeployEdits:
    edits: list[Edit]
    notes: list[str]
    shadowed: set[str]
    """master.cf services (``name/type``) that keep a certificate of their own."""
    elsewhere: bool = False
    """Another certificate has taken main.cf over since (a renewal leaves it so)."""


def files_named(value: str) -> list[str]:
    """The files a setting names, in order (a list setting: commas and/or spaces)."""
    return [part for part in re.split(r"[\s,]+", value) if part]


def plan_edits(settings: Settings, req: DeployRequest, client_tls: bool = False,
               files_only: bool = False) -> DeployEdits:
    out = DeployEdits([], [], set())
    old_files = {f for n in CERT_SETTINGS for f in files_named(settings.value(n))}
    ours = {req.key_path, req.fullchain_path, req.cert_path}
    if not req.takeover and old_files and not old_files & ours:
        out.elsewhere = True  # installed, then another lineage took over: not ours to undo
        out.notes.append(f"Postfix now serves another certificate ({', '.join(sorted(old_files))})"
                         f"; {req.cert_name} was renewed but not installed there again")
        return out
    if not files_only:
        _main_edits(settings, req, client_tls, out)
    _override_edits(settings, req, old_files, files_only, out)
    return out


def _set(settings: Settings, out: DeployEdits, name: str, value: str | None) -> None:
    if settings.explicit.get(name) != value and (value is not None or name in settings.explicit):
        out.edits.append(Edit(name, value))


def _main_edits(settings: Settings, req: DeployRequest, client_tls: bool,
                out: DeployEdits) -> None:
    if settings.version >= (3, 4):
        _set(settings, out, CHAIN, f"{req.key_path}, {req.fullchain_path}")
        for name in PAIRS:
            _set(settings, out, name, None)
    else:
        _set(settings, out, "smtpd_tls_cert_file", req.fullchain_path)
        _set(settings, out, "smtpd_tls_key_file", req.key_path)
        for name in PAIRS[2:]:
            _set(settings, out, name, None)
    level = settings.value(LEVEL)
    if level not in ENOUGH and not level.startswith("$") and \
            settings.value("smtpd_enforce_tls").lower() != "yes":
        _set(settings, out, LEVEL, "may")
    floor = FLOOR if settings.version >= (3, 6) else OLD_FLOOR
    for name in PROTOCOLS:
        if name not in settings.explicit:
            _set(settings, out, name, floor)
    if client_tls and settings.value(CLIENT_LEVEL) in ("", "none"):
        _set(settings, out, CLIENT_LEVEL, "may")


def _new_value(name: str, req: DeployRequest) -> str:
    if name == CHAIN:
        return f"{req.key_path},{req.fullchain_path}"  # postconf -P refuses whitespace
    return req.key_path if name.endswith("key_file") else req.fullchain_path


def _override_edits(settings: Settings, req: DeployRequest, old_files: set[str],
                    files_only: bool, out: DeployEdits) -> None:
    ours = {req.key_path, req.fullchain_path, req.cert_path}
    for service in settings.services:
        mine = {n: v for n, v in service.overrides.items() if n in CERT_SETTINGS}
        if not mine:
            continue
        named = {f for v in mine.values() for f in files_named(v)}
        if files_only or not named <= old_files | ours:
            shown = ", ".join(f"{n}={v}" for n, v in sorted(mine.items()))
            out.notes.append(f"master.cf service {service.key} overrides {shown}: that "
                             "listener keeps its own certificate and was not checked")
            out.shadowed.add(service.key)
            continue
        for name, value in sorted(mine.items()):
            new = _new_value(name, req)
            if value != new:
                out.edits.append(Edit(name, new, service.key))


# -- where to check -----------------------------------------------------------------------
def after(settings: Settings, edits: list[Edit]) -> dict[str, str]:
    """main.cf's explicit settings once ``edits`` are made."""
    values = dict(settings.explicit)
    for edit in edits:
        if edit.service is None:
            if edit.value is None:
                values.pop(edit.name, None)
            else:
                values[edit.name] = edit.value
    return values


def _resolve(value: str, main: dict[str, str]) -> str:
    """``$name`` / ``${name}`` one level deep, as master.cf overrides often use."""
    found = re.fullmatch(r"\$\{?(\w+)\}?", value.strip())
    return main.get(found.group(1), "") if found else value


def _yes(value: str) -> bool:
    return value.strip().lower() in ("yes", "true", "1", "on")


def _address(service: Service, main: dict[str, str]) -> tuple[str, int] | None:
    host, sep, port_name = service.name.rpartition(":")
    if not sep:
        port_name = service.name
    if port_name.isdigit():
        port = int(port_name)
    else:
        try:
            port = socket.getservbyname(port_name, "tcp")
        except OSError:
            port = WELL_KNOWN.get(port_name, 0)
    if not port:
        return None
    if not host:
        interfaces = [i for i in re.split(r"[\s,]+", main.get("inet_interfaces", "all")) if i]
        first = interfaces[0] if interfaces else "all"
        loopback = "::1" if main.get("inet_protocols", "").strip() == "ipv6" else "127.0.0.1"
        host = loopback if first in ("all", "loopback-only", "localhost") else first
    return host.strip("[]"), port


def listener_endpoints(settings: Settings, edits: list[Edit], shadowed: set[str],
                       server_name: str) -> list[Endpoint]:
    """Every smtpd (or postscreen) inet listener master.cf declares that speaks TLS after
    the change: wrapper mode → implicit TLS, else STARTTLS unless its level is ``none``."""
    main = after(settings, edits)
    overridden: dict[str, dict[str, str]] = {}
    for edit in edits:
        if edit.service is not None and edit.value is not None:
            overridden.setdefault(edit.service, {})[edit.name] = edit.value
    found: list[Endpoint] = []
    for service in settings.services:
        if service.type != "inet" or service.command not in LISTENING \
                or service.key in shadowed:
            continue
        options = {**service.overrides, **overridden.get(service.key, {})}

        def value(name: str, options: dict[str, str] = options) -> str:
            return _resolve(options[name], main) if name in options else main.get(name, "")

        wrapper = _yes(value("smtpd_tls_wrappermode"))
        level = value(LEVEL) or ("may" if _yes(value("smtpd_use_tls")) else "none")
        if not wrapper and level == "none":
            continue
        where = _address(service, main)
        if where is None:
            continue
        found.append(Endpoint(where[0], where[1], server_name,
                              "smtps" if wrapper else "smtp-starttls"))
    return found


def host_names(myhostname: str, mydomain: str, mydestination: str) -> set[str]:
    """Names for a run without ``-d``: ``myhostname``, and ``mydomain`` when Postfix takes
    mail for it itself (it is in ``mydestination``, values expanded)."""
    names = set()
    wanted = {d.lower().rstrip(".") for d in re.split(r"[\s,]+", mydestination) if d}
    for name, when in ((myhostname, True), (mydomain, mydomain.lower().rstrip(".") in wanted)):
        name = name.strip().lower().rstrip(".")
        if when and "." in name and re.fullmatch(r"[a-z0-9.-]+", name):
            names.add(name)
    return names


def server_name(req: DeployRequest) -> str:
    """The name to send as SNI: the first that is not a wildcard."""
    for name in req.domains:
        if not name.startswith("*."):
            return name
    return req.domains[0].removeprefix("*.") if req.domains else ""
