"""DNS questions the DNS authenticators ask (dnspython; imported only when one is used).

- :func:`record_name`: where the TXT of ``_acme-challenge.<name>`` really goes, following
  CNAMEs (the common trick of delegating only ``_acme-challenge`` to another zone).
- :func:`find_zone`: the zone a name is in, by asking for its SOA and walking up.
- :func:`authoritative`: the zone's name servers (its NS set) as addresses to ask.
- :func:`txt_values`: what one server answers for a TXT question, without recursion.

Every question goes to a given server (``Server``: address and port), over UDP, again over
TCP when the answer was truncated, with a timeout; a server that does not answer is a
:class:`LookupFailed` naming it.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype

QUERY_TIMEOUT = 3.0
MAX_CNAMES = 8
DNS_PORT = 53


@dataclass(frozen=True)
class Server:
    address: str
    port: int = DNS_PORT

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Signer:
    """A TSIG key to sign questions with (``dns_rfc2136_sign_query``)."""

    keyring: Any
    keyname: Any
    algorithm: Any


class LookupFailed(Exception):
    """A server did not answer, or answered with an error; the message names it."""


def ask(name: str, rdtype: str, server: Server, *, recurse: bool = True,
        signer: Signer | None = None, timeout: float = QUERY_TIMEOUT) -> dns.message.Message:
    """One question to ``server``; the reply (any rcode). LookupFailed when none came."""
    query = dns.message.make_query(absolute(name), rdtype)
    if not recurse:
        query.flags &= ~dns.flags.RD
    if signer is not None:
        query.use_tsig(signer.keyring, keyname=signer.keyname, algorithm=signer.algorithm)
    try:
        reply = dns.query.udp(query, server.address, port=server.port, timeout=timeout)
        if reply.flags & dns.flags.TC:
            reply = dns.query.tcp(query, server.address, port=server.port, timeout=timeout)
    except (OSError, dns.exception.DNSException) as exc:
        raise LookupFailed(f"{server} did not answer {rdtype} {name}: "
                           f"{exc or type(exc).__name__}") from None
    return reply


def absolute(name: str) -> str:
    return name.rstrip(".") + "."


def record_name(name: str, server: Server, signer: Signer | None = None) -> str:
    """``name``, or the end of the CNAME chain it starts (at most MAX_CNAMES long)."""
    seen = [name.rstrip(".").lower()]
    for _ in range(MAX_CNAMES):
        reply = ask(seen[-1], "CNAME", server, signer=signer)
        target = None
        for rrset in reply.answer:
            if rrset.rdtype == dns.rdatatype.CNAME and rrset.name == dns.name.from_text(
                    absolute(seen[-1])):
                target = rrset[0].target.to_text().rstrip(".").lower()
        if target is None:
            return seen[-1]
        if target in seen:
            raise LookupFailed(f"CNAME loop at {name}: {' -> '.join([*seen, target])}")
        seen.append(target)
    raise LookupFailed(f"more than {MAX_CNAMES} CNAMEs from {name}")


def find_zone(name: str, server: Server, signer: Signer | None = None) -> str:
    """The zone ``name`` is in: the owner of the SOA the server gives with an answer (or a
    negative answer) for ``name``, else the first of its parents that has one."""
    labels = name.rstrip(".").split(".")
    refused: list[str] = []
    for start in range(len(labels)):
        candidate = ".".join(labels[start:])
        try:
            reply = ask(candidate, "SOA", server, signer=signer)
        except LookupFailed as exc:
            if refused:  # the answer that matters was the refusal, not this silence
                break
            raise exc from None
        if reply.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            if reply.rcode() == dns.rcode.REFUSED:
                refused.append(candidate)
            continue  # REFUSED or SERVFAIL: not a zone this server knows; walk up
        for section in (reply.answer, reply.authority):
            for rrset in section:
                if rrset.rdtype == dns.rdatatype.SOA:
                    return str(rrset.name.to_text().rstrip(".").lower())
    why = f"it refused the question for {refused[0]}" if refused else \
        "no SOA for it or a parent"
    raise LookupFailed(f"{server} knows no zone holding {name} ({why})")


def authoritative(zone: str, server: Server,
                  signer: Signer | None = None) -> list[tuple[str, list[Server]]]:
    """``zone``'s name servers (its NS set), each with its addresses: any one of them
    answering for the name server will do (a host without IPv6 reaches only its IPv4
    one). An address that is ``server``'s is asked on ``server``'s port (it is that
    server); others on port 53. ``server`` itself when the zone lists none that resolve."""
    reply = ask(zone, "NS", server, signer=signer)
    hosts = [str(r.target.to_text()) for rrset in reply.answer
             if rrset.rdtype == dns.rdatatype.NS for r in rrset]
    glue: dict[str, list[str]] = {}
    for rrset in reply.additional:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            glue.setdefault(rrset.name.to_text(), []).extend(r.address for r in rrset)
    found: list[tuple[str, list[Server]]] = []
    for host in dict.fromkeys(hosts):
        addresses = glue.get(host) or _addresses(host, server, signer)
        servers = [Server(a, server.port if a == server.address else DNS_PORT)
                   for a in dict.fromkeys(addresses)]
        if servers:
            found.append((host.rstrip("."), servers))
    return found or [(str(server), [server])]


def _addresses(host: str, server: Server, signer: Signer | None) -> list[str]:
    out: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            reply = ask(host, rdtype, server, signer=signer)
        except LookupFailed:
            continue
        out += [r.address for rrset in reply.answer if rrset.rdtype in
                (dns.rdatatype.A, dns.rdatatype.AAAA) for r in rrset]
    if out:
        return out
    try:  # a name server outside the zones this server knows: the system's resolver
        infos = socket.getaddrinfo(host.rstrip("."), DNS_PORT, type=socket.SOCK_DGRAM)
    except OSError:
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def txt_values(name: str, server: Server, timeout: float = QUERY_TIMEOUT,
               signer: Signer | None = None) -> set[str]:
    """The TXT strings ``server`` itself holds at ``name`` (no recursion)."""
    reply = ask(name, "TXT", server, recurse=False, timeout=timeout, signer=signer)
    owner = dns.name.from_text(absolute(name))
    return {b"".join(r.strings).decode("utf-8", "replace")
            for rrset in reply.answer
            if rrset.rdtype == dns.rdatatype.TXT and rrset.name == owner for r in rrset}


def resolve_server(host: str, port: int) -> Server:
    """``host`` (an address or a name the system resolves) as a Server."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise LookupFailed(f"can't resolve the DNS server {host!r}: {exc}") from None
    return Server(str(infos[0][4][0]), port)


def servers_text(servers: Sequence[Server]) -> str:
    return ", ".join(str(s) for s in servers)
