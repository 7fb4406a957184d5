"""Where each distribution family keeps its Apache configuration: data, not subclasses.

A layout names the main file under the server root, the command names, the environment
file that ``apache2ctl`` sources (Debian's ``envvars``), and the directories a tool may use
for sites and modules. :func:`detect_layout` picks the first layout whose main file exists.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from certwright.core.errors import PluginError


@dataclass(frozen=True)
class Layout:
    name: str
    main_file: str
    """Relative to the server root."""
    binary: str
    ctl: str
    envvars: str | None
    """A shell file of ``export NAME=value`` lines, relative to the server root."""
    sites_available: str | None
    sites_enabled: str | None
    mods_available: str | None
    mods_enabled: str | None
    conf_available: str | None
    conf_dir: str
    """Where a managed configuration file is read from (``conf-enabled`` / ``conf.d``)."""


_RHEL = Layout(
    name="rhel",
    main_file="conf/httpd.conf",
    binary="httpd",
    ctl="apachectl",
    envvars=None,
    sites_available=None,
    sites_enabled=None,
    mods_available=None,
    mods_enabled="conf.modules.d",
    conf_available=None,
    conf_dir="conf.d",
)
LAYOUTS: tuple[Layout, ...] = (
    Layout(
        name="debian",
        main_file="apache2.conf",
        binary="apache2",
        ctl="apache2ctl",
        envvars="envvars",
        sites_available="sites-available",
        sites_enabled="sites-enabled",
        mods_available="mods-available",
        mods_enabled="mods-enabled",
        conf_available="conf-available",
        conf_dir="conf-enabled",
    ),
    _RHEL,
    replace(_RHEL, name="flat", main_file="httpd.conf"),  # RHEL's, its main file at the top
)
LAYOUTS_BY_NAME: Mapping[str, Layout] = {layout.name: layout for layout in LAYOUTS}


def detect_layout(server_root: str) -> Layout:
    """The first layout whose main file exists under ``server_root``; a clear error if none."""
    if not os.path.isdir(server_root):
        raise PluginError(f"--apache-server-root {server_root}: not a directory")
    for layout in LAYOUTS:
        if os.path.isfile(os.path.join(server_root, layout.main_file)):
            return layout
    wanted = ", ".join(layout.main_file for layout in LAYOUTS)
    raise PluginError(
        f"--apache-server-root {server_root}: no Apache main file there (looked for {wanted})"
    )


_ASSIGN = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def read_envvars(path: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``NAME=value`` assignments of a Debian ``envvars`` file, ``$VAR`` expanded.

    Only plain assignments are read (no shell is run); a reference to a name not assigned
    before expands to "" as in the shell, so ``$SUFFIX`` of the stock file vanishes.
    ``base`` holds values already in the environment; they win over the file's, as
    ``apache2ctl`` lets a caller's ``APACHE_*`` pass through only where the file doesn't set
    them — here the caller's values are taken as the more specific ones.
    """
    values: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return dict(base or {})
    except OSError as exc:
        raise PluginError(f"{path}: cannot read: {exc.strerror}") from exc
    for line in lines:
        match = _ASSIGN.match(line)
        if match is None or line.lstrip().startswith("#"):
            continue
        raw = match.group(2).strip()
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
            raw = raw[1:-1]
        values[match.group(1)] = _REF.sub(lambda m: values.get(m.group(1) or m.group(2), ""), raw)
    values.update(base or {})
    return values
