"""certwright as a library: obtain, renew and deploy certificates from Python.

The same code the verbs run (``certonly``, ``renew``, ``install``), under the same store
lock and recovery, returning an :class:`Outcome` instead of printing. Call it as often as
you like from one process, from several threads too: calls on one store take turns on
its lock, and every call to the same CA shares one ACME transport (one directory fetch,
one nonce pool)::

    from certwright.core import api

    base = api.settings(config_dir="/etc/certwright", work_dir="/var/lib/certwright",
                        server="https://acme.example/directory", email="ops@example.org")
    outcome = api.obtain(api.Request(["example.org"], authenticator="webroot",
                                     options={"webroot_path": ["/srv/www"]}), base)
    if outcome.status == "failed":
        print(outcome.error)

Every value given here counts as given by the user (``Source.CALLER``): it wins over a
lineage's stored renewal options, as a command-line option does. Values in the base
:func:`settings` act like ``cli.ini`` for every call (a base ``authenticator`` would renew
every lineage through it); give per-certificate choices in the :class:`Request`.
"""

from __future__ import annotations

import datetime
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certwright.core.errors import CertwrightError
from certwright.core.settings import FIELDS, Settings, Source, from_values

__all__ = ["Outcome", "Request", "Settings", "Source", "deploy", "obtain", "renew",
           "settings"]

Ask = Callable[[str], str] | None


@dataclass(frozen=True)
class Request:
    """A certificate to obtain: its names, the lineage name (default: the first name),
    the authenticator, and any other option by its dest (``webroot_path``,
    ``http01_port``, ``key_type``, ``preferred_challenges`` as ``pref_challs``, ...)."""

    domains: Sequence[str]
    cert_name: str | None = None
    authenticator: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What a call did. ``status``: ``issued``, ``renewed``, ``kept`` (not due: nothing
    asked of the CA), ``not-due``, ``dry-run``, ``deployed`` or ``failed`` (then
    ``error`` says why, in one line). ``messages``: what the verb would have printed."""

    lineage: str | None
    status: str
    domains: tuple[str, ...] = ()
    cert_path: str | None = None
    key_path: str | None = None
    chain_path: str | None = None
    fullchain_path: str | None = None
    serial: int | None = None
    not_after: datetime.datetime | None = None
    error: str | None = None
    messages: tuple[str, ...] = ()


def settings(*, config_dir: str | os.PathLike[str], work_dir: str | os.PathLike[str],
             logs_dir: str | os.PathLike[str] | None = None, **options: Any) -> Settings:
    """Settings for library calls: the store's directories and any option by dest
    (``server``, ``email``, ``tos`` defaults to True, ``noninteractive`` is always on).
    Nothing is read from ``cli.ini``."""
    _check_names(options, "settings()")
    values: dict[str, Any] = {
        "config_dir": os.path.abspath(config_dir), "work_dir": os.path.abspath(work_dir),
        "logs_dir": os.path.abspath(logs_dir or Path(work_dir) / "logs"),
        "noninteractive": True, "tos": True, "random_sleep_on_renew": False,
        "verb": "library", **options}
    return from_values(values, dict.fromkeys(values, Source.CALLER))


@functools.cache
def known_options() -> frozenset[str]:
    """Every option name (dest) the command line knows, with every installed plugin's."""
    from certwright.core import cli

    parser = cli._full_parser()
    return frozenset(a.dest for a in parser._actions) - {"help", "version"}


def _check_names(options: Mapping[str, Any], where: str) -> None:
    """A misspelt option is an error naming it, not a value nothing reads."""
    unknown = sorted(set(options) - known_options() - FIELDS)
    if unknown:
        raise TypeError(f"{where}: unknown option {unknown[0]!r} (options are named as "
                        "their dests: http01_port for --http-01-port)")


def obtain(request: Request, base: Settings) -> Outcome:
    """``certonly`` for ``request``: a new lineage, or a renewal of the one with these
    names when it is due (``kept`` when not)."""
    _check_names(request.options, "Request.options")
    changes: dict[str, Any] = {"domains": tuple(request.domains), **request.options}
    if request.cert_name:
        changes["certname"] = request.cert_name
    if request.authenticator:
        changes["authenticator"] = request.authenticator
    config = base.derive(Source.CALLER, **changes)
    found: list[tuple[Any, bool]] = []

    def verb(cfg: Settings, say: Callable[[str], None], ask: Ask) -> int:
        from certwright.core.verbs import issue

        found.append(issue.obtain_lineage(cfg, say, ask))
        return 0

    said, error = _run(verb, config)
    name = request.cert_name or (request.domains[0] if request.domains else None)
    if error is not None or not found:
        return Outcome(name, "failed", tuple(request.domains), error=error or "no result",
                       messages=said)
    lineage, issued = found[0]
    if lineage is None:
        return Outcome(name, "dry-run", tuple(request.domains), messages=said)
    return _outcome(lineage, "issued" if issued else "kept", said)


def renew(lineage: str, base: Settings, *, force: bool = False,
          options: Mapping[str, Any] | None = None) -> Outcome:
    """``renew --cert-name lineage``: renewed when due (or ``force``), with its stored
    options under ``options``; its hooks run, and its installer deploys it."""
    _check_names(options or {}, "renew(options=...)")
    config = base.derive(Source.CALLER, certname=lineage, force_renewal=force,
                         random_sleep_on_renew=False, **(options or {}))
    found: list[Any] = []

    def verb(cfg: Settings, say: Callable[[str], None], ask: Ask) -> int:
        from certwright.core.verbs import renew as renewing

        found.extend(renewing.renew_lineages(cfg, say, ask))
        return 0

    said, error = _run(verb, config)
    mine = [o for o in found if o.name == lineage]
    if error is not None or not mine:
        return Outcome(lineage, "failed", error=error or "no result", messages=said)
    result = mine[0]
    if result.status == "failed":
        return Outcome(lineage, "failed", tuple(result.domains), error=result.detail,
                       messages=said)
    return _stored(lineage, config, result.status, said)


def deploy(lineage: str, base: Settings, *, installer: str | None = None,
           options: Mapping[str, Any] | None = None) -> Outcome:
    """``install --cert-name lineage``: the lineage's certificate into its server
    (``installer``, else the one stored for it), tested, reloaded and checked served."""
    _check_names(options or {}, "deploy(options=...)")
    changes: dict[str, Any] = {"certname": lineage, **(options or {})}
    if installer:
        changes["installer"] = installer
    config = base.derive(Source.CALLER, **changes)

    def verb(cfg: Settings, say: Callable[[str], None], ask: Ask) -> int:
        from certwright.core.verbs import install

        return install.install(cfg, say, ask)

    said, error = _run(verb, config)
    if error is not None:
        return Outcome(lineage, "failed", error=error, messages=said)
    return _stored(lineage, config, "dry-run" if config.dry_run else "deployed", said)


def _run(verb: Callable[[Settings, Callable[[str], None], Ask], int],
         config: Settings) -> tuple[tuple[str, ...], str | None]:
    """Run ``verb`` as the CLI does (checks, store lock, recovery, one checkpoint);
    returns what it said and its error (None when it succeeded)."""
    from certwright.core import commands, hooks
    from certwright.core.names import check_cert_name

    said: list[str] = []
    try:
        if config.certname is not None:
            check_cert_name(config.certname)
        hooks.validate_hooks(config)
        commands.run_locked(verb, config, said.append, None)
    except CertwrightError as exc:
        return tuple(said), str(exc)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return tuple(said), f"{where}{exc.strerror or exc}"
    return tuple(said), None


def _stored(name: str, config: Settings, status: str, said: tuple[str, ...]) -> Outcome:
    from certwright.core.storage import lineage as lineages

    try:
        found = lineages.load_lineage(Path(config.config_dir), name)
    except CertwrightError as exc:
        return Outcome(name, "failed", error=str(exc), messages=said)
    return _outcome(found, status, said)


def _outcome(lineage: Any, status: str, said: tuple[str, ...]) -> Outcome:
    cert = lineage.certificate
    return Outcome(
        lineage.name, status, tuple(lineage.names), cert_path=str(lineage.cert),
        key_path=str(lineage.privkey), chain_path=str(lineage.chain),
        fullchain_path=str(lineage.fullchain), serial=cert.serial_number,
        not_after=lineage.not_after, messages=said)
