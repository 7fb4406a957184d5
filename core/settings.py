"""One command's settings: typed, frozen, and where each value came from.

The face builds one :class:`Settings` per command from the parsed command line (with
``cli.ini`` underneath it); nothing changes it afterwards. A step that needs other values
(a lineage's stored renewal options, the installer a lineage names) derives a new one with
:meth:`Settings.derive`, which records the new values' source. "Given by the user" is then
a fact (:meth:`Settings.given`), not a guess from comparing with the default: ``renew
--http-01-port 80`` overrides a stored 8080 although 80 is the default.

Options that plugins add to the command line are not fields: they live in
``plugin_options`` and stay reachable as attributes (``config.nginx_server_root``) for the
plugins, which are built with the settings. Core code reads only the typed fields (the
attribute fallback is hidden from the type checker).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import FrozenInstanceError
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, dataclass_transform

DEFAULT_CONFIG_DIR = "/etc/certwright"
DEFAULT_WORK_DIR = "/var/lib/certwright"
DEFAULT_LOGS_DIR = "/var/log/certwright"


class Source(enum.Enum):
    """Where a value came from, strongest last (as Certbot's ArgumentSource)."""

    DEFAULT = "default"
    RENEWAL_CONF = "renewal conf"
    ENVIRONMENT = "environment"
    CLI_INI = "cli.ini"
    COMMAND_LINE = "command line"
    CALLER = "library caller"  # given to certwright.core.api
    DERIVED = "derived"  # set by the command itself (e.g. `run -i nginx` makes nginx the
    #                      authenticator too)


_USER = frozenset({Source.COMMAND_LINE, Source.CLI_INI, Source.ENVIRONMENT, Source.CALLER})


@dataclass_transform(frozen_default=True, kw_only_default=True)
class _Frozen:
    """A frozen record whose defaults are class attributes: the type checker sees a frozen
    dataclass (typed keyword constructor, read-only fields); at run time nothing is
    generated, so importing it costs nothing for its hundred fields (a dataclass spent
    ~5 ms of every command's start building them), and an instance stores only the
    values that differ from the defaults."""

    def __init__(self, **values: Any) -> None:
        unknown = values.keys() - _fields(type(self))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        self.__dict__.update(values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _fields(type(self))
                   if n != "sources")

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        given = ", ".join(f"{k}={v!r}" for k, v in sorted(self.__dict__.items())
                          if k not in ("sources", "plugin_options"))
        return f"{type(self).__name__}({given})"


def _fields(cls: type) -> frozenset[str]:
    found: frozenset[str] | None = cls.__dict__.get("_field_names")
    if found is None:
        names: set[str] = set()
        for klass in reversed(cls.__mro__):
            names.update(getattr(klass, "__annotations__", {}))
        found = frozenset(names)
        type.__setattr__(cls, "_field_names", found)
    return found


class Settings(_Frozen):
    """Every core option of one command (Certbot's names), with its source."""

    verb: str | None = None
    # -- common
    help: str | None = None
    config_file: str | None = None
    verbose: int = 0
    quiet: bool = False
    noninteractive: bool = False
    force_interactive: bool = False
    config_dir: str = DEFAULT_CONFIG_DIR
    work_dir: str = DEFAULT_WORK_DIR
    logs_dir: str = DEFAULT_LOGS_DIR
    max_log_backups: int = 1000
    preconfigured_renewal: bool = False
    lock_timeout: float | None = None
    hook_timeout: float | None = None
    max_checkpoints: int | None = None
    text_mode: bool = False
    verbose_level: int | None = None
    debug: bool = False
    strict_permissions: bool = False
    # -- certificate
    domains: Sequence[str] = ()
    certname: str | None = None
    csr: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    fullchain_path: str | None = None
    chain_path: str | None = None
    key_type: str | None = None
    elliptic_curve: str | None = None
    rsa_key_size: int | None = None
    reuse_key: bool | None = None
    new_key: bool = False
    must_staple: bool = False
    expand: bool = False
    duplicate: bool = False
    force_renewal: bool = False
    reinstall: bool = False
    allow_subset_of_names: bool = False
    dry_run: bool = False
    preferred_chain: str | None = None
    pref_challs: Sequence[str] | None = None
    issuance_timeout: float = 90.0
    json: bool = False
    ip_addresses: Sequence[str] = ()
    renew_with_new_domains: bool = False
    run_deploy_hooks: bool = False
    debug_challenges: bool = False
    break_my_certs: bool = False
    autorenew: bool = True
    disable_renew_updates: bool = False
    # -- account and server
    server: str | None = None
    staging: bool = False
    email: str | None = None
    tos: bool = False
    register_unsafely_without_email: bool = False
    eab_kid: str | None = None
    eab_hmac_key: str | None = None
    eab_hmac_alg: str = "HS256"
    account: str | None = None
    eff_email: bool | None = None
    user_agent: str | None = None
    user_agent_comment: str | None = None
    no_verify_ssl: bool = False
    rollover_key: bool = False
    reason: str = "unspecified"
    delete_after_revoke: bool | None = None
    preferred_profile: str | None = None
    required_profile: str | None = None
    # -- plugins, hooks, enhancements
    authenticator: str | None = None
    installer: str | None = None
    configurator: str | None = None
    shortcuts: frozenset[str] = frozenset()  # the --NAME plugin shortcuts given
    http01_port: int = 80
    http01_address: str = ""
    https_port: int = 443
    pre_hook: str | None = None
    post_hook: str | None = None
    deploy_hook: str | None = None
    directory_hooks: bool = True
    disable_hook_validation: bool = False
    random_sleep_on_renew: bool = True
    jobs: int | None = None
    redirect: bool | None = None
    hsts: bool | None = None
    uir: bool | None = None
    auto_hsts: bool = False
    checkpoints: int = 1
    list_authenticators: bool = False
    list_installers: bool = False
    init: bool = False
    prepare: bool = False
    # -- obsolete options, accepted with a notice
    os_packages_only: bool | None = None
    no_self_upgrade: bool | None = None
    no_bootstrap: bool | None = None
    no_permissions_check: bool | None = None
    staple: bool | None = None
    # -- what parsing found besides the values
    ini_warnings: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()
    # -- bookkeeping (not options)
    sources: Mapping[str, Source] = MappingProxyType({})
    plugin_options: Mapping[str, Any] = MappingProxyType({})

    # -- sources
    def source(self, name: str) -> Source:
        return self.sources.get(name, Source.DEFAULT)

    def given(self, name: str) -> bool:
        """Set by the user for this command: on the command line, in cli.ini (or -c FILE)
        or through the environment; not a default, not a stored renewal option."""
        return self.source(name) in _USER

    def option(self, name: str, default: Any = None) -> Any:
        """A field or a plugin's option by its dest name (``nginx_server_root``)."""
        if name in _FIELDS:
            return getattr(self, name)
        return self.plugin_options.get(name, default)

    def options(self) -> dict[str, Any]:
        """Every option, fields and plugin options, by dest name."""
        out = {name: getattr(self, name) for name in _OPTION_FIELDS}
        out.update(self.plugin_options)
        return out

    # -- derivation (never in place)
    def derive(self, source: Source = Source.DERIVED, /, **changes: Any) -> Settings:
        """A copy with ``changes`` (fields or plugin options), recorded as from ``source``."""
        fields_: dict[str, Any] = {}
        plugin = dict(self.plugin_options)
        for name, value in changes.items():
            if name in _FIELDS:
                fields_[name] = value
            else:
                plugin[name] = value
        sources = dict(self.sources)
        sources.update(dict.fromkeys(changes, source))
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__, **fields_, plugin_options=MappingProxyType(plugin),
                            sources=MappingProxyType(sources))
        return new

    if not TYPE_CHECKING:  # plugins read their options as attributes; core code can't
        def __getattr__(self, name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            options = self.__dict__.get("plugin_options", {})
            try:
                return options[name]
            except KeyError:
                raise AttributeError(
                    f"no option {name!r} in these settings") from None


_FIELDS = _fields(Settings)
FIELDS = _FIELDS
_OPTION_FIELDS = tuple(sorted(_FIELDS - {"sources", "plugin_options", "ini_warnings",
                                         "notices", "verb"}))


def from_values(values: Mapping[str, Any], sources: Mapping[str, Source]) -> Settings:
    """Settings from parsed values by dest name: fields typed, the rest plugin options.
    Lists become tuples (the settings are frozen all the way down)."""
    kwargs: dict[str, Any] = {}
    plugin: dict[str, Any] = {}
    for name, value in values.items():
        if name in _FIELDS:
            kwargs[name] = tuple(value) if isinstance(value, list) else value
        else:
            plugin[name] = value
    return Settings(**kwargs, plugin_options=MappingProxyType(plugin),
                    sources=MappingProxyType(dict(sources)))
