"""ACME Renewal Information (RFC 9773): when the CA would like a certificate renewed.

The CA publishes a ``renewalInfo`` URL in its directory (§3). A client asks, without
authentication, ``GET <renewalInfo>/<certID>`` (§4.1) and gets a suggested window (§4.2);
it renews at a uniformly random moment inside it, so renewals spread out instead of
arriving together. ``certID`` also goes into a renewal's newOrder as ``replaces`` (§5).

Renewal information is advice: a CA without it, or a failed request, must never stop a
renewal. Callers fall back to the lifetime rule then (:mod:`certwright.core.due`).
"""

from __future__ import annotations

import base64
import datetime as dt
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509

from certwright.core.acme.errors import AcmeError, TransportError
from certwright.core.acme.transport import Transport

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})"
)


class NoAuthorityKeyIdentifier(ValueError):
    """The certificate has no Authority Key Identifier, so it has no ARI certID (§4.1)."""


class ResponseLike(Protocol):
    """What :func:`fetch` needs of an HTTP response (``transport.Response`` has it)."""

    @property
    def retry_after(self) -> float | None: ...

    def json(self) -> dict[str, Any]: ...


Getter = Callable[[str], ResponseLike]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _serial_der_bytes(serial: int) -> bytes:
    """The content octets of the DER INTEGER (two's complement, big-endian, minimal)."""
    length = (serial if serial >= 0 else ~serial).bit_length() // 8 + 1
    return serial.to_bytes(length, "big", signed=True)


def cert_id(cert: x509.Certificate) -> str:
    """The ARI certificate identifier (§4.1): ``base64url(AKI keyIdentifier) "." base64url(
    serial)``, both without padding; the serial as its DER integer bytes (a leading zero
    byte when the high bit is set)."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        aki = None
    if aki is None or aki.key_identifier is None:
        raise NoAuthorityKeyIdentifier(
            f"certificate with serial {cert.serial_number:x} has no Authority Key Identifier "
            "key ID, so it has no ARI certificate identifier"
        )
    return f"{_b64(aki.key_identifier)}.{_b64(_serial_der_bytes(cert.serial_number))}"


@dataclass(frozen=True)
class RenewalInfo:
    """A suggested renewal window (§4.2), times timezone-aware; ``retry_after`` is when to
    ask again, in seconds, from the response's Retry-After header."""

    start: dt.datetime
    end: dt.datetime
    explanation_url: str | None = None
    retry_after: float | None = None

    def choose_moment(self, rng: random.Random | None = None) -> dt.datetime:
        """A uniformly random moment in [start, end), to the microsecond (§4.2)."""
        span = (self.end - self.start) // dt.timedelta(microseconds=1)
        if span <= 0:
            return self.start
        rng = rng if rng is not None else random.SystemRandom()
        return self.start + dt.timedelta(microseconds=int(rng.random() * span))


def parse_time(text: object) -> dt.datetime:
    """An RFC 3339 date-time (offset required) as an aware datetime; ValueError otherwise."""
    match = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not an RFC 3339 date-time: {text!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if offset in ("Z", "z"):
        tz = dt.UTC
    else:
        sign = -1 if offset[0] == "-" else 1
        delta = dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
        tz = dt.timezone(sign * delta)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    return dt.datetime(int(year), int(month), int(day), int(hour), int(minute),
                       min(int(second), 59), micro, tzinfo=tz)  # fmt: skip


def parse(data: Mapping[str, Any], *, url: str = "", retry_after: float | None = None
          ) -> RenewalInfo:
    """A RenewalInfo object (§4.2). An invalid one (missing fields, end not after start)
    raises TransportError: §4.2 says to treat it as if there had been no answer."""
    where = f"{url}: " if url else ""
    window = data.get("suggestedWindow")
    if not isinstance(window, Mapping):
        raise TransportError(f"{where}renewal info without a suggestedWindow object")
    try:
        start = parse_time(window.get("start"))
        end = parse_time(window.get("end"))
    except ValueError as exc:
        raise TransportError(f"{where}renewal info with a bad suggestedWindow: {exc}") from None
    if end <= start:
        raise TransportError(
            f"{where}renewal info window ends ({end.isoformat()}) before it starts "
            f"({start.isoformat()})"
        )
    explanation = data.get("explanationURL")
    return RenewalInfo(
        start=start.astimezone(dt.UTC),
        end=end.astimezone(dt.UTC),
        explanation_url=explanation if isinstance(explanation, str) else None,
        retry_after=retry_after,
    )


def renewal_info_url(renewal_info: str, cert: x509.Certificate) -> str:
    return f"{renewal_info.rstrip('/')}/{cert_id(cert)}"


def fetch(get: Transport | Getter, renewal_info: str, cert: x509.Certificate) -> RenewalInfo:
    """``GET <renewalInfo>/<certID>`` (§4.1, unauthenticated) and parse the answer.

    ``get`` is a Transport or its ``get`` method (or any callable like it). Every failure,
    also a problem document from the CA, is raised as TransportError: the caller falls
    back to its own schedule. A certificate without AKI raises NoAuthorityKeyIdentifier.
    """
    getter: Getter = get.get if isinstance(get, Transport) else get
    url = renewal_info_url(renewal_info, cert)
    try:
        resp = getter(url)
        return parse(resp.json(), url=url, retry_after=resp.retry_after)
    except AcmeError as err:
        raise TransportError(f"{url}: no renewal info: {err}") from None
