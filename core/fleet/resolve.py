"""Where a name points: the system's resolver, or one DNS server asked directly over UDP
(``--precheck-dns HOST:PORT``: the authoritative view, or a test's DNS)."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import struct

TYPE_A = 1
CLASS_IN = 1


class ResolveError(Exception):
    pass


def addresses(name: str, server: tuple[str, int] | None, timeout: float = 3.0) -> list[str]:
    """The IPv4 addresses of ``name`` (an empty list: no such name or no A record)."""
    if server is None:
        try:
            infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
        except socket.gaierror:
            return []
        return sorted({str(info[4][0]) for info in infos})
    return _query_a(name, server, timeout)


def _query_a(name: str, server: tuple[str, int], timeout: float) -> list[str]:
    ident = secrets.randbelow(0x10000)
    question = b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.split(".") if p)
    packet = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + b"\0" + \
        struct.pack(">HH", TYPE_A, CLASS_IN)
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(packet, server)
            data = sock.recv(4096)
        except OSError as exc:
            raise ResolveError(f"DNS server {server[0]}:{server[1]} did not answer: {exc}"
                               ) from None
    if len(data) < 12:
        raise ResolveError("short DNS answer")
    rid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", data[:12])
    if rid != ident:
        raise ResolveError("DNS answer for another question")
    if flags & 0x000F not in (0, 3):  # NOERROR, NXDOMAIN
        raise ResolveError(f"DNS error code {flags & 0x000F}")
    pos = 12
    for _ in range(qd):
        pos = _skip_name(data, pos) + 4
    found = []
    for _ in range(an):
        pos = _skip_name(data, pos)
        rtype, _, _, length = struct.unpack(">HHIH", data[pos:pos + 10])
        pos += 10
        if rtype == TYPE_A and length == 4:
            found.append(str(ipaddress.IPv4Address(data[pos:pos + 4])))
        pos += length
    return sorted(set(found))


def _skip_name(data: bytes, pos: int) -> int:
    while pos < len(data):
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + length
    raise ResolveError("truncated DNS answer")
