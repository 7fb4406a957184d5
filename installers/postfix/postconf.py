"""Postfix's settings, read only through ``postconf -c DIR`` (never by parsing main.cf).

``-n`` gives what main.cf sets, ``-h`` a raw value, ``-x -h`` an expanded one, ``-M`` the
master.cf services (one line each, ``-o`` options joined) and ``-P`` the ``-o`` overrides as
``service/type/name = value``. ``-c`` always gets an absolute path: with a relative one
postconf exits 1 and says nothing unless its stderr is a terminal.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from certwright.core.errors import PluginError
from certwright.installers.mailkit import Runner, output_line


@dataclass(frozen=True)
class Service:
    """One master.cf service line: ``name``/``type`` identify it (``127.0.0.1:2525``/
    ``inet``), ``command`` is the program, ``overrides`` its ``-o`` settings."""

    name: str
    type: str
    command: str
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.name}/{self.type}"


@dataclass
class Settings:
    """What one ``postconf`` read of a Postfix instance found."""

    config_dir: str
    explicit: dict[str, str]
    services: list[Service]
    version: tuple[int, int]

    def value(self, name: str, default: str = "") -> str:
        return self.explicit.get(name, default)


class Postconf:
    """``postconf -c CONFIG_DIR`` through the installer's runner."""

    def __init__(self, binary: str, config_dir: str, run: Runner) -> None:
        self.binary = binary
        self.config_dir = config_dir
        self.run = run

    def _out(self, *args: str) -> str:
        done = self.run([self.binary, "-c", self.config_dir, *args])
        if done.returncode != 0:
            raise PluginError(f"postconf -c {self.config_dir} {' '.join(args)} failed "
                              f"(exit {done.returncode}): {output_line(done, 'fatal')}")
        return done.stdout

    def get(self, name: str, expand: bool = False) -> str:
        return self._out(*(["-x"] if expand else []), "-h", name).strip()

    def read(self) -> Settings:
        explicit = _pairs(self._out("-n"))
        explicit.pop("config_directory", None)  # -c injects it
        version = _version(self.get("mail_version"))
        services = [_service(line) for line in self._out("-M").splitlines() if line.strip()]
        return Settings(self.config_dir, explicit, services, version)


def _pairs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            out[name.strip()] = value.strip()
    return out


def _version(text: str) -> tuple[int, int]:
    found = re.match(r"(\d+)\.(\d+)", text)
    if not found:
        raise PluginError(f"can't tell the Postfix version from mail_version = {text!r}")
    return int(found.group(1)), int(found.group(2))


def _service(line: str) -> Service:
    """``name type private unpriv chroot wakeup maxproc command [args]`` with ``-o k=v``
    (or ``-o k = v`` never: master.cf forbids the spaces) among the args."""
    words = line.split()
    if len(words) < 8:
        raise PluginError(f"postconf -M printed a service line it can't be: {line!r}")
    overrides: dict[str, str] = {}
    args = words[8:]
    for index, word in enumerate(args):
        if word == "-o" and index + 1 < len(args):
            name, sep, value = args[index + 1].partition("=")
            if sep:
                overrides[name] = value
        elif word.startswith("-o") and "=" in word[2:]:
            name, _, value = word[2:].partition("=")
            overrides[name] = value
    return Service(words[0], words[1], words[7], overrides)


def is_config_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "main.cf"))
