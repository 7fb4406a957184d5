"""The DNS plugins' command line and credentials files, without a server: Certbot's DNS
plugin options parse with Certbot's meaning; credentials keys map onto lexicon's options;
bad files are refused naming the file, line and key."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from certwright.authenticators.dns_credentials import read_credentials
from certwright.authenticators.dns_lexicon import provider_class
from certwright.authenticators.dns_providers import CERTBOT
from certwright.core import cli, plugins
from certwright.core.cli_parser import parse
from certwright.core.errors import PluginError

CERTBOT_DNS = sorted([*CERTBOT, "rfc2136"])


@pytest.mark.parametrize("name", CERTBOT_DNS)
def test_certbots_dns_plugin_options_parse_with_certbots_meaning(name: str,
                                                                 tmp_path: Path) -> None:
    parser = cli._full_parser()
    config = parse(["certonly", f"--dns-{name}", f"--dns-{name}-credentials", "creds.ini",
                    f"--dns-{name}-propagation-seconds", "30", "-d", "example.org",
                    "--config-dir", str(tmp_path)], parser)
    assert plugins.chosen(config, config.authenticator, plugins.AUTHENTICATORS) == f"dns-{name}"
    assert getattr(config, f"dns_{name}_credentials") == "creds.ini"
    assert getattr(config, f"dns_{name}_propagation_seconds") == "30"


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_cloudflare_keys_are_certbots(tmp_path: Path) -> None:
    creds = write(tmp_path / "cf.ini", "# token\ndns_cloudflare_api_token = 0123456789abcdef\n")
    cls = provider_class("cloudflare")
    auth = cls(argparse.Namespace(dns_cloudflare_credentials=str(creds)))
    auth.setup(read_credentials(creds, "--dns-cloudflare-credentials"))
    assert auth._options == {"auth_token": "0123456789abcdef"}
    assert cls.provider == "cloudflare" and cls.default_propagation == 10


def test_a_key_of_another_plugin_is_named_with_its_line(tmp_path: Path) -> None:
    creds = write(tmp_path / "ovh.ini", "dns_ovh_endpoint = ovh-eu\n"
                                        "dns_cloudflare_api_token = x\n")
    auth = provider_class("ovh")(argparse.Namespace(dns_ovh_credentials=str(creds)))
    with pytest.raises(PluginError) as failed:
        auth.setup(read_credentials(creds, "--dns-ovh-credentials"))
    assert str(failed.value).startswith(
        f"{creds}:2: dns_cloudflare_api_token: not a key of dns-ovh (its keys: "
        "dns_ovh_endpoint, dns_ovh_application_key,")


@pytest.mark.parametrize("text, message", [
    ("dns_x_a = 1\ndns_x_a = 2\n", ":2: dns_x_a is given twice (also on line 1)"),
    ("s3cr3t-pasted-alone\n", ":1: expected 'key = value'"),
    ("bad key! = 1\n", ":1: the text before '=' is not a key name (letters, digits, '_' "
                       "and '-')"),
])
def test_a_credentials_file_that_does_not_parse_is_named(tmp_path: Path, text: str,
                                                         message: str) -> None:
    creds = write(tmp_path / "c.ini", text)
    with pytest.raises(PluginError) as failed:
        read_credentials(creds, "--dns-x-credentials")
    assert str(failed.value) == f"{creds}{message}"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_credentials_others_may_read_are_refused(tmp_path: Path, mode: int) -> None:
    creds = write(tmp_path / "c.ini", "dns_x_a = 1\n", mode)
    with pytest.raises(PluginError) as failed:
        read_credentials(creds, "--dns-x-credentials")
    assert f"mode {mode:04o} lets other users read" in str(failed.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_credentials_are_read(tmp_path: Path, mode: int) -> None:
    creds = write(tmp_path / "c.ini", "dns_x_a = 'quoted value'\n; comment\n", mode)
    assert read_credentials(creds, "--dns-x-credentials").values == {"dns_x_a": "quoted value"}


def test_lexicon_debug_logs_which_may_hold_secrets_stay_out_of_the_log(tmp_path: Path) -> None:
    import logging

    creds = write(tmp_path / "cloudns.ini", "dns_cloudns_auth_password = s3cret-pass\n"
                                            "dns_cloudns_auth_id = 42\n")
    logging.getLogger("lexicon").setLevel(logging.NOTSET)
    auth = provider_class("cloudns")(argparse.Namespace(
        dns_cloudns_credentials=str(creds), dns_resolver="127.0.0.1:53"))
    auth.prepare()
    assert auth._options == {"auth_password": "s3cret-pass", "auth_id": "42"}
    provider_log = logging.getLogger("lexicon._private.providers.cloudns")
    root, level = logging.getLogger(), logging.getLogger().level
    root.setLevel(logging.DEBUG)  # as the CLI sets it for its log file
    try:
        assert not provider_log.isEnabledFor(logging.DEBUG)
    finally:
        root.setLevel(level)


def test_the_wait_returns_once_every_authoritative_server_has_every_record(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A secondary that picks the record up later (a propagation delay, stood in for
    here): the wait polls, with growing pauses, until it has it, and no longer."""
    import time

    from certwright.authenticators import dns_lookup
    from certwright.authenticators.dns_base import DnsAuthenticator, Record

    primary, secondary = dns_lookup.Server("192.0.2.1"), dns_lookup.Server("192.0.2.2")
    asked: list[tuple[str, float]] = []
    visible_at = time.monotonic() + 0.5

    def txt_values(name: str, server: dns_lookup.Server, timeout: float = 3.0,
                   signer: object = None) -> set[str]:
        asked.append((server.address, time.monotonic()))
        if server == secondary and time.monotonic() < visible_at:
            return {"other"}
        return {"value", "other"}

    monkeypatch.setattr(dns_lookup, "authoritative",
                        lambda *a: [("ns1", [primary]), ("ns2", [secondary])])
    monkeypatch.setattr(dns_lookup, "txt_values", txt_values)

    class Auth(DnsAuthenticator):
        name = "dns-test"

        def lookup_server(self) -> dns_lookup.Server:
            return primary

    auth = Auth(argparse.Namespace())
    record = Record("example.test", "_acme-challenge.example.test", "value")
    begin = time.monotonic()
    auth._wait_visible([record], time.monotonic() + 10)
    took = time.monotonic() - begin
    assert 0.5 <= took < 2.5, took
    polls = [at for address, at in asked if address == "192.0.2.2"]
    assert polls[-1] >= visible_at and polls[-2] < visible_at
    assert len(polls) <= 8, f"pauses grow (backoff), no busy loop: {len(polls)} polls"


def test_a_name_server_counts_once_one_of_its_addresses_answers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A name server with an IPv6 address this host can't reach, and an IPv4 one that
    has the record: visible (the CA's resolver, too, uses the address that answers)."""
    import time

    from certwright.authenticators import dns_lookup
    from certwright.authenticators.dns_base import DnsAuthenticator, Record

    v6, v4 = dns_lookup.Server("2001:db8::53"), dns_lookup.Server("192.0.2.53")

    def txt_values(name: str, server: dns_lookup.Server, timeout: float = 3.0,
                   signer: object = None) -> set[str]:
        if server == v6:
            raise dns_lookup.LookupFailed(f"{server} did not answer TXT {name}: unreachable")
        return {"value"}

    monkeypatch.setattr(dns_lookup, "authoritative", lambda *a: [("ns1", [v6, v4])])
    monkeypatch.setattr(dns_lookup, "txt_values", txt_values)

    class Auth(DnsAuthenticator):
        name = "dns-test"

        def lookup_server(self) -> dns_lookup.Server:
            return v4

    record = Record("example.test", "_acme-challenge.example.test", "value")
    begin = time.monotonic()
    Auth(argparse.Namespace())._wait_visible([record], time.monotonic() + 5)
    assert time.monotonic() - begin < 1


def test_every_provider_is_registered_as_an_entry_point() -> None:
    """pyproject's entry points and authenticators/dns_providers.py name the same plugins."""
    from certwright.authenticators.dns_providers import plugin_names
    from certwright.core import plugins

    registered = {name: ep.value for name, ep in plugins._entries(plugins.AUTHENTICATORS).items()
                  if name.startswith("dns-") and name != "dns-rfc2136"}
    assert sorted(registered) == plugin_names()
    assert all(value == f"certwright.authenticators.dns_lexicon:{name[4:]} [dns]"
               for name, value in registered.items())
    assert plugins.find(plugins.AUTHENTICATORS, "dns-route53").provider == "route53"
