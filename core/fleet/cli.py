"""``certwright fleet sync|status|schema``: the command line of the fleet.

Every option may also be given in a ``fleet.ini`` (``--fleet-config FILE``): the long
option names as keys, read as ``cli.ini`` is (an unknown key is warned about, never fatal);
the command line wins.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from certwright.core.cas import LE_PRODUCTION, LE_STAGING
from certwright.core.cli_ini import read_ini
from certwright.core.cli_parser import DEFAULT_CONFIG_DIR, DEFAULT_LOGS_DIR, DEFAULT_WORK_DIR
from certwright.core.errors import UsageError
from certwright.core.settings import from_values

log = logging.getLogger("certwright.fleet")
COMMANDS = ("sync", "status", "schema")
USAGE = """certwright fleet sync [--ldap-url URL --bind-dn DN --bind-password-file FILE
                        --base-dn DN --filter F | --inventory FILE] [--jobs N]
                        [--dry-run] [--json] [--fleet-config FILE]
       certwright fleet status [--json]
       certwright fleet schema [--format ldif|schema] [--oid-base OID]
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise UsageError(message)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be at least 1")
    return number


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must not be negative")
    return number


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r}: give HOST:PORT")
    return host.strip("[]"), int(port)


def build_parser(words: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The fleet's parser, with the options of the installers ``words`` (the command
    line's options and ``fleet.ini``'s keys) name, loaded only then."""
    p = _Parser(prog="certwright fleet", usage=USAGE, allow_abbrev=False)
    add = p.add_argument
    add("command", choices=COMMANDS, nargs="?")  # optional for fleet.ini's parse
    add("--fleet-config", metavar="FILE", help="options as KEY = VALUE lines")
    add("--config-dir", default=os.environ.get("CERTWRIGHT_CONFIG_DIR", DEFAULT_CONFIG_DIR))
    add("--work-dir", default=DEFAULT_WORK_DIR)
    add("--logs-dir", default=DEFAULT_LOGS_DIR)
    add("-v", "--verbose", action="count", default=0)
    add("-q", "--quiet", action="store_true")
    add("--json", action="store_true", help="print the result as JSON")
    add("--all", action="store_true", help="list every domain, not only those with news")
    ldap = p.add_argument_group("LDAP inventory")
    ldap.add_argument("--ldap-url")
    ldap.add_argument("--bind-dn")
    ldap.add_argument("--bind-password-file", metavar="FILE")
    ldap.add_argument("--bind-password", help=argparse.SUPPRESS)
    ldap.add_argument("--base-dn")
    ldap.add_argument("--filter", default="(letsencrypt=TRUE)")
    ldap.add_argument("--ldap-insecure", action="store_true", help="no StartTLS on ldap://")
    ldap.add_argument("--ldap-ca-file", metavar="FILE")
    ldap.add_argument("--ldap-page-size", type=_positive, default=500)
    ldap.add_argument("--attr-names", default="associatedDomain")
    ldap.add_argument("--attr-webroot", default="certwrightWebroot")
    ldap.add_argument("--attr-contact", default="mail")
    ldap.add_argument("--attr-customer", default="o")
    ldap.add_argument("--attr-installer", default="certwrightInstaller")
    add("--inventory", metavar="FILE", help="a TOML inventory instead of LDAP")
    run = p.add_argument_group("the run")
    run.add_argument("--server", default=LE_PRODUCTION)
    run.add_argument("--staging", action="store_true", help="Let's Encrypt's staging CA")
    run.add_argument("-m", "--email")
    run.add_argument("--agree-tos", action="store_true")
    run.add_argument("--account-per", choices=("hoster", "customer"), default="hoster")
    run.add_argument("--jobs", type=_positive, default=4)
    run.add_argument("--ca-concurrency", type=_positive, default=8,
                     help="requests in flight to the CA at most")
    run.add_argument("--max-new-orders", type=int, default=None)
    run.add_argument("--dry-run", action="store_true")
    run.add_argument("--no-precheck", action="store_true")
    run.add_argument("--precheck-http-port", type=_positive, default=80)
    run.add_argument("--precheck-https-port", type=_positive, default=443)
    run.add_argument("--precheck-dns", type=_host_port, metavar="HOST:PORT")
    run.add_argument("--fleet-address", action="append", default=[], metavar="IP",
                     help="an address the names must point at (repeat)")
    run.add_argument("--backoff-base", type=_seconds, default=3600.0)
    run.add_argument("--backoff-max", type=_seconds, default=7 * 86400.0)
    run.add_argument("--allow-empty-inventory", action="store_true")
    run.add_argument("--revoke-removed", action="store_true",
                     help="revoke (cessationOfOperation) a removed domain's certificate "
                          "before deleting its lineage")
    run.add_argument("--no-verify-ssl", action="store_true")
    run.add_argument("--issuance-timeout", type=_seconds, default=90.0)
    run.add_argument("--lock-timeout", type=_seconds, default=0.0)
    sch = p.add_argument_group("schema")
    sch.add_argument("--format", choices=("ldif", "schema"), default="ldif")
    sch.add_argument("--oid-base")
    _installer_options(p, words)
    return p


def _installer_options(p: argparse.ArgumentParser, words: Sequence[str]) -> None:
    """The options of the installers ``words`` name (``--nginx-server-root``,
    ``nginx-server-root``), for the domains an entry says are served through them;
    remembered as ``installer_dests``. Installers no word names are not imported (an
    idle run stays cheap)."""
    from certwright.core import plugins

    dests: set[str] = set()
    known = p._option_string_actions
    unknown = [w.split("=", 1)[0].removeprefix("--") for w in words
               if ("--" + w.split("=", 1)[0].removeprefix("--")) not in known]
    wanted = sorted(n for n in (plugins.names(plugins.INSTALLERS) if unknown else ())
                    if any(u.startswith(f"{n}-") for u in unknown))
    for name in wanted:
        info = plugins.load_named(plugins.INSTALLERS, name)
        adder = getattr(info.cls, "add_arguments", None) if info and info.cls else None
        if adder is None:
            continue
        group = p.add_argument_group(f"{name} installer")
        before = {a.dest for a in p._actions}
        with contextlib.suppress(argparse.ArgumentError):  # shared by two plugins:
            adder(group.add_argument)  # added once
        dests |= {a.dest for a in p._actions} - before
    p.set_defaults(installer_dests=sorted(dests))


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    warnings: list[str] = []
    ini = _pre_scan(argv, "--fleet-config")
    words = [a for a in argv if a.startswith("--")]
    if ini:
        words += _ini_keys(Path(ini))
    parser = build_parser(words)
    if ini:
        path = Path(ini)
        if not path.is_file():
            raise UsageError(f"{path}: fleet config file not found")
        found = read_ini(path, parser)
        argv = found.argv + argv
        warnings = found.warnings
    config = parser.parse_args(argv)
    if config.command is None:
        raise UsageError(f"give a command: {', '.join(COMMANDS)}")
    if config.bind_password is not None:
        raise UsageError("--bind-password is not accepted (it would show in the process "
                         "list and the shell history): put it in a file, 0600, and give "
                         "--bind-password-file")
    for name in ("config_dir", "work_dir", "logs_dir"):
        setattr(config, name, os.path.abspath(os.path.expanduser(getattr(config, name))))
    return config, warnings


def _ini_keys(path: Path) -> list[str]:
    """The keys of ``fleet.ini`` as they stand (which installers' options to load)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [m.group(1) for m in re.finditer(r"(?m)^\s*([A-Za-z0-9_-]+)\s*=", text)]


def _pre_scan(argv: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    config, warnings = parse(argv)
    if config.command == "schema":
        from certwright.core.fleet import schema

        base = config.oid_base or schema.OID_BASE
        try:
            text = schema.ldif(base) if config.format == "ldif" else schema.schema_file(base)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        print(text, end="")
        return 0
    from certwright.core.cli import setup_logging

    logging_config = from_values({**vars(config), "max_log_backups": 10}, {})
    setup_logging(logging_config)
    for text in warnings:
        log.warning("Warning: %s", text)
    say = _say(config)
    if config.command == "status":
        return status(config, say)
    from certwright.core.checkpoint import signals_raise

    with signals_raise():  # SIGTERM unwinds: domains in flight finish, no new one starts
        return sync(config, say)


def _say(config: argparse.Namespace) -> Callable[[str], None]:
    def say(text: str) -> None:
        log.info("%s", text, extra={"said": True})
        if not config.quiet and not config.json:
            print(text, flush=True)
    return say


def status(config: argparse.Namespace, say: Callable[[str], None]) -> int:
    from certwright.core.fleet.report import status_report
    from certwright.core.fleet.state import FleetStore

    report = status_report(FleetStore(Path(config.config_dir)).states().values())
    print(report.as_json() if config.json else report.table(everything=True, actions=False),
          end="")
    return 0


def inventory_from(config: argparse.Namespace) -> Any:
    from certwright.core.fleet.inventory import TomlInventory

    if config.inventory and config.ldap_url:
        raise UsageError("give --inventory FILE or --ldap-url, not both")
    if config.inventory:
        return TomlInventory(Path(config.inventory))
    if not config.ldap_url or not config.base_dn:
        raise UsageError("say where the domains are: --ldap-url URL --base-dn DN (with "
                         "--bind-dn and --bind-password-file), or --inventory FILE")
    from certwright.core.fleet.ldap_source import LdapInventory, LdapOptions

    if config.bind_dn and not config.bind_password_file:
        raise UsageError("--bind-dn needs --bind-password-file")
    return LdapInventory(LdapOptions(
        url=config.ldap_url, base_dn=config.base_dn, filter=config.filter,
        bind_dn=config.bind_dn,
        password_file=Path(config.bind_password_file) if config.bind_password_file else None,
        insecure=config.ldap_insecure,
        ca_file=Path(config.ldap_ca_file) if config.ldap_ca_file else None,
        attr_names=config.attr_names, attr_webroot=config.attr_webroot,
        attr_contact=config.attr_contact, attr_customer=config.attr_customer,
        attr_installer=config.attr_installer,
        page_size=config.ldap_page_size))


def sync(config: argparse.Namespace, say: Callable[[str], None]) -> int:
    from certwright.core.fleet.install import InstallOptions
    from certwright.core.fleet.precheck import PrecheckOptions
    from certwright.core.fleet.report import Progress
    from certwright.core.fleet.sync import Sync, SyncOptions

    if config.max_new_orders is not None and config.max_new_orders < 0:
        raise UsageError("--max-new-orders must not be negative")
    if config.staging:
        if config.server not in (LE_PRODUCTION, LE_STAGING):
            raise UsageError("--staging and --server name different CAs; give one of them")
        config.server = LE_STAGING
    opts = SyncOptions(
        config_dir=Path(config.config_dir), work_dir=Path(config.work_dir),
        server=config.server, jobs=config.jobs, ca_concurrency=config.ca_concurrency,
        max_new_orders=config.max_new_orders, dry_run=config.dry_run,
        per_customer=config.account_per == "customer", email=config.email,
        agree_tos=config.agree_tos,
        precheck=PrecheckOptions(http_port=config.precheck_http_port,
                                 https_port=config.precheck_https_port,
                                 dns_server=config.precheck_dns,
                                 addresses=frozenset(config.fleet_address)),
        skip_precheck=config.no_precheck, backoff_base=config.backoff_base,
        backoff_max=config.backoff_max, allow_empty=config.allow_empty_inventory,
        no_verify_ssl=config.no_verify_ssl, issuance_timeout=config.issuance_timeout,
        lock_timeout=config.lock_timeout, revoke_removed=config.revoke_removed,
        install=InstallOptions(
            {d: str(getattr(config, d)) for d in config.installer_dests
             if getattr(config, d, None) not in (None, False)},
            http_port=config.precheck_http_port, https_port=config.precheck_https_port))
    inventory = inventory_from(config)
    progress = Progress(say, live=None if not (config.json or config.quiet) else False)
    if config.json or config.quiet:
        progress.say = lambda text: log.info("%s", text)
    try:
        report = Sync(opts, inventory, progress).run()
    finally:
        inventory.close()
    if config.json:
        print(report.as_json())
    elif not config.quiet:
        if config.dry_run:
            print("Dry run: nothing was ordered or written.")
        print(report.table(everything=config.all), end="")
    if report.failed:
        print(f"Error: {sum(o.attempted_and_failed for o in report.outcomes) + len(report.bad)}"
              " domain(s) failed; see above (and `certwright fleet status`)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
