"""Enabling Apache modules inside a plan: ``mods-enabled`` symlinks where the tree reads
that directory (Debian), else ``LoadModule`` lines in a managed file that a server-level
``Include`` reads. Both are file changes of the plan, so a rollback undoes them; nothing
runs ``a2enmod``, so another tree than the system's is never touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from certwright.core.errors import PluginError
from certwright.core.interfaces import FileChange
from certwright.core.textedit import managed_change
from certwright.installers.apache.model import ApacheConfig
from certwright.installers.apache.options import ApacheOptions

HEADER = "Made by certwright."
MODULE_DIRS = ("modules", "/usr/lib/apache2/modules", "/usr/lib64/httpd/modules",
               "/usr/lib/httpd/modules")
Put = Callable[[FileChange | None], None]


def link_change(link: str | None, target: str) -> FileChange | None:
    """The change making ``link`` a relative symlink to ``target`` (None: nothing to do)."""
    if link is None:
        return None
    relative = os.path.relpath(target, os.path.dirname(link))
    if os.path.islink(link) and os.readlink(link) == relative:
        return None
    if os.path.lexists(link) and not os.path.islink(link):
        raise PluginError(f"{link}: exists and is not a symlink; move it away first")
    replaces = os.readlink(link) if os.path.islink(link) else None
    return FileChange.symlink(link, relative, replaces=replaces)


def included(config: ApacheConfig, paths: Sequence[str], what: str) -> str:
    """The first of ``paths`` a server-level ``Include`` reads; a clear error if none."""
    for path in paths:
        if config.includes_path(path):
            return path
    raise PluginError(f"{paths[0]}: no Include of {config.main_file} reads a file there, so "
                      f"a new {what} line would never be loaded; add it yourself")


def module_path(server_root: str, short: str) -> str:
    so = f"mod_{short}.so"
    for directory in MODULE_DIRS:
        full = os.path.join(server_root, directory)
        if os.path.exists(os.path.join(full, so)):
            return os.path.join(directory, so)
    return os.path.join("modules", so)


def enable(put: Put, opts: ApacheOptions, config: ApacheConfig,
           wanted: Sequence[tuple[str, str]], file_name: str, why: str) -> None:
    """Load the modules of ``wanted`` (identifier, short name: ``("rewrite_module",
    "rewrite")``) that ``config`` does not load; ``file_name`` names the managed
    ``LoadModule`` file where there is no ``mods-enabled``."""
    missing = [(ident, short) for ident, short in wanted if ident not in config.modules]
    if not missing:
        return
    if not opts.handle_modules:
        names = ", ".join(f"mod_{short}" for _, short in missing)
        raise PluginError(f"{names} not loaded and --apache-handle-modules is off: enable "
                          f"{names} first ({why})")
    layout = opts.layout
    available = opts.path(layout.mods_available)
    enabled = opts.path(layout.mods_enabled)
    if available and enabled and os.path.isdir(available) and config.includes_path(
            os.path.join(enabled, missing[0][1] + ".load")):
        for _, short in missing:
            for ext in (".load", ".conf"):
                source = os.path.join(available, short + ext)
                if os.path.exists(source):
                    put(link_change(os.path.join(enabled, short + ext), source))
        return
    # ``00-``: read before the vhosts of a directory that holds both
    dirs = [d for d in (enabled, os.path.join(opts.server_root, layout.conf_dir),
                        opts.path(layout.sites_enabled)) if d]
    target = included(config, [os.path.join(d, file_name) for d in dirs], "LoadModule")
    lines = [f"# {HEADER}"]
    for ident, short in missing:
        lines.append(f"LoadModule {ident} {module_path(opts.server_root, short)}")
    put(managed_change(target, "\n".join(lines) + "\n"))
