from typing import Any

import pytest

from certwright.core.errors import ConfigError, PluginError
from certwright.core.interfaces import DeployRequest, EnhanceRequest, Identifier
from certwright.core.names import (
    check_cert_name,
    normalize_domain,
    parse_domains,
    parse_identifier,
)


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


@pytest.mark.parametrize("raw", ["evil\n.example.org", "www.evil\n.example.org",
                                 "evil\r.example.org", "a\x00b.example.org"])
def test_a_control_character_inside_a_name_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="letters, digits"):
        normalize_domain(raw)


@pytest.mark.parametrize(("name", "fragment"), [
    ("x\nserver { listen 1; }\n#", "control characters"),
    ("tab\there", "control characters"),
    ("a/b", "'/'"),
    ("..", "'.'"),
    (".", "'.'"),
    ("", "empty"),
])
def test_cert_name_rules(name: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_cert_name(name)
    assert fragment in str(info.value) and "\n" not in str(info.value).replace("\\n", "")


def test_cert_names_certbot_accepts_pass() -> None:
    for name in ("example.org", "example.org-0001", "my cert", "*.example.org", "Ünïcode"):
        assert check_cert_name(name) == name


@pytest.mark.parametrize("field", ["cert_name", "cert_path", "domains"])
def test_a_deploy_request_with_a_newline_is_refused(field: str) -> None:
    fields: dict[str, Any] = dict(cert_name="x", domains=("example.org",), cert_path="/c",
                                  key_path="/k", chain_path="/ch", fullchain_path="/f")
    bad = "x\nserver { listen 8; }"
    fields[field] = (bad,) if field == "domains" else bad
    with pytest.raises(PluginError, match="control character"):
        DeployRequest(**fields)


def test_an_enhance_request_with_a_newline_is_refused() -> None:
    with pytest.raises(PluginError, match="control character"):
        EnhanceRequest(domains=("example.org\nreturn 200;",), enhancements=frozenset({"hsts"}))
