"""Command-line options end to end against Pebble: TLS trust, webroots per name, cli.ini,
hook validation and usage errors, dry runs that really test the challenge."""

from __future__ import annotations

from pathlib import Path

import pytest

from certwright.core.storage.renewal_conf import read_renewal_conf
from tests.integration.conftest import Cli
from tests.servers.nginx import Nginx
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


def test_each_name_gets_its_own_webroot_whatever_its_spelling(
        cli: Cli, pebble: Pebble, web: Nginx, www_root: Path, tmp_path: Path) -> None:
    # two -w that nginx both serves (a link to the same root), so that the certificate
    # is issued and the stored map shows which -w each name was given to
    second = tmp_path / "second-root"
    second.symlink_to(www_root)
    cli("certonly", "--webroot", "-w", str(www_root), "-d", "Dot.Example.org.",
        "-d", "bücher.example.org", "-w", str(second), "-d", "plain.example.org",
        "--cert-name", "spelling")
    conf = read_renewal_conf(cli.config_dir / "renewal" / "spelling.conf")
    assert conf.params["webroot_map"] == {
        "dot.example.org": str(www_root),
        "xn--bcher-kva.example.org": str(www_root),
        "plain.example.org": str(second),
    }
    # and `certificates -d` finds a lineage by any spelling of its names
    shown = cli("certificates", "-d", "BÜCHER.example.org.", account=False).stdout
    assert "spelling" in shown, shown
