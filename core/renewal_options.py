"""The options a renewal reuses: one table, read and written through it.

Each row names the option (its dest, as in :class:`~certwright.core.settings.Settings`),
the key Certbot stores it under in ``[renewalparams]`` and the type it has there (values
are strings in the file: ``"True"``, ``"2048"``, ``"http-01, dns-01"``). Writing a lineage
(:func:`to_conf`) and renewing it (:func:`from_conf`) both go through the table, so a new
option is added once.

Keys the table does not name (a plugin's ``nginx_server_root``, ...) are taken as stored:
their plugins read them. A core option the table does not name (``dry_run``, ``quiet``,
``force_renewal``: a hand edit, or a planted file) is never taken from the file, as Certbot
restores only its listed items. The store's own directories (``config_dir``, ``work_dir``,
``logs_dir``, which Certbot may have written) are never taken from the file: a lineage
renews in the store it was found in, not in one a copied file names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from certwright.core.due import as_bool
from certwright.core.settings import FIELDS


def _str(value: object) -> object:
    return value


def _int(value: object) -> int:
    return int(str(value))


def _float(value: object) -> float:
    return float(str(value))


def _bool(value: object) -> bool:
    return as_bool(value)


def _list(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(str(v).strip() for v in items if str(v).strip())


class RenewalOption(NamedTuple):
    dest: str
    stored: str  # the [renewalparams] key (Certbot's name)
    read: Callable[[object], object] = _str
    choices: tuple[str, ...] = ()
    unset: object = None  # what a stored "None" means (Certbot: http01_port's default)
    written: bool = True  # False: read back, written by the verbs themselves


def _row(dest: str, read: Callable[[object], object] = _str, *,
         stored: str | None = None, choices: tuple[str, ...] = (), unset: object = None,
         written: bool = True) -> RenewalOption:
    return RenewalOption(dest, stored or dest, read, choices, unset, written)


OPTIONS: tuple[RenewalOption, ...] = (
    # which CA, account and plugins (written by issue from what it used)
    _row("server", written=False),
    _row("account", written=False),
    _row("authenticator", written=False),
    _row("installer", written=False),
    _row("user_agent", written=False),  # Certbot stores it when given
    _row("key_type", choices=("ecdsa", "rsa")),
    _row("elliptic_curve", choices=("secp256r1", "secp384r1", "secp521r1")),
    _row("rsa_key_size", _int),
    _row("reuse_key", _bool),
    _row("pref_challs", _list),
    _row("preferred_chain"),
    _row("must_staple", _bool),
    _row("http01_port", _int, unset=80),
    _row("http01_address"),
    _row("https_port", _int, unset=443),
    _row("pre_hook"),
    _row("post_hook"),
    _row("deploy_hook", stored="renew_hook"),  # Certbot's old name, which it still writes
    _row("preferred_profile"),
    _row("required_profile"),
    _row("issuance_timeout", _float, unset=90.0),
    _row("eab_kid"),
    _row("allow_subset_of_names", _bool),
)
BY_DEST = {o.dest: o for o in OPTIONS}
BY_STORED = {o.stored: o for o in OPTIONS} | {o.dest: o for o in OPTIONS}  # both read
# read as stored, typed: a list kept by a plugin; the operator's switch
EXTRA = {"webroot_path": RenewalOption("webroot_path", "webroot_path", _list),
         "autorenew": RenewalOption("autorenew", "autorenew", _bool)}
# bookkeeping of the settings, never taken from a file
RESERVED = frozenset({"sources", "plugin_options", "shortcuts", "verb", "ini_warnings",
                      "notices", "help"})
STORE_DIRS = frozenset({"config_dir", "work_dir", "logs_dir"})
EMPTY: tuple[object, ...] = (None, False, "", [], ())


class BadValue(ValueError):
    """A stored value its option refuses: ``key`` as written in the file."""

    def __init__(self, key: str, value: object) -> None:
        super().__init__(f"bad value for {key}: {value!r}")
        self.key = key
        self.value = value


def to_conf(values: Callable[[str], Any]) -> dict[str, object]:
    """The table's options worth storing (set, not empty), under their stored names;
    ``values(dest)`` gives an option's value."""
    out: dict[str, object] = {}
    for option in OPTIONS:
        if not option.written:
            continue
        value = values(option.dest)
        if value not in EMPTY:
            out[option.stored] = list(value) if isinstance(value, tuple) else value
    return out


def from_conf(params: Mapping[str, object]) -> dict[str, object]:
    """Every stored option by dest, typed by the table; ``None`` / ``"None"`` is unset.
    A section where a value belongs, or a value its option refuses, raises
    :class:`BadValue` (the caller names the file). ``webroot_map`` (a section) is left to
    the caller."""
    out: dict[str, object] = {}
    for key, raw in params.items():
        if key in RESERVED or key in STORE_DIRS or key == "webroot_map":
            continue
        option = BY_STORED.get(key) or EXTRA.get(key)
        if option is None and key in FIELDS:
            continue  # a core option a renewal does not reuse
        dest = option.dest if option else key
        if isinstance(raw, dict):
            raise BadValue(key, raw)
        if raw in ("None", None):
            out[dest] = option.unset if option else None
            continue
        if option is None:
            out[dest] = raw
            continue
        try:
            value = option.read(raw)
        except ValueError:
            raise BadValue(key, raw) from None
        if option.choices and value not in option.choices:
            raise BadValue(key, raw)
        out[dest] = value
    return out
