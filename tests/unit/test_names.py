import pytest

from certwright.core.errors import ConfigError
from certwright.core.interfaces import Identifier
from certwright.core.names import normalize_domain, parse_domains, parse_identifier


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Example.ORG", "example.org"),
        ("example.org.", "example.org"),
        ("*.example.org", "*.example.org"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("a-b.c-d.example", "a-b.c-d.example"),
    ],
)
def test_normalize_accepts(raw: str, expected: str) -> None:
    assert normalize_domain(raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "empty"),
        ("a..example.org", "empty label"),
        ("x" * 64 + ".org", "over 63"),
        ("under_score.example.org", "'_'"),
        ("org", "bare top-level"),
        ("-lead.example.org", "letters, digits"),
        ("foo.*.example.org", "'*'"),
        ("www.example.123", "numeric"),
    ],
)
def test_normalize_rejects_with_reason(raw: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        normalize_domain(raw)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_ip_identifiers() -> None:
    assert parse_identifier("192.0.2.1") == Identifier("ip", "192.0.2.1")
    assert parse_identifier("[2001:db8::1]") == Identifier("ip", "2001:db8::1")


def test_parse_domains_splits_and_deduplicates_in_order() -> None:
    got = parse_domains(["b.example.org,a.example.org", "B.example.org", " c.example.org "])
    assert [i.value for i in got] == ["b.example.org", "a.example.org", "c.example.org"]
