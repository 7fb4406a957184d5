"""Certificate lineages in Certbot's layout.

::

    archive/<name>/{cert,chain,fullchain,privkey}N.pem     every version ever saved
    live/<name>/{cert,chain,fullchain,privkey}.pem         relative links to one version
    live/<name>/README
    renewal/<name>.conf                                    see renewal_conf

Switching versions is crash safe. Archive files are written atomically (a version is
"complete" once all four exist). The new links are built in a sibling directory
``live/.<name>.new`` which is then exchanged with ``live/<name>`` in one step by Linux
``renameat2(RENAME_EXCHANGE)``; a reader sees the old four links or the new four, never a
mix. Where the exchange is not supported, two renames are used (``live/<name>`` is briefly
absent, never mixed) and :func:`repair_store` completes an interrupted switch. The
directory mechanics live in :mod:`certwright.core.storage.livedir`.

Creating, listing, loading, deleting and repairing lineages (the store as a whole)
live in :mod:`certwright.core.storage.store`; they are importable from here too.

Callers hold the store lock (:mod:`certwright.core.storage.lock`) around writes.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from certwright.core.errors import StorageError
from certwright.core.storage import confine
from certwright.core.storage.files import (
    atomic_write,
    fsync_dir,
    is_temp_name,
)
from certwright.core.storage.livedir import NEW_SUFFIX as _NEW_SUFFIX
from certwright.core.storage.livedir import README as README
from certwright.core.storage.livedir import build_live_dir as _build_live_dir
from certwright.core.storage.livedir import exchange_paths as exchange_paths
from certwright.core.storage.livedir import install_live_dir as _install_live_dir
from certwright.core.storage.livedir import remove_tree as _remove_tree
from certwright.core.storage.renewal_conf import (
    ALL_FOUR,
    RenewalConf,
    write_renewal_conf,
)

if TYPE_CHECKING:
    from cryptography import x509

    from certwright.core.storage.store import delete_lineage as delete_lineage
    from certwright.core.storage.store import find_lineage as find_lineage
    from certwright.core.storage.store import list_lineages as list_lineages
    from certwright.core.storage.store import load_lineage as load_lineage
    from certwright.core.storage.store import new_lineage as new_lineage
    from certwright.core.storage.store import repair_store as repair_store

KEY_MODE = 0o600
"""Mode of a new private key; group bits of the previous key are kept (as Certbot does)."""
_KEPT_KEY_BITS = 0o074  # group rwx and other read, carried over from the previous key
_FILE_MODE = 0o644
_TOP_DIR_MODE = 0o700  # renewal/, archive/, live/ as Certbot creates them
_LINEAGE_DIR_MODE = 0o755  # archive/<name>/, live/<name>/
_VERSIONED = re.compile(r"(cert|privkey|chain|fullchain)([0-9]+)\.pem")
_LIST_KNOWN_NAMES = 10

# --- low-level helpers -------------------------------------------------------------------


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise StorageError(f"cannot read {path}: {error.strerror}") from error


def _version_of(target: str, kind: str) -> int | None:
    match = _VERSIONED.fullmatch(os.path.basename(target))
    if match is None or match.group(1) != kind:
        return None
    return int(match.group(2))


def _valid_name(name: str) -> str:
    if not name or name.startswith(".") or "/" in name or "\0" in name:
        raise StorageError(f"invalid certificate name {name!r}")
    return name


def _describe_key(public_key: object) -> str:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"ECDSA {public_key.curve.name}"
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA {public_key.key_size}"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(public_key, dsa.DSAPublicKey):
        return f"DSA {public_key.key_size}"
    return type(public_key).__name__


def cert_matches_key(cert_pem: bytes, key_pem: bytes) -> bool:
    """Whether the certificate in ``cert_pem`` is for the private key in ``key_pem``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return False
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)


# --- the lineage ---------------------------------------------------------------------------


def default_conf(config_dir: Path, name: str, version: str = "") -> RenewalConf:
    """The conf Certbot would write for ``name`` under ``config_dir`` (absolute paths)."""
    root = os.path.abspath(config_dir)
    live = os.path.join(root, "live", name)
    return RenewalConf(
        name=name,
        path=Path(root, "renewal", f"{name}.conf"),
        version=version,
        archive_dir=os.path.join(root, "archive", name),
        cert=os.path.join(live, "cert.pem"),
        privkey=os.path.join(live, "privkey.pem"),
        chain=os.path.join(live, "chain.pem"),
        fullchain=os.path.join(live, "fullchain.pem"),
    )


def check_conf(config_dir: Path, conf: RenewalConf) -> RenewalConf:
    """``conf`` (read from a file that may be hand-edited or planted) names only the
    store's own ``archive/<name>`` and files directly in ``live/<name>/``, each kind under
    its own file name; StorageError naming the file and entry otherwise."""
    root = os.path.abspath(config_dir)
    live = f"{root}/live/{conf.name}"
    if conf.archive_dir == f"{root}/archive/{conf.name}" and conf.cert == f"{live}/cert.pem" \
            and conf.privkey == f"{live}/privkey.pem" and conf.chain == f"{live}/chain.pem" \
            and conf.fullchain == f"{live}/fullchain.pem":
        return conf  # as written by Certbot and certwright: the common case, checked fast
    confine.check_dir(conf.archive_dir, os.path.join(root, "archive", conf.name),
                      f"{conf.path}: archive_dir = {conf.archive_dir}")
    live = os.path.join(root, "live", conf.name)
    seen: set[str] = set()
    for kind in ALL_FOUR:
        value = getattr(conf, kind)
        confine.check_in(value, live, f"{conf.path}: {kind} = {value}")
        base = os.path.basename(value)
        if base in seen or base == README:
            raise StorageError(f"{conf.path}: {kind} = {value} names a file another entry "
                               "uses; refusing to use it")
        seen.add(base)
    return conf


@dataclass(eq=False)
class Lineage:
    """One certificate lineage. ``error`` is set (and ``conf`` holds default paths) when
    its renewal conf could not be read; such a lineage is listed but not used."""

    name: str
    config_dir: Path
    conf: RenewalConf
    error: str | None = None
    _certificate: x509.Certificate | None = field(default=None, init=False, repr=False)

    # paths
    @property
    def cert(self) -> Path:
        return Path(self.conf.cert)

    @property
    def privkey(self) -> Path:
        return Path(self.conf.privkey)

    @property
    def chain(self) -> Path:
        return Path(self.conf.chain)

    @property
    def fullchain(self) -> Path:
        return Path(self.conf.fullchain)

    @property
    def live_dir(self) -> Path:
        return Path(self.conf.cert).parent

    @property
    def archive_dir(self) -> Path:
        return Path(self.conf.archive_dir)

    @property
    def renewal_conf_path(self) -> Path:
        return self.conf.path

    @property
    def params(self) -> dict[str, object]:
        return self.conf.params

    def link(self, kind: str) -> Path:
        """The live path of ``kind`` (one of cert, privkey, chain, fullchain)."""
        if kind not in ALL_FOUR:
            raise ValueError(f"unknown kind {kind!r}")
        return Path(getattr(self.conf, kind))

    def archive_path(self, kind: str, version: int) -> Path:
        return self.archive_dir / f"{kind}{version}.pem"

    # versions
    def archive_versions(self) -> dict[str, set[int]]:
        """Versions present in the archive, per kind."""
        found: dict[str, set[int]] = {kind: set() for kind in ALL_FOUR}
        try:
            names = os.listdir(self.archive_dir)
        except FileNotFoundError:
            return found
        except OSError as error:
            raise StorageError(f"cannot list {self.archive_dir}: {error.strerror}") from error
        for entry in names:
            match = _VERSIONED.fullmatch(entry)
            if match:
                found[match.group(1)].add(int(match.group(2)))
        return found

    def complete_versions(self) -> list[int]:
        """Versions with all four archive files, newest first."""
        found = self.archive_versions()
        common = set.intersection(*found.values())
        return sorted(common, reverse=True)

    def latest_version(self) -> int:
        """The highest version with all four archive files present (0 if there is none)."""
        complete = self.complete_versions()
        return complete[0] if complete else 0

    def _next_free_version(self) -> int:
        # Past every partial version too, so nothing half-written is ever reused.
        found = self.archive_versions()
        return max(itertools.chain.from_iterable(found.values()), default=0) + 1

    def link_versions(self) -> dict[str, int | None]:
        """The version each live link names (None: missing or not an archive file name)."""
        versions: dict[str, int | None] = {}
        for kind in ALL_FOUR:
            try:
                versions[kind] = _version_of(os.readlink(getattr(self.conf, kind)), kind)
            except OSError:
                versions[kind] = None
        return versions

    def check_links(self) -> None:
        """The live and archive directories are real directories and every live file
        present is a link into the archive: checked before anything is written through
        them (a regular file there is refused, never replaced)."""
        confine.check_real_dir(str(self.live_dir))
        confine.check_real_dir(self.conf.archive_dir)
        for kind in ALL_FOUR:
            confine.link_target(getattr(self.conf, kind), self.conf.archive_dir)

    def current_version(self) -> int:
        """The version ``cert.pem`` points to."""
        link = self.conf.cert
        target = confine.link_target(link, self.conf.archive_dir)
        if target is None:
            raise StorageError(f"{link} is missing")
        version = _version_of(target, "cert")
        if version is None:
            raise StorageError(f"{link} points to {target}, not to an archive version")
        return version

    def is_consistent(self) -> bool:
        """All four links name the same version and their files exist."""
        versions = set(self.link_versions().values())
        if len(versions) != 1 or None in versions:
            return False
        return all(os.path.exists(getattr(self.conf, kind)) for kind in ALL_FOUR)

    # the certificate
    def cert_pem(self) -> bytes:
        return _read(self.cert)

    def privkey_pem(self) -> bytes:
        return _read(self.privkey)

    @property
    def certificate(self) -> x509.Certificate:
        """The current certificate, parsed on first use."""
        if self._certificate is None:
            from cryptography import x509

            confine.link_target(self.conf.cert, self.conf.archive_dir)  # Certbot's rule
            try:
                self._certificate = x509.load_pem_x509_certificate(self.cert_pem())
            except ValueError as error:
                raise StorageError(f"{self.cert} is not a PEM certificate: {error}") from error
        return self._certificate

    @property
    def names(self) -> list[str]:
        """The certificate's names: the subject CN first (if any), then its SANs."""
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        cert = self.certificate
        names: list[str] = []
        for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            value = attribute.value
            names.append(value if isinstance(value, str) else value.decode())
        try:
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return names
        for dns in sans.get_values_for_type(x509.DNSName):
            if dns not in names:
                names.append(dns)
        for ip in sans.get_values_for_type(x509.IPAddress):
            if str(ip) not in names:
                names.append(str(ip))
        return names

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    @property
    def key_type(self) -> str:
        """E.g. ``ECDSA secp256r1`` or ``RSA 2048``."""
        return _describe_key(self.certificate.public_key())

    # writing
    def save_successor(
        self,
        cert: bytes,
        chain: bytes,
        fullchain: bytes,
        privkey: bytes | None,
        params: Mapping[str, object],
        version_string: str | None = None,
    ) -> int:
        """Store a new version and make it current; return its number.

        ``privkey`` None keeps the current key (its bytes are copied into the new version).
        The new key file gets 0600 plus the group bits and group of the previous key. The
        renewal conf (``params``, and ``version`` if given) is rewritten before the switch
        (as Certbot does), so switching is the last step: a failure or a crash anywhere
        before it leaves the lineage "not renewed", serving the previous version.
        """
        self.check_links()
        prior = self.current_version()
        self._remove_temp_files()
        new = self._next_free_version()
        key_bytes = privkey if privkey is not None else _read(self.privkey)
        conf = replace(self.conf, params=dict(params),
                       version=self.conf.version if version_string is None else version_string)
        try:
            self._write_key(new, key_bytes, self.archive_path("privkey", prior))
            for kind, data in (("chain", chain), ("fullchain", fullchain), ("cert", cert)):
                atomic_write(self.archive_path(kind, new), data, _FILE_MODE, sync_dir=False)
            fsync_dir(self.archive_dir)  # the four new names, before live/ points at them
            write_renewal_conf(conf)
            self.conf = conf
            self._switch_live(new)
        except BaseException:
            self._drop_unused_version(new)  # a failed write (a full disk): no half version
            raise
        self._certificate = None
        return new

    def _drop_unused_version(self, version: int) -> None:
        with contextlib.suppress(Exception):
            if self.current_version() != version:
                for kind in ALL_FOUR:
                    self.archive_path(kind, version).unlink(missing_ok=True)

    def _write_key(self, version: int, data: bytes, previous: Path) -> None:
        path = self.archive_path("privkey", version)
        atomic_write(path, data, KEY_MODE, sync_dir=False)  # (the caller syncs the dir)
        try:
            old = os.stat(previous)
        except FileNotFoundError:
            return
        except OSError as error:
            raise StorageError(f"cannot stat {previous}: {error.strerror}") from error
        try:
            if old.st_gid != os.stat(path).st_gid:
                os.chown(path, -1, old.st_gid)
            os.chmod(path, KEY_MODE | (old.st_mode & _KEPT_KEY_BITS))
        except OSError as error:
            raise StorageError(f"cannot set the mode of {path}: {error.strerror}") from error

    def _remove_temp_files(self) -> None:
        with contextlib.suppress(OSError):
            for entry in os.listdir(self.archive_dir):
                if is_temp_name(entry):
                    (self.archive_dir / entry).unlink(missing_ok=True)

    def _link_targets(self, version: int, live_dir: Path) -> dict[str, str]:
        return {
            self.link(kind).name: os.path.relpath(self.archive_path(kind, version), live_dir)
            for kind in ALL_FOUR
        }

    def _switch_live(self, version: int) -> None:
        """Point all four live links at ``version`` in one atomic step (the conf's paths
        are all in ``live/<name>/``: :func:`check_conf`)."""
        live_dir = self.live_dir
        staged = live_dir.with_name(f".{live_dir.name}{_NEW_SUFFIX}")
        _remove_tree(staged)
        _build_live_dir(staged, live_dir, self._link_targets(version, live_dir), self.name)
        _install_live_dir(staged, live_dir)

    def repair(self) -> str | None:
        """Re-point disagreeing or broken live links to the newest complete version whose
        certificate matches its key; say what was done (None if nothing was needed)."""
        if self.is_consistent():
            return None
        try:
            self.check_links()
        except StorageError as error:
            return f"{self.name}: not repaired: {error}"
        self._certificate = None
        before = self.link_versions()
        described = ", ".join(f"{kind} {before[kind] or 'missing'}" for kind in ALL_FOUR)
        for version in self.complete_versions():
            cert = self.archive_path("cert", version)
            key = self.archive_path("privkey", version)
            if cert_matches_key(_read(cert), _read(key)):
                self._remove_temp_files()
                self._switch_live(version)
                return f"{self.name}: live links were inconsistent ({described}); " \
                    f"re-pointed to version {version}"
        return f"{self.name}: live links are inconsistent ({described}) and " \
            f"{self.archive_dir} holds no complete version whose certificate matches its key"


_STORE_FUNCTIONS = frozenset({"delete_lineage", "find_lineage", "list_lineages", "load_lineage",
                              "new_lineage", "repair_store"})


def __getattr__(name: str) -> object:
    """The store functions under their old names (``lineage.list_lineages``), loaded on
    first use: ``store`` imports this module, so it can't be imported from here eagerly."""
    if name in _STORE_FUNCTIONS:
        from certwright.core.storage import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
