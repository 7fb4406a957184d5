"""Verbs other than issuance: listing, accounts, plugins, help."""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from certwright.core.cli_parser import VERBS
from certwright.core.errors import ConfigError, StorageError
from certwright.core.settings import Settings
from certwright.core.storage import lineage as lineages
from certwright.core.storage.files import ensure_dir
from certwright.core.storage.lock import lock_timeout, store_lock

Say = Callable[[str], None]
Ask = Callable[[str], str] | None

VERB_GROUPS = {
    "certonly": ("certificate", "account and server", "plugins"),
    "run": ("certificate", "account and server", "plugins"),
    "certificates": ("certificate",),
    "renew": ("certificate", "plugins"),
    "revoke": ("certificate", "account and server"),
    "delete": ("certificate",),
    "reconfigure": ("certificate", "plugins"),
    "register": ("account and server",),
    "show_account": ("account and server",),
    "update_account": ("account and server",),
    "unregister": ("account and server",),
    "plugins": ("plugins",),
    "install": ("certificate", "plugins"),
    "enhance": ("certificate", "plugins"),
    "rollback": ("plugins",),
}


def dispatch(config: Settings, say: Say, ask: Ask) -> int:
    verb = config.verb or "run"
    handler = HANDLERS.get(verb)
    if handler is None:
        raise ConfigError(f"the {verb!r} verb is not available in this version")
    if config.certname is not None:
        from certwright.core.names import check_cert_name

        check_cert_name(config.certname)  # before any lock, CA request, hook or config
    if config.strict_permissions:
        check_permissions(config)
    started()
    return handler(config, say, ask)


def started() -> None:
    """Start-up is over (the command is parsed, or a verb's modules are loaded).

    ``cli.main`` keeps the cyclic garbage collector off until here: importing allocates
    many objects that live until exit and frees almost none, so the collections in
    between find nothing, and each full one walks every object imported so far (~10% of
    a certificate's CPU). What exists now is frozen out of later collections, which
    then resume as usual."""
    gc.freeze()
    gc.enable()


def check_permissions(config: Settings) -> None:
    """``--strict-permissions`` (Certbot's): the config, work and logs dirs that exist must
    be owned by this user and writable by no one else; the first that is not is named."""
    import os
    import stat

    uid = os.geteuid()
    for name, value in (("config_dir", config.config_dir), ("work_dir", config.work_dir),
                        ("logs_dir", config.logs_dir)):
        path = Path(value)
        try:
            found = path.stat()  # a symlinked dir is judged by the dir
        except FileNotFoundError:
            continue  # created later with the right owner and mode
        except OSError as exc:
            raise ConfigError(f"{path}: can't check its permissions: {exc.strerror}") from None
        if not stat.S_ISDIR(found.st_mode):
            raise ConfigError(f"{path}: --{name.replace('_', '-')} is not a directory")
        if found.st_uid != uid:
            raise ConfigError(f"{path}: owned by uid {found.st_uid}, not by this user "
                              f"(uid {uid}); --strict-permissions refuses it")
        if found.st_mode & 0o022:
            raise ConfigError(f"{path}: writable by others (mode "
                              f"{stat.S_IMODE(found.st_mode):04o}); --strict-permissions "
                              "refuses it")


def _locked(fn: Callable[[Settings, Say, Ask], int]) -> Callable[..., int]:
    def locked(config: Settings, say: Say, ask: Ask) -> int:
        config_dir = Path(config.config_dir)
        try:  # every new parent too gets 0755, whatever the umask (cron may run with 000)
            ensure_dir(config_dir, 0o755)
        except StorageError as exc:
            raise ConfigError(f"can't create the config dir: {exc}") from None
        from certwright.core.checkpoint import journals_changed, one_checkpoint
        from certwright.core.retention import max_checkpoints, prune_dir, start_up

        keep = max_checkpoints(config.max_checkpoints)
        work_dir = Path(config.work_dir)
        interactive = not config.noninteractive and sys.stdin.isatty()
        wait = lock_timeout(config.lock_timeout, interactive=interactive)
        with store_lock(config_dir, wait):
            for fixed in lineages.repair_store(config_dir):
                say(fixed)
            for undone in start_up(work_dir, keep):  # recovery, then old journals pruned
                say(undone)
            with one_checkpoint():  # whatever this command changes is one checkpoint
                result = fn(config, say, ask)
            if journals_changed():
                prune_dir(work_dir, keep)
            return result

    return locked


def run_locked(fn: Callable[[Settings, Say, Ask], int], config: Settings, say: Say,
               ask: Ask) -> int:
    """``fn`` as a verb runs it: holding the store lock, after recovery, as one
    checkpoint (for callers of the library, :mod:`certwright.core.api`)."""
    return _locked(fn)(config, say, ask)


def _lazy(module: str, name: str) -> Callable[[Settings, Say, Ask], int]:
    """A verb whose module (and its imports: requests, josepy…) loads only when it runs."""

    def handler(config: Settings, say: Say, ask: Ask) -> int:
        import importlib

        gc.disable()  # its imports (requests, cryptography…) are start-up too
        try:
            fn = getattr(importlib.import_module(f"certwright.core.{module}"), name)
        finally:
            started()
        result: int = fn(config, say, ask)
        return result

    return handler


def _then(first: Callable[[Settings, Say, Ask], int],
          then: Callable[[Settings, Say, Ask], int]) -> Callable[..., int]:
    """``first`` (outside the store lock), then ``then``."""

    def handler(config: Settings, say: Say, ask: Ask) -> int:
        first(config, say, ask)
        return then(config, say, ask)

    return handler


# -- certificates -------------------------------------------------------------------------
def certificates(config: Settings, say: Say, ask: Ask) -> int:
    everything = found = lineages.list_lineages(Path(config.config_dir))
    if config.certname:
        found = [lin for lin in found if lin.name == config.certname]
    if config.domains:
        from certwright.core.names import name_key

        wanted = {name_key(d) for d in config.domains}
        found = [lin for lin in found if wanted & set(lin.names)]
    from certwright.core.lineage_cache import LineageCache

    now = datetime.datetime.now(datetime.UTC)
    cache = LineageCache(Path(config.work_dir))
    cache.prune(Path(config.config_dir), everything)
    rows = [_describe(lin, cache, now) for lin in found]
    cache.save()
    if config.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        which = " matching the --cert-name/-d given" if config.certname or config.domains \
            else ""
        say(f"No certificates found{which} in {config.config_dir}.")
        return 0
    lines = ["Found the following certs:"]
    for row in rows:
        if "error" in row:
            lines.append(f"  Certificate Name: {row['name']}\n    Error: {row['error']}")
            continue
        lines += [
            f"  Certificate Name: {row['name']}",
            f"    Serial Number: {row['serial']}",
            f"    Key Type: {row['key_type']}",
            f"    Domains: {' '.join(row['domains'])}",
            f"    Expiry Date: {row['expires']} ({row['status']}: {row['days_left']} days)",
            f"    Certificate Path: {row['fullchain_path']}",
            f"    Private Key Path: {row['privkey_path']}",
        ]
    print("\n".join(lines))
    return 0


def _describe(lin: Any, cache: Any, now: datetime.datetime) -> dict[str, Any]:
    try:
        if lin.error:
            raise ValueError(lin.error)
        found = cache.summary(lin)
        not_after = datetime.datetime.fromtimestamp(found.not_after, datetime.UTC)
        days = (not_after - now).days
        return {
            "name": lin.name,
            "domains": list(found.names),
            "serial": found.serial,
            "key_type": found.key_type,
            "expires": not_after.strftime("%Y-%m-%d %H:%M:%S+00:00"),
            "days_left": days,
            "status": "VALID" if days >= 0 else "EXPIRED",
            "cert_path": str(lin.cert),
            "fullchain_path": str(lin.fullchain),
            "chain_path": str(lin.chain),
            "privkey_path": str(lin.privkey),
            "renewal_conf": str(lin.conf.path),
        }
    except Exception as exc:  # a damaged lineage is reported, not fatal
        return {"name": lin.name, "error": str(exc)}


# -- plugins and help ---------------------------------------------------------------------
def plugins_cmd(config: Settings, say: Say, ask: Ask) -> int:
    from certwright.core import plugins

    groups = []
    if config.list_authenticators or not config.list_installers:
        groups.append(("Authenticators", plugins.AUTHENTICATORS))
    if config.list_installers or not config.list_authenticators:
        groups.append(("Installers", plugins.INSTALLERS))
    for title, group in groups:
        found = plugins.discover(group)
        print(f"{title}:")
        if not found:
            print("  (none installed)")
        for info in found:
            print(f"* {info.name}\n  {info.description or '(no description)'}\n"
                  f"  Entry point: {info.name} = {info.target}")
            if info.error:
                print(f"  Unavailable: {info.error}")
            elif (config.prepare or config.init) and info.cls is not None:
                print(f"  {_prepared(info.cls, config)}")
        print()
    return 0


def _prepared(cls: Any, config: Settings) -> str:
    """``plugins --prepare``: can the plugin work here (server installed, config readable)?"""
    from certwright.core.errors import CertwrightError

    try:
        cls(config).prepare()
    except CertwrightError as exc:
        return f"Not ready: {exc}"
    except Exception as exc:  # a third-party plugin's bug must not stop the listing
        return f"Not ready: {type(exc).__name__}: {exc}"
    return "Ready"


def help_text(parser: argparse.ArgumentParser, topic: str) -> str:
    from certwright.core import plugins
    from certwright.core.cli_parser import USAGE

    if topic in ("", None):
        return USAGE
    if topic == "all":
        return parser.format_help()
    found = {p.name: p for g in (plugins.AUTHENTICATORS, plugins.INSTALLERS)
             for p in plugins.discover(g)}
    if topic not in VERBS and topic not in found:
        raise ConfigError(f"no help on {topic!r}: try a verb ({', '.join(VERBS)}), "
                          "a plugin name, or all")
    wanted = VERB_GROUPS.get(topic, ()) if topic in VERBS else (topic,)
    out = [f"certwright {topic}: {VERBS.get(topic, 'plugin options')}\n"]
    broken = found.get(topic)
    if topic not in VERBS and broken is not None and broken.cls is None:
        out.append(f"The {topic} plugin can't be used here: {broken.error}\n")
    for group in parser._action_groups:
        if group.title in wanted:
            fmt = parser._get_formatter()
            fmt.start_section(group.title)
            fmt.add_text(group.description)
            fmt.add_arguments(group._group_actions)
            fmt.end_section()
            out.append(fmt.format_help())
    return "\n".join(out)


HANDLERS: dict[str, Callable[[Settings, Say, Ask], int]] = {
    "certonly": _locked(_lazy("verbs.issue", "obtain")),
    "run": _locked(_lazy("verbs.install", "run")),
    "install": _locked(_lazy("verbs.install", "install")),
    "enhance": _locked(_lazy("verbs.install", "enhance")),
    "rollback": _locked(_lazy("verbs.install", "rollback")),
    # the random sleep of a non-interactive renew is taken before the lock, not holding it
    "renew": _then(_lazy("verbs.renew", "sleep_if_due"), _locked(_lazy("verbs.renew", "renew"))),
    "revoke": _locked(_lazy("verbs.manage", "revoke")),
    "delete": _locked(_lazy("verbs.manage", "delete")),
    "reconfigure": _locked(_lazy("verbs.manage", "reconfigure")),
    "certificates": certificates,
    "register": _locked(_lazy("account_verbs", "register")),
    "show_account": _locked(_lazy("account_verbs", "show_account")),  # may finish a rollover
    "update_account": _locked(_lazy("account_verbs", "update_account")),
    "unregister": _locked(_lazy("account_verbs", "unregister")),
    "plugins": plugins_cmd,
}
