"""What a server answers, for tests: HTTP (optionally over TLS, with SNI) and the
certificate served over any protocol certwright verifies (``certwright.core.probe``:
https, SMTP/IMAP/POP3/ManageSieve STARTTLS, implicit TLS)."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from cryptography import x509

from certwright.core.probe import served_certificate


@dataclass(frozen=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    cert: x509.Certificate | None = None
    """The leaf certificate, over TLS."""

    def header(self, name: str) -> str:
        """The first value of header ``name`` ('' when absent)."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")

    @property
    def location(self) -> str:
        return self.header("location")

    @property
    def head(self) -> str:
        """Status line and headers as sent."""
        return "\r\n".join([self.status_line, *(f"{k}: {v}" for k, v in self.headers)])

    status_line: str = ""


def http_get(port: int, host: str, path: str = "/", *, tls: bool = False,
             address: str = "127.0.0.1", cadata: bytes | None = None,
             headers: dict[str, str] | None = None, timeout: float = 5.0) -> Response:
    """A raw HTTP/1.0 ``GET`` (no redirects followed) with ``Host: host``; over TLS, SNI is
    ``host`` and the chain is checked only when ``cadata`` is given. ``headers`` are sent
    too."""
    with socket.create_connection((address, port), timeout=timeout) as sock:
        cert = None
        conn: socket.socket = sock
        if tls:
            ctx = ssl.create_default_context(cadata=cadata.decode()) if cadata else \
                ssl._create_unverified_context()
            conn = ctx.wrap_socket(sock, server_hostname=host)
            der = conn.getpeercert(binary_form=True)
            cert = x509.load_der_x509_certificate(der) if der else None
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n{extra}\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        conn.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    headers = tuple((k.strip(), v.strip()) for k, _, v in (h.partition(":") for h in lines[1:]))
    return Response(int(lines[0].split()[1]), headers, body, cert, lines[0])


def served_cert(port: int, server_name: str, protocol: str = "https",
                address: str = "127.0.0.1", timeout: float = 5.0,
                cadata: bytes | None = None) -> x509.Certificate:
    """The leaf certificate served at ``address:port`` for the SNI ``server_name``, over
    ``protocol`` (one of ``certwright.core.probe.PROTOCOLS``). With ``cadata`` (https only)
    the chain and name are verified against those roots: ``ssl.SSLError`` when they fail."""
    if cadata is None:
        return x509.load_der_x509_certificate(
            served_certificate(address, port, server_name, protocol, timeout))
    if protocol != "https":
        raise ValueError("a verified handshake is only offered over https")
    ctx = ssl.create_default_context(cadata=cadata.decode())
    with socket.create_connection((address, port), timeout=timeout) as sock, \
            ctx.wrap_socket(sock, server_hostname=server_name) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)
