"""Reconcile: from the inventory, the fleet's states and the store, what each domain needs.

Actions: ``new`` (no lineage yet), ``expand`` (the names changed: more or fewer),
``renew`` (due, by the same rule as ``renew``, ARI included), ``resume`` (an order left by
an interrupted run), ``keep``, ``skip`` (its backoff has not passed), ``delete`` (no longer
listed), ``bad`` (an entry that can't be used: reported, its lineage left alone).
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from certwright.core.due import due_time, renew_before_expiry
from certwright.core.errors import CertwrightError, ConfigError
from certwright.core.fleet.inventory import Listing
from certwright.core.fleet.model import Domain
from certwright.core.fleet.state import DomainState
from certwright.core.lineage_cache import LineageCache
from certwright.core.storage import store
from certwright.core.storage.lineage import Lineage

log = logging.getLogger(__name__)
ISSUING = ("new", "expand", "renew", "resume")
RECHECK = 6 * 3600.0  # a kept lineage is read again after this at the latest


@dataclass
class Step:
    action: str
    name: str
    domain: Domain | None
    state: DomainState
    lineage: Lineage | None = None
    note: str = ""
    not_after: float | None = None  # the lineage's current certificate's


def make_plan(listing: Listing, states: dict[str, DomainState], config_dir: Path,
              cache: LineageCache, due: Callable[[Lineage], bool], now: float,
              in_flight: set[str], allow_empty: bool = False, jobs: int = 1) -> list[Step]:
    """``jobs``: threads for the due checks (an ARI check is a request to the CA)."""
    listed = {d.name for d in listing.domains}
    dupes = _duplicates(listing)

    def step_for(domain: Domain) -> Step:
        state = states.get(domain.name) or DomainState(domain.name, list(domain.names))
        state.dn, state.customer, state.webroot = domain.dn, domain.customer, domain.webroot
        return _step(domain, state, config_dir, cache, due, now, in_flight)

    todo = [d for d in listing.domains if d.name not in dupes]
    jobs = max(1, min(jobs, len(todo)))
    chunks = [todo[i::jobs] for i in range(jobs)]  # a few tasks, not one per domain
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        done = {s.name: s for part in pool.map(lambda c: [step_for(d) for d in c], chunks)
                for s in part}
    steps = [done[d.name] for d in todo]
    for name, where in sorted(dupes.items()):
        steps.append(Step("bad", name, None, states.get(name) or DomainState(name, [name]),
                          note=f"{name} is listed more than once ({where})"))
    bad_dns = {b.dn for b in listing.bad if b.dn}
    bad_names = {n for b in listing.bad for n in b.names}
    gone = [s for n, s in sorted(states.items()) if n not in listed
            # still listed, only unusable now: never delete on a typo
            and not ((s.dn is not None and s.dn in bad_dns) or bad_names & set(s.names))]
    if gone and not listing.domains and not allow_empty:
        raise ConfigError(f"the inventory lists no domain, which would delete all "
                          f"{len(gone)} certificates of the fleet; check the search base and "
                          "filter, or give --allow-empty-inventory")
    steps += [Step("delete", state.name, None, state) for state in gone]
    return steps


def _duplicates(listing: Listing) -> dict[str, str]:
    seen: dict[str, str] = {}
    dupes: dict[str, str] = {}
    for domain in listing.domains:
        where = domain.dn or domain.name
        if domain.name in seen:
            dupes[domain.name] = f"{seen[domain.name]} and {where}"
        seen.setdefault(domain.name, where)
    return dupes


def _step(domain: Domain, state: DomainState, config_dir: Path, cache: LineageCache,
          due: Callable[[Lineage], bool], now: float, in_flight: set[str]) -> Step:
    name = state.lineage or domain.name
    if domain.name not in in_flight and _still_kept(domain, state, config_dir, now):
        return Step("keep", domain.name, domain, state, None, not_after=state.not_after)
    try:
        lineage = store.find_lineage(config_dir, name)
    except CertwrightError as exc:
        return Step("bad", domain.name, domain, state, note=str(exc))
    if domain.name in in_flight:
        return Step("resume", domain.name, domain, state, lineage)
    not_after = None
    if lineage is None:
        action = "new"
    else:
        summary = cache.summary(lineage)
        not_after = summary.not_after
        have = set(state.names) if state.lineage else set(summary.names)
        action = "expand" if have != set(domain.names) else \
            "renew" if due(lineage) else "keep"
        if action == "keep":
            _remember_keep(state, lineage, summary.not_before, summary.not_after, now)
    if action != "keep" and state.next_attempt is not None and state.next_attempt > now:
        return Step("skip", domain.name, domain, state, lineage,
                    note=f"backing off after {state.failures} failure(s)", not_after=not_after)
    return Step(action, domain.name, domain, state, lineage, not_after=not_after)


def _conf_key(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _still_kept(domain: Domain, state: DomainState, config_dir: Path, now: float) -> bool:
    """A domain found not due earlier, whose renewal conf has not changed since and whose
    next check has not come: kept without reading its lineage (an idle sync over
    thousands of domains)."""
    if state.lineage is None or state.check_after is None or now >= state.check_after \
            or state.state != "valid" or set(state.names) != set(domain.names):
        return False
    key = _conf_key(config_dir / "renewal" / f"{state.lineage}.conf")
    return key is not None and key == state.conf_key


def _remember_keep(state: DomainState, lineage: Lineage, not_before: float, not_after: float,
                   now: float) -> None:
    """When to look at this lineage again: when it falls due by its lifetime (or its
    ``renew_before_expiry``), when the CA's ARI answer may change, within 6 hours at the
    latest; keyed on its renewal conf (which every renewal and reconfigure rewrites)."""
    before = renew_before_expiry(lineage.conf.extra.get("renew_before_expiry"))
    moments = [due_time(not_before, not_after, before), now + RECHECK]
    ari = lineage.conf.extra.get("acme_renewal_info")
    if isinstance(ari, dict):
        for key in ("ari_retry_after", "ari_renewal_time"):
            moment = _local_iso(ari.get(key))
            if moment is not None:
                moments.append(moment)
    check_after = min(moments)
    conf_key = _conf_key(lineage.renewal_conf_path)
    if (state.check_after, state.conf_key) != (check_after, conf_key):
        state.check_after, state.conf_key = check_after, conf_key
        state.refresh = True


def _local_iso(text: object) -> float | None:
    try:
        return datetime.datetime.fromisoformat(str(text)).timestamp() if text else None
    except ValueError:
        return None
