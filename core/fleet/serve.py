"""The install step of a sync, after all issuance: which lineages go to their servers,
and what their domains' states and entries say afterwards.

A lineage is installed when this run issued it, when an earlier run left it owed (the
deploy-pending mark: a crash, a failed reload), or when its domain names an installer
(or installer options) other than the one it was last installed with: the hoster added
``certwrightInstaller`` to a domain that already has its certificate, or moved it. The
last is a comparison with the domain's state (no file read), so idle runs stay cheap.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from certwright.core.fleet.install import install_key, renewal_params
from certwright.core.fleet.report import Outcome, Report
from certwright.core.storage.renewal_conf import read_renewal_conf, write_renewal_conf
from certwright.core.verbs import redeploy

if TYPE_CHECKING:
    from certwright.core.fleet.plan import Step
    from certwright.core.fleet.sync import Sync
    from certwright.core.storage.lineage import Lineage

log = logging.getLogger(__name__)
INSTALL_FAILED = "issued, but installing it failed"


def serve(sync: Sync, steps: list[Step], report: Report) -> None:
    """Install, one reload per server, every name checked by handshake; the entry is
    written with ``certwrightRedirect`` TRUE once served."""
    jobs = _jobs(sync, steps)
    if not jobs:
        return
    for step, lineage in jobs:
        assert step.domain is not None
        sync.install.add(step.domain, lineage)
    try:
        results = sync.install.run()
    except Exception as exc:  # each domain reports it; the next run tries again
        log.debug("installing failed", exc_info=True)
        results = {lineage.name: f"{type(exc).__name__}: {exc}" for _, lineage in jobs}
    by_name = {o.name: i for i, o in enumerate(report.outcomes)}
    for step, lineage in jobs:
        domain, state = step.domain, step.state
        assert domain is not None
        error = results.get(lineage.name, "not installed")
        if error:
            state.error = f"{INSTALL_FAILED}: {error}"
        else:
            state.installed = install_key(domain, sync.opts.install)
            if state.error and state.error.startswith(INSTALL_FAILED):
                state.error = None  # an earlier run's failed install, caught up now
        sync.fleet.save_state(state)
        sync.writeback.update(domain, state, _fullchain(lineage), redirect=not error)
        outcome = Outcome.of("failed", state, state.error or "") if error else \
            Outcome.of("installed", state)
        if step.name in by_name:
            if error:
                report.outcomes[by_name[step.name]] = outcome
        else:  # an earlier certificate: reported here, not again as kept
            report.add(outcome)
            step.action = "installed"
    log.info("installed %d certificate(s) through their servers",
             sum(1 for _, lin in jobs if not results.get(lin.name, "x")))


def _jobs(sync: Sync, steps: list[Step]) -> list[tuple[Step, Lineage]]:
    jobs = list(sync.to_install)
    issued = {lineage.name for _, lineage in jobs}
    pending = sync.install.pending()
    for step in steps:
        domain = step.domain
        if step.action != "keep" or domain is None or domain.installer is None \
                or step.state.state != "valid":
            continue
        name = step.state.lineage or step.name
        moved = step.state.installed != install_key(domain, sync.opts.install)
        if name in issued or not (moved or name in pending):
            continue
        lineage = sync.lineage_of(step)
        if lineage is None or lineage.error:
            continue
        if moved:  # `renew` must install it the same way from now on
            redeploy.mark(sync.opts.work_dir, lineage.name)
            conf = read_renewal_conf(lineage.conf.path)
            conf.params.update(renewal_params(domain, sync.opts.install))
            write_renewal_conf(conf)
        jobs.append((step, lineage))
    return jobs


def _fullchain(lineage: Lineage) -> str | None:
    try:
        return str(lineage.fullchain.read_text(encoding="ascii"))
    except OSError:
        return None
