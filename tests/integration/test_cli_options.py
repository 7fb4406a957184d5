"""Command-line options end to end against Pebble: TLS trust, webroots per name, cli.ini,
hook validation and usage errors, dry runs that really test the challenge."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Cli
from tests.servers.pebble import Pebble
from tests.servers.tlsca import TestCA

pytestmark = pytest.mark.integration


def standalone(ca: Pebble) -> list[str]:
    return ["--standalone", "--http-01-port", str(ca.http_port), "--http-01-address",
            "127.0.0.1"]


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_no_verify_ssl_wins_over_a_ca_bundle_in_the_environment(
        cli: Cli, pebble: Pebble, tmp_path: Path, variable: str) -> None:
    stranger = TestCA.create("a CA that never signed Pebble's certificate")
    bundle = stranger.write_ca(tmp_path / "stranger.pem")
    # requests reads REQUESTS_CA_BUNDLE first; an empty one lets CURL_CA_BUNDLE through
    cli.extra_env = {"REQUESTS_CA_BUNDLE": "", variable: str(bundle)}
    name = f"noverify-{variable[:4].lower()}.example.org"
    refused = cli("certonly", *standalone(pebble), "-d", name, check=False)
    assert refused.returncode == 1 and "TLS error" in refused.stderr, refused.stderr
    proc = cli("certonly", *standalone(pebble), "-d", name, "--no-verify-ssl", check=False)
    assert proc.returncode == 0, proc.stderr
    assert (cli.config_dir / "live" / name / "cert.pem").exists()
    assert proc.stderr.count("not checked") == 1, proc.stderr
    assert "InsecureRequestWarning" not in proc.stderr
