"""``cli.ini``: defaults for the command line, read the way Certbot reads them.

The syntax is ConfigArgParse's, which Certbot uses: ``key = value``, ``key: value``,
``key value`` or a bare ``key`` (a flag set to true); a leading ``--`` on the key is
allowed; ``#`` and ``;`` start comment lines, and an inline comment after a blank; lines
starting with ``[`` or ``---`` are skipped; quotes around a value are dropped; ``[a, b]``
gives the option once per item.

A file that can't be read stops the command (it names the file). Inside a readable file
nothing stops the command: an unknown key (a typo, a bare word), a flag with a value
that is not true/false, a value its option refuses (a bad integer, a choice not offered)
are each skipped with one warning naming
``file:line``, and the command goes on with the rest. Certbot stops at these (exit 2);
a distribution's stock file must never block every command.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import NamedTuple

from certwright.core.errors import CertwrightError, ConfigError

TRUE = ("true", "yes", "on", "1", "")
FALSE = ("false", "no", "off", "0")
_INLINE_COMMENT = re.compile(r"\s[#;]")
# keys that would end the process (help, version) or nest config files
_NOT_IN_INI = ("help", "version", "config_file")


class NeedPlugins(Exception):
    """A partial parse met an option that may belong to a plugin."""


class IniArgs(NamedTuple):
    """What a cli.ini contributes: command-line words, and the warnings about the rest."""

    argv: list[str]
    warnings: list[str]


def read_ini(path: Path, parser: argparse.ArgumentParser) -> IniArgs:
    """The command-line words for ``path`` (nothing when the file does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return IniArgs([], [])
    except OSError as exc:
        raise ConfigError(f"{path}: can't read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    out = IniArgs([], [])
    for lineno, raw in enumerate(text.splitlines(), 1):
        entry = split_line(raw)
        if entry is None:
            continue
        where = f"{path}:{lineno}"
        try:
            out.argv.extend(_words(parser, *entry))
        except _Skip as skip:
            out.warnings.append(f"{where}: {skip} (line ignored)")
    return out


def split_line(raw: str) -> tuple[str, str | None] | None:
    """``(key, value)`` of one line, value None for a bare key; None for a line that
    says nothing (blank, comment, section header, YAML ``---``)."""
    line = raw.strip()
    if not line or line[0] in "#;[" or line.startswith("---"):
        return None
    end = 0
    while end < len(line) and not line[end].isspace() and line[end] not in ":=;#":
        end += 1
    key, rest = line[:end], line[end:]
    cut = _INLINE_COMMENT.search(rest)
    if cut is not None:
        rest = rest[:cut.start()]
    rest = rest.strip()
    if rest[:1] in (":", "="):
        rest = rest[1:].strip()
    elif not rest:
        return key, None
    if len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in "\"'":
        rest = rest[1:-1]
    return key, rest


class _Skip(Exception):
    """A line that is warned about and left out."""


def _words(parser: argparse.ArgumentParser, key: str, value: str | None) -> list[str]:
    if not key or (key.startswith("-") and not key.startswith("--")):
        raise _Skip(f"no option name in {key!r}")
    name = key.removeprefix("--")
    opt = f"--{name}"
    action = parser._option_string_actions.get(opt)
    if action is None:
        if getattr(parser, "partial", False):
            raise NeedPlugins(name)
        raise _Skip(unavailable_plugin(parser, opt) or f"unknown option {name!r}")
    if action.dest in _NOT_IN_INI:
        raise _Skip(f"{name} can't be set in a config file")
    if action.nargs == 0:
        flag = "true" if value is None else value.lower()
        if flag in FALSE:
            return []
        if flag not in TRUE:
            raise _Skip(f"{name} is a flag: give true or false, not {value!r}")
        words = [opt]
    elif value is None:
        raise _Skip(f"{name} needs a value")
    elif value.startswith("[") and value.endswith("]"):
        words = [f"{opt}={item.strip()}" for item in value[1:-1].split(",") if item.strip()]
    else:
        words = [f"{opt}={value}"]  # one word: a value starting with "-" stays a value
    _try_alone(parser, words)
    return words


def unavailable_plugin(parser: argparse.ArgumentParser, option: str) -> str | None:
    """When ``option`` (``--NAME`` or ``--NAME-…``) belongs to a plugin that can't load:
    which plugin, and why (the reason names what to install)."""
    unavailable: dict[str, str] = getattr(parser, "unavailable", {})
    for name in sorted(unavailable, key=len, reverse=True):
        if option == f"--{name}" or option.startswith(f"--{name}-"):
            return (f"{option} is an option of the {name} plugin, which can't be used here: "
                    f"{unavailable[name]}")
    return None


def _try_alone(parser: argparse.ArgumentParser, words: list[str]) -> None:
    """Parse the option on its own, so a value its option refuses is skipped here rather
    than stopping the whole command line."""
    try:
        parser.parse_known_args(words, namespace=argparse.Namespace())
    except CertwrightError as exc:  # the parser's, or a plugin action's own
        raise _Skip(str(exc)) from None
