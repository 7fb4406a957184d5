"""Private keys, CSRs and PEM handling (cryptography)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from certwright.core.errors import ConfigError
from certwright.core.interfaces import Identifier

CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
}
PEM_CERT_BEGIN = "-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class KeySpec:
    """``--key-type``, ``--elliptic-curve``, ``--rsa-key-size``."""

    key_type: str = "ecdsa"
    curve: str = "secp256r1"
    rsa_bits: int = 2048

    def __post_init__(self) -> None:
        if self.key_type not in ("ecdsa", "rsa"):
            raise ConfigError(f"--key-type must be ecdsa or rsa, not {self.key_type!r}")
        if self.key_type == "ecdsa" and self.curve not in CURVES:
            raise ConfigError(
                f"--elliptic-curve must be one of {', '.join(CURVES)}, not {self.curve!r}"
            )
        if self.key_type == "rsa" and not 2048 <= self.rsa_bits <= 8192:
            raise ConfigError(f"--rsa-key-size must be 2048..8192, not {self.rsa_bits}")

    def generate(self) -> Any:
        if self.key_type == "rsa":
            return rsa.generate_private_key(public_exponent=65537, key_size=self.rsa_bits)
        return ec.generate_private_key(CURVES[self.curve]())

    def matches(self, key: Any) -> bool:
        if self.key_type == "rsa":
            return isinstance(key, rsa.RSAPrivateKey) and key.key_size == self.rsa_bits
        return isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == self.curve


def key_to_pem(key: Any) -> bytes:
    data: bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return data


def load_private_key(pem: bytes, source: str = "key") -> Any:
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: not a readable unencrypted PEM private key ({exc})") from None


def make_csr(key: Any, identifiers: Sequence[Identifier], must_staple: bool = False) -> bytes:
    """A DER CSR with every identifier as a SAN and the first DNS name as CN (≤ 64 bytes)."""
    sans: list[x509.GeneralName] = []
    for ident in identifiers:
        if ident.type == "ip":
            sans.append(x509.IPAddress(ipaddress.ip_address(ident.value)))
        else:
            sans.append(x509.DNSName(ident.value))
    subject: list[x509.NameAttribute[str]] = []
    first_dns = next((i.value for i in identifiers if i.type == "dns"), None)
    if first_dns and len(first_dns) <= 64:
        subject.append(x509.NameAttribute(NameOID.COMMON_NAME, first_dns))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(subject))
    builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if must_staple:
        builder = builder.add_extension(x509.TLSFeature([x509.TLSFeatureType.status_request]),
                                        critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER)


def load_csr(data: bytes, source: str) -> x509.CertificateSigningRequest:
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise ConfigError(f"{source}: not a readable CSR ({exc})") from None


def csr_identifiers(csr: x509.CertificateSigningRequest) -> list[Identifier]:
    idents: list[Identifier] = []
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        idents += [Identifier("dns", n) for n in san.get_values_for_type(x509.DNSName)]
        idents += [Identifier("ip", str(a)) for a in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    for attr in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = str(attr.value).lower()
        if not any(i.value == value for i in idents):
            idents.insert(0, Identifier("dns", value))
    return idents


def split_pem_chain(pem: str) -> list[str]:
    """Split concatenated PEM certificates into a list, each ending in a newline."""
    parts = []
    for block in pem.split(PEM_CERT_BEGIN)[1:]:
        end = block.find("-----END CERTIFICATE-----")
        if end < 0:
            continue
        parts.append(PEM_CERT_BEGIN + block[: end + len("-----END CERTIFICATE-----")] + "\n")
    return parts


def cert_issuer_cn(pem: str) -> str:
    cert = x509.load_pem_x509_certificate(pem.encode())
    cns = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else cert.issuer.rfc4514_string()


def chain_top_issuer_cn(pem_chain: str) -> str:
    """Issuer CN of the last certificate in a chain: what ``--preferred-chain`` matches."""
    parts = split_pem_chain(pem_chain)
    return cert_issuer_cn(parts[-1]) if parts else ""
