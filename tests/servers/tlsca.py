"""A throwaway TLS certificate authority for loopback test servers.

Pebble serves its ACME API over HTTPS only; nginx, Apache or HAProxy tests need a
certificate to start with. `make_tls_files()` writes a fresh CA and a server
certificate for 127.0.0.1 / ::1 / localhost into a directory; clients trust the CA
through REQUESTS_CA_BUNDLE. Keys are EC P-256, written as unencrypted PKCS#8 with
mode 0600; certificates are PEM with mode 0644.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_NAMES = ("localhost",)
DEFAULT_IPS = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    """Paths written by make_tls_files()."""

    ca_cert: Path  # trust this (REQUESTS_CA_BUNDLE)
    cert: Path  # server certificate (leaf only)
    key: Path  # server private key
    fullchain: Path  # leaf followed by the CA certificate


@dataclass(frozen=True)
class TestCA:
    """A CA key and certificate kept in memory, able to sign server certificates."""

    __test__ = False  # not a pytest test class despite its name

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, common_name: str = "certwright test CA", days: int = 30) -> TestCA:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, cert=cert)

    def issue_server_cert(
        self,
        names: Sequence[str] = DEFAULT_NAMES,
        ips: Sequence[str] = DEFAULT_IPS,
        days: int = 30,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """Sign a serverAuth certificate for the given DNS names and IP addresses."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        common_name = names[0] if names else ips[0]
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
            .sign(self.key, hashes.SHA256())
        )
        return cert, key

    def write_ca(self, path: Path) -> Path:
        _write(path, cert_pem(self.cert), 0o644)
        return path


def make_tls_files(
    directory: Path | str,
    names: Sequence[str] = DEFAULT_NAMES,
    ips: Sequence[str] = DEFAULT_IPS,
    days: int = 30,
) -> TlsFiles:
    """Create a new CA and a server certificate signed by it, written into `directory`.

    Files: ca.pem, cert.pem, key.pem, fullchain.pem. The CA key stays in memory only.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca = TestCA.create(days=days)
    cert, key = ca.issue_server_cert(names, ips, days=days)
    files = TlsFiles(
        ca_cert=directory / "ca.pem",
        cert=directory / "cert.pem",
        key=directory / "key.pem",
        fullchain=directory / "fullchain.pem",
    )
    ca.write_ca(files.ca_cert)
    _write(files.cert, cert_pem(cert), 0o644)
    _write(files.key, key_pem(key), 0o600)
    _write(files.fullchain, cert_pem(cert) + cert_pem(ca.cert), 0o644)
    return files


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)  # O_CREAT's mode is filtered by the umask and ignored if it existed
