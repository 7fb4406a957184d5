"""Store paths read from files that may be hand-edited or planted (renewal confs, live
links, account directories) are followed only inside the store's own directories.

A renewal conf names its lineage's files by absolute path. Certbot writes
``<config>/live/<name>/<kind>.pem`` and ``<config>/archive/<name>``; anything else (a
regular file elsewhere, another lineage's directory, a path through ``..``) is refused
before anything is read or written through it, as is a live file that is not a link
("expected … to be a symlink", Certbot's words) or a link that leads out of the archive.
A config dir reached through a symlink is accepted (the paths are compared resolved
when they differ as written).
"""

from __future__ import annotations

import os
import stat

from certwright.core.errors import StorageError


def _same_place(given: str, expected: str) -> bool:
    given = os.path.normpath(given)
    if given == expected:
        return True
    return os.path.realpath(given) == os.path.realpath(expected)


def check_dir(given: str, expected: str, what: str) -> None:
    """``given`` (from ``what``) names the directory ``expected`` (absolute)."""
    if not os.path.isabs(given) or not _same_place(given, expected):
        raise StorageError(f"{what} is outside the store's {expected}; refusing to use it")


def check_in(given: str, directory: str, what: str) -> None:
    """The path ``given`` (from ``what``) lies directly in ``directory`` (absolute)."""
    if not os.path.isabs(given) or not _same_place(os.path.dirname(given), directory):
        raise StorageError(f"{what} is outside the store's {directory}/; refusing to use it")


def check_real_dir(path: str) -> None:
    """``path`` is a directory itself, not a link to one elsewhere (absent is fine)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise StorageError(f"cannot read {path}: {error.strerror}") from error
    if not stat.S_ISDIR(mode):
        raise StorageError(f"expected {path} to be a directory (not a link or a file)")


def link_target(link: str, archive_dir: str) -> str | None:
    """The target text of the live link ``link`` (None when absent); StorageError when it
    is not a link or leads anywhere but into ``archive_dir``."""
    try:
        mode = os.lstat(link).st_mode
    except FileNotFoundError:
        return None
    except OSError as error:
        raise StorageError(f"cannot read {link}: {error.strerror}") from error
    if not stat.S_ISLNK(mode):
        raise StorageError(f"expected {link} to be a symlink")
    target = os.readlink(link)
    check_target(link, target, archive_dir)
    return target


def check_target(link: str, target: str, archive_dir: str) -> None:
    """The link ``link`` with the text ``target`` leads into ``archive_dir``."""
    resolved = os.path.join(os.path.dirname(link), target)
    if not _same_place(os.path.dirname(resolved), os.path.normpath(archive_dir)):
        raise StorageError(f"{link} points to {target}, outside {archive_dir}; refusing to "
                           "follow it")
