"""A minimal DNS-over-UDP client for tests: ask pebble-challtestsrv what it serves.

Only what the tests need: one question, A / AAAA / TXT answers, name compression
understood when skipping names. Not a resolver: no retries over TCP, no recursion.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import struct

TYPE_A = 1
TYPE_TXT = 16
TYPE_AAAA = 28
CLASS_IN = 1


class DnsError(RuntimeError):
    """The server answered with an error code or something we cannot parse."""


def query(name: str, qtype: int, server: str, port: int, timeout: float = 2.0) -> list[bytes]:
    """Send one question and return the raw RDATA of the answers of type `qtype`."""
    ident = secrets.randbelow(0x10000)
    header = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0)  # RD set, one question
    question = _encode_name(name) + struct.pack(">HH", qtype, CLASS_IN)
    with socket.socket(
        socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM
    ) as s:
        s.settimeout(timeout)
        s.sendto(header + question, (server, port))
        while True:
            reply = s.recv(65535)
            if len(reply) >= 2 and struct.unpack(">H", reply[:2])[0] == ident:
                break
    return _answers(reply, qtype)


def query_txt(name: str, server: str, port: int, timeout: float = 2.0) -> list[str]:
    """TXT values for `name`, each record's character-strings joined."""
    return [_txt_value(rdata) for rdata in query(name, TYPE_TXT, server, port, timeout)]


def query_a(name: str, server: str, port: int, timeout: float = 2.0) -> list[str]:
    return [str(ipaddress.IPv4Address(r)) for r in query(name, TYPE_A, server, port, timeout)]


def query_aaaa(name: str, server: str, port: int, timeout: float = 2.0) -> list[str]:
    return [str(ipaddress.IPv6Address(r)) for r in query(name, TYPE_AAAA, server, port, timeout)]


def _encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad DNS label {label!r} in {name!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def _skip_name(msg: bytes, pos: int) -> int:
    while True:
        if pos >= len(msg):
            raise DnsError("truncated name")
        length = msg[pos]
        if length & 0xC0 == 0xC0:  # compression pointer: two bytes, ends the name
            return pos + 2
        pos += 1 + length
        if length == 0:
            return pos


def _answers(msg: bytes, qtype: int) -> list[bytes]:
    if len(msg) < 12:
        raise DnsError("short reply")
    _ident, flags, qdcount, ancount, _ns, _ar = struct.unpack(">HHHHHH", msg[:12])
    rcode = flags & 0x000F
    if rcode != 0:
        raise DnsError(f"DNS rcode {rcode}")
    pos = 12
    for _ in range(qdcount):
        pos = _skip_name(msg, pos) + 4
    found: list[bytes] = []
    for _ in range(ancount):
        pos = _skip_name(msg, pos)
        rtype, _rclass, _ttl, rdlength = struct.unpack(">HHIH", msg[pos : pos + 10])
        pos += 10
        if rtype == qtype:
            found.append(msg[pos : pos + rdlength])
        pos += rdlength
    return found


def _txt_value(rdata: bytes) -> str:
    parts: list[bytes] = []
    pos = 0
    while pos < len(rdata):
        length = rdata[pos]
        parts.append(rdata[pos + 1 : pos + 1 + length])
        pos += 1 + length
    return b"".join(parts).decode("utf-8", errors="replace")
