"""ACME accounts in Certbot's layout.

::

    <config-dir>/accounts/<netloc><path>/<id>/private_key.json   the JWK (josepy), mode 0400
    <config-dir>/accounts/<netloc><path>/<id>/regr.json          {"body": {...}, "uri": "..."}
    <config-dir>/accounts/<netloc><path>/<id>/meta.json          {"creation_dt", "creation_host"}

The server directory is the directory URL's network location followed by its path, taken
literally: ``https://127.0.0.1:14000/dir`` gives ``accounts/127.0.0.1:14000/dir`` and
``https://acme-v02.api.letsencrypt.org/directory`` gives
``accounts/acme-v02.api.letsencrypt.org/directory`` (two directory levels each). Certbot
creates every directory from ``accounts`` down with mode 0700, ``private_key.json`` with 0400
and the two other files with the umask's default (0644 here).

The account id is the hex MD5 of the account public key in PEM SubjectPublicKeyInfo form.
Certbot needs ``creation_dt`` and ``creation_host`` in meta.json, so they are filled in
when missing. Accounts stored for Let's Encrypt's retired v1 endpoints are found for the
matching v2 endpoint, as Certbot does.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cryptography.hazmat.primitives import serialization
from josepy.errors import Error as JoseError
from josepy.jwk import JWK

from certwright.core.errors import StorageError
from certwright.core.storage.files import atomic_write, ensure_dir, fsync_dir

logger = logging.getLogger(__name__)

KEY_FILE = "private_key.json"
PENDING_KEY_FILE = "private_key.json.pending"
"""A key rollover's new key, written before the CA is told (see core/rollover.py)."""
PENDING_KEY_MODE = 0o600
REGR_FILE = "regr.json"
META_FILE = "meta.json"
KEY_MODE = 0o400
FILE_MODE = 0o644
DIR_MODE = 0o700

_REUSE = {
    "acme-v02.api.letsencrypt.org/directory": "acme-v01.api.letsencrypt.org/directory",
    "acme-staging-v02.api.letsencrypt.org/directory": "acme-staging.api.letsencrypt.org/directory",
}


@dataclass
class Account:
    """A registered ACME account. ``body`` is the account object the server returned
    (contact, status, ...); ``meta`` holds Certbot's ``creation_dt``/``creation_host``."""

    id: str
    key: JWK
    uri: str
    body: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def account_id_for_key(key: JWK) -> str:
    """Certbot's account id: MD5 (hex) of the public key's PEM SubjectPublicKeyInfo."""
    pem: bytes = key.public_key().key.public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    return hashlib.md5(pem, usedforsecurity=False).hexdigest()


def server_path(server_url: str) -> str:
    """``netloc + path`` of the directory URL, as Certbot names the server's directory."""
    parsed = urlparse(server_url)
    path = parsed.netloc + parsed.path
    parts = path.split("/")
    if not parsed.netloc or ".." in parts or "." in parts:
        raise StorageError(f"cannot store accounts for server URL {server_url!r}")
    return path


def accounts_dir(config_dir: Path, server_url: str) -> Path:
    """The directory holding one directory per account for ``server_url``."""
    return Path(os.path.abspath(config_dir)) / "accounts" / server_path(server_url)


def _fallback_dir(config_dir: Path, server_url: str) -> Path | None:
    previous = _REUSE.get(os.path.normpath(server_path(server_url)))
    if previous is None:
        return None
    return Path(os.path.abspath(config_dir)) / "accounts" / previous


def _check_inside(config_dir: Path, path: Path) -> Path:
    """``path`` (an account or server directory, maybe a link, as Certbot makes for v1
    accounts) resolves inside ``<config>/accounts``; StorageError otherwise."""
    store = os.path.realpath(Path(os.path.abspath(config_dir)) / "accounts")
    real = os.path.realpath(path)
    if real != store and not real.startswith(store + os.sep):
        raise StorageError(f"{path} leads to {real}, outside {store}; refusing to use it")
    return path


def _read_json(path: Path) -> Any:
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read())
    except OSError as error:
        raise StorageError(f"cannot read {path}: {error.strerror}") from error
    except ValueError as error:
        raise StorageError(f"cannot read {path}: not valid JSON ({error})") from error


def _read_object(path: Path) -> dict[str, Any]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise StorageError(f"cannot read {path}: expected a JSON object")
    return data


def read_key(key_path: Path) -> JWK:
    """A private JWK from ``key_path``; StorageError naming the file for anything else
    (josepy raises KeyError, ValueError or TypeError for some malformed keys)."""
    try:
        key = JWK.from_json(_read_json(key_path))
    except (JoseError, KeyError, ValueError, TypeError) as error:
        reason = f"missing {error}" if isinstance(error, KeyError) else str(error)
        raise StorageError(f"cannot read {key_path}: not a usable JWK ({reason})") from error
    if not isinstance(key, JWK):  # pragma: no cover - from_json returns a JWK subclass
        raise StorageError(f"cannot read {key_path}: not a JWK")
    if not hasattr(key.key, "private_bytes"):
        raise StorageError(f"cannot read {key_path}: a public key, not the account's private "
                           "key")
    return key


def _load_dir(directory: Path) -> Account:
    key = read_key(directory / KEY_FILE)
    regr = _read_object(directory / REGR_FILE)
    uri = regr.get("uri")
    body = regr.get("body", {})
    if not isinstance(uri, str) or not isinstance(body, dict):
        raise StorageError(f"cannot read {directory / REGR_FILE}: needs 'uri' and 'body'")
    meta = _read_object(directory / META_FILE)
    return Account(id=directory.name, key=key, uri=uri, body=body, meta=meta)


def _account_names(directory: Path) -> list[str]:
    try:
        entries = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as error:
        raise StorageError(f"cannot list {directory}: {error.strerror}") from error
    return sorted(e for e in entries if not e.startswith(".") and (directory / e).is_dir())


def _load_all(config_dir: Path, directory: Path,
              broken: dict[str, str] | None) -> list[Account]:
    accounts = []
    for name in _account_names(directory):
        try:
            accounts.append(_load_dir(_check_inside(config_dir, directory / name)))
        except StorageError as error:
            if broken is None:
                logger.warning("skipping account %s: %s", name, error)
            else:  # the caller says what it means
                broken.setdefault(name, str(error))
    return accounts


def list_accounts(config_dir: Path, server_url: str,
                  broken: dict[str, str] | None = None) -> list[Account]:
    """The readable accounts for ``server_url``, oldest first; unreadable ones are logged
    and skipped (like Certbot), so one broken directory does not block the others. Their
    ids and errors go into ``broken`` when given: a caller about to register a new
    account (or to use one named in a renewal conf) must not pass over a damaged one."""
    accounts = _load_all(config_dir, accounts_dir(config_dir, server_url), broken)
    fallback = _fallback_dir(config_dir, server_url)
    if not accounts and fallback is not None:
        accounts = _load_all(config_dir, fallback, broken)
    accounts.sort(key=lambda account: (str(account.meta.get("creation_dt", "")), account.id))
    return accounts


def _valid_id(account_id: str) -> str:
    if not account_id or account_id.startswith(".") or "/" in account_id or "\0" in account_id:
        raise StorageError(f"invalid account id {account_id!r}")
    return account_id


def _find_dir(config_dir: Path, server_url: str, account_id: str) -> Path:
    _valid_id(account_id)
    directory = accounts_dir(config_dir, server_url) / account_id
    if directory.is_dir():
        return _check_inside(config_dir, directory)
    fallback = _fallback_dir(config_dir, server_url)
    if fallback is not None and (fallback / account_id).is_dir():
        return _check_inside(config_dir, fallback / account_id)
    raise StorageError(f"no account {account_id} for {server_url} (looked in {directory})")


def load_account(config_dir: Path, server_url: str, account_id: str) -> Account:
    """One account; StorageError naming the file if a file is missing or unreadable."""
    return _load_dir(_find_dir(config_dir, server_url, account_id))


def _now_rfc3339() -> str:
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta_with_defaults(meta: dict[str, Any]) -> dict[str, Any]:
    full = dict(meta)
    full.setdefault("creation_dt", _now_rfc3339())
    full.setdefault("creation_host", socket.gethostname())
    return full


def _write_files(directory: Path, account: Account) -> None:
    atomic_write(directory / KEY_FILE, account.key.json_dumps().encode(), KEY_MODE)
    meta = json.dumps(_meta_with_defaults(account.meta)).encode()
    atomic_write(directory / META_FILE, meta, FILE_MODE)
    regr = json.dumps({"body": account.body, "uri": account.uri}).encode()
    atomic_write(directory / REGR_FILE, regr, FILE_MODE)


def save_account(config_dir: Path, server_url: str, account: Account) -> None:
    """Create or update an account. A new account directory appears complete or not at
    all (it is filled under a temporary name first). Missing meta entries are filled in
    on ``account.meta`` itself."""
    account.meta = _meta_with_defaults(account.meta)
    root = Path(os.path.abspath(config_dir))
    ensure_dir(root)
    ensure_dir(accounts_dir(root, server_url), DIR_MODE)
    directory = accounts_dir(root, server_url) / _valid_id(account.id)
    _check_inside(root, directory.parent)
    if directory.is_dir():
        _write_files(_check_inside(root, directory), account)
        return
    staged = directory.with_name(f".{account.id}.new")
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(staged)
    try:
        os.mkdir(staged, DIR_MODE)
        os.chmod(staged, DIR_MODE)
        _write_files(staged, account)
        os.rename(staged, directory)
    except OSError as error:
        shutil.rmtree(staged, ignore_errors=True)
        raise StorageError(f"cannot create {directory}: {error.strerror}") from error
    except StorageError:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def has_pending_keys(config_dir: Path, server_url: str) -> bool:
    """Whether any account of ``server_url`` has a pending rollover key (a stat each)."""
    for base in (accounts_dir(config_dir, server_url), _fallback_dir(config_dir, server_url)):
        if base is not None and any(os.path.lexists(base / name / PENDING_KEY_FILE)
                                    for name in _account_names(base)):
            return True
    return False


def pending_key_path(config_dir: Path, server_url: str, account_id: str) -> Path:
    return _find_dir(config_dir, server_url, account_id) / PENDING_KEY_FILE


def write_pending_key(config_dir: Path, server_url: str, account_id: str, key: JWK) -> Path:
    """Keep ``key`` beside the account's key (0600, atomic) before the CA is asked to
    switch to it; return where it is."""
    path = pending_key_path(config_dir, server_url, account_id)
    atomic_write(path, key.json_dumps().encode(), PENDING_KEY_MODE)
    return path


def read_pending_key(config_dir: Path, server_url: str, account_id: str) -> JWK | None:
    """The pending rollover key of an account, None when there is none."""
    path = pending_key_path(config_dir, server_url, account_id)
    if not os.path.lexists(path):
        return None
    return read_key(path)


def drop_pending_key(config_dir: Path, server_url: str, account_id: str) -> None:
    path = pending_key_path(config_dir, server_url, account_id)
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        raise StorageError(f"cannot remove {path}: {error.strerror}") from error
    fsync_dir(path.parent)


def delete_account(config_dir: Path, server_url: str, account_id: str) -> None:
    """Remove an account's directory, and the server's directory if it is left empty.

    A directory that is a link (Certbot links v2 directories to v1 ones) is removed with
    the directory it points to, as Certbot does, when that lies in the same ``accounts``
    directory; a link leading anywhere else is removed alone.
    """
    directory = _find_dir(config_dir, server_url, account_id)
    store = os.path.realpath(Path(os.path.abspath(config_dir)) / "accounts")
    try:
        if directory.is_symlink():
            target = directory.resolve()
            directory.unlink()
            if _inside(target, store):
                shutil.rmtree(target)
        else:
            shutil.rmtree(directory)
    except OSError as error:
        raise StorageError(f"cannot remove {directory}: {error.strerror}") from error
    server_dir = directory.parent
    with contextlib.suppress(OSError):
        if not os.listdir(server_dir):
            if server_dir.is_symlink():
                target = server_dir.resolve()
                server_dir.unlink()
                if _inside(target, store):
                    target.rmdir()
            else:
                server_dir.rmdir()


def _inside(path: Path, directory: str) -> bool:
    return os.path.commonpath([str(path), directory]) == directory and str(path) != directory
