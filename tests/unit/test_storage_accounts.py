"""ACME accounts in Certbot's directory layout."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.jwk import JWKEC, JWKRSA

from certwright.core.errors import StorageError
from certwright.core.storage.accounts import (
    Account,
    account_id_for_key,
    accounts_dir,
    delete_account,
    list_accounts,
    load_account,
    save_account,
)

PEBBLE = "https://127.0.0.1:14000/dir"
LE = "https://acme-v02.api.letsencrypt.org/directory"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def ec_account(uri: str = "https://127.0.0.1:14000/my-account/1") -> Account:
    key = JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    return Account(
        id=account_id_for_key(key),
        key=key,
        uri=uri,
        body={"status": "valid", "contact": ["mailto:admin@example.com"]},
    )


def test_server_directory_mapping(tmp_path: Path) -> None:
    assert accounts_dir(tmp_path, PEBBLE) == tmp_path / "accounts" / "127.0.0.1:14000" / "dir"
    assert accounts_dir(tmp_path, LE) == (
        tmp_path / "accounts" / "acme-v02.api.letsencrypt.org" / "directory"
    )
    assert accounts_dir(tmp_path, "https://ca.example") == tmp_path / "accounts" / "ca.example"
    for bad in ("not a url", "https://ca.example/../../etc"):
        with pytest.raises(StorageError):
            accounts_dir(tmp_path, bad)


def test_account_id_is_md5_of_public_key_pem() -> None:
    private = rsa.generate_private_key(65537, 2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = hashlib.md5(pem).hexdigest()
    assert account_id_for_key(JWKRSA(key=private)) == expected
    assert account_id_for_key(JWKRSA(key=private.public_key())) == expected


def test_save_writes_certbots_files_and_modes(tmp_path: Path) -> None:
    account = ec_account()
    save_account(tmp_path, PEBBLE, account)
    directory = tmp_path / "accounts" / "127.0.0.1:14000" / "dir" / account.id
    assert sorted(os.listdir(directory)) == ["meta.json", "private_key.json", "regr.json"]
    for level in (tmp_path / "accounts", directory.parent.parent, directory.parent, directory):
        assert mode_of(level) == 0o700
    assert mode_of(directory / "private_key.json") == 0o400
    assert mode_of(directory / "regr.json") == 0o644
    key_json = json.loads((directory / "private_key.json").read_text())
    assert key_json["kty"] == "EC" and key_json["crv"] == "P-256" and "d" in key_json
    assert json.loads((directory / "regr.json").read_text()) == {
        "body": {"status": "valid", "contact": ["mailto:admin@example.com"]},
        "uri": "https://127.0.0.1:14000/my-account/1",
    }
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["creation_dt"].endswith("Z") and len(meta["creation_dt"]) == 20
    assert meta["creation_host"]
    assert sorted(os.listdir(directory.parent)) == [account.id]


def test_round_trip_and_update(tmp_path: Path) -> None:
    account = ec_account()
    save_account(tmp_path, PEBBLE, account)
    loaded = load_account(tmp_path, PEBBLE, account.id)
    assert loaded.id == account.id
    assert loaded.key == account.key
    assert loaded.uri == account.uri
    assert loaded.body == account.body
    assert loaded.meta == account.meta
    loaded.body["contact"] = ["mailto:new@example.com"]
    save_account(tmp_path, PEBBLE, loaded)  # rewriting a 0400 key file works
    assert load_account(tmp_path, PEBBLE, account.id).body["contact"] == [
        "mailto:new@example.com"
    ]


def test_list_is_per_server_and_skips_broken_accounts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = ec_account(), ec_account()
    first.meta = {"creation_dt": "2024-01-01T00:00:00Z", "creation_host": "a"}
    second.meta = {"creation_dt": "2023-01-01T00:00:00Z", "creation_host": "b"}
    save_account(tmp_path, PEBBLE, first)
    save_account(tmp_path, PEBBLE, second)
    save_account(tmp_path, LE, ec_account())
    broken = accounts_dir(tmp_path, PEBBLE) / ("0" * 32)
    broken.mkdir()
    (broken / "regr.json").write_text("{not json")
    assert [a.id for a in list_accounts(tmp_path, PEBBLE)] == [second.id, first.id]
    assert "skipping account" in caplog.text
    assert len(list_accounts(tmp_path, LE)) == 1
    assert list_accounts(tmp_path, "https://other.example/dir") == []


def test_unreadable_files_raise_naming_the_file(tmp_path: Path) -> None:
    account = ec_account()
    save_account(tmp_path, PEBBLE, account)
    directory = accounts_dir(tmp_path, PEBBLE) / account.id
    (directory / "regr.json").write_text("[]")
    with pytest.raises(StorageError, match=r"regr\.json"):
        load_account(tmp_path, PEBBLE, account.id)
    (directory / "meta.json").unlink()
    (directory / "regr.json").write_text('{"body": {}, "uri": "u"}')
    with pytest.raises(StorageError, match=r"meta\.json: No such file"):
        load_account(tmp_path, PEBBLE, account.id)
    os.chmod(directory / "private_key.json", 0o600)
    (directory / "private_key.json").write_text('{"kty": "nope"}')
    with pytest.raises(StorageError, match=r"private_key\.json"):
        load_account(tmp_path, PEBBLE, account.id)
    with pytest.raises(StorageError, match="no account"):
        load_account(tmp_path, PEBBLE, "f" * 32)


def test_let_s_encrypt_v1_accounts_are_found_for_v2(tmp_path: Path) -> None:
    account = ec_account()
    save_account(tmp_path, "https://acme-v01.api.letsencrypt.org/directory", account)
    assert [a.id for a in list_accounts(tmp_path, LE)] == [account.id]
    assert load_account(tmp_path, LE, account.id).uri == account.uri


def test_delete_removes_account_and_empty_server_dir(tmp_path: Path) -> None:
    first, second = ec_account(), ec_account()
    save_account(tmp_path, PEBBLE, first)
    save_account(tmp_path, PEBBLE, second)
    delete_account(tmp_path, PEBBLE, first.id)
    assert [a.id for a in list_accounts(tmp_path, PEBBLE)] == [second.id]
    delete_account(tmp_path, PEBBLE, second.id)
    assert not accounts_dir(tmp_path, PEBBLE).exists()
    with pytest.raises(StorageError, match="no account"):
        delete_account(tmp_path, PEBBLE, second.id)


def test_account_ids_cannot_escape_the_directory(tmp_path: Path) -> None:
    account = ec_account()
    account.id = "../escape"
    with pytest.raises(StorageError, match="invalid account id"):
        save_account(tmp_path, PEBBLE, account)
    with pytest.raises(StorageError, match="invalid account id"):
        load_account(tmp_path, PEBBLE, "../x")
