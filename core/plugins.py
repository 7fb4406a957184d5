"""Plugin discovery through entry points; the built-in plugins register the same way.

A plugin that fails to import is listed with its reason and never crashes the tool.
"""

from __future__ import annotations

import functools
from importlib import metadata
from typing import Any

from certwright.core.errors import ConfigError
from certwright.core.interfaces import PluginInfo
from certwright.core.settings import Settings

AUTHENTICATORS = "certwright.authenticators"
INSTALLERS = "certwright.installers"


@functools.cache
def _all_entries() -> dict[str, dict[str, metadata.EntryPoint]]:
    """Both groups' entry points by name (the first registration of a name wins), from
    one scan of the installed distributions: a command that loads an authenticator and
    an installer reads every distribution's metadata once, not once per group."""
    found: dict[str, dict[str, metadata.EntryPoint]] = {AUTHENTICATORS: {}, INSTALLERS: {}}
    for dist in metadata.distributions():  # sys.path order, as entry_points() reads it
        # only a distribution whose entry_points.txt names our groups is parsed: most
        # declare console scripts alone, and parsing them all costs more than the read
        if "certwright." not in (dist.read_text("entry_points.txt") or ""):
            continue
        for ep in dist.entry_points:
            if ep.group in found:
                found[ep.group].setdefault(ep.name, ep)
    return found


def _entries(group: str) -> dict[str, metadata.EntryPoint]:
    """Registered entry points of ``group`` by name."""
    return _all_entries()[group]


@functools.cache
def _load(group: str, name: str) -> PluginInfo:
    ep = _entries(group)[name]
    try:
        cls: Any = ep.load()
    except Exception as exc:  # a broken third-party plugin must not stop the tool
        return PluginInfo(name=ep.name, group=group, target=ep.value,
                          error=f"failed to load: {type(exc).__name__}: {exc}"
                          + _install_hint(ep, exc))
    return PluginInfo(name=ep.name, group=group, target=ep.value, cls=cls,
                      description=str(getattr(cls, "description", "")).strip())


def _install_hint(ep: metadata.EntryPoint, exc: Exception) -> str:
    """What to install when a plugin's library is missing: the extras its entry point
    declares (``name = module:Class [extra]``), with the distribution that registers it."""
    if not isinstance(exc, ModuleNotFoundError):
        return ""
    dist = ep.dist.name if ep.dist is not None else ""
    if ep.extras and dist:
        return f"; install it with: pip install '{dist}[{','.join(ep.extras)}]'"
    if exc.name:
        return f"; the Python module {exc.name!r} is not installed"
    return ""


def discover(group: str) -> tuple[PluginInfo, ...]:
    """Every plugin registered in ``group``, loaded; sorted by name."""
    return tuple(_load(group, name) for name in sorted(_entries(group)))


def load_named(group: str, name: str) -> PluginInfo | None:
    """Load only the plugin called ``name`` (None when nothing is registered under it)."""
    return _load(group, name) if name in _entries(group) else None


def classes_named(names: set[str]) -> list[type[Any]]:
    """The classes of the authenticators, then installers, called by any of ``names`` (in
    name order); a name nothing is registered under, or a plugin that can't load, adds none."""
    found: list[type[Any]] = []
    for group in (AUTHENTICATORS, INSTALLERS):
        for name in sorted(names):
            info = load_named(group, name)
            if info is not None and info.cls is not None:
                found.append(info.cls)
    return found


def names(*groups: str) -> frozenset[str]:
    """The names registered in ``groups`` (both when none is given): the ``--NAME``
    shortcuts. Reads the entry points only; no plugin is imported."""
    found = _all_entries()
    return frozenset(n for g in (groups or (AUTHENTICATORS, INSTALLERS)) for n in found[g])


def chosen(config: Settings, given: str | None, group: str) -> str | None:
    """The plugin of ``group`` named by ``-a``/``-i`` or a ``--NAME`` shortcut; None when
    none is; a ConfigError when they disagree. A shortcut names a plugin of every group
    it is registered in (``--nginx``: the nginx authenticator and installer)."""
    kind = "authenticator" if group == AUTHENTICATORS else "installer"
    names = sorted(config.shortcuts & _entries(group).keys())
    if given:
        names.insert(0, given)
    if len(set(names)) > 1:
        raise ConfigError(f"more than one {kind} given: {', '.join(sorted(set(names)))}")
    return names[0] if names else None


def find(group: str, name: str) -> type[Any]:
    """The plugin class called ``name``, or a ConfigError naming the installed ones."""
    kind = "authenticator" if group == AUTHENTICATORS else "installer"
    info = load_named(group, name)
    if info is not None:
        if info.cls is None:
            raise ConfigError(f"the {kind} {name!r} can't be used: {info.error}")
        return info.cls
    names = ", ".join(p.name for p in discover(group) if p.cls is not None) or "none"
    raise ConfigError(f"unknown {kind} {name!r}; installed: {names}")
