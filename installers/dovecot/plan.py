"""What a deploy writes for Dovecot (one managed file), and where to check it by handshake.

The managed file sets the certificate globally and, for each filter block (``protocol
imap { ... }``, ``local_name ...``) that set a certificate of its own naming the files the
global setting named before, in that filter too: a later file's setting wins in Dovecot,
so each protocol ends with exactly one certificate setting, ours. A filter naming other
files is reported and its listeners are not checked. ``ssl = required`` is written only
when asked; ``ssl = yes`` only when the admin's configuration says ``ssl = no`` (kept on
later installs, which find it in this file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from certwright.core.interfaces import DeployRequest, Endpoint
from certwright.installers.dovecot.conf import Block

FILTERS = ("protocol", "local", "remote", "local_name")
# login service: (protocol name in `protocols`, STARTTLS probe, implicit-TLS probe)
LOGINS = {
    "imap-login": ("imap", "imap-starttls", "imaps"),
    "pop3-login": ("pop3", "pop3-starttls", "pop3s"),
    "managesieve-login": ("sieve", "sieve", None),
    "submission-login": ("submission", "smtp-starttls", "smtps"),
}
HEADER = ("# Managed by certwright for the certificate {name}: rewritten by each install\n"
          "# and taken back by rollback. Change settings in your own files instead.\n")


@dataclass(frozen=True)
class Syntax:
    """Setting names and value form: 2.3 ``ssl_cert = </path``, 2.4
    ``ssl_server_cert_file = /path``."""

    cert: str
    key: str
    prefix: str

    def path(self, value: str) -> str:
        """The file a value names ('' for inline PEM or nothing)."""
        value = value.strip()
        if self.prefix:
            return value[1:].strip() if value.startswith(self.prefix) else ""
        return value


def syntax(version: tuple[int, int]) -> Syntax:
    if version >= (2, 4):
        return Syntax("ssl_server_cert_file", "ssl_server_key_file", "")
    return Syntax("ssl_cert", "ssl_key", "<")


@dataclass
class ManagedFile:
    text: str
    notes: list[str] = field(default_factory=list)
    shadowed: set[str] = field(default_factory=set)
    """Protocols (``imap``) whose filter keeps a certificate of its own."""
    elsewhere: bool = False
    """Another certificate has taken the managed file over since (a renewal leaves it)."""


def managed_file(effective: Block, req: DeployRequest, version: tuple[int, int],
                 require_tls: bool, current: str) -> ManagedFile:
    """The managed file's text, given the effective settings (``doveconf -n -P``) and the
    managed file as it is now (``current``, "" when there is none)."""
    syn = syntax(version)
    holder = re.match(r"# Managed by certwright for the certificate (\S+):", current)
    if not req.takeover and holder is not None and holder.group(1) != req.cert_name:
        # installed, then another lineage took this Dovecot over: not ours to undo
        return ManagedFile(current, [f"Dovecot now serves the certificate {holder.group(1)}; "
                                     f"{req.cert_name} was renewed but not installed there "
                                     "again"], elsewhere=True)
    ours = {req.fullchain_path, req.key_path}
    old = {syn.path(effective.settings.get(n, "")) for n in (syn.cert, syn.key)} - {""}
    lines = [HEADER.format(name=req.cert_name)]
    previous_ssl = re.search(r"^ssl = (\w+)$", current, re.MULTILINE)
    if require_tls:
        lines.append("ssl = required\n")
    elif effective.settings.get("ssl") == "no" or (
            previous_ssl is not None and previous_ssl.group(1) == "yes"):
        lines.append("ssl = yes\n")
    pair = [f"{syn.cert} = {syn.prefix}{req.fullchain_path}\n",
            f"{syn.key} = {syn.prefix}{req.key_path}\n"]
    lines += pair
    out = ManagedFile("")
    for block in effective.blocks:
        kind = block.header.split()[:1]
        if not kind or kind[0] not in FILTERS:
            continue
        named = {syn.path(block.settings.get(n, "")) for n in (syn.cert, syn.key)} - {""}
        if not named:
            continue
        if named <= old | ours:
            lines += [f"{block.header} {{\n", *(f"  {line}" for line in pair), "}\n"]
            continue
        out.notes.append(f"Dovecot's filter '{block.header}' sets a certificate of its own "
                         f"({', '.join(sorted(named))}); its listeners keep it and were not "
                         "checked")
        if kind[0] == "protocol":
            out.shadowed.update(block.arg().split())
    out.text = "".join(lines)
    return out


def _host(address: str) -> str:
    first = next((a for a in re.split(r"[\s,]+", address) if a), "*")
    return "127.0.0.1" if first in ("*", "::", "[::]") else first.strip("[]")


def listener_endpoints(full: Block, shadowed: set[str], server_name: str) -> list[Endpoint]:
    """Every inet listener of the login services of the protocols Dovecot serves: STARTTLS
    on plain ones, implicit TLS on ``ssl = yes`` ones (port 0: disabled)."""
    protocols = set(full.settings.get("protocols", "").split())
    listen = full.settings.get("listen", "*")
    found: list[Endpoint] = []
    for service in full.children("service"):
        login = LOGINS.get(service.arg())
        if login is None or login[0] not in protocols or login[0] in shadowed:
            continue
        for listener in service.children("inet_listener"):
            port = listener.settings.get("port", "0")
            if not port.isdigit() or int(port) == 0:
                continue
            probe = login[2] if listener.settings.get("ssl") == "yes" else login[1]
            if probe is None:
                continue
            host = _host(listener.settings.get("address") or listen)
            found.append(Endpoint(host, int(port), server_name, probe))
    return found
