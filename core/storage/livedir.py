"""The ``live/<name>/`` directory: built complete beside its final place, then put there
in one step (Linux ``renameat2(RENAME_EXCHANGE)``, or two renames where that is not
supported, finished by :func:`finish_interrupted_switches` after a crash)."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from certwright.core.errors import StorageError
from certwright.core.storage.files import atomic_write, fsync_dir, is_temp_name
from certwright.core.storage.renewal_conf import ALL_FOUR

NEW_SUFFIX = ".new"
OLD_SUFFIX = ".old"
_LINEAGE_DIR_MODE = 0o755
_FILE_MODE = 0o644

README = "README"
_LIVE_README = """\
This directory holds the current certificate of this lineage. Each .pem file here is a
link into ../../archive/{name}/; a renewal switches all four links at once.

  privkey.pem    the private key: keep it secret
  fullchain.pem  the certificate followed by the intermediate certificates; this is the
                 file most server software wants
  chain.pem      the intermediate certificates alone
  cert.pem       the certificate alone; most servers need fullchain.pem instead

Point your servers at these paths rather than at archive/, and do not move or rename
these files: certwright and Certbot find them here.
"""
_BASE_README = """\
Each directory here holds the current certificate of one lineage, named after it:

  <name>/privkey.pem    the private key: keep it secret
  <name>/fullchain.pem  certificate plus intermediates, for most server software
  <name>/chain.pem      the intermediates alone
  <name>/cert.pem       the certificate alone

The files are links that move to the newest version on renewal. Point your servers at
them and leave them where they are.
"""

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2



@functools.cache
def _libc_renameat2() -> Callable[..., int] | None:
    import ctypes  # only when a live directory is replaced, not on every start

    try:
        func: Any = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    result: Callable[..., int] = func
    return result


def exchange_paths(first: Path, second: Path) -> bool:
    """Swap two directory entries atomically; False if the system cannot do that."""
    renameat2 = _libc_renameat2()
    if renameat2 is None:
        return False
    status = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if status == 0:
        return True
    import ctypes

    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise StorageError(f"cannot exchange {first} and {second}: {os.strerror(code)}")


def remove_tree(path: Path) -> None:
    try:
        if path.is_symlink() or not path.is_dir():
            path.unlink()
        else:
            shutil.rmtree(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise StorageError(f"cannot remove {path}: {error.strerror}") from error


def build_live_dir(staged: Path, source: Path, targets: Mapping[str, str], name: str) -> None:
    """Fill ``staged`` with the links in ``targets`` plus everything else ``source`` holds."""
    try:
        os.mkdir(staged, 0o700)
        for link_name, target in targets.items():
            os.symlink(target, staged / link_name)
        skip = set(targets) | {f"previous_{kind}.pem" for kind in ALL_FOUR}
        has_readme = False
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(source):
                if entry.name in skip or is_temp_name(entry.name):
                    continue
                has_readme = has_readme or entry.name == README
                copy_entry(entry, staged / entry.name)
        if not has_readme:
            fd = os.open(staged / README, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
            os.fchmod(fd, _FILE_MODE)  # never the umask's mode
            with os.fdopen(fd, "w") as out:
                out.write(_LIVE_README.format(name=name))
        try:
            info = os.stat(source)
            mode, uid, gid = info.st_mode & 0o7777, info.st_uid, info.st_gid
        except FileNotFoundError:
            mode, uid, gid = _LINEAGE_DIR_MODE, -1, -1
        if os.geteuid() == 0 and uid >= 0:
            os.chown(staged, uid, gid)
        os.chmod(staged, mode)
    except OSError as error:
        remove_tree(staged)
        raise StorageError(f"cannot prepare {staged}: {error.strerror}") from error
    fsync_dir(staged)


def copy_entry(entry: os.DirEntry[str], dest: Path) -> None:
    """Carry a file a user keeps in a live directory over to its replacement."""
    if entry.is_symlink():
        os.symlink(os.readlink(entry.path), dest)
    elif entry.is_dir():
        shutil.copytree(entry.path, dest, symlinks=True)
    else:
        try:
            os.link(entry.path, dest)
        except OSError:
            shutil.copy2(entry.path, dest)


def install_live_dir(staged: Path, live_dir: Path) -> None:
    """Make the complete directory ``staged`` become ``live_dir``."""
    parent = live_dir.parent
    try:
        if not os.path.lexists(live_dir):
            os.rename(staged, live_dir)
        elif exchange_paths(staged, live_dir):
            fsync_dir(parent)
            remove_tree(staged)  # now holds the previous links
            return
        else:
            retired = live_dir.with_name(f".{live_dir.name}{OLD_SUFFIX}")
            remove_tree(retired)
            os.rename(live_dir, retired)
            os.rename(staged, live_dir)
            fsync_dir(parent)
            remove_tree(retired)
            return
    except OSError as error:
        raise StorageError(f"cannot switch {live_dir}: {error.strerror}") from error
    fsync_dir(parent)


def write_base_readme(live_root: Path) -> None:
    readme = live_root / README
    if not readme.exists():
        atomic_write(readme, _BASE_README.encode(), _FILE_MODE, durable=False)


def finish_interrupted_switches(live_root: Path) -> list[str]:
    messages: list[str] = []
    try:
        entries = sorted(os.listdir(live_root))
    except FileNotFoundError:
        return messages
    leftovers = [
        e for e in entries
        if e.startswith(".") and e.endswith((NEW_SUFFIX, OLD_SUFFIX)) and len(e) > 5
    ]
    for entry in leftovers:
        path = live_root / entry
        final = live_root / entry[1:-4]
        if not path.is_dir() or path.is_symlink():
            continue
        if not os.path.lexists(final):
            complete = all(os.path.exists(path / f"{kind}.pem") for kind in ALL_FOUR)
            if (entry.endswith(NEW_SUFFIX) and complete) or entry.endswith(OLD_SUFFIX):
                os.rename(path, final)
                messages.append(f"{final.name}: finished an interrupted switch of {final}")
                continue
        remove_tree(path)
        messages.append(f"removed leftover {path}")
    return messages
