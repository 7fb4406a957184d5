"""Typed plugin options: what a plugin declares, the command line and the renewal conf both
read through.

A plugin lists its options on the class::

    class HaproxyInstaller:
        typed_options: ClassVar[tuple[PluginOption, ...]] = (
            PluginOption("--haproxy-config", str, "/etc/haproxy/haproxy.cfg", metavar="FILE",
                         help="the main configuration file"),
            PluginOption("--haproxy-reload-timeout", float, 10.0),
        )

and reads them as attributes of the settings it is built with (``config.haproxy_config``:
the ``dest`` is the flag without its dashes, ``-`` as ``_``). The value has the declared
type whether it came from the command line, ``cli.ini`` or a renewal conf (where every
value is a string). ``add_arguments(add)`` (argparse keywords) keeps working beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

TRUE = ("true", "yes", "on", "1")
FALSE = ("false", "no", "off", "0")
KINDS = (str, int, float, bool, list)


def to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(f"{value!r} is not true or false")


def to_list(value: object) -> tuple[str, ...]:
    """A list option: items separated by commas, from one string or from each of several
    (an option repeated, a renewal conf's list)."""
    items = value if isinstance(value, list | tuple) else [value]
    parts = (part.strip() for item in items for part in str(item).split(","))
    return tuple(part for part in parts if part)


@dataclass(frozen=True)
class PluginOption:
    """``--FLAG`` of type ``kind`` (``str``, ``int``, ``float``, ``bool``: true/false,
    ``list``: comma-separated, or repeated). ``switch``: a ``bool`` given without a value
    (``--flag`` sets it true)."""

    flag: str
    kind: type = str
    default: Any = None
    help: str = ""
    metavar: str | None = None
    choices: Sequence[str] = ()
    switch: bool = False
    hidden: bool = False  # accepted, not listed in --help (a Certbot option kept for scripts)

    def __post_init__(self) -> None:
        if not self.flag.startswith("--") or len(self.flag) < 3:
            raise ValueError(f"plugin option {self.flag!r}: give --name")
        if self.kind not in KINDS:
            raise ValueError(f"plugin option {self.flag}: kind must be one of "
                             f"{', '.join(k.__name__ for k in KINDS)}")
        if self.switch and self.kind is not bool:
            raise ValueError(f"plugin option {self.flag}: only a bool can be a switch")

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")

    def convert(self, raw: object) -> Any:
        """The value as its type (ValueError when it isn't one, or not a choice)."""
        if raw is None or raw == "None":
            return None
        value: Any
        if self.kind is bool:
            value = to_bool(raw)
        elif self.kind is list:
            value = to_list(raw)
        elif isinstance(raw, self.kind) and not isinstance(raw, bool):
            value = raw
        else:
            value = self.kind(str(raw).strip())
        if self.choices and value not in self.choices:
            raise ValueError(f"{raw!r} is not one of {', '.join(self.choices)}")
        return value

    def add_to(self, add: Callable[..., Any]) -> None:
        """Add it to an argparse group (``add``: its ``add_argument``)."""
        import argparse

        common: dict[str, Any] = {
            "dest": self.dest, "default": self.default,
            "help": argparse.SUPPRESS if self.hidden else (self.help or None)}
        if self.switch:
            add(self.flag, action="store_true", **common)
            return
        if self.kind is list:  # made a tuple once parsed (see cli_parser.parse)
            add(self.flag, action="append", metavar=self.metavar, **common)
            return
        add(self.flag, type=_argparse_type(self), metavar=self.metavar, **common)


def _argparse_type(option: PluginOption) -> Callable[[str], Any]:
    import argparse

    def convert(text: str) -> Any:
        try:
            return option.convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = option.kind.__name__
    return convert


def add_options(options: Iterable[PluginOption], add: Callable[..., Any]) -> None:
    """Add ``options`` to an argparse group; one another plugin added already (the nginx
    installer's and authenticator's shared options) is left as it is. A plugin's
    ``add_arguments`` can be just this call on its ``typed_options``."""
    import argparse
    import contextlib

    for option in options:
        with contextlib.suppress(argparse.ArgumentError):
            option.add_to(add)


def declared(classes: Iterable[type[Any]]) -> dict[str, PluginOption]:
    """The typed options of ``classes`` by dest."""
    found: dict[str, PluginOption] = {}
    for cls in classes:
        for option in getattr(cls, "typed_options", ()) or ():
            found.setdefault(option.dest, option)
    return found
