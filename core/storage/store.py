"""The store of lineages: creating one (crash safe from its first save), listing,
loading and deleting them, and repairing what an interrupted write left.

:mod:`certwright.core.storage.lineage` holds one lineage (its versions, links, successor
saves) and re-exports the functions here under their old names.

Callers hold the store lock (:mod:`certwright.core.storage.lock`) around writes.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from certwright.core.errors import StorageError
from certwright.core.storage.files import (
    atomic_write,
    ensure_dir,
    fsync_dir,
    is_temp_name,
)
from certwright.core.storage.lineage import (
    _FILE_MODE,
    _LINEAGE_DIR_MODE,
    _LIST_KNOWN_NAMES,
    _TOP_DIR_MODE,
    _VERSIONED,
    KEY_MODE,
    Lineage,
    _valid_name,
    cert_matches_key,
    check_conf,
    default_conf,
)
from certwright.core.storage.livedir import NEW_SUFFIX as _NEW_SUFFIX
from certwright.core.storage.livedir import OLD_SUFFIX as _OLD_SUFFIX
from certwright.core.storage.livedir import README, finish_interrupted_switches
from certwright.core.storage.livedir import build_live_dir as _build_live_dir
from certwright.core.storage.livedir import install_live_dir as _install_live_dir
from certwright.core.storage.livedir import remove_tree as _remove_tree
from certwright.core.storage.livedir import write_base_readme as _write_base_readme
from certwright.core.storage.renewal_conf import (
    ALL_FOUR,
    read_renewal_conf,
    write_renewal_conf,
)

# --- a new lineage -------------------------------------------------------------------------


def _claim_name(root: Path, wanted: str) -> str:
    """Reserve a free lineage name (``wanted``, ``wanted-0001``, ...) by creating its
    archive directory."""
    for count in itertools.count():
        name = wanted if count == 0 else f"{wanted}-{count:04d}"
        live = root / "live" / name
        if (root / "renewal" / f"{name}.conf").exists() \
                or os.path.lexists(_pending_conf(root, name)):
            continue
        if os.path.lexists(live) and (not live.is_dir() or os.listdir(live)):
            continue
        archive = root / "archive" / name
        try:
            os.mkdir(archive, _LINEAGE_DIR_MODE)
        except FileExistsError:
            if not archive.is_dir() or os.listdir(archive):
                continue
        except OSError as error:
            raise StorageError(f"cannot create {archive}: {error.strerror}") from error
        os.chmod(archive, _LINEAGE_DIR_MODE)
        return name
    raise AssertionError("unreachable")  # pragma: no cover


def new_lineage(
    config_dir: Path,
    name: str,
    cert: bytes,
    chain: bytes,
    fullchain: bytes,
    privkey: bytes,
    params: Mapping[str, object],
    version_string: str,
) -> Lineage:
    """Create a lineage at version 1. If ``name`` is taken, ``name-0001``, ``name-0002``, ...
    is used (as Certbot does); the returned lineage carries the name actually used."""
    root = Path(os.path.abspath(config_dir))
    _valid_name(name)
    ensure_dir(root)
    for sub in ("renewal", "archive", "live"):
        ensure_dir(root / sub, _TOP_DIR_MODE)
    for kind in ("pre", "deploy", "post"):  # where Certbot users look for them
        ensure_dir(root / "renewal-hooks" / kind)
    _write_base_readme(root / "live")
    name = _claim_name(root, name)
    conf = default_conf(root, name, version_string)
    conf.params = dict(params)
    lineage = Lineage(name, root, conf)
    pending = _pending_conf(root, name)
    try:
        # the conf first, under a hidden name: a crash from here on leaves a lineage that
        # repair_store finishes (all of live/ there) or removes, never one without a conf
        write_renewal_conf(replace(conf, path=pending))
        for kind, data, mode in (("privkey", privkey, KEY_MODE), ("chain", chain, _FILE_MODE),
                                 ("fullchain", fullchain, _FILE_MODE), ("cert", cert, _FILE_MODE)):
            atomic_write(lineage.archive_path(kind, 1), data, mode, sync_dir=False)
        fsync_dir(lineage.archive_dir)  # the four names, before live/ points at them
        fsync_dir(lineage.archive_dir.parent)  # and archive/<name> itself (made just now)
        live_dir = lineage.live_dir
        staged = live_dir.with_name(f".{name}{_NEW_SUFFIX}")
        _remove_tree(staged)
        _build_live_dir(staged, live_dir, lineage._link_targets(1, live_dir), name)
        _install_live_dir(staged, live_dir)
        _publish_conf(pending, conf.path)  # last: the lineage exists once its conf does
    except BaseException:
        # each on its own: an archive left behind would make the next try "<name>-0001"
        for leftover in (lineage.live_dir, lineage.live_dir.with_name(f".{name}{_NEW_SUFFIX}"),
                         lineage.archive_dir, pending):
            with contextlib.suppress(StorageError):
                _remove_tree(leftover)
        raise
    return lineage


_PENDING_SUFFIX = ".conf.pending"


def _pending_conf(root: Path, name: str) -> Path:
    """Where a first save keeps its renewal conf until the lineage is complete."""
    return root / "renewal" / f".{name}{_PENDING_SUFFIX}"


def _publish_conf(pending: Path, final: Path) -> None:
    try:
        os.rename(pending, final)
    except OSError as error:
        raise StorageError(f"cannot rename {pending} to {final}: {error.strerror}") from error
    fsync_dir(final.parent)


def _finish_first_saves(root: Path, entries: list[str]) -> list[str]:
    """Complete or remove each lineage whose first save was interrupted (its conf still
    pending): with all four live links at a version whose certificate matches its key it
    is published, else its live dir, archive and pending conf go, so the same command
    run again makes it under its own name (not ``<name>-0001``)."""
    messages = []
    for entry in entries:
        if not (entry.startswith(".") and entry.endswith(_PENDING_SUFFIX)):
            continue
        name = entry[1:-len(_PENDING_SUFFIX)]
        pending, final = root / "renewal" / entry, root / "renewal" / f"{name}.conf"
        if not name or os.path.lexists(final):
            _remove_tree(pending)
            messages.append(f"removed leftover {pending}")
            continue
        lineage = Lineage(name, root, default_conf(root, name))
        if _is_complete(lineage):
            _publish_conf(pending, final)
            messages.append(f"{name}: finished an interrupted first save")
            continue
        live_dir = lineage.live_dir
        for leftover in (live_dir, live_dir.with_name(f".{name}{_NEW_SUFFIX}")):
            _remove_tree(leftover)
        _remove_archive(lineage.archive_dir)
        _remove_tree(pending)
        messages.append(f"{name}: removed a lineage whose first save was interrupted")
    return messages


def _is_complete(lineage: Lineage) -> bool:
    try:
        lineage.check_links()
        if not lineage.is_consistent():
            return False
        return cert_matches_key(lineage.cert_pem(), lineage.privkey_pem())
    except StorageError:
        return False


# --- the store -----------------------------------------------------------------------------


def _conf_names(config_dir: Path) -> list[str]:
    try:
        entries = os.listdir(Path(config_dir) / "renewal")
    except FileNotFoundError:
        return []
    except OSError as error:
        raise StorageError(f"cannot list {config_dir}/renewal: {error.strerror}") from error
    return sorted(e[:-5] for e in entries if e.endswith(".conf") and not e.startswith("."))


def list_lineages(config_dir: Path) -> list[Lineage]:
    """Every lineage with a renewal conf, sorted by name. A conf that cannot be read gives
    a lineage with ``error`` set instead of stopping the listing. Certificates are not read."""
    root = Path(os.path.abspath(config_dir))
    renewal = root / "renewal"
    lineages = []
    for name in _conf_names(root):
        try:
            conf = check_conf(root, read_renewal_conf(renewal.joinpath(name + ".conf")))
        except StorageError as error:
            lineages.append(Lineage(name, root, default_conf(root, name), error=str(error)))
            continue
        lineages.append(Lineage(name, root, conf))
    return lineages


def find_lineage(config_dir: Path, name: str) -> Lineage | None:
    """The lineage ``name``, None when it has no renewal conf; a conf that exists but
    can't be read or used raises StorageError naming it."""
    root = Path(os.path.abspath(config_dir))
    if not os.path.lexists(root / "renewal" / f"{_valid_name(name)}.conf"):
        return None
    return load_lineage(root, name)


def load_lineage(config_dir: Path, name: str) -> Lineage:
    """The lineage ``name``; StorageError if there is none or its conf cannot be read."""
    root = Path(os.path.abspath(config_dir))
    path = root / "renewal" / f"{_valid_name(name)}.conf"
    if not os.path.lexists(path):  # a dangling link is read, and its error named
        known = _conf_names(root)
        if not known:
            hint = "there are no certificates"
        elif len(known) <= _LIST_KNOWN_NAMES:
            hint = "known names: " + ", ".join(known)
        else:
            hint = f"there are {len(known)} other certificates"
        raise StorageError(f"no certificate named {name!r} in {root} ({hint})")
    return Lineage(name, root, check_conf(root, read_renewal_conf(path)))


def delete_lineage(config_dir: Path, name: str) -> None:
    """Remove the renewal conf (first, so the lineage disappears at once), the live links
    and README, and the archive files. Directories are removed once empty; files a user
    put there are left alone."""
    root = Path(os.path.abspath(config_dir))
    path = root / "renewal" / f"{_valid_name(name)}.conf"
    if not path.exists():
        raise StorageError(f"no certificate named {name!r} in {root}")
    try:
        conf = check_conf(root, read_renewal_conf(path))
    except StorageError:  # what a broken or hand-edited conf names is left alone
        conf = default_conf(root, name)
    try:
        path.unlink()
    except OSError as error:
        raise StorageError(f"cannot remove {path}: {error.strerror}") from error
    lineage = Lineage(name, root, conf)
    live_dir = lineage.live_dir
    if live_dir.is_symlink():
        live_dir.unlink()  # the link alone, never what it leads to
    else:
        for kind in ALL_FOUR:
            if lineage.link(kind).is_symlink():  # a file a user put there is left alone
                with contextlib.suppress(FileNotFoundError):
                    lineage.link(kind).unlink()
        with contextlib.suppress(FileNotFoundError):
            (live_dir / README).unlink()
        with contextlib.suppress(OSError):
            live_dir.rmdir()  # only if nothing a user put there is left
    for suffix in (_NEW_SUFFIX, _OLD_SUFFIX):
        _remove_tree(live_dir.with_name(f".{live_dir.name}{suffix}"))
    _remove_archive(lineage.archive_dir)


def _remove_archive(archive: Path) -> None:
    """Remove the archive files of a lineage, and the directory if nothing else is there.

    Only ``<kind>N.pem`` and temporary files are removed: a hand-edited ``archive_dir``
    pointing somewhere else cannot make a delete wipe unrelated files.
    """
    if archive.is_symlink():
        archive.unlink()  # the link alone, never what it leads to
        return
    try:
        entries = os.listdir(archive)
    except FileNotFoundError:
        return
    except OSError as error:
        raise StorageError(f"cannot list {archive}: {error.strerror}") from error
    for entry in entries:
        if _VERSIONED.fullmatch(entry) or is_temp_name(entry):
            with contextlib.suppress(FileNotFoundError):
                (archive / entry).unlink()
    with contextlib.suppress(OSError):
        archive.rmdir()


def repair_store(config_dir: Path, full: bool = False) -> list[str]:
    """Undo the traces of an interrupted write; return one line per thing fixed.

    Finishes or drops half-done live directory switches and removes temporary files. When
    it found such traces (or ``full``), it also re-points any lineage whose live links
    disagree (or dangle) to its newest complete version. An interrupted switch always
    leaves a trace in ``live/``, so a clean store costs two directory listings, not a
    read of every lineage. Run it at start, holding the store lock.
    """
    root = Path(os.path.abspath(config_dir))
    try:
        messages = finish_interrupted_switches(root / "live")
    except OSError as error:
        raise StorageError(f"cannot repair {root / 'live'}: {error.strerror}") from error
    renewal = root / "renewal"
    with contextlib.suppress(FileNotFoundError):
        entries = sorted(os.listdir(renewal))
        for entry in entries:
            if is_temp_name(entry):
                (renewal / entry).unlink(missing_ok=True)
                messages.append(f"removed leftover {renewal / entry}")
        messages += _finish_first_saves(root, entries)
    if not (messages or full):
        return messages
    for lineage in list_lineages(root):
        if lineage.error is None:
            fixed = lineage.repair()
            if fixed:
                messages.append(fixed)
    return messages
