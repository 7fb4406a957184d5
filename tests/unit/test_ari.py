"""ACME Renewal Information (RFC 9773): certificate identifiers, windows, fetching, due times."""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certwright.core import ari
from certwright.core.acme.errors import AcmeError, TransportError
from certwright.core.acme.transport import Response, Transport
from certwright.core.due import due_time, renew_before_expiry

UTC = dt.UTC
RFC_AKI = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
RFC_SERIAL = 0x0087654321
RFC_CERT_ID = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
KEY = ec.generate_private_key(ec.SECP256R1())


def make_cert(serial: int, aki: x509.AuthorityKeyIdentifier | None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ari.example.org")])
    now = dt.datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(KEY.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=90))
    )
    if aki is not None:
        builder = builder.add_extension(aki, critical=False)
    return builder.sign(KEY, hashes.SHA256())


def aki_of(key_id: bytes) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier(key_id, None, None)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- certificate identifier (§4.1) --------------------------------------------------------
def test_cert_id_matches_the_rfc_example() -> None:
    assert ari.cert_id(make_cert(RFC_SERIAL, aki_of(RFC_AKI))) == RFC_CERT_ID


@pytest.mark.parametrize(
    ("serial", "der"),
    [
        (1, "01"),
        (0x7F, "7f"),
        (0x80, "0080"),
        (0xFF, "00ff"),
        (0x100, "0100"),
        (0x7FFF, "7fff"),
        (0x8000, "008000"),
        (0x87654321, "0087654321"),
        (0, "00"),
        (-1, "ff"),
        (-128, "80"),
        (-129, "ff7f"),
    ],
)
def test_serial_is_encoded_as_der_integer_bytes(serial: int, der: str) -> None:
    assert ari._serial_der_bytes(serial).hex() == der


def test_serial_without_high_bit_has_no_leading_zero() -> None:
    cert = make_cert(0x12345678, aki_of(b"\x01\x02\x03"))
    assert ari.cert_id(cert) == "AQID.EjRWeA"


def test_cert_id_has_no_padding() -> None:
    cert_id = ari.cert_id(make_cert(0x0102, aki_of(b"\xff" * 21)))
    assert "=" not in cert_id
    assert cert_id == "____________________________.AQI"


def test_cert_without_aki_is_a_clear_value_error() -> None:
    cert = make_cert(RFC_SERIAL, None)
    with pytest.raises(ari.NoAuthorityKeyIdentifier, match="no Authority Key Identifier"):
        ari.cert_id(cert)
    assert issubclass(ari.NoAuthorityKeyIdentifier, ValueError)


def test_aki_without_key_identifier_is_refused() -> None:
    issuer = [x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")]))]
    cert = make_cert(RFC_SERIAL, x509.AuthorityKeyIdentifier(None, issuer, 7))
    with pytest.raises(ari.NoAuthorityKeyIdentifier):
        ari.cert_id(cert)


# -- the window (§4.2) --------------------------------------------------------------------
class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


WINDOW = ari.RenewalInfo(start=at("2025-01-02T04:00:00"), end=at("2025-01-03T04:00:00"),
                         explanation_url=None, retry_after=None)  # fmt: skip


def test_choose_moment_stays_in_the_half_open_window() -> None:
    assert WINDOW.choose_moment(FixedRandom(0.0)) == WINDOW.start
    last = WINDOW.choose_moment(FixedRandom(1.0 - 2**-53))
    assert WINDOW.start < last < WINDOW.end
    assert WINDOW.choose_moment(FixedRandom(0.5)) == at("2025-01-02T16:00:00")


def test_choose_moment_is_spread_over_the_window() -> None:
    rng = random.Random(1234)
    moments = [WINDOW.choose_moment(rng) for _ in range(2000)]
    assert all(WINDOW.start <= m < WINDOW.end for m in moments)
    hours = {int((m - WINDOW.start).total_seconds() // 3600) for m in moments}
    assert hours == set(range(24)), "every hour of the window gets picked"
    again = random.Random(1234)
    assert moments[:5] == [WINDOW.choose_moment(again) for _ in range(5)]


def test_choose_moment_without_rng_works() -> None:
    moment = WINDOW.choose_moment()
    assert WINDOW.start <= moment < WINDOW.end


def test_one_microsecond_window() -> None:
    tiny = ari.RenewalInfo(WINDOW.start, WINDOW.start + dt.timedelta(microseconds=1), None, None)
    assert tiny.choose_moment(FixedRandom(0.999999)) == tiny.start


# -- parsing ------------------------------------------------------------------------------
def test_parse_full_document() -> None:
    info = ari.parse(
        {
            "suggestedWindow": {"start": "2025-01-02T04:00:00Z",
                                "end": "2025-01-03T06:30:00.123456789+02:30"},
            "explanationURL": "https://acme.example.com/docs/ari",
        },
        retry_after=21600.0,
    )  # fmt: skip
    assert info.start == at("2025-01-02T04:00:00")
    assert info.end == at("2025-01-03T04:00:00.123456")
    assert info.start.tzinfo is UTC and info.end.tzinfo is UTC
    assert info.explanation_url == "https://acme.example.com/docs/ari"
    assert info.retry_after == 21600.0


@pytest.mark.parametrize(
    "text", ["2025-01-02t04:00:00z", "2025-01-02T04:00:00.5Z", "2025-01-02T04:00:00-07:00"]
)
def test_parse_time_accepts_rfc3339(text: str) -> None:
    assert ari.parse_time(text).tzinfo is not None


@pytest.mark.parametrize(
    "text",
    ["2025-01-02T04:00:00", "2025-01-02", "2025-13-02T04:00:00Z", "yesterday", "", None, 17,
     "2025-01-02 04:00:00Z", "2025-01-02T04:00Z"],
)  # fmt: skip
def test_parse_time_refuses_what_is_not_rfc3339(text: Any) -> None:
    with pytest.raises(ValueError):
        ari.parse_time(text)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({}, "without a suggestedWindow"),
        ({"suggestedWindow": "soon"}, "without a suggestedWindow"),
        ({"suggestedWindow": {"start": "2025-01-02T04:00:00Z"}}, "bad suggestedWindow"),
        ({"suggestedWindow": {"start": "2025-01-02T04:00:00Z", "end": "tomorrow"}},
         "bad suggestedWindow"),
        ({"suggestedWindow": {"start": "2025-01-02T04:00:00Z", "end": "2025-01-02T04:00:00Z"}},
         "ends"),
        ({"suggestedWindow": {"start": "2025-01-03T04:00:00Z", "end": "2025-01-02T04:00:00Z"}},
         "ends"),
    ],
)  # fmt: skip
def test_invalid_documents_are_transport_errors(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(TransportError, match=message) as caught:
        ari.parse(doc, url="https://ca.example/ari/x.y")
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("https://ca.example/ari/x.y: ")


def test_explanation_url_of_the_wrong_type_is_ignored() -> None:
    doc = {"suggestedWindow": {"start": "2025-01-02T04:00:00Z", "end": "2025-01-03T04:00:00Z"},
           "explanationURL": 42}  # fmt: skip
    assert ari.parse(doc).explanation_url is None


# -- fetching -----------------------------------------------------------------------------
GOOD = {"suggestedWindow": {"start": "2025-01-02T04:00:00Z", "end": "2025-01-03T04:00:00Z"}}


def response(url: str, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(url=url, status=200, headers=headers or {}, content=json.dumps(body).encode())


def test_fetch_gets_renewal_info_url_slash_cert_id() -> None:
    cert = make_cert(RFC_SERIAL, aki_of(RFC_AKI))
    seen: list[str] = []

    def get(url: str) -> Response:
        seen.append(url)
        return response(url, GOOD, {"Retry-After": "3600"})

    info = ari.fetch(get, "https://ca.example/renewal-info", cert)
    assert seen == [f"https://ca.example/renewal-info/{RFC_CERT_ID}"]
    assert (info.start, info.end) == (at("2025-01-02T04:00:00"), at("2025-01-03T04:00:00"))
    assert info.retry_after == 3600.0
    ari.fetch(get, "https://ca.example/renewal-info/", cert)
    assert seen[-1] == seen[0], "a trailing slash on renewalInfo is not doubled"


def test_fetch_accepts_a_transport() -> None:
    class FakeTransport(Transport):
        def get(self, url: str) -> Response:
            return response(url, GOOD)

    cert = make_cert(RFC_SERIAL, aki_of(RFC_AKI))
    info = ari.fetch(FakeTransport("https://ca.example/dir"), "https://ca.example/ari", cert)
    assert info.retry_after is None


def test_problem_document_becomes_transport_error() -> None:
    def get(url: str) -> Response:
        raise AcmeError(type="urn:ietf:params:acme:error:serverInternal", detail="down",
                        status=500, url=url)  # fmt: skip

    cert = make_cert(RFC_SERIAL, aki_of(RFC_AKI))
    with pytest.raises(TransportError, match="no renewal info: serverInternal: down"):
        ari.fetch(get, "https://ca.example/ari", cert)


def test_non_json_answer_is_transport_error() -> None:
    def get(url: str) -> Response:
        return Response(url=url, status=200, headers={}, content=b"<html>")

    cert = make_cert(RFC_SERIAL, aki_of(RFC_AKI))
    with pytest.raises(TransportError, match="not valid JSON"):
        ari.fetch(get, "https://ca.example/ari", cert)


def test_fetch_without_aki_raises_before_any_request() -> None:
    def get(url: str) -> Response:
        raise AssertionError("no request expected")

    with pytest.raises(ari.NoAuthorityKeyIdentifier):
        ari.fetch(get, "https://ca.example/ari", make_cert(RFC_SERIAL, None))


# -- when a lineage is due (the one rule, certwright.core.due) ------------------------------
NOT_BEFORE = at("2025-01-01T00:00:00")


@pytest.mark.parametrize(
    ("lifetime", "before_expiry"),
    [
        (dt.timedelta(days=90), dt.timedelta(days=30)),
        (dt.timedelta(days=45), dt.timedelta(days=15)),
        (dt.timedelta(days=10), dt.timedelta(days=10) / 3),
        (dt.timedelta(days=6), dt.timedelta(days=3)),
        (dt.timedelta(hours=1), dt.timedelta(minutes=30)),
    ],
)
def test_due_without_ari(lifetime: dt.timedelta, before_expiry: dt.timedelta) -> None:
    not_after = NOT_BEFORE + lifetime
    due = due_time(NOT_BEFORE.timestamp(), not_after.timestamp())
    assert due == pytest.approx((not_after - before_expiry).timestamp())


def test_renew_before_expiry_replaces_the_lifetime_rule() -> None:
    not_after = (NOT_BEFORE + dt.timedelta(days=90)).timestamp()
    before = renew_before_expiry("45 days")
    assert before == 45 * 86400
    assert due_time(NOT_BEFORE.timestamp(), not_after, before) == not_after - before
    assert renew_before_expiry("2 weeks") == 14 * 86400
    assert renew_before_expiry("soon") is None and renew_before_expiry(None) is None


def test_due_with_ari_is_the_chosen_moment_when_earlier() -> None:
    not_after = NOT_BEFORE + dt.timedelta(days=90)
    moment = WINDOW.choose_moment(random.Random(7))
    due = due_time(NOT_BEFORE.timestamp(), not_after.timestamp(), None, moment.timestamp())
    lifetime_due = due_time(NOT_BEFORE.timestamp(), not_after.timestamp())
    assert due == min(moment.timestamp(), lifetime_due)
    assert WINDOW.start <= moment < WINDOW.end


def test_window_in_the_past_makes_it_due_now() -> None:
    past = ari.RenewalInfo(at("2020-01-01T00:00:00"), at("2020-01-02T00:00:00"), None, None)
    not_after = dt.datetime.now(UTC) + dt.timedelta(days=60)
    not_before = not_after - dt.timedelta(days=90)
    due = due_time(not_before.timestamp(), not_after.timestamp(), None,
                   past.choose_moment().timestamp())
    assert due < dt.datetime.now(UTC).timestamp()
