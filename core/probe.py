"""Which certificate does a server present? A TLS handshake over the protocol it speaks.

Implicit TLS (``https``, ``smtps``, ``imaps``, ``pop3s``) starts the handshake on the first
byte. The STARTTLS dialogs speak just enough of each protocol to upgrade the connection:
SMTP (RFC 3207 §4), IMAP (RFC 9051 §6.2.1), POP3 (RFC 2595 §4, ``STLS``) and ManageSieve
(RFC 5804 §2.2). The handshake sends ``server_name`` as SNI and does not verify the chain:
the caller compares what was served with what it installed.

The server at the other end may be broken or hostile: the whole plain-text dialog must end
within the timeout, lines hold at most ``MAX_LINE`` bytes and replies at most ``MAX_LINES``
lines, and an unexpected answer is a ``ProbeError`` naming what was said.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable

MAX_LINE = 4096
MAX_LINES = 200
EHLO_NAME = "certwright.invalid"

IMPLICIT = frozenset({"https", "smtps", "imaps", "pop3s"})
STARTTLS = frozenset({"smtp-starttls", "imap-starttls", "pop3-starttls", "sieve"})
PROTOCOLS = IMPLICIT | STARTTLS


class ProbeError(OSError):
    """The server did not let us reach a TLS handshake, or sent no certificate."""


class _Lines:
    """Reads CRLF- (or LF-) terminated lines from a plain socket, byte by byte so nothing
    past the server's last plain-text line is consumed before the handshake."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.deadline = time.monotonic() + timeout  # for the whole dialog, not per read

    def line(self) -> str:
        buf = bytearray()
        while not buf.endswith(b"\n"):
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise ProbeError("the server's plain-text dialog took too long")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1)
            except TimeoutError:
                raise ProbeError("the server's plain-text dialog took too long") from None
            if not chunk:
                raise ProbeError("the server closed the connection"
                                 + (f" after {_show(bytes(buf))}" if buf else ""))
            buf += chunk
            if len(buf) > MAX_LINE:
                raise ProbeError(f"the server sent a line longer than {MAX_LINE} bytes")
        return buf.decode("utf-8", errors="replace").rstrip("\r\n")

    def until(self, last: Callable[[str], bool]) -> list[str]:
        """Lines up to and including the first one for which ``last`` is true."""
        lines: list[str] = []
        while len(lines) < MAX_LINES:
            lines.append(self.line())
            if last(lines[-1]):
                return lines
        raise ProbeError(f"the server sent more than {MAX_LINES} lines without ending its reply")

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode("ascii") + b"\r\n")


def _show(text: str | bytes) -> str:
    shown = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    return repr(shown.strip()[:120])


def _smtp_reply(io: _Lines) -> tuple[int, list[str]]:
    """One SMTP reply (RFC 5321 §4.2): ``NNN-text`` lines ended by ``NNN text``."""
    lines = io.until(lambda s: len(s) < 4 or s[3] != "-")
    code = lines[-1][:3]
    if not (code.isascii() and code.isdigit()) or any(line[:3] != code for line in lines):
        raise ProbeError(f"not an SMTP reply: {_show(lines[-1])}")
    return int(code), [line[4:] for line in lines]


def _smtp(io: _Lines) -> None:
    code, text = _smtp_reply(io)
    if code != 220:
        raise ProbeError(f"SMTP greeting {code} {_show(text[-1] if text else '')}")
    io.send(f"EHLO {EHLO_NAME}")
    code, text = _smtp_reply(io)
    if code != 250:
        raise ProbeError(f"SMTP EHLO answered {code} {_show(text[-1] if text else '')}")
    if not any(ext.split()[:1] == ["STARTTLS"] for ext in (t.upper() for t in text[1:])):
        raise ProbeError("the SMTP server does not offer STARTTLS")
    io.send("STARTTLS")
    code, text = _smtp_reply(io)
    if code != 220:
        raise ProbeError(f"SMTP STARTTLS answered {code} {_show(text[-1] if text else '')}")


def _imap(io: _Lines) -> None:
    greeting = io.line()
    if not greeting.upper().startswith("* OK"):
        raise ProbeError(f"IMAP greeting {_show(greeting)}")
    io.send("c1 STARTTLS")
    done = io.until(lambda s: s.upper().startswith("C1 "))[-1]
    if not done.upper().startswith("C1 OK"):
        raise ProbeError(f"IMAP STARTTLS answered {_show(done)}")


def _pop3(io: _Lines) -> None:
    greeting = io.line()
    if not greeting.startswith("+OK"):
        raise ProbeError(f"POP3 greeting {_show(greeting)}")
    io.send("STLS")
    answer = io.line()
    if not answer.startswith("+OK"):
        raise ProbeError(f"POP3 STLS answered {_show(answer)}")


def _sieve_done(line: str) -> bool:
    return line.upper().startswith(("OK", "NO", "BYE"))


def _sieve(io: _Lines) -> None:
    capabilities = io.until(_sieve_done)
    if not capabilities[-1].upper().startswith("OK"):
        raise ProbeError(f"ManageSieve greeting {_show(capabilities[-1])}")
    if not any(line.upper().startswith('"STARTTLS"') for line in capabilities):
        raise ProbeError("the ManageSieve server does not offer STARTTLS")
    io.send("STARTTLS")
    answer = io.until(_sieve_done)[-1]
    if not answer.upper().startswith("OK"):
        raise ProbeError(f"ManageSieve STARTTLS answered {_show(answer)}")


_DIALOGS: dict[str, Callable[[_Lines], None]] = {
    "smtp-starttls": _smtp, "imap-starttls": _imap, "pop3-starttls": _pop3, "sieve": _sieve,
}


def served_certificate(host: str, port: int, server_name: str, protocol: str = "https",
                       timeout: float = 2.0) -> bytes:
    """DER of the leaf certificate served at ``host:port`` for the SNI ``server_name``.

    Raises ``ProbeError`` (an ``OSError``) for a server that does not get as far as a
    handshake, ``ssl.SSLError`` for a failed handshake, ``ValueError`` for an unknown
    protocol."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(sorted(PROTOCOLS))}")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if protocol in STARTTLS:
            _DIALOGS[protocol](_Lines(sock, timeout))
            sock.settimeout(timeout)
        with ctx.wrap_socket(sock, server_hostname=server_name or None) as tls:
            der = tls.getpeercert(binary_form=True)
    if der is None:
        raise ProbeError("no certificate in the handshake")
    return der
