"""Hand-edited or damaged files in the store: renewal confs and accounts read as Certbot
reads them, and anything unusable stops with one clear line, losing nothing."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.integration.conftest import Cli, standalone
from tests.servers.nginx import Nginx
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration


def one_error_line(proc) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def account_dirs(cli: Cli) -> list[Path]:
    return sorted(p.parent for p in (cli.config_dir / "accounts").rglob("regr.json"))


def test_webroot_map_holding_a_plain_string_renews_with_the_webroot_path(
        cli: Cli, web: Nginx, www_root: Path) -> None:
    cli("certonly", "--webroot", "-w", str(www_root), "-d", "plainmap.example.org")
    conf = cli.config_dir / "renewal" / "plainmap.example.org.conf"
    text = conf.read_text()
    assert "[[webroot_map]]" in text
    # the map section becomes one plain value, as a hand edit (or an old tool) leaves it
    text = re.sub(r"\[\[webroot_map\]\]\n(.*\n?)*", "", text)
    text = text.replace("[renewalparams]\n", f"[renewalparams]\nwebroot_map = {www_root}\n")
    conf.write_text(text)
    proc = cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False,
               check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "1 renewed" in proc.stdout
    assert (cli.config_dir / "archive" / "plainmap.example.org" / "cert2.pem").exists()


def test_a_section_where_a_value_belongs_is_one_named_error(cli: Cli, pebble: Pebble) -> None:
    cli("certonly", *standalone(pebble), "-d", "section.example.org")
    conf = cli.config_dir / "renewal" / "section.example.org.conf"
    conf.write_text(conf.read_text() + "[[pref_challs]]\nhttp-01 = yes\n")
    before = cli.snapshot()
    proc = cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False,
               check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert f"{conf}: bad value for pref_challs" in proc.stdout, proc.stdout
    assert cli.snapshot() == before


@pytest.mark.parametrize("damage", [
    '{"kty": "oct"}',              # josepy: KeyError
    '{"kty": "RSA", "n": "AA"}',   # josepy: KeyError
    '{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}',
    "not json",
    "",
])
def test_a_corrupt_account_key_is_one_clear_error_and_nothing_is_registered(
        cli: Cli, pebble: Pebble, damage: str) -> None:
    cli("certonly", *standalone(pebble), "-d", "acct.example.org")
    [account] = account_dirs(cli)
    (account / "private_key.json").write_text(damage)
    before = cli.snapshot()
    for args in (["renew", "--force-renewal", "--no-random-sleep-on-renew"],
                 ["certonly", *standalone(pebble), "-d", "other.example.org"],
                 ["show_account"]):
        proc = cli(*args, check=False)  # -m and --agree-tos given: registering is possible
        assert proc.returncode != 0, args
        text = proc.stdout + proc.stderr
        assert "Traceback" not in text, text
        assert f"{account / 'private_key.json'}" in text, text
        assert account_dirs(cli) == [account], f"{args}: a new account was registered"
        assert cli.snapshot() == before, args


def test_a_public_only_account_key_is_refused_when_read(cli: Cli, pebble: Pebble) -> None:
    import json

    cli("certonly", *standalone(pebble), "-d", "pub.example.org")
    [account] = account_dirs(cli)
    key = json.loads((account / "private_key.json").read_text())
    public = {k: v for k, v in key.items() if k in ("kty", "n", "e", "crv", "x", "y")}
    (account / "private_key.json").write_text(json.dumps(public))
    proc = cli("show_account", check=False)
    line = one_error_line(proc)
    assert str(account / "private_key.json") in line and "private" in line, line


def test_certificates_after_delete_and_reissue_shows_the_served_certificate(
        cli: Cli, pebble: Pebble) -> None:
    import json

    from cryptography import x509

    def listed() -> str:
        rows = json.loads(cli("certificates", "--json", account=False).stdout)
        return str(rows[0]["serial"])

    def served() -> str:
        cert = x509.load_pem_x509_certificate(
            (cli.config_dir / "live" / "again.example.org" / "cert.pem").read_bytes())
        return f"{cert.serial_number:x}"

    cli("certonly", *standalone(pebble), "-d", "again.example.org")
    assert listed() == served()
    cli("delete", "--cert-name", "again.example.org", account=False)
    cli("certonly", *standalone(pebble), "-d", "again.example.org")
    assert listed() == served()


@pytest.mark.parametrize("where", ["outside", "inside"])
def test_renew_refuses_a_regular_file_where_a_live_link_belongs(
        cli: Cli, pebble: Pebble, tmp_path: Path, where: str) -> None:
    cli("certonly", *standalone(pebble), "-d", "victim.example.org")
    conf = cli.config_dir / "renewal" / "victim.example.org.conf"
    live = cli.config_dir / "live" / "victim.example.org"
    if where == "outside":
        victim = tmp_path / "site-cert.pem"
        conf.write_text(conf.read_text().replace(f"{live}/cert.pem", str(victim)))
    else:
        victim = live / "cert.pem"
        victim.unlink()
    victim.write_text("an admin's own file\n")
    before = cli.snapshot()
    proc = cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False,
               check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    expected = "is outside the store's" if where == "outside" else \
        f"expected {victim} to be a symlink"
    assert expected in proc.stdout, proc.stdout
    assert victim.read_text() == "an admin's own file\n" and not victim.is_symlink()
    assert cli.snapshot() == before
    listing = cli("certificates", account=False).stdout
    assert "victim.example.org" in listing and expected in listing, listing


def test_unregister_never_follows_an_account_dir_link_out_of_the_store(
        cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    import shutil

    cli("register")
    [account] = account_dirs(cli)
    precious = tmp_path / "precious"
    shutil.copytree(account, precious)  # a readable account, so unregister goes ahead
    shutil.rmtree(account)
    account.symlink_to(precious)
    proc = cli("unregister", account=False, check=False)
    assert "Traceback" not in proc.stderr
    assert precious.is_dir() and sorted(os.listdir(precious)) == \
        ["meta.json", "private_key.json", "regr.json"]


@pytest.mark.parametrize("damage", [b"\xff\xfe binary", b"[renewalparams]\nx = y\n",
                                    "cert = /etc/passwd\n"])
def test_a_lineage_with_an_unusable_conf_can_still_be_deleted(
        cli: Cli, pebble: Pebble, damage: bytes | str) -> None:
    cli("certonly", *standalone(pebble), "-d", "broken.example.org")
    conf = cli.config_dir / "renewal" / "broken.example.org.conf"
    if isinstance(damage, str):
        damage = (damage + conf.read_text()).encode()
    conf.write_bytes(damage)
    proc = cli("delete", "--cert-name", "broken.example.org", account=False, check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert "Warning:" in proc.stdout
    for top in ("live", "archive"):
        assert not (cli.config_dir / top / "broken.example.org").exists()
    assert not conf.exists()
    assert Path("/etc/passwd").exists()
