"""The command line, in Certbot's words: same verbs, same flags, same meanings.

Defaults come first, then ``cli.ini`` in the config dir (and ``-c FILE``), then the command
line. Plugin options are added by each plugin through ``add_arguments``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certwright.core import __version__, cli_compat
from certwright.core.cli_ini import NeedPlugins, read_ini, unavailable_plugin
from certwright.core.errors import ConfigError, UsageError
from certwright.core.settings import (
    DEFAULT_CONFIG_DIR,
    DEFAULT_LOGS_DIR,
    DEFAULT_WORK_DIR,
    Settings,
    Source,
    from_values,
)

if TYPE_CHECKING:
    from certwright.core.options import PluginOption

__all__ = ["DEFAULT_CONFIG_DIR", "DEFAULT_LOGS_DIR", "DEFAULT_WORK_DIR", "NeedPlugins",
           "build_parser", "parse", "split_verb"]


VERBS: dict[str, str] = {
    "run": "obtain a certificate and install it (the default verb)",
    "certonly": "obtain or renew a certificate, but do not install it",
    "renew": "renew all certificates (or one) that are due",
    "certificates": "list the certificates in the store",
    "revoke": "revoke a certificate",
    "delete": "delete a certificate and its renewal configuration",
    "reconfigure": "change the stored renewal options of a certificate",
    "install": "install an existing certificate into a server",
    "enhance": "add security enhancements (redirect, HSTS) to a server's config",
    "rollback": "undo the last configuration changes",
    "register": "create an ACME account",
    "show_account": "show the ACME account's details",
    "update_account": "update the ACME account's contact or roll over its key",
    "unregister": "deactivate the ACME account",
    "plugins": "list the installed authenticators and installers",
}
ALIASES = {"everything": "run", "auth": "certonly", "install": "install"}

USAGE = f"""certwright [VERB] [options] [-d DOMAIN]...

certwright obtains, installs and renews TLS certificates from an ACME CA and keeps them in
Certbot's on-disk format. The default verb is `run` (obtain and install).

Verbs:
{chr(10).join(f"  {verb:<16}{text}" for verb, text in VERBS.items())}

Common options:
  -d DOMAINS            a name for the certificate (repeat or separate with commas)
  --cert-name NAME      the certificate's name in the store
  -a, -i NAME           authenticator / installer plugin (also --webroot, --standalone,
                        --manual, --nginx, ...)
  -m EMAIL, --agree-tos, -n (non-interactive), --dry-run, --server URL, --staging
  --config-dir, --work-dir, --logs-dir (defaults {DEFAULT_CONFIG_DIR},
                        {DEFAULT_WORK_DIR}, {DEFAULT_LOGS_DIR})

`certwright --help VERB` shows one verb's options, `--help PLUGIN` a plugin's, `--help all`
everything.
"""


class DomainAction(argparse.Action):
    """``-d``: append names; with ``-w`` before it, map them to that webroot (Certbot's rule)."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        names = [n.strip() for n in str(values).split(",") if n.strip()]
        domains = list(getattr(ns, "domains", None) or [])
        domains.extend(names)
        ns.domains = domains
        roots = getattr(ns, "webroot_path", None) or []
        if roots:
            from certwright.core.names import name_key

            mapping = dict(getattr(ns, "webroot_map", None) or {})
            for name in names:  # keyed as the challenge will name it (punycode, no dot)
                mapping.setdefault(name_key(name), roots[-1])
            ns.webroot_map = mapping


def _common(p: argparse.ArgumentParser) -> None:
    add = p.add_argument
    add("-h", "--help", nargs="?", const="", default=None, metavar="TOPIC")
    add("--version", action="version", version=f"certwright {__version__}")
    add("-c", "--config", dest="config_file", metavar="FILE")
    add("-v", "--verbose", action="count", default=0)
    add("-q", "--quiet", action="store_true")
    add("-n", "--non-interactive", "--noninteractive", dest="noninteractive",
        action="store_true")
    add("--force-interactive", action="store_true")
    add("--config-dir", default=DEFAULT_CONFIG_DIR)
    add("--work-dir", default=DEFAULT_WORK_DIR)
    add("--logs-dir", default=DEFAULT_LOGS_DIR)
    add("--max-log-backups", type=_nonnegative(int), default=1000)
    # Debian's and Ubuntu's stock cli.ini sets it; Certbot only words its output by it
    add("--preconfigured-renewal", action="store_true", help=argparse.SUPPRESS)
    # run options (never stored in a renewal conf; cli.ini may set them)
    add("--lock-timeout", type=_seconds, default=None, metavar="SECONDS",
        help="wait this long for another run holding the store's lock (default: 600 s "
             "without a terminal or with -n, 0 at a terminal: fail at once)")
    add("--hook-timeout", type=_seconds, default=None, metavar="SECONDS",
        help="kill a hook (pre/post/deploy, manual) still running after this long, with "
             "every process it started (default: 600; 0: no limit)")
    add("--max-checkpoints", type=_nonnegative(int), default=None, metavar="N",
        help="keep the last N configuration checkpoints for rollback (default: 10)")


class IpAddressAction(DomainAction):
    """``--ip-address IP``: an IP identifier (RFC 8738), added to the certificate's names in
    command-line order as ``-d`` adds names (``-w DIR`` before it maps it too)."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        import ipaddress

        try:
            address = str(ipaddress.ip_address(str(values).strip().strip("[]")))
        except ValueError:
            raise argparse.ArgumentError(self, f"{values!r} is not an IP address") from None
        setattr(ns, self.dest, [*(getattr(ns, self.dest, None) or []), address])
        super().__call__(parser, ns, address, option_string)


def _certificate_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("certificate")
    add = g.add_argument
    add("-d", "--domains", "--domain", dest="domains", action=DomainAction, metavar="DOMAIN",
        default=[])
    add("--ip-address", dest="ip_addresses", action=IpAddressAction, default=[],
        metavar="IP", help="an IP address for the certificate (RFC 8738; repeatable), in "
                           "command-line order with the -d names")
    add("--cert-name", dest="certname")
    add("--csr", metavar="FILE")
    # absolute from the current directory, as Certbot: they go into server configs
    for flag in ("--cert-path", "--key-path", "--fullchain-path", "--chain-path"):
        add(flag, metavar="FILE", type=os.path.abspath)
    add("--key-type", choices=("ecdsa", "rsa"), default=None)
    add("--elliptic-curve", default=None,
        choices=("secp256r1", "secp384r1", "secp521r1"))
    add("--rsa-key-size", type=int, default=None)
    add("--reuse-key", dest="reuse_key", action="store_true", default=None)
    add("--no-reuse-key", dest="reuse_key", action="store_false")
    add("--new-key", action="store_true")
    add("--must-staple", action="store_true",
        help="ask for the OCSP must-staple extension (" + cli_compat.OCSP_ENDED + ")")
    add("--expand", action="store_true")
    add("--duplicate", action="store_true")
    add("--force-renewal", "--renew-by-default", dest="force_renewal", action="store_true")
    add("--keep-until-expiring", "--keep", "--reinstall", dest="reinstall",
        action="store_true")
    add("--allow-subset-of-names", action="store_true")
    add("--dry-run", action="store_true")
    add("--preferred-chain", default=None)
    add("--preferred-challenges", dest="pref_challs", default=None,
        type=_challenge_list, action=_Extend)
    add("--issuance-timeout", type=_nonnegative(float), default=90.0)
    add("--json", action="store_true", help="machine-readable output (certificates)")


def _account_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("account and server")
    add = g.add_argument
    add("--server", default=None)
    add("--staging", "--test-cert", dest="staging", action="store_true")
    add("-m", "--email", default=None)
    add("--agree-tos", dest="tos", action="store_true")
    add("--register-unsafely-without-email", action="store_true")
    add("--eab-kid", default=None)
    add("--eab-hmac-key", default=None)
    add("--account", default=None, metavar="ACCOUNT_ID")
    add("--eff-email", dest="eff_email", action="store_true", default=None)
    add("--no-eff-email", dest="eff_email", action="store_false")
    add("--user-agent", default=None, type=_header_value)
    add("--no-verify-ssl", action="store_true")
    add("--rollover-key", action="store_true")
    add("--reason", default="unspecified", type=str.lower,
        choices=("unspecified", "keycompromise", "affiliationchanged", "superseded",
                 "cessationofoperation"))
    add("--delete-after-revoke", dest="delete_after_revoke", action="store_true",
        default=None)
    add("--no-delete-after-revoke", dest="delete_after_revoke", action="store_false")
    add("--preferred-profile", default=None)
    add("--required-profile", default=None)


def _plugin_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("plugins")
    add = g.add_argument
    add("-a", "--authenticator", default=None)
    add("-i", "--installer", default=None, action=_Installers)
    add("--configurator", default=None)
    add("--http-01-port", dest="http01_port", type=int, default=80)
    add("--http-01-address", dest="http01_address", default="")
    add("--https-port", type=int, default=443)
    add("--pre-hook", default=None)
    add("--post-hook", default=None)
    add("--deploy-hook", "--renew-hook", dest="deploy_hook", default=None)
    add("--no-directory-hooks", dest="directory_hooks", action="store_false", default=True)
    add("--disable-hook-validation", action="store_true")
    add("--no-random-sleep-on-renew", dest="random_sleep_on_renew", action="store_false",
        default=True)
    add("--jobs", type=int, default=None)
    add("--redirect", dest="redirect", action="store_true", default=None)
    add("--no-redirect", dest="redirect", action="store_false")
    add("--hsts", dest="hsts", action="store_true", default=None)
    add("--no-hsts", dest="hsts", action="store_false")
    add("--uir", dest="uir", action="store_true", default=None)
    add("--no-uir", dest="uir", action="store_false")
    add("--checkpoints", type=int, default=1)
    add("--authenticators", dest="list_authenticators", action="store_true")
    add("--installers", dest="list_installers", action="store_true")
    add("--init", action="store_true")
    add("--prepare", action="store_true")


def _shortcuts(p: argparse.ArgumentParser, one_action: bool) -> None:
    """``--NAME`` for every registered plugin (Certbot's ``--nginx``: ``-a nginx -i
    nginx`` where both exist), from the entry points: one that can't load still has its
    shortcut, and choosing it says what to install.

    ``one_action``: all of them as a single action (a parser that never shows help: a
    hundred DNS providers' shortcuts cost a hundred actions otherwise)."""
    from certwright.core import plugins

    g = next(g for g in p._action_groups if g.title == "plugins")
    names = sorted(plugins.names())
    if one_action:
        g.add_argument(*(f"--{name}" for name in names), dest="shortcuts", action=_Shortcut,
                       help="use the plugin NAME (-a/-i NAME)")
        return
    for name in names:
        g.add_argument(f"--{name}", dest="shortcuts", action="append_const", const=name,
                       help=f"use the {name} plugin (-a/-i {name})")


class _Shortcut(argparse.Action):
    """``--NAME``: NAME is added to the list, as ``append_const`` with ``const=NAME``."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        found = list(getattr(ns, self.dest, None) or [])
        setattr(ns, self.dest, [*found, (option_string or "").removeprefix("--")])


class _Extend(argparse.Action):
    """Each use adds to the list (Certbot's --preferred-challenges), in order, once each."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        found = list(getattr(ns, self.dest, None) or [])
        setattr(ns, self.dest, found + [v for v in values if v not in found])


class _Installers(argparse.Action):
    """``-i`` is repeatable: one certificate into several servers, kept as ``a,b``."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        before = str(getattr(ns, self.dest, None) or "")
        names = [n.strip() for n in f"{before},{values}".split(",") if n.strip()]
        setattr(ns, self.dest, ",".join(dict.fromkeys(names)))


def _without_installer(args: list[str]) -> list[str]:
    """``args`` (from cli.ini) without its ``-i``: one on the command line replaces it."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-i", "--installer"):
            skip = True
        elif not arg.startswith("--installer="):
            out.append(arg)
    return out


def _nonnegative(kind: type[int] | type[float]) -> Any:
    def convert(value: str) -> int | float:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid {kind.__name__} value: {value!r}") from None
        if number < 0:
            raise argparse.ArgumentTypeError(f"must not be negative: {value!r}")
        return number

    convert.__name__ = kind.__name__
    return convert


def _header_value(value: str) -> str:
    """A value that goes into an HTTP header as given: no control characters."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value) or value != value.strip():
        raise argparse.ArgumentTypeError("must be one line without control characters or "
                                         "surrounding blanks")
    return value


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds (0 or more)")
    return seconds


def _challenge_list(value: str) -> list[str]:
    out = []
    for item in value.replace(" ", ",").split(","):
        item = item.strip().lower()
        if not item:
            continue
        item = {"http": "http-01", "dns": "dns-01", "tls-alpn": "tls-alpn-01"}.get(item, item)
        if item not in ("http-01", "dns-01", "tls-alpn-01"):
            raise argparse.ArgumentTypeError(f"unknown challenge type {item!r}")
        out.append(item)
    return out


class CommandParser(argparse.ArgumentParser):
    """certwright's parser: what parsing needs besides argparse's actions."""

    partial = False  # plugins left out: an unknown option raises NeedPlugins
    unavailable: dict[str, str] = {}  # noqa: RUF012  plugins that can't load: why, by name
    typed: dict[str, PluginOption] = {}  # noqa: RUF012  declared plugin options, by dest

    def error(self, message: str) -> Any:  # one line, exit code 2 as Certbot's parser
        raise UsageError(message)


def build_parser(
    plugin_classes: Sequence[type[Any]] = (), partial: bool = False
) -> CommandParser:
    """The full parser; ``partial`` leaves plugins out and reports unknown options as
    NeedPlugins, so verbs that need no plugin start without loading any (nor reading the
    entry points: without ``plugin_classes`` a partial parser has no ``--NAME``
    shortcuts, and meeting one makes the caller load the plugins named)."""
    p = CommandParser(prog="certwright", usage=USAGE, add_help=False, allow_abbrev=False)
    p.partial = partial
    _common(p)
    _certificate_options(p)
    _account_options(p)
    _plugin_options(p)
    cli_compat.add_common(p)
    cli_compat.add_certificate(p)
    cli_compat.add_account(p)
    cli_compat.add_plugin(p)
    if plugin_classes or not partial:
        _shortcuts(p, one_action=partial)
    if plugin_classes:
        _plugin_groups(p, plugin_classes)
    return p


def _plugin_groups(p: CommandParser, plugin_classes: Sequence[type[Any]]) -> None:
    """Each plugin's options in a group of its own; typed ones remembered for parse."""
    p.typed = {}
    if any(getattr(cls, "typed_options", ()) for cls in plugin_classes):
        from certwright.core.options import declared  # loaded by those plugins already

        p.typed = declared(plugin_classes)
    for cls in plugin_classes:
        adder = getattr(cls, "add_arguments", None)
        obsolete = getattr(cls, "obsolete_options", None)
        typed = getattr(cls, "typed_options", ()) or ()
        if adder is None and not obsolete and not typed:
            continue
        group = p.add_argument_group(f"{cls.name}", str(getattr(cls, "description", "")))
        try:
            if adder is not None:
                adder(group.add_argument)
            else:  # declared only: added here
                from certwright.core.options import add_options

                add_options(typed, group.add_argument)
        except argparse.ArgumentError as exc:
            raise ConfigError(f"plugin {cls.name!r} adds a conflicting option: {exc}") from None
        cli_compat.add_obsolete(group, obsolete or {})


def _pre_scan(argv: Sequence[str], *names: str) -> str | None:
    found = None
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                found = argv[i + 1]
            elif arg.startswith(name + "="):
                found = arg.split("=", 1)[1]
    return found


def split_verb(
    argv: Sequence[str], parser: argparse.ArgumentParser
) -> tuple[str | None, list[str]]:
    """Find the verb anywhere on the line (not as an option's value) and take it out."""
    args = list(argv)
    for i, arg in enumerate(args):
        name = arg.replace("-", "_") if arg not in VERBS else arg
        if name not in VERBS and arg not in ALIASES:
            continue
        if i > 0:
            prev = parser._option_string_actions.get(args[i - 1])
            if prev is not None and prev.nargs != 0 and "=" not in args[i - 1]:
                continue  # the value of an option (or the topic of --help)
        del args[i]
        return ALIASES.get(arg, name), args
    return None, args


def parse(argv: Sequence[str], parser: argparse.ArgumentParser) -> Settings:
    """Parse with cli.ini defaults underneath the command line; every value's source is
    recorded (see :mod:`certwright.core.settings`)."""
    argv = list(argv)
    from_env: list[str] = []
    config_dir = _pre_scan(argv, "--config-dir") or os.environ.get(
        "CERTWRIGHT_CONFIG_DIR", DEFAULT_CONFIG_DIR)
    if _pre_scan(argv, "--config-dir") is None and config_dir != DEFAULT_CONFIG_DIR:
        from_env += ["--config-dir", config_dir]
    ini = [read_ini(Path(config_dir) / "cli.ini", parser)]
    config_file = _pre_scan(argv, "-c", "--config")
    if config_file:
        path = Path(config_file)
        if not path.exists():
            raise UsageError(f"{path}: config file not found")  # exit 2, as Certbot
        ini.append(read_ini(path, parser))
    from_ini = [word for found in ini for word in found.argv]
    verb, argv = split_verb(argv, parser)
    if _pre_scan(argv, "-i", "--installer") is not None:
        from_ini = _without_installer(from_ini)
    if verb is None and argv and not argv[0].startswith("-"):
        raise UsageError(f"unknown verb {argv[0]!r}; the verbs are: {', '.join(VERBS)}")
    ns, unknown = parser.parse_known_args(from_env + from_ini + argv)
    if unknown and getattr(parser, "partial", False):
        raise NeedPlugins(unknown[0])
    if unknown:
        for word in unknown:
            why = unavailable_plugin(parser, word.split("=")[0])
            if why:
                raise UsageError(why)
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)}")
    ns.verb = verb
    for name in ("config_dir", "work_dir", "logs_dir"):
        setattr(ns, name, os.path.abspath(os.path.expanduser(getattr(ns, name))))
    cli_compat.finish(ns, parser._actions)
    sources: dict[str, Source] = {}
    for words, source in ((from_env, Source.ENVIRONMENT), (from_ini, Source.CLI_INI),
                          (argv, Source.COMMAND_LINE)):  # weakest first
        sources.update(dict.fromkeys(_given(parser, words), source))
    values = vars(ns)
    for dest, option in getattr(parser, "typed", {}).items():
        if values.get(dest) is not None:  # a list option's repeats, as one tuple
            values[dest] = option.convert(values[dest])
    values["shortcuts"] = frozenset(values.get("shortcuts") or ())
    values.pop("version", None)
    values["ini_warnings"] = tuple(text for found in ini for text in found.warnings)
    values["notices"] = tuple(values.get("notices", ()))
    return from_values(values, sources)


def _given(parser: argparse.ArgumentParser, words: Sequence[str]) -> set[str]:
    """The dests that ``words`` set: parsed again with every default suppressed, so only
    what the words name ends up in the namespace (Certbot finds its "set by user" the same
    way). A value equal to the default is given all the same."""
    if not words:
        return set()
    saved = [(action, action.default) for action in parser._actions]
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        found, _ = parser.parse_known_args(list(words), argparse.Namespace())
    finally:
        for action, default in saved:
            action.default = default
    return set(vars(found)) - {"help", "version"}
