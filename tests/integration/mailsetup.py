"""Fixtures and helpers shared by the Postfix and Dovecot installer tests: throwaway servers
from ``tests.servers.mail`` holding a certificate from a test CA of their own, so what
certwright installs (from Pebble) is told apart by its chain and serial."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.conftest import require_binary
from tests.integration.conftest import standalone as shared_standalone
from tests.servers.mail import Dovecot, Postfix, mail_root, root_or_fail
from tests.servers.pebble import Pebble
from tests.servers.ports import ServerStartError, wait_until
from tests.servers.probe import served_cert
from tests.servers.tlsca import TlsFiles, make_tls_files

NAME = "mail.example.org"


def standalone(ca: Pebble) -> list[str]:
    return shared_standalone(ca, "--no-random-sleep-on-renew")


@pytest.fixture
def mailroot() -> Iterator[Path]:
    root_or_fail()
    root = mail_root()
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def old_tls(mailroot: Path) -> TlsFiles:
    """The certificate the servers start with (from a CA of the test's own)."""
    return make_tls_files(mailroot / "tls", names=[NAME])


@pytest.fixture
def postfix(mailroot: Path, old_tls: TlsFiles) -> Iterator[Postfix]:
    require_binary("postfix")
    with Postfix(mailroot, old_tls.key, old_tls.fullchain) as server:
        yield server


@pytest.fixture
def dovecot(mailroot: Path, old_tls: TlsFiles) -> Iterator[Dovecot]:
    require_binary("dovecot")
    with Dovecot(mailroot, old_tls.key, old_tls.fullchain) as server:
        yield server


def postfix_args(server: Postfix) -> list[str]:
    return ["--postfix-config-dir", str(server.etc)]


def dovecot_args(server: Dovecot) -> list[str]:
    return ["--dovecot-config", str(server.conf)]


def lineage_serial(config_dir: Path, name: str = NAME) -> int:
    pem = (config_dir / "live" / name / "cert.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).serial_number


def serial(port: int, protocol: str) -> int:
    return served_cert(port, NAME, protocol).serial_number


def wait_serial(port: int, protocol: str, want: int, timeout: float = 10.0) -> None:
    """Poll until ``port`` serves ``want`` (the servers reload asynchronously)."""
    seen: list[object] = []

    def serves() -> bool:
        try:
            seen.append(serial(port, protocol))
        except OSError as exc:
            seen.append(exc)
            return False
        return seen[-1] == want

    try:
        wait_until(serves, what=f"{protocol} on {port}", timeout=timeout)
    except ServerStartError:
        raise AssertionError(f"{protocol} on {port}: still {seen[-1:]!r}, wanted {want:x}") \
            from None
