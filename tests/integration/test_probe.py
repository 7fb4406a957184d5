"""The handshake probe against real mail servers, and against servers that misbehave."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certwright.core.probe import ProbeError, served_certificate
from tests.conftest import require_binary, skip_or_fail
from tests.servers.mail import Dovecot, Postfix, mail_root
from tests.servers.ports import wait_until
from tests.servers.tlsca import TestCA, cert_pem, key_pem

pytestmark = pytest.mark.integration
NAME = "mail.example.org"


class Certs:
    """Writes a fresh certificate for NAME into key.pem / fullchain.pem (rename over)."""

    def __init__(self, root: Path) -> None:
        self.ca = TestCA.create()
        self.key = root / "key.pem"
        self.fullchain = root / "fullchain.pem"

    def install(self) -> bytes:
        cert, key = self.ca.issue_server_cert([NAME], [])
        for path, data, mode in ((self.key, key_pem(key), 0o600),
                                 (self.fullchain, cert_pem(cert) + cert_pem(self.ca.cert), 0o644)):
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.chmod(mode)
            tmp.replace(path)
        return cert.public_bytes(Encoding.DER)


@pytest.fixture
def root() -> Iterator[Path]:
    if os.geteuid() != 0:
        skip_or_fail("the mail servers need root")
    path = mail_root()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def serves(port: int, protocol: str, expected: bytes) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return served_certificate("127.0.0.1", port, NAME, protocol) == expected
        except OSError:
            return False
    return check


def test_postfix_starttls_and_wrapper_mode(root: Path) -> None:
    require_binary("postfix")
    certs = Certs(root)
    first = certs.install()
    with Postfix(root, certs.key, certs.fullchain) as postfix:
        assert served_certificate("127.0.0.1", postfix.smtp, NAME, "smtp-starttls") == first
        assert served_certificate("127.0.0.1", postfix.smtps, NAME, "smtps") == first
        with pytest.raises(ProbeError, match="does not offer STARTTLS"):
            served_certificate("127.0.0.1", postfix.plain, NAME, "smtp-starttls")
        second = certs.install()
        postfix.reload()
        wait_until(serves(postfix.smtp, "smtp-starttls", second), what="postfix new cert",
                   timeout=10)
        wait_until(serves(postfix.smtps, "smtps", second), what="postfix smtps new cert",
                   timeout=10)


def test_dovecot_imap_pop3_sieve(root: Path) -> None:
    require_binary("dovecot")
    if not Path("/usr/lib/dovecot/managesieve-login").exists() or \
            not Path("/usr/lib/dovecot/pop3-login").exists():
        skip_or_fail("dovecot-pop3d and dovecot-managesieved are needed (`make sysdeps`)")
    certs = Certs(root)
    first = certs.install()
    with Dovecot(root, certs.key, certs.fullchain) as dovecot:
        for port, protocol in ((dovecot.imap, "imap-starttls"), (dovecot.imaps, "imaps"),
                               (dovecot.pop3, "pop3-starttls"), (dovecot.pop3s, "pop3s"),
                               (dovecot.sieve, "sieve")):
            assert served_certificate("127.0.0.1", port, NAME, protocol) == first, protocol
        served = x509.load_der_x509_certificate(first)
        assert served.subject.rfc4514_string() == f"CN={NAME}"
        second = certs.install()
        dovecot.reload()
        wait_until(serves(dovecot.imap, "imap-starttls", second), what="dovecot new cert",
                   timeout=10)
        # a protocol spoken to the wrong server fails with what that server said
        with pytest.raises(ProbeError, match="IMAP greeting"):
            served_certificate("127.0.0.1", dovecot.pop3, NAME, "imap-starttls")


class FakeServer:
    """A plain TCP server on loopback that plays a script to each client."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.script = script
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):
                self.script(conn)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def endless(conn: socket.socket) -> None:
    conn.sendall(b"220-hello\r\n" * 1000)


def long_line(conn: socket.socket) -> None:
    conn.sendall(b"* OK " + b"x" * 10000)


def drip(conn: socket.socket) -> None:
    for _ in range(100):
        conn.sendall(b"2")
        time.sleep(0.05)


def no_starttls(conn: socket.socket) -> None:
    conn.sendall(b"220 hi\r\n")
    conn.recv(100)
    conn.sendall(b"250-mail.example.org\r\n250-XSTARTTLSNOT\r\n250 SIZE 1000\r\n")


def closes(conn: socket.socket) -> None:
    conn.sendall(b"+OK")


@pytest.mark.parametrize(("script", "protocol", "message"), [
    (endless, "smtp-starttls", "more than 200 lines"),
    (long_line, "imap-starttls", "longer than 4096 bytes"),
    (drip, "smtp-starttls", "took too long"),
    (no_starttls, "smtp-starttls", "does not offer STARTTLS"),
    (closes, "pop3-starttls", "closed the connection after '\\+OK'"),
])
def test_a_misbehaving_server_is_a_bounded_clear_error(
        script: Callable[[socket.socket], None], protocol: str, message: str) -> None:
    server = FakeServer(script)
    try:
        start = time.monotonic()
        with pytest.raises(ProbeError, match=message):
            served_certificate("127.0.0.1", server.port, NAME, protocol, timeout=1.0)
        assert time.monotonic() - start < 2.0
    finally:
        server.close()


def test_unknown_protocol_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown protocol 'gopher'"):
        served_certificate("127.0.0.1", 1, NAME, "gopher")
