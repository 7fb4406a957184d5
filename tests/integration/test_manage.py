"""`revoke`, `delete`, `reconfigure` and account key rollover against Pebble."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from cryptography import x509

from certwright.core.acme.client import AcmeClient
from certwright.core.acme.errors import AcmeError
from certwright.core.acme.transport import Transport
from certwright.core.storage.accounts import list_accounts
from tests.integration.conftest import Cli, standalone
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration


def serial(cli: Cli, name: str) -> int:
    pem = (cli.config_dir / "live" / name / "cert.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).serial_number


def test_revoke_with_account_key_then_delete(cli: Cli, pebble: Pebble) -> None:
    cli("certonly", *standalone(pebble), "-d", "rev.example.org")
    number = serial(cli, "rev.example.org")
    assert pebble.cert_status(number)["Status"] == "Valid"
    proc = cli("revoke", "--cert-name", "rev.example.org", "--reason", "keyCompromise",
               account=False)
    assert "successfully revoked" in proc.stdout
    status = pebble.cert_status(number)
    assert status["Status"] == "Revoked" and status.get("Reason") == 1
    assert not (cli.config_dir / "live" / "rev.example.org").exists()
    assert not (cli.config_dir / "renewal" / "rev.example.org.conf").exists()


def test_revoke_with_certificate_key_keeps_files(cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    cli("certonly", *standalone(pebble), "-d", "rev2.example.org")
    live = cli.config_dir / "live" / "rev2.example.org"
    number = serial(cli, "rev2.example.org")
    other = Cli(tmp_path / "elsewhere", pebble)  # no account at all
    other("revoke", "--cert-path", str(live / "cert.pem"), "--key-path",
          str(live / "privkey.pem"), "--reason", "superseded", "--no-delete-after-revoke",
          account=False)
    status = pebble.cert_status(number)
    assert status["Status"] == "Revoked" and status.get("Reason") == 4
    assert (live / "cert.pem").exists()


def test_revoke_with_a_foreign_key_is_refused(cli: Cli, pebble: Pebble) -> None:
    cli("certonly", *standalone(pebble), "-d", "a1.example.org")
    cli("certonly", *standalone(pebble), "-d", "a2.example.org")
    proc = cli("revoke", "--cert-name", "a1.example.org", "--key-path",
               str(cli.config_dir / "live" / "a2.example.org" / "privkey.pem"),
               account=False, check=False)
    assert proc.returncode != 0 and "does not belong" in proc.stderr
    assert pebble.cert_status(serial(cli, "a1.example.org"))["Status"] == "Valid"


def test_delete(cli: Cli, pebble: Pebble) -> None:
    cli("certonly", *standalone(pebble), "-d", "del.example.org")
    cli("certonly", *standalone(pebble), "-d", "stay.example.org")
    cli("delete", "--cert-name", "del.example.org", account=False)
    names = [r["name"] for r in json.loads(cli("certificates", "--json", account=False).stdout)]
    assert names == ["stay.example.org"]
    assert not (cli.config_dir / "archive" / "del.example.org").exists()
    proc = cli("delete", "--cert-name", "nope.example.org", account=False, check=False)
    assert proc.returncode != 0 and "nope.example.org" in proc.stderr


def test_reconfigure_checks_with_a_dry_run(cli: Cli, pebble: Pebble, www_root: Path) -> None:
    cli("certonly", *standalone(pebble), "-d", "rc.example.org")
    conf = cli.config_dir / "renewal" / "rc.example.org.conf"
    before = conf.read_text()
    # a broken change (a web root nobody serves) is refused and nothing is stored
    proc = cli("reconfigure", "--cert-name", "rc.example.org", "--webroot", "-w",
               str(www_root), account=False, check=False)
    assert proc.returncode != 0
    assert conf.read_text() == before
    proc = cli("reconfigure", "--cert-name", "rc.example.org", "--key-type", "rsa",
               "--deploy-hook", "true", *standalone(pebble), account=False)
    text = conf.read_text()
    assert "key_type = rsa" in text and "renew_hook = true" in text
    assert "cert1.pem" in str((cli.config_dir / "live" / "rc.example.org" / "cert.pem")
                              .readlink()), "no certificate was issued"


def test_key_rollover(cli: Cli, pebble: Pebble) -> None:
    cli("certonly", *standalone(pebble), "-d", "roll.example.org")
    old = list_accounts(cli.config_dir, pebble.directory_url)[0]
    cli("update_account", "--rollover-key", account=False)
    new = list_accounts(cli.config_dir, pebble.directory_url)
    assert len(new) == 1 and new[0].id != old.id and new[0].uri == old.uri
    conf = (cli.config_dir / "renewal" / "roll.example.org.conf").read_text()
    assert f"account = {new[0].id}" in conf
    session = requests.Session()
    session.trust_env = False
    session.verify = str(pebble.ca_bundle)
    with pytest.raises(AcmeError) as info:
        AcmeClient(Transport(pebble.directory_url, session=session), old.key).lookup_account()
    assert info.value.code == "accountDoesNotExist"
    found = AcmeClient(Transport(pebble.directory_url, session=session), new[0].key)
    assert found.lookup_account().url == old.uri
    cli("certonly", *standalone(pebble), "-d", "roll.example.org", "--force-renewal",
        account=False)
