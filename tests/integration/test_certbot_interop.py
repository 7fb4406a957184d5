"""A store Certbot 5.8.0 wrote against Pebble is listed and renewed by certwright, and
what certwright issues is listed by Certbot."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import Cli
from tests.servers.nginx import Nginx
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration


def certbot(venv: Path, cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(venv / "bin" / "certbot"), *args, *cli.dirs(), "-n"]
    proc = subprocess.run(argv, env=cli.ca.env(os.environ), capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_certbot_store_is_used_by_certwright(
        certbot_venv: Path, cli: Cli, web: Nginx, www_root: Path, pebble: Pebble) -> None:
    certbot(certbot_venv, cli, "certonly", "--webroot", "-w", str(www_root),
            "-d", "cb.example.org", "-d", "www.cb.example.org", "--server",
            pebble.directory_url, "--agree-tos", "-m", "cb@example.org", "--no-eff-email")
    rows = json.loads(cli("certificates", "--json", account=False).stdout)
    assert [r["name"] for r in rows] == ["cb.example.org"]
    assert rows[0]["domains"] == ["cb.example.org", "www.cb.example.org"]
    accounts_before = sorted(p.name for p in (cli.config_dir / "accounts").rglob("regr.json"))
    # re-issue into Certbot's lineage with Certbot's account
    cli("certonly", "--webroot", "-w", str(www_root), "--cert-name", "cb.example.org",
        "--force-renewal", account=False)
    live = cli.config_dir / "live" / "cb.example.org"
    assert os.readlink(live / "cert.pem") == "../../archive/cb.example.org/cert2.pem"
    assert sorted(p.name for p in (cli.config_dir / "accounts").rglob("regr.json")) == \
        accounts_before, "Certbot's account was reused, none was added"
    listed = certbot(certbot_venv, cli, "certificates").stdout
    assert "cb.example.org" in listed and "INVALID" not in listed


def test_certwright_lineage_is_listed_by_certbot(
        certbot_venv: Path, cli: Cli, pebble: Pebble) -> None:
    cli("certonly", "--standalone", "--http-01-port", str(pebble.http_port),
        "--http-01-address", "127.0.0.1", "-d", "cw.example.org")
    listed = certbot(certbot_venv, cli, "certificates").stdout
    assert "Certificate Name: cw.example.org" in listed
    assert "VALID" in listed and "INVALID" not in listed
    shown = certbot(certbot_venv, cli, "show_account", "--server", pebble.directory_url).stdout
    assert "admin@example.org" in shown
