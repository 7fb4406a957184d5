"""Plugin discovery through entry points; the built-in plugins register the same way.

A plugin that fails to import is listed with its reason and never crashes the tool.
"""

from __future__ import annotations

import functools
from importlib import metadata
from typing import Any

from certwright.core.errors import ConfigError
from certwright.core.interfaces import PluginInfo

AUTHENTICATORS = "certwright.authenticators"
INSTALLERS = "certwright.installers"


@functools.cache
def discover(group: str) -> tuple[PluginInfo, ...]:
    """Every plugin registered in ``group``, loaded; sorted by name."""
    found: dict[str, PluginInfo] = {}
    for ep in metadata.entry_points(group=group):
        if ep.name in found:
            continue
        info = PluginInfo(name=ep.name, group=group, target=ep.value)
        try:
            cls: Any = ep.load()
            info.cls = cls
            info.description = str(getattr(cls, "description", "")).strip()
        except Exception as exc:  # a broken third-party plugin must not stop the tool
            info.error = f"failed to load: {type(exc).__name__}: {exc}"
        found[ep.name] = info
    return tuple(sorted(found.values(), key=lambda p: p.name))


def find(group: str, name: str) -> type[Any]:
    """The plugin class called ``name``, or a ConfigError naming the installed ones."""
    plugins = discover(group)
    kind = "authenticator" if group == AUTHENTICATORS else "installer"
    for info in plugins:
        if info.name == name:
            if info.cls is None:
                raise ConfigError(f"the {kind} {name!r} can't be used: {info.error}")
            return info.cls
    names = ", ".join(p.name for p in plugins if p.cls is not None) or "none"
    raise ConfigError(f"unknown {kind} {name!r}; installed: {names}")
