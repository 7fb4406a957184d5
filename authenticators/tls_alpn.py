"""tls-alpn-01 (RFC 8737): a TLS server that answers only the ``acme-tls/1`` protocol.

For each challenge it holds a self-signed certificate whose only subjectAltName is the
identifier (a dNSName, or for an IP address an iPAddress, RFC 8738 §6) and whose critical
``id-pe-acmeIdentifier`` extension holds the SHA-256 digest of the key authorization
(§3). The server reads the ClientHello before any handshake: a connection that does not
offer ``acme-tls/1`` in ALPN, or names no challenge in SNI (for an IP address: its
``in-addr.arpa``/``ip6.arpa`` name), is closed without a certificate; so an ordinary TLS
client never sees one. After the handshake nothing more is said (§3: the CA closes).

The certificates and keys live in a 0700 directory made per server (keys 0600), removed
when the server stops; ``ssl`` reads certificates only from files.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
import os
import shutil
import socket
import socketserver
import ssl
import struct
import tempfile
import threading
import time
from typing import TYPE_CHECKING

from certwright.core import listen

if TYPE_CHECKING:
    from certwright.core.interfaces import ChallengeTask

log = logging.getLogger(__name__)

TLSALPN01 = "tls-alpn-01"
ALPN = "acme-tls/1"
ACME_IDENTIFIER_OID = "1.3.6.1.5.5.7.1.31"
HELLO_TIMEOUT = 10.0
MAX_HELLO = 1 << 16


def sni_name(task: ChallengeTask) -> str:
    """The SNI the CA sends for ``task``'s identifier (RFC 8737 §3, RFC 8738 §6)."""
    if task.identifier.type == "ip":
        return ipaddress.ip_address(task.identifier.value).reverse_pointer
    return task.domain


def challenge_certificate(task: ChallengeTask) -> tuple[bytes, bytes]:
    """PEM certificate and key for ``task``: self-signed, the identifier as its only SAN,
    the critical acmeIdentifier extension holding SHA-256 of the key authorization."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(task.key_authorization.encode()).digest()
    san: x509.GeneralName = (x509.IPAddress(ipaddress.ip_address(task.identifier.value))
                             if task.identifier.type == "ip" else x509.DNSName(task.domain))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ACME tls-alpn-01")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.UnrecognizedExtension(
            x509.ObjectIdentifier(ACME_IDENTIFIER_OID), b"\x04\x20" + digest), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def parse_client_hello(data: bytes) -> tuple[str | None, list[bytes]] | None:
    """``(SNI host name, ALPN protocols)`` of a TLS ClientHello starting ``data``; None
    when more bytes are needed. ValueError when it is not a ClientHello."""
    if len(data) < 5:
        return None
    if data[0] != 22:
        raise ValueError("not a TLS handshake")
    body = bytearray()
    offset = 0
    while True:  # the handshake message may span records
        if len(data) < offset + 5:
            return None
        length = struct.unpack(">H", data[offset + 3:offset + 5])[0]
        if len(data) < offset + 5 + length:
            return None
        body += data[offset + 5:offset + 5 + length]
        offset += 5 + length
        if len(body) >= 4:
            need = 4 + int.from_bytes(body[1:4], "big")
            if len(body) >= need:
                break
        if offset >= MAX_HELLO:
            raise ValueError("ClientHello too long")
    if body[0] != 1:
        raise ValueError("not a ClientHello")
    return _hello_extensions(bytes(body[4:4 + int.from_bytes(body[1:4], "big")]))


def _hello_extensions(hello: bytes) -> tuple[str | None, list[bytes]]:
    pos = 2 + 32  # version, random
    pos += 1 + hello[pos]  # session id
    pos += 2 + struct.unpack(">H", hello[pos:pos + 2])[0]  # cipher suites
    pos += 1 + hello[pos]  # compression methods
    sni: str | None = None
    alpn: list[bytes] = []
    if pos + 2 > len(hello):
        return sni, alpn
    end = pos + 2 + struct.unpack(">H", hello[pos:pos + 2])[0]
    pos += 2
    while pos + 4 <= end:
        kind, size = struct.unpack(">HH", hello[pos:pos + 4])
        data = hello[pos + 4:pos + 4 + size]
        pos += 4 + size
        if kind == 0 and len(data) >= 5 and data[2] == 0:  # server_name: host_name
            length = struct.unpack(">H", data[3:5])[0]
            sni = data[5:5 + length].decode("ascii", "replace").lower().rstrip(".")
        elif kind == 16 and len(data) >= 2:  # application_layer_protocol_negotiation
            i = 2
            while i < len(data):
                alpn.append(data[i + 1:i + 1 + data[i]])
                i += 1 + data[i]
    return sni, alpn


class TlsAlpnServer:
    """Answers tls-alpn-01 for the challenges added, on ``address``:``port``."""

    def __init__(self, address: str, port: int) -> None:
        self.address, self.port = address, port
        self._lock = threading.Lock()
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._dir = tempfile.mkdtemp(prefix="certwright-tls-alpn-")  # 0700
        self._server = _bind(address, port, self)
        self._thread = listen.serve(self._server, f"certwright-tls-alpn-{port}")

    @property
    def bound_port(self) -> int:
        return int(self._server.server_address[1])

    def add(self, task: ChallengeTask) -> None:
        cert, key = challenge_certificate(task)
        base = os.path.join(self._dir, hashlib.sha256(task.token.encode()).hexdigest()[:32])
        for suffix, data in (("crt", cert), ("key", key)):
            fd = os.open(f"{base}.{suffix}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(f"{base}.crt", f"{base}.key")
        context.set_alpn_protocols([ALPN])
        for suffix in ("crt", "key"):
            os.unlink(f"{base}.{suffix}")
        with self._lock:
            self._contexts[sni_name(task)] = context

    def remove(self, task: ChallengeTask) -> bool:
        """Forget ``task``; True when no challenge is left."""
        with self._lock:
            self._contexts.pop(sni_name(task), None)
            return not self._contexts

    def context_for(self, sni: str | None) -> ssl.SSLContext | None:
        with self._lock:
            return self._contexts.get(sni or "")

    def stop(self) -> None:
        listen.stop(self._server, self._thread)
        shutil.rmtree(self._dir, ignore_errors=True)

    def answer(self, sock: socket.socket) -> None:
        """One connection: read the ClientHello, then hand over the certificate only to an
        ``acme-tls/1`` client naming a challenge."""
        sock.settimeout(HELLO_TIMEOUT)
        deadline = time.monotonic() + HELLO_TIMEOUT
        hello = None
        try:
            while hello is None:
                data = sock.recv(MAX_HELLO, socket.MSG_PEEK)
                if not data:
                    return
                hello = parse_client_hello(data)
                if hello is None and (len(data) >= MAX_HELLO or time.monotonic() > deadline):
                    return
                if hello is None:
                    time.sleep(0.01)  # the rest of the hello is on its way
        except (OSError, ValueError, IndexError, struct.error) as exc:
            log.debug("tls-alpn-01: no ClientHello: %s", exc)
            return
        sni, protocols = hello
        context = self.context_for(sni)
        if ALPN.encode() not in protocols or context is None:
            log.debug("tls-alpn-01: refused a handshake for %r offering %r", sni, protocols)
            return
        try:
            with context.wrap_socket(sock, server_side=True) as tls:
                log.debug("tls-alpn-01: answered %s (%s)", sni, tls.selected_alpn_protocol())
        except (OSError, ssl.SSLError) as exc:
            log.debug("tls-alpn-01: handshake for %s failed: %s", sni, exc)


def _bind(address: str, port: int, server: TlsAlpnServer) -> socketserver.ThreadingTCPServer:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            server.answer(self.request)

    return listen.bind(address, port, socketserver.ThreadingTCPServer, Handler,
                       what="tls-alpn-01",
                       busy_hint="is a TLS server running there? try --tls-alpn-01-port")
