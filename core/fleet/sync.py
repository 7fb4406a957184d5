"""``fleet sync``: one run that reconciles the inventory with the store.

Deletions first, then every domain that needs a certificate, ``jobs`` at a time, each
on its own (one failing domain never stops the others): pre-check, order (or resume),
store, state, write-back. Domains with nothing to do only get their entry brought up to
date (which writes nothing when it already is).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from certwright.core import __version__, ari, clock
from certwright.core.acme.client import AcmeClient
from certwright.core.acme.errors import AcmeError
from certwright.core.ari_check import AriCheck
from certwright.core.due import should_renew
from certwright.core.errors import CertwrightError
from certwright.core.fleet import order as orders
from certwright.core.fleet import precheck, remove, serve
from certwright.core.fleet.accounts import Accounts
from certwright.core.fleet.ca import CaGate, GatedTransport
from certwright.core.fleet.install import (
    FleetInstall,
    InstallOptions,
    ServerAnswerer,
    ServerAuthenticators,
    renewal_params,
)
from certwright.core.fleet.inventory import Inventory
from certwright.core.fleet.ldap_source import LdapInventory
from certwright.core.fleet.plan import ISSUING, Step, make_plan
from certwright.core.fleet.report import Outcome, Progress, Report, timestamp_of
from certwright.core.fleet.state import FleetStore
from certwright.core.fleet.writeback import WriteBack
from certwright.core.lineage_cache import LineageCache
from certwright.core.settings import Settings, from_values
from certwright.core.storage import store
from certwright.core.storage.lineage import Lineage
from certwright.core.storage.lock import store_lock

log = logging.getLogger(__name__)
HTTPS_RECHECK = 6 * 3600.0  # how often to look again whether https serves a certificate


@dataclass(frozen=True)
class SyncOptions:
    config_dir: Path
    work_dir: Path
    server: str
    jobs: int = 4
    ca_concurrency: int = 8
    max_new_orders: int | None = None
    dry_run: bool = False
    per_customer: bool = False
    email: str | None = None
    agree_tos: bool = False
    precheck: precheck.PrecheckOptions = field(default_factory=precheck.PrecheckOptions)
    skip_precheck: bool = False
    backoff_base: float = 3600.0
    backoff_max: float = 7 * 86400.0
    allow_empty: bool = False
    no_verify_ssl: bool = False
    issuance_timeout: float = 90.0
    lock_timeout: float = 0.0
    revoke_removed: bool = False
    install: InstallOptions = field(default_factory=lambda: InstallOptions({}))


class Budget:
    """``--max-new-orders``: how many new orders this run may still place."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.left is None:
                return True
            if self.left <= 0:
                return False
            self.left -= 1
            return True


class Sync:
    def __init__(self, opts: SyncOptions, inventory: Inventory, progress: Progress) -> None:
        self.opts = opts
        self.inventory = inventory
        self.progress = progress
        self.fleet = FleetStore(opts.config_dir)
        ldap = inventory if isinstance(inventory, LdapInventory) else None
        self.writeback = WriteBack(ldap, dry_run=opts.dry_run)
        self.gate = CaGate(opts.ca_concurrency)
        self.budget = Budget(opts.max_new_orders)
        self._transport: GatedTransport | None = None
        self._accounts: Accounts | None = None
        self._setup = threading.Lock()
        self.install = FleetInstall(opts.config_dir, opts.work_dir, opts.install)
        self.to_install: list[tuple[Step, Lineage]] = []
        self.servers = ServerAuthenticators(opts.config_dir, opts.work_dir, opts.install)

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> Report:
        with self._locked():
            listing = self.inventory.read()
            now = clock.now()
            cache = LineageCache(self.opts.work_dir)
            ari = None if self.opts.dry_run else AriCheck(_ari_config(self.opts), cache)

            def due(lineage: Lineage) -> bool:
                return should_renew(lineage, now, cache=cache, ari=ari)

            steps = make_plan(listing, self.fleet.states(), self.opts.config_dir, cache, due,
                              now, self.fleet.pending_orders(), self.opts.allow_empty,
                              jobs=self.opts.jobs)
            if not self.opts.dry_run:
                with contextlib.suppress(CertwrightError, OSError):
                    cache.save()
            report = Report(bad=[(b.where, b.error) for b in listing.bad])
            self.progress.start(sum(1 for s in steps if s.action in ISSUING))
            for step in steps:
                if step.action == "delete":
                    report.add(self._safely(self._delete, step))
            work = [s for s in steps if s.action in ISSUING]
            pool = ThreadPoolExecutor(max_workers=max(1, self.opts.jobs))
            try:
                for outcome in pool.map(self._guarded, work):
                    report.add(outcome)
                if not self.opts.dry_run:
                    serve.serve(self, steps, report)
                idle = [s for s in steps if s.action not in (*ISSUING, "delete", "installed")]
                jobs = max(1, min(self.opts.jobs, len(idle)))
                for outcomes in pool.map(lambda part: [self._safely(self._idle, s)
                                                       for s in part],
                                         [idle[i::jobs] for i in range(jobs)]):
                    report.outcomes.extend(outcomes)
            finally:  # interrupted (SIGTERM, Ctrl-C): the domains in flight finish and
                pool.shutdown(wait=True, cancel_futures=True)  # clean up, no new one starts
            self.progress.finish()
            report.writeback_failed = list(self.writeback.failed)
            report.ldap_writes = self.writeback.written
            if self._transport is not None:
                report.ca_requests = dict(self._transport.counts)
            return report

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self.opts.dry_run:  # writes nothing, not even a lock file
            yield
            return
        from certwright.core.checkpoint import journals_changed, one_checkpoint
        from certwright.core.retention import max_checkpoints, prune_dir, start_up

        keep = max_checkpoints(None)
        with store_lock(self.opts.config_dir, self.opts.lock_timeout):
            # a server change a crash left open (a challenge answer, a staged install)
            # is rolled back first, as every command does; this run's are one checkpoint
            for undone in start_up(self.opts.work_dir, keep):
                log.warning("%s", undone)
            with one_checkpoint():
                yield
            if journals_changed():
                prune_dir(self.opts.work_dir, keep)

    # -- domains with nothing to issue -----------------------------------------------------
    def _idle(self, step: Step) -> Outcome:
        domain = step.domain
        if domain is not None and step.action in ("keep", "skip") and not self.opts.dry_run:
            if step.not_after is not None and step.state.not_after != step.not_after:
                step.state.not_after = step.not_after  # renewed by `renew` meanwhile
                step.state.refresh = True
            if step.state.refresh:
                self.fleet.save_state(step.state)
            if self.writeback.ldap is None:
                return Outcome.of(step.action, step.state, step.note)
            has_cert = step.lineage is not None or step.state.check_after is not None
            self.writeback.update(domain, step.state,
                                  (lambda: _fullchain(self.lineage_of(step))) if has_cert
                                  else None, redirect=self._https_served(step))
        return Outcome.of(step.action, step.state, step.note)

    def _https_served(self, step: Step) -> bool:
        """certwrightRedirect: TRUE once the hoster's server serves the certificate over
        https for every name (checked until it is, never again after)."""
        domain = step.domain
        if domain is None or step.state.state != "valid":
            return False
        if domain.current.get("certwrightRedirect") == ("TRUE",):
            return True
        now = clock.now()
        checked = step.state.https_checked
        if checked is not None and 0 <= now - checked < HTTPS_RECHECK:
            return False
        lineage = self.lineage_of(step)
        if lineage is None:
            return False
        from cryptography.hazmat.primitives.serialization import Encoding

        der = lineage.certificate.public_bytes(Encoding.DER)
        if precheck.serves_https(domain, der, self.opts.precheck):
            return True
        step.state.https_checked = now
        self.fleet.save_state(step.state)
        return False

    def lineage_of(self, step: Step) -> Lineage | None:
        """The step's lineage, read now if the plan kept it without reading it."""
        if step.lineage is None and step.state.lineage:
            step.lineage = store.find_lineage(self.opts.config_dir, step.state.lineage)
        return step.lineage

    def _delete(self, step: Step) -> Outcome:
        state = step.state
        if self.opts.dry_run:
            would = "would revoke and delete" if self.opts.revoke_removed else "would delete"
            return Outcome.of("delete", state, would)
        if state.state != "removed":
            revoke = self._revoke if self.opts.revoke_removed else None
            try:
                remove.retire(self.opts.config_dir, self.opts.work_dir,
                              state.lineage or state.name, revoke)
            except remove.StillServed as exc:
                return Outcome.of("failed", state, str(exc))
            except (CertwrightError, AcmeError, OSError) as exc:
                return Outcome.of("failed", state, f"can't remove the lineage: {exc}")
            self.fleet.drop_order(state.name)
            state.state = "removed"
            self.fleet.save_state(state)
        if state.dn is None or self.writeback.remove(state.dn):
            self.fleet.drop_state(state.name)
            return Outcome.of("delete", state)
        return Outcome.of("delete", state, "lineage deleted; the entry is cleaned next run")

    def _revoke(self, lineage: Lineage) -> None:
        """With the certificate's own key (RFC 8555 §7.6): whichever account issued it."""
        from cryptography.hazmat.primitives.serialization import Encoding

        from certwright.core import keys
        from certwright.core.acme.jws import jwk_of

        self._accounts_for()
        assert self._transport is not None
        key = keys.load_private_key(lineage.privkey_pem(), str(lineage.privkey))
        client = AcmeClient(self._transport, jwk_of(key))
        der = lineage.certificate.public_bytes(Encoding.DER)
        try:
            client.revoke(der, remove.CESSATION_OF_OPERATION, cert_key=client.key)
        except AcmeError as exc:
            if exc.code != "alreadyRevoked":
                raise
        log.info("%s: certificate revoked (cessationOfOperation)", lineage.name)

    # -- domains to issue ------------------------------------------------------------------
    def _guarded(self, step: Step) -> Outcome:
        outcome = self._safely(self._issue, step)
        self.progress.done(outcome)
        return outcome

    def _safely(self, work: Callable[[Step], Outcome], step: Step) -> Outcome:
        """One domain never stops the others: whatever ``work`` raises is its failure."""
        try:
            return work(step)
        except Exception as exc:
            log.debug("%s", step.name, exc_info=True)
            error = f"{type(exc).__name__}: {exc}"
            try:
                return self._failed(step, "failed", error)
            except Exception as again:  # not even the state could be saved
                return Outcome.of("failed", step.state, f"{error} (and: {again})")

    def _issue(self, step: Step) -> Outcome:
        domain, state = step.domain, step.state
        assert domain is not None
        if self.opts.dry_run:
            if self.opts.skip_precheck:
                return Outcome.of(step.action, state, "would order")
            reason = precheck.check(domain, self.opts.precheck)
            if reason and self.servers.available(domain):
                return Outcome.of(step.action, state, f"would order, answered through "
                                  f"{domain.installer} ({reason})")
            if reason:
                return Outcome.of("precheck-failed", state, reason)
            return Outcome.of(step.action, state, "would order")
        blocked = self.gate.blocked()
        if blocked is not None:
            return Outcome.of("deferred", state, "the CA asked to wait (rate limited)",
                              next_attempt=blocked)
        answerer: ServerAnswerer | None = None
        through_server = self.servers.available(domain)
        if through_server and (domain.webroot is None or step.action == "resume"):
            # a resumed order may still have challenges to answer: the server can, and
            # the web root may be what the pre-check refused
            answerer = self.servers.answerer(domain)
        elif step.action != "resume" and not self.opts.skip_precheck:
            reason = precheck.check(domain, self.opts.precheck)
            if reason and through_server:  # the server certwright manages answers instead
                log.info("%s: %s; answering through %s", domain.name, reason,
                         domain.installer)
                answerer = self.servers.answerer(domain)
            elif reason:
                return self._failed(step, "precheck-failed", reason)
        client, account_id = self._accounts_for().client(domain)
        try:
            issued = orders.obtain(client, account_id, self.opts.server, domain, self.fleet,
                                   self.budget.take, self.opts.issuance_timeout,
                                   replaces=_replaces(client, step), answerer=answerer)
        except orders.NoNewOrders:
            return Outcome.of("deferred", state, "--max-new-orders reached")
        except AcmeError as exc:
            if exc.code == "rateLimited" and exc.retry_after:
                self.gate.block(exc.retry_after)
            if exc.code != "rateLimited":
                self.fleet.drop_order(domain.name)  # the order is invalid at the CA
            return self._failed(step, "failed", str(exc), wait=exc.retry_after)
        lineage = self._save(step, issued, account_id,
                             "webroot" if answerer is None else str(domain.installer))
        state.names = list(domain.names)
        state.succeeded(timestamp_of(lineage.not_after), clock.now(), lineage.name)
        self.fleet.save_state(state)
        self.fleet.drop_order(domain.name)
        if domain.installer is None:
            self.writeback.update(domain, state, issued.fullchain)
        else:  # written once installed (certwrightRedirect with it)
            with self._setup:
                self.to_install.append((step, lineage))
        return Outcome.of("resumed" if issued.resumed else step.action, state)

    # -- installing -------------------------------------------------------------------------
    def _save(self, step: Step, issued: orders.Issued, account_id: str,
              authenticator: str = "webroot") -> Lineage:
        """The certificate into its lineage; ``authenticator`` is what answered (the
        domain's web root, or its installer's server), stored for `renew`."""
        domain = step.domain
        assert domain is not None
        params: dict[str, object] = {
            "account": account_id, "authenticator": authenticator,
            "server": self.opts.server, "key_type": "ecdsa",
            **renewal_params(domain, self.opts.install),
        }
        if domain.webroot is not None:
            params["webroot_path"] = [domain.webroot]
            params["webroot_map"] = {n: domain.webroot for n in domain.names}
        lineage = step.lineage
        if lineage is None:
            lineage = store.find_lineage(self.opts.config_dir, step.state.lineage or domain.name)
        if domain.installer is not None:  # owed to its server from here on
            self.install.mark(lineage.name if lineage is not None else domain.name)
        if lineage is None:
            return store.new_lineage(self.opts.config_dir, domain.name, issued.cert.encode(),
                                     issued.chain.encode(), issued.fullchain.encode(),
                                     issued.key_pem, params, __version__)
        if issued.resumed and lineage.cert_pem() == issued.cert.encode():
            return lineage  # stored before the crash; only the record was left
        params = {**lineage.conf.params, **params}
        lineage.conf.extra.pop("acme_renewal_info", None)  # about the previous certificate
        lineage.save_successor(issued.cert.encode(), issued.chain.encode(),
                               issued.fullchain.encode(), issued.key_pem, params, __version__)
        return store.load_lineage(self.opts.config_dir, lineage.name)

    def _failed(self, step: Step, kind: str, error: str, wait: float | None = None
                ) -> Outcome:
        state = step.state
        if self.opts.dry_run:
            return Outcome.of(kind, state, error)
        state.failed(kind, error, clock.now(), self.opts.backoff_base, self.opts.backoff_max,
                     wait=wait)
        self.fleet.save_state(state)
        if step.domain is not None:
            lineage = step.lineage
            self.writeback.update(step.domain, state,
                                  (lambda: _fullchain(lineage)) if lineage else None)
        return Outcome.of(kind, state, state.error or "")

    def _accounts_for(self) -> Accounts:
        with self._setup:
            if self._accounts is None:
                self._transport = GatedTransport(
                    self.opts.server, self.gate,
                    verify=False if self.opts.no_verify_ssl else None)
                self._accounts = Accounts(
                    self.opts.config_dir, self.opts.server, self._transport,
                    per_customer=self.opts.per_customer, email=self.opts.email,
                    agree_tos=self.opts.agree_tos)
            return self._accounts


def _replaces(client: AcmeClient, step: Step) -> str | None:
    """RFC 9773 §5: a renewal names the certificate it replaces (Let's Encrypt exempts it
    from its rate limits), when the CA speaks ARI."""
    if step.action != "renew" or step.lineage is None:
        return None
    try:
        if not client.directory.renewal_info:
            return None
        return ari.cert_id(step.lineage.certificate)
    except Exception as exc:  # never a reason not to renew
        log.debug("no ARI certID for %s: %s", step.name, exc)
        return None


def _fullchain(lineage: Lineage | None) -> str | None:
    if lineage is None:
        return None
    try:
        return str(lineage.fullchain.read_text(encoding="ascii"))
    except OSError:
        return None


def _ari_config(opts: SyncOptions) -> Settings:
    """What :class:`AriCheck` reads of a command's options."""
    return from_values({"no_verify_ssl": opts.no_verify_ssl, "user_agent": None,
                        "user_agent_comment": None}, {})


def timed(fn: Callable[[], Report]) -> tuple[Report, float]:
    started = time.monotonic()
    report = fn()
    return report, time.monotonic() - started
