"""What the local Apache binary brings: its compiled-in modules (``-l``) and version (``-v``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from certwright.core.errors import PluginError

TIMEOUT = 30.0


@dataclass(frozen=True)
class BinaryInfo:
    builtin: frozenset[str]
    """Compiled-in modules, by source name (``mod_so.c``) and identifier (``so_module``)."""
    version: tuple[int, ...] | None


def module_names(source: str) -> set[str]:
    """``mod_ssl.c`` → {``mod_ssl.c``, ``ssl_module``} (Apache's two ways to name a module)."""
    stem = source.rsplit("/", 1)[-1]
    for suffix in (".c", ".so"):
        stem = stem.removesuffix(suffix)
    ident = "http_module" if stem == "http_core" else stem.removeprefix("mod_") + "_module"
    return {stem + ".c", ident}


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PluginError(f"{argv[0]}: cannot run: {exc}") from exc
    return done.stdout


def probe_binary(binary: str) -> BinaryInfo:
    """Ask ``binary -l`` and ``binary -v``; a clear error when the binary isn't there."""
    path = shutil.which(binary)
    if path is None:
        raise PluginError(f"--apache-bin {binary}: not found")
    builtin: set[str] = set()
    for line in _run([path, "-l"]).splitlines():
        line = line.strip()
        if line.endswith(".c"):
            builtin |= module_names(line)
    match = re.search(r"Apache/(\d+(?:\.\d+)*)", _run([path, "-v"]))
    version = tuple(int(x) for x in match.group(1).split(".")) if match else None
    return BinaryInfo(frozenset(builtin), version)


DEFAULT_BINARY = BinaryInfo(
    frozenset(module_names("core.c") | module_names("http_core.c") | module_names("mod_so.c")),
    None,
)
"""What every Apache 2.4 has compiled in, for reading without a binary at hand."""
