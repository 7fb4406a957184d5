"""Paths read from a renewal conf, a live dir or an account dir are followed only inside
the store's own directories; a hand-edited or planted path is refused, never written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from certwright.core.errors import StorageError
from certwright.core.storage.lineage import (
    Lineage,
    delete_lineage,
    list_lineages,
    load_lineage,
    new_lineage,
    repair_store,
)
from certwright.core.storage.renewal_conf import write_renewal_conf
from tests.unit.test_storage_lineage import KINDS, PARAMS, issue

NAME = "conf.example"


def fresh(config: Path, name: str = NAME) -> Lineage:
    return new_lineage(config, name, *issue([name]), PARAMS, "0.1.0")


def victim(tmp_path: Path, name: str = "victim.pem") -> Path:
    path = tmp_path / "elsewhere" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"an admin's own file\n")
    return path


@pytest.mark.parametrize("kind", KINDS)
def test_a_conf_naming_a_file_outside_live_is_refused(tmp_path: Path, kind: str) -> None:
    config = tmp_path / "etc"
    lin = fresh(config)
    target = victim(tmp_path)
    setattr(lin.conf, kind, str(target))
    write_renewal_conf(lin.conf)
    with pytest.raises(StorageError, match=f"{kind} = .* is outside the store's"):
        load_lineage(config, NAME)
    [listed] = list_lineages(config)
    assert listed.error and str(lin.conf.path) in listed.error
    assert target.read_bytes() == b"an admin's own file\n" and not target.is_symlink()


@pytest.mark.parametrize("value", [
    "{root}/live/{name}/../../../elsewhere/cert.pem",   # through ..
    "{root}/live/other.example/cert.pem",                 # another lineage
    "live/{name}/cert.pem",                               # relative
    "{root}/live/{name}/sub/cert.pem",                    # deeper
    "{root}/live/{name}/privkey.pem",                     # another entry's file
    "{root}/live/{name}/README",
])
def test_other_bad_cert_paths_are_refused(tmp_path: Path, value: str) -> None:
    config = tmp_path / "etc"
    lin = fresh(config)
    lin.conf.cert = value.format(root=config, name=NAME)
    write_renewal_conf(lin.conf)
    with pytest.raises(StorageError, match=r"(cert|privkey) = .*(outside|another entry)"):
        load_lineage(config, NAME)


def test_an_archive_dir_outside_the_store_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "etc"
    lin = fresh(config)
    other = fresh(config, "other.example")
    lin.conf.archive_dir = str(other.archive_dir)
    write_renewal_conf(lin.conf)
    with pytest.raises(StorageError, match=r"archive_dir = .* is outside"):
        load_lineage(config, NAME)


def test_a_regular_file_in_live_is_refused_not_replaced(tmp_path: Path) -> None:
    config = tmp_path / "etc"
    lin = fresh(config)
    os.unlink(lin.cert)
    lin.cert.write_bytes(b"the admin copied a file here\n")
    lin = load_lineage(config, NAME)
    with pytest.raises(StorageError, match=r"expected .*cert.pem to be a symlink"):
        lin.save_successor(*issue([NAME]), PARAMS)
    assert lin.cert.read_bytes() == b"the admin copied a file here\n"
    assert not lin.cert.is_symlink()
    assert sorted(os.listdir(lin.archive_dir)) == sorted(f"{k}1.pem" for k in KINDS)
    assert any("to be a symlink" in m for m in repair_store(config, full=True))
    assert lin.cert.read_bytes() == b"the admin copied a file here\n"


def test_a_link_leading_out_of_the_archive_is_not_followed(tmp_path: Path) -> None:
    config = tmp_path / "etc"
    lin = fresh(config)
    secret = victim(tmp_path, "secret.key")
    os.unlink(lin.privkey)
    os.symlink(os.path.relpath(secret, lin.live_dir), lin.privkey)
    lin = load_lineage(config, NAME)
    cert, chain, fullchain, _ = issue([NAME])
    with pytest.raises(StorageError, match=r"outside .*archive"):
        lin.save_successor(cert, chain, fullchain, None, PARAMS)  # None: "keep the key"
    for entry in os.listdir(lin.archive_dir):
        assert (lin.archive_dir / entry).read_bytes() != secret.read_bytes()


def test_a_live_dir_that_is_a_link_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "etc"
    lin = fresh(config)
    elsewhere = tmp_path / "elsewhere"
    os.rename(lin.live_dir, elsewhere)
    for kind in KINDS:  # still valid links from the new place
        os.unlink(elsewhere / f"{kind}.pem")
        os.symlink(os.path.relpath(lin.archive_path(kind, 1), elsewhere),
                   elsewhere / f"{kind}.pem")
    os.symlink(elsewhere, lin.live_dir)
    before = sorted(os.listdir(elsewhere))
    lin = load_lineage(config, NAME)
    with pytest.raises(StorageError, match=r"expected .* to be a directory"):
        lin.save_successor(*issue([NAME]), PARAMS)
    assert sorted(os.listdir(elsewhere)) == before
    delete_lineage(config, NAME)
    assert sorted(os.listdir(elsewhere)) == before, "delete removes the link, not its target"


def test_a_config_dir_reached_through_a_symlink_is_fine(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "etc")
    lin = fresh(tmp_path / "etc")  # its conf names paths through the link
    assert lin.conf.cert.startswith(str(tmp_path / "etc"))
    same = load_lineage(real, NAME)
    assert same.save_successor(*issue([NAME]), PARAMS) == 2


def test_account_dirs_leading_out_of_the_store_are_refused(tmp_path: Path) -> None:
    from certwright.core.acme.jws import jwk_of
    from certwright.core.keys import KeySpec
    from certwright.core.storage import accounts

    config, url = tmp_path / "etc", "https://127.0.0.1:14000/dir"
    key = jwk_of(KeySpec().generate())
    acct = accounts.Account(id=accounts.account_id_for_key(key), key=key, uri="https://a/1")
    accounts.save_account(config, url, acct)
    home = accounts.accounts_dir(config, url) / acct.id
    outside = tmp_path / "outside"
    os.rename(home, outside)
    os.symlink(outside, home)
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    broken: dict[str, str] = {}
    assert accounts.list_accounts(config, url, broken) == []
    assert "outside" in broken[acct.id]
    for call in (lambda: accounts.load_account(config, url, acct.id),
                 lambda: accounts.save_account(config, url, acct),
                 lambda: accounts.write_pending_key(config, url, acct.id, key)):
        with pytest.raises(StorageError, match="outside"):
            call()
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before
    # a link inside the store (Certbot's v1 -> v2 links) is still followed
    os.unlink(home)
    inside = home.parent / "moved"
    os.rename(outside, inside)
    os.symlink(inside, home)
    assert acct.id in [a.id for a in accounts.list_accounts(config, url)]
    assert accounts.load_account(config, url, acct.id).uri == "https://a/1"
