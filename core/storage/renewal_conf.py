"""``renewal/<name>.conf``: the per-lineage settings file, in Certbot's ConfigObj format.

A file looks like this (Certbot writes no blank lines; older versions added comments)::

    version = 5.8.0
    archive_dir = /etc/letsencrypt/archive/example.com
    cert = /etc/letsencrypt/live/example.com/cert.pem
    privkey = /etc/letsencrypt/live/example.com/privkey.pem
    chain = /etc/letsencrypt/live/example.com/chain.pem
    fullchain = /etc/letsencrypt/live/example.com/fullchain.pem
    [renewalparams]
    authenticator = webroot
    webroot_path = /var/www/html,
    pref_challs = http-01, dns-01
    [[webroot_map]]
    example.com = /var/www/html

Values are strings or lists (``a, b``; a one-element list ends in a comma; an empty list is
a lone comma); ``[[name]]`` opens a section inside the section above it.

Reading uses a small dedicated reader, writing uses ``configobj``. Why: ``renew`` and
``certificates`` read every lineage's file, and ConfigObj's loader costs 100-130 µs per file
(1.0-1.3 s for 10,000 lineages before any certificate is looked at); the dedicated reader
takes about 10 µs. It understands the plain lines Certbot writes (``key = value`` without
quotes or ``#``, lists, section markers, comment lines). A file with anything else (quoting,
triple-quoted values, inline comments, duplicates, odd nesting, a BOM) is handed whole to
ConfigObj, so every file means exactly what it means to Certbot; a randomized test checks
the two readers agree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import configobj

from certwright.core.errors import StorageError
from certwright.core.storage.files import atomic_write

ConfValue = str | list[str] | dict[str, Any]
"""A value as read: a string, a list of strings, or a section (a nested dict)."""

ALL_FOUR = ("cert", "privkey", "chain", "fullchain")
_TOP_KEYS = ("version", "archive_dir", *ALL_FOUR, "renewalparams")
_DEFAULT_MODE = 0o644


@dataclass
class RenewalConf:
    """One renewal conf. The file paths are absolute strings, as Certbot stores them
    (strings, not ``Path`` objects: building those dominated the cost of listing).

    ``params`` is the ``[renewalparams]`` section (strings, lists and nested dicts such as
    ``webroot_map``); ``extra`` keeps every other top-level key or section (for example
    ``renew_before_expiry`` or Certbot's ``[acme_renewal_info]``) so a rewrite loses nothing.
    """

    name: str
    path: Path
    version: str
    archive_dir: str
    cert: str
    privkey: str
    chain: str
    fullchain: str
    params: dict[str, object] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)


class _NotPlain(Exception):
    """The fast reader met a line it leaves to ConfigObj."""


_UNSAFE = frozenset("'\"#")  # quoting and comments: left to ConfigObj


def _plain_list(value: str) -> list[str]:
    if value == ",":
        return []
    items = [item.strip() for item in value.split(",")]
    if items[-1] == "":
        items.pop()
    if "" in items:
        raise _NotPlain
    return items


def _section_line(stripped: str) -> tuple[int, str]:
    depth = len(stripped) - len(stripped.lstrip("["))
    inner = stripped[depth:]
    name = inner.rstrip("]")
    if len(inner) - len(name) != depth:
        raise _NotPlain
    name = name.strip()
    if not name or "[" in name or "]" in name or not _UNSAFE.isdisjoint(name):
        raise _NotPlain
    return depth, name


def parse_plain(text: str) -> dict[str, Any]:
    """Parse the subset of ConfigObj that Certbot writes; raise ``_NotPlain`` otherwise."""
    if text.startswith("\ufeff"):
        raise _NotPlain
    careful = "'" in text or '"' in text or "#" in text
    root: dict[str, Any] = {}
    stack = [root]  # stack[d] is the section at depth d
    current = root
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped or stripped[0] == "#":
            continue
        if careful and not _UNSAFE.isdisjoint(stripped):
            raise _NotPlain
        if stripped[0] == "[":
            depth, name = _section_line(stripped)
            if depth > len(stack):
                raise _NotPlain
            del stack[depth:]
            parent = stack[-1]
            if name in parent:
                raise _NotPlain
            current = {}
            parent[name] = current
            stack.append(current)
            continue
        key, sep, value = stripped.partition("=")
        key = key.rstrip()
        if not sep or not key or key in current:
            raise _NotPlain
        value = value.lstrip()
        current[key] = _plain_list(value) if "," in value else value
    return root


def _plain_dict(section: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: _plain_dict(value) if isinstance(value, Mapping) else value
        for key, value in section.items()
    }


def _parse_with_configobj(path: Path) -> dict[str, Any]:
    try:
        parsed = configobj.ConfigObj(
            str(path), encoding="utf-8", default_encoding="utf-8", file_error=True
        )
    except configobj.ConfigObjError as error:
        first = error.errors[0] if getattr(error, "errors", None) else error
        line = getattr(first, "line_number", None)
        reason = str(first).split(" at line ")[0]
        where = f" at line {line}" if line else ""
        raise StorageError(f"cannot parse {path}{where}: {reason}") from error
    except (OSError, UnicodeDecodeError) as error:
        raise StorageError(f"cannot read {path}: {error}") from error
    return _plain_dict(parsed)


def parse_text(text: str, path: Path) -> dict[str, Any]:
    """The contents of a renewal conf as nested dicts, exactly as ConfigObj reads it."""
    try:
        return parse_plain(text)
    except _NotPlain:
        return _parse_with_configobj(path)


def _path_value(data: Mapping[str, Any], key: str, path: Path) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise StorageError(f"{path} has no usable '{key}' entry (a file path)")
    return value


def conf_from_dict(path: Path, data: Mapping[str, Any]) -> RenewalConf:
    """Build a :class:`RenewalConf` from parsed contents; missing entries raise StorageError."""
    name = path.name.removesuffix(".conf")
    archive = data.get("archive_dir")
    if not isinstance(archive, str) or not archive:
        archive = os.path.join(path.parent.parent, "archive", name)
    params = data.get("renewalparams", {})
    if not isinstance(params, dict):
        raise StorageError(f"{path}: 'renewalparams' must be a section")
    version = data.get("version", "")
    return RenewalConf(
        name=name,
        path=path,
        version=version if isinstance(version, str) else "",
        archive_dir=archive,
        cert=_path_value(data, "cert", path),
        privkey=_path_value(data, "privkey", path),
        chain=_path_value(data, "chain", path),
        fullchain=_path_value(data, "fullchain", path),
        params=dict(params),
        extra={key: value for key, value in data.items() if key not in _TOP_KEYS},
    )


def read_renewal_conf(path: Path) -> RenewalConf:
    """Read ``path``; a file that is unreadable, does not parse or lacks a path raises
    :class:`StorageError` naming the file (and the line, for a parse error)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise StorageError(f"cannot read {path}: {error.strerror}") from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise StorageError(f"cannot read {path}: not UTF-8 ({error.reason})") from error
    return conf_from_dict(path, parse_text(text, path))


def _conf_value(value: object) -> object:
    """What ConfigObj should store for ``value``: strings, lists of strings, sections."""
    if isinstance(value, Mapping):
        return {str(key): _conf_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [str(item) for item in value]
    return str(value)


def _copy_comments(new: Any, old: Any) -> None:
    """Keep the comments of ``old`` (a ConfigObj section) for keys ``new`` still has."""
    for key in new:
        if key not in old:
            continue
        new.comments[key] = old.comments.get(key, [])
        new.inline_comments[key] = old.inline_comments.get(key)
        if isinstance(new[key], configobj.Section) and isinstance(old[key], configobj.Section):
            _copy_comments(new[key], old[key])


def _existing(path: Path) -> Any:
    try:
        return configobj.ConfigObj(
            str(path), encoding="utf-8", default_encoding="utf-8", file_error=True
        )
    except (OSError, configobj.ConfigObjError, UnicodeDecodeError):
        return None


def render_renewal_conf(conf: RenewalConf, previous: Any = None) -> bytes:
    """The bytes of ``conf`` as ConfigObj writes them (comments of ``previous`` kept)."""
    out = configobj.ConfigObj(encoding="utf-8", default_encoding="utf-8")
    out["version"] = conf.version
    out["archive_dir"] = conf.archive_dir
    for kind in ALL_FOUR:
        out[kind] = getattr(conf, kind)
    for key, value in conf.extra.items():
        if not isinstance(value, Mapping):
            out[key] = _conf_value(value)
    out["renewalparams"] = _conf_value(conf.params)
    for key, value in conf.extra.items():
        if isinstance(value, Mapping):
            out[key] = _conf_value(value)
    if previous is not None:
        out.initial_comment = previous.initial_comment
        out.final_comment = previous.final_comment
        _copy_comments(out, previous)
    lines = out.write()
    if not isinstance(lines, list):  # pragma: no cover - ConfigObj API contract
        raise StorageError(f"cannot render {conf.path}")
    return b"".join(line + b"\n" for line in lines)


def write_renewal_conf(conf: RenewalConf) -> None:
    """Write ``conf`` to ``conf.path`` atomically.

    Comments of an existing file are kept (like Certbot) and so is its mode; a new file
    gets 0644, as Certbot creates it. Keys no longer in ``conf`` are dropped.
    """
    previous = _existing(conf.path)
    try:
        data = render_renewal_conf(conf, previous)
    except configobj.ConfigObjError as error:
        raise StorageError(f"cannot write {conf.path}: {error}") from error
    try:
        mode = os.stat(conf.path).st_mode & 0o7777
    except FileNotFoundError:
        mode = _DEFAULT_MODE
    except OSError as error:
        raise StorageError(f"cannot write {conf.path}: {error.strerror}") from error
    atomic_write(conf.path, data, mode)
