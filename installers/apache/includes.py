"""Which files an ``Include`` names, in the order Apache reads them.

Apache 2.4 (``ap_process_fnmatch_configs``): a relative path is taken from the server
root; wildcards (``*``, ``?``, ``[…]``) may stand in any path component; the entries of a
directory are sorted byte-wise (``strcmp``); a wildcard does not match a leading dot
(``APR_FNM_PERIOD``); a directory that is named or matched is read whole, recursively, in
sorted order. ``Include`` with nothing to read is an error; ``IncludeOptional`` is not.
"""

from __future__ import annotations

import fnmatch
import os
import re

from certwright.core.errors import PluginError

_WILD = re.compile(r"[*?\[]")


def _sorted_entries(directory: str) -> list[str]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(names, key=lambda n: os.fsencode(n))


def _read_dir(directory: str) -> list[str]:
    out: list[str] = []
    for name in _sorted_entries(directory):
        path = os.path.join(directory, name)
        if os.path.isdir(path):
            out.extend(_read_dir(path))
        elif os.path.isfile(path):
            out.append(path)
    return out


def _match(name: str, pattern: str) -> bool:
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, pattern)


def expand(pattern: str, server_root: str, *, optional: bool, where: str) -> list[str]:
    """The files ``Include[Optional] pattern`` reads, in order; raises for a bad ``Include``."""
    path = pattern if os.path.isabs(pattern) else os.path.join(server_root, pattern)
    path = os.path.normpath(path)
    kind = "IncludeOptional" if optional else "Include"
    if not _WILD.search(path):
        if os.path.isdir(path):
            return _read_dir(path)
        if os.path.isfile(path):
            return [path]
        if optional:
            return []
        raise PluginError(f"{where}: {kind} {pattern}: {path} does not exist")
    parts = path.split(os.sep)
    found = [os.sep]
    for index, part in enumerate(parts[1:], start=1):
        last = index == len(parts) - 1
        nxt: list[str] = []
        for base in found:
            if _WILD.search(part):
                names = [n for n in _sorted_entries(base) if _match(n, part)]
            else:
                names = [part] if os.path.lexists(os.path.join(base, part)) else []
            for name in names:
                candidate = os.path.join(base, name)
                if last or os.path.isdir(candidate):
                    nxt.append(candidate)
        found = nxt
    files: list[str] = []
    for candidate in found:
        if os.path.isdir(candidate):
            files.extend(_read_dir(candidate))
        elif os.path.isfile(candidate):
            files.append(candidate)
    if not files and not optional:
        raise PluginError(f"{where}: {kind} {pattern}: no file matches")
    return files
