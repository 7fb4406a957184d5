"""`renew`: find the lineages that are due, renew them in parallel, run the hooks.

Deciding needs no plugin and, when nothing changed, no certificate parsing: a small cache
in the work dir (:mod:`certwright.core.lineage_cache`) keeps each lineage's validity period
for as long as the file its ``cert.pem`` serves is unchanged.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certwright.core import clock, pending_hooks, renewal_options
from certwright.core.ari_check import AriCheck
from certwright.core.cas import LE_PRODUCTION, LE_STAGING
from certwright.core.due import should_renew
from certwright.core.errors import CertwrightError, ConfigError
from certwright.core.interfaces import serial_key, share_key
from certwright.core.lineage_cache import LineageCache
from certwright.core.options import PluginOption, declared
from certwright.core.settings import Settings, Source
from certwright.core.storage import lineage as lineages
from certwright.core.storage.lineage import Lineage
from certwright.core.verbs import redeploy

if TYPE_CHECKING:
    from certwright.core.interfaces import Authenticator

log = logging.getLogger(__name__)
Say = Callable[[str], None]
Ask = Callable[[str], str] | None

DEFAULT_JOBS = 4


@dataclass
class Outcome:
    name: str
    status: str  # renewed | not-due | failed | dry-run | installed | hooks
    detail: str = ""
    domains: tuple[str, ...] = ()


# -- per-lineage configuration ------------------------------------------------------------
def lineage_config(config: Settings, lin: Lineage) -> Settings:
    """The stored renewal options (:mod:`certwright.core.renewal_options`), overridden by
    what the user gave for this command (command line, cli.ini), whatever its value."""
    from certwright.core import plugins

    try:
        stored = renewal_options.from_conf(lin.params)
        for dest, option in _typed_options(config, lin).items():
            if stored.get(dest) is not None:  # a plugin's option, typed as it declares
                try:
                    stored[dest] = option.convert(stored[dest])
                except ValueError:
                    raise renewal_options.BadValue(dest, stored[dest]) from None
    except renewal_options.BadValue as exc:
        raise ConfigError(f"{lin.conf.path}: {exc}") from None
    if "webroot_map" in lin.params:
        stored["webroot_map"] = _webroot_map(lin, lin.params["webroot_map"])
    cli_auth = config.given("authenticator") or bool(
        config.shortcuts and plugins.chosen(config, None, plugins.AUTHENTICATORS))
    changes = {key: value for key, value in stored.items()
               if not config.given(key) and not (key == "authenticator" and cli_auth)}
    # the two profile options exclude each other: one given here replaces a stored other
    for given, other in (("preferred_profile", "required_profile"),
                         ("required_profile", "preferred_profile")):
        if config.given(given) and not config.given(other):
            changes[other] = None
    ns = config.derive(Source.RENEWAL_CONF, **changes)
    if not cli_auth and ns.authenticator is None:
        raise ConfigError(f"{lin.conf.path}: no authenticator stored; give one on the command "
                          "line (e.g. --webroot -w DIR)")
    derived: dict[str, object] = {"certname": lin.name, "domains": tuple(lin.names)}
    if config.dry_run and ns.server == LE_PRODUCTION:
        derived["server"] = LE_STAGING
    return ns.derive(**derived)


def _typed_options(config: Settings, lin: Lineage) -> dict[str, PluginOption]:
    """The typed options of the plugins this renewal may use: the stored authenticator and
    installer, and those given now (a plugin that can't load declares nothing)."""
    from certwright.core import plugins

    names = {str(lin.params.get(k)) for k in ("authenticator", "installer")}
    names |= {n for n in (config.authenticator, config.installer) if n} | config.shortcuts
    return declared(plugins.classes_named(names))


def _webroot_map(lin: Lineage, raw: object) -> dict[str, str]:
    """``webroot_map`` is a section; a plain value (a hand edit, an old tool) is ignored
    with a warning naming the file: the stored ``webroot_path`` serves every name."""
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items() if isinstance(v, str)}
    log.warning("%s: webroot_map is not a section (%r); ignored, the webroot_path is used",
                lin.conf.path, raw)
    return {}


# -- the run ------------------------------------------------------------------------------
class Renewer:
    def __init__(self, config: Settings, say: Say, ask: Ask, ari: AriCheck,
                 pending: set[str]) -> None:
        from certwright.core.verbs import issue

        self.config = config
        self.ari = ari
        self.say = say
        self.ask = ask
        self.runner = issue.HookRunner(config, say)
        self.work_dir = Path(config.work_dir)
        self.pending = pending
        self.owed: dict[str, int] = {}
        self.deployer = redeploy.Deployer(self.work_dir, say)
        self._shared: dict[tuple[str, Hashable], Authenticator] = {}
        self._locks_lock = threading.Lock()
        self._locks: dict[tuple[str, Hashable], threading.Lock] = {}

    def authenticator(self, ns: Settings) -> Authenticator:
        """A prepared authenticator for one lineage: the one shared instance for its
        plugin's share key when it gives one (see ``SupportsShare``), else its own."""
        from certwright.core import plugins
        from certwright.core.verbs import issue

        name = issue.authenticator_name(ns)
        cls = plugins.find(plugins.AUTHENTICATORS, name)
        auth: Authenticator = cls(ns)
        key = share_key(auth)
        if key is None:
            with self._exclusive(auth):  # it reads what another renewal may be editing
                auth.prepare()
            return auth
        with self._locks_lock:  # parallel renewals: one shared instance per key
            shared = self._shared.get((name, key))
            if shared is None:
                auth.prepare()
                shared = self._shared[(name, key)] = auth
            return shared

    def renew_one(self, lin: Lineage) -> Outcome:
        from certwright.core import names
        from certwright.core.verbs import issue

        try:
            lin.check_links()  # a file where a link belongs is refused, never replaced
            ns = lineage_config(self.config, lin)
            replaces = self._replaces(ns, lin)
            idents = names.parse_domains(lin.names)
            auth = self.authenticator(ns)
            target = issue.Target(idents, lin, lin.name, "renew")
            installed = _has_installer(ns) and not ns.dry_run
            serving = _live_version(lin)
            earlier = self.owed.get(lin.name)  # hooks an interrupted run still owes
            if earlier is not None and earlier != serving:
                serving = earlier  # kept owed until hooks run after this renewal
            if installed:  # served only once the deployer has seen it served
                redeploy.mark(self.work_dir, lin.name)
            if not ns.dry_run:  # its deploy hooks are owed once live/ switches
                pending_hooks.mark(self.work_dir, lin.name, serving)
            try:
                with self._exclusive(auth):
                    new = issue.issue(ns, target, auth, self.say, None, replaces)
            except BaseException:
                # nothing new to serve, unless live/ switched before the failure or an
                # earlier run left it pending
                if _live_version(lin) == serving:
                    pending_hooks.unmark(self.work_dir, lin.name)
                    if installed and lin.name not in self.pending:
                        redeploy.unmark(self.work_dir, lin.name)
                raise
        except CertwrightError as exc:
            return Outcome(lin.name, "failed", str(exc), _names_of(lin))
        except Exception as exc:
            log.exception("renewal of %s failed", lin.name)
            return Outcome(lin.name, "failed", f"{type(exc).__name__}: {exc}", _names_of(lin))
        if new is None:  # --run-deploy-hooks: with the current certificate
            ok = self.runner.deploy(lin, ns.deploy_hook)
            return Outcome(lin.name, "dry-run", "" if ok else "a deploy hook failed",
                           tuple(lin.names))
        if installed:
            self.deployer.add(ns, new)
        ok = self.runner.deploy(new, ns.deploy_hook)
        pending_hooks.unmark(self.work_dir, new.name)
        return Outcome(lin.name, "renewed", "" if ok else "a deploy hook failed",
                       tuple(new.names))

    def _exclusive(self, auth: Authenticator) -> Any:
        """Renewals whose authenticators edit the same target (one nginx's config: equal
        serial keys, see ``SupportsSerial``) take turns; others, two nginx trees among
        them, run freely. Installing runs after all renewals (redeploy)."""
        key = serial_key(auth)
        if key is None:
            return contextlib.nullcontext()
        with self._locks_lock:
            return self._locks.setdefault((auth.name, key), threading.Lock())

    def _replaces(self, ns: Settings, lin: Lineage) -> str | None:
        """RFC 9773 §5: name the certificate this order replaces, when the CA speaks ARI."""
        if not ns.server or not self.ari.offers_ari(str(ns.server), clock.now()):
            return None
        try:
            from certwright.core import ari

            return ari.cert_id(lin.certificate)
        except Exception as exc:
            log.debug("no replaces for %s: %s", lin.name, exc)
            return None


def renew(config: Settings, say: Say, ask: Ask) -> int:
    """`renew`: the renewals, then their summary."""
    return _summary(renew_lineages(config, say, ask), say)


def renew_lineages(config: Settings, say: Say, ask: Ask) -> list[Outcome]:
    """Renew every lineage that is due (or the one ``--cert-name`` names), with the hooks
    and the installs; one outcome per lineage."""
    if config.domains:
        raise ConfigError("renew takes no -d: it renews every certificate that is due, or "
                          "the one named by --cert-name; for other names use certonly")
    config_dir = Path(config.config_dir)
    found = everything = lineages.list_lineages(config_dir)
    if config.certname:
        found = [lin for lin in found if lin.name == config.certname]
        if not found:
            raise ConfigError(f"no certificate named {config.certname!r} in {config_dir}")
    outcomes: list[Outcome] = []
    due: list[Lineage] = []
    by_name = {lin.name: lin for lin in found}
    pending = set() if config.dry_run else redeploy.pending(Path(config.work_dir))
    owed = {} if config.dry_run else pending_hooks.pending(Path(config.work_dir))
    cache = LineageCache(Path(config.work_dir))
    cache.prune(config_dir, everything)
    ari = AriCheck(config, cache)
    now = clock.now()
    for lin in found:
        if lin.error:
            outcomes.append(Outcome(lin.name, "failed", lin.error))
            continue
        try:
            wanted = should_renew(lin, now, force=config.force_renewal or config.dry_run,
                                  cache=cache, ari=ari)
        except Exception as exc:
            outcomes.append(Outcome(lin.name, "failed", f"can't read the certificate: {exc}"))
            continue
        if wanted:
            due.append(lin)
        else:
            outcomes.append(Outcome(lin.name, "not-due"))
    cache.save()
    catch_up = [o for o in outcomes if o.status == "not-due" and o.name in pending]
    hooks_owed = _hooks_owed(config, outcomes, by_name, owed)
    if due or catch_up or hooks_owed:
        renewer = Renewer(config, say, ask, ari, pending)
        renewer.owed = owed
        for outcome in hooks_owed:
            _run_owed_hooks(config, renewer, by_name[outcome.name], outcome)
        for outcome in catch_up:
            _catch_up(config, renewer, by_name[outcome.name], outcome)
        if due:
            renewer.runner.pre(*_stored_hooks(config, due, "pre_hook"))
            jobs = max(1, config.jobs or DEFAULT_JOBS)
            with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
                outcomes += list(pool.map(renewer.renew_one, due))
        for outcome in outcomes:  # a renewal that failed now still serves the last one
            if outcome.status == "failed" and outcome.name in pending \
                    and outcome.name in by_name:
                _catch_up(config, renewer, by_name[outcome.name], Outcome(outcome.name, ""))
        _note_deploys(outcomes, renewer.deployer.run())
        if due:
            renewed = [d for o in outcomes if o.status in ("renewed", "dry-run")
                       for d in o.domains]
            failed = [d for o in outcomes if o.status == "failed" for d in o.domains]
            renewer.runner.post(renewed, failed, *_stored_hooks(config, due, "post_hook"))
    return outcomes


def _stored_hooks(config: Settings, lins: list[Lineage], key: str) -> list[str]:
    """The ``key`` hook each lineage renews with (the command line's, else its stored one),
    in lineage order; a lineage whose options can't be read fails later on its own."""
    found: list[str] = []
    for lin in lins:
        with contextlib.suppress(CertwrightError):
            command = lineage_config(config, lin).option(key)
            if command and command not in found:
                found.append(str(command))
    return found


def _hooks_owed(config: Settings, outcomes: list[Outcome],
                by_name: dict[str, Lineage], owed: dict[str, int]) -> list[Outcome]:
    """Lineages not due now whose last renewal went live but died before its deploy
    hooks ran; records of renewals that never went live (or of lineages gone) are
    dropped."""
    work_dir = Path(config.work_dir)
    found = []
    for outcome in outcomes:
        if outcome.name not in owed or outcome.status != "not-due":
            continue
        if _live_version(by_name[outcome.name]) not in (owed[outcome.name], None):
            found.append(outcome)
        else:
            pending_hooks.unmark(work_dir, outcome.name)
    for name in set(owed) - set(by_name):
        pending_hooks.unmark(work_dir, name)
    return found


def _options_or_fail(config: Settings, lin: Lineage, outcome: Outcome) -> Settings | None:
    """The lineage's renewal options; None, with ``outcome`` failed saying why, when its
    conf can't be read."""
    try:
        return lineage_config(config, lin)
    except CertwrightError as exc:
        outcome.status, outcome.detail = "failed", str(exc)
        return None


def _run_owed_hooks(config: Settings, renewer: Renewer, lin: Lineage,
                    outcome: Outcome) -> None:
    ns = _options_or_fail(config, lin, outcome)
    if ns is None:
        return
    ok = renewer.runner.deploy(lin, ns.deploy_hook)
    pending_hooks.unmark(Path(config.work_dir), lin.name)
    outcome.status, outcome.domains = "hooks", _names_of(lin)
    outcome.detail = "" if ok else "a deploy hook failed"


def _live_version(lin: Lineage) -> int | None:
    try:
        return lin.current_version()
    except Exception:
        return None


def _names_of(lin: Lineage) -> tuple[str, ...]:
    """The lineage's names for the summary and FAILED_DOMAINS; () when its certificate
    can't be read (that is the failure being reported)."""
    try:
        return tuple(lin.names)
    except Exception:
        return ()


def _has_installer(ns: Settings) -> bool:
    return ns.installer not in (None, "", "None")


def _catch_up(config: Settings, renewer: Renewer, lin: Lineage,
              outcome: Outcome) -> None:
    """A lineage renewed by an earlier run that never saw its server serve it."""
    ns = _options_or_fail(config, lin, outcome)
    if ns is None:
        return
    if not _has_installer(ns):
        redeploy.unmark(Path(config.work_dir), lin.name)
        return
    outcome.status, outcome.domains = "installed", _names_of(lin)
    renewer.deployer.add(ns, lin)


def _note_deploys(outcomes: list[Outcome], results: dict[str, str]) -> None:
    for outcome in outcomes:
        error = results.get(outcome.name)
        if error and outcome.status != "failed":  # a failed renewal says why already
            outcome.status = "failed"
            outcome.detail = (f"renewed, but installing it failed: {error} (installed again "
                              "by the next renew)")


def sleep_if_due(config: Settings, say: Say, ask: Ask) -> int:
    """The random sleep of a non-interactive ``renew``, taken before the store lock (so a
    colliding run does not wait through it) and only when something is due. Deciding
    reads, never writes: the renewal confs, the certificates (through the lineage cache,
    not saved) and the ARI windows the CA gave before; a CA is not asked here (the run
    under the lock asks, and renews without a sleep what only a fresh answer makes due)."""
    if _sleep_applies(config) and not config.domains and _anything_due(config):
        _random_sleep(config, say)
    return 0


class _StoredAriOnly(AriCheck):
    """ARI answers as stored in the renewal confs: no request, so nothing is written."""

    def offers_ari(self, server: str, now: float) -> bool:
        return False


def _anything_due(config: Settings) -> bool:
    try:
        found = lineages.list_lineages(Path(config.config_dir))
    except CertwrightError:
        return False  # the run under the lock says what is wrong
    if config.certname:
        found = [lin for lin in found if lin.name == config.certname]
    cache = LineageCache(Path(config.work_dir))
    stored = _StoredAriOnly(config, cache)
    now = clock.now()
    for lin in found:
        if lin.error:
            continue
        if config.force_renewal:
            return True
        try:
            if should_renew(lin, now, cache=cache, ari=stored):
                return True
        except Exception:  # an unreadable certificate: reported by the run itself
            continue
    return False


def _sleep_applies(config: Settings) -> bool:
    return bool(config.random_sleep_on_renew) and not config.dry_run \
        and not sys.stdin.isatty()


def _random_sleep(config: Settings, say: Say) -> None:
    if not _sleep_applies(config):
        return
    seconds = random.uniform(1, 480)
    say(f"Non-interactive renewal: sleeping {seconds:.0f} s first to spread the load on the "
        "CA (--no-random-sleep-on-renew to skip)")
    time.sleep(seconds)


def _summary(outcomes: list[Outcome], say: Say) -> int:
    by: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by.setdefault(o.status, []).append(o)
    if not outcomes:
        say("No certificates found.")
        return 0
    titles = (("renewed", "renewed"), ("dry-run", "renewed in a dry run (nothing saved)"),
              ("installed", "installed again (renewed earlier, not yet seen served)"),
              ("hooks", "renewed earlier; its deploy hooks had not run and ran now"),
              ("not-due", "not due for renewal"), ("failed", "failed"))
    for status, title in titles:
        items = by.get(status, [])
        if not items:
            continue
        if status == "not-due" and len(items) > 20:
            say(f"{len(items)} certificates are {title}.")
            continue
        say(f"{len(items)} {title}:")
        for o in sorted(items, key=lambda o: o.name):
            say(f"  {o.name}" + (f": {o.detail}" if o.detail else ""))
    failed = len(by.get("failed", []))
    if failed:
        print(f"Error: {failed} renewal(s) failed; see above and the log", file=sys.stderr)
        return 1
    return 0
