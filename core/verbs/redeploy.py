"""After `renew`: get every renewed certificate served, with one reload per server.

A lineage whose renewal conf names an installer is *marked* (an empty file
``<work-dir>/deploy-pending/<name>``) before it is renewed, and unmarked once its server was
seen serving the new certificate. `renew` installs marked lineages again even when they
are not due, so a crash, a failed config test or a failed reload between saving a
certificate and serving it is caught up by the next run instead of leaving the old
certificate served until it expires.

Lineages of one server are made live together: each one's plan is staged (applied and
committed; an empty plan when the configuration already names ``live/``), the server's
configuration tested once for all of them (when that fails, everything is rolled back and
each plan staged again with a test of its own, so only the culprit is left out),
then the server is reloaded once for all of them (or, for an installer that has
``activate``, each change is activated without a reload), then each is verified by
handshake. An installer for which every renewal is a change (a combined PEM file to
write) thus still reloads once per run, not once per certificate.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from certwright.core.deploy import verify
from certwright.core.errors import CertwrightError
from certwright.core.installer_types import ChangePlan, Endpoint
from certwright.core.interfaces import Installer
from certwright.core.settings import Settings
from certwright.core.storage.files import atomic_write, ensure_dir
from certwright.core.storage.lineage import Lineage
from certwright.core.transaction import Transaction

log = logging.getLogger(__name__)
Say = Callable[[str], None]
PENDING_DIR = "deploy-pending"


def _marker(work_dir: Path, name: str) -> Path:
    return work_dir / PENDING_DIR / name


def mark(work_dir: Path, name: str) -> None:
    ensure_dir(work_dir / PENDING_DIR, 0o700)
    atomic_write(_marker(work_dir, name), b"", 0o600)


def unmark(work_dir: Path, name: str) -> None:
    _marker(work_dir, name).unlink(missing_ok=True)


def pending(work_dir: Path) -> set[str]:
    try:
        return {n for n in os.listdir(work_dir / PENDING_DIR) if not n.startswith(".")}
    except FileNotFoundError:
        return set()


@dataclass
class _Job:
    ns: Settings
    lineage: Lineage


class Deployer:
    """Collects lineages to serve, then serves them: :meth:`run` returns, per lineage
    name, "" when its server now serves it, else what went wrong."""

    def __init__(self, work_dir: Path, say: Say) -> None:
        self.work_dir = work_dir
        self.say = say
        self.jobs: list[_Job] = []

    def add(self, ns: Settings, lineage: Lineage) -> None:
        """One job per installer the lineage names (``installer = postfix,dovecot``)."""
        from certwright.core.verbs.install import split_names

        for name in split_names(ns.installer):
            self.jobs.append(_Job(ns.derive(installer=name), lineage))

    def run(self) -> dict[str, str]:
        groups: dict[tuple[str, ...], list[_Job]] = {}
        for job in self.jobs:
            groups.setdefault(_server_key(job.ns), []).append(job)
        results: dict[str, str] = {}
        for group in groups.values():  # a lineage in several servers: every error kept
            for name, error in self._serve(group).items():
                errors = [e for e in (results.get(name, ""), error) if e]
                results[name] = "; ".join(errors)
        for name, error in results.items():
            if not error:
                unmark(self.work_dir, name)
        return results

    def _serve(self, group: list[_Job]) -> dict[str, str]:
        """Stage every lineage's plan (apply, config test, commit), make them all live at
        once (one reload, or the installer's ``activate``), then verify each; a lineage
        whose server does not serve it has its change rolled back."""
        from certwright.core.deploy import go_live
        from certwright.core.verbs.install import load_installer

        name = str(group[0].ns.installer)
        try:
            installer = load_installer(group[0].ns, name)
        except Exception as exc:  # never the whole run: each lineage reports it
            log.debug("loading %s failed", name, exc_info=True)
            return {job.lineage.name: _text(exc) for job in group}
        results, staged = self._stage(installer, group, test=len(group) == 1)
        if len(group) > 1 and any(s.txn is not None for s in staged):
            try:  # one config test for all of them; a failure: each tested on its own
                installer.config_test()
            except CertwrightError as exc:
                log.info("%s: the configuration test of %d changes together failed (%s); "
                         "testing each on its own", name, len(staged), _text(exc))
                for item in reversed(staged):
                    if item.txn is not None:
                        item.txn.rollback(check_after=True)
                results, staged = self._stage(installer, group, test=True)
        if not staged:
            return results
        try:
            go_live(installer, [s.plan for s in staged])
        except BaseException as exc:  # Ctrl-C too: what was staged is taken back
            self._roll_back(installer, [s for s in staged if s.txn is not None])
            if not isinstance(exc, Exception):
                raise
            why = f"{name}: reload failed: {_text(exc)}"
            return results | {s.job.lineage.name: why for s in staged}
        failed = []
        for item in staged:
            try:
                verify(item.endpoints, item.expected)
                results[item.job.lineage.name] = ""
                for note in item.plan.notes:
                    self.say(note)
            except Exception as exc:
                results[item.job.lineage.name] = f"{name}: {_text(exc)}"
                failed.append(item)
        self._roll_back(installer, [s for s in failed if s.txn is not None])
        log.info("%s made %d certificate(s) live at once", name, len(staged))
        return results

    def _stage(self, installer: Installer, group: list[_Job], *, test: bool
               ) -> tuple[dict[str, str], list[_Staged]]:
        """Plan and apply every lineage's change (each config tested with ``test``)."""
        from certwright.core.deploy import expected_certificate, stage
        from certwright.core.verbs.install import request_for

        results: dict[str, str] = {}
        staged: list[_Staged] = []
        for job in group:
            try:
                req = replace(request_for(job.ns, job.lineage), takeover=False)
                plan = installer.plan_deploy(req)
                expected = expected_certificate(req.cert_path)
                txn = stage(installer, plan, work_dir=self.work_dir, test=test)
                staged.append(_Staged(job, plan, txn, installer.endpoints(req), expected))
            except Exception as exc:
                log.debug("installing %s failed", job.lineage.name, exc_info=True)
                results[job.lineage.name] = _text(exc)
        return results, staged

    def _roll_back(self, installer: Installer, items: list[_Staged]) -> None:
        """Undo the staged changes of ``items`` (newest first; a file another lineage's
        change edited since is left as it is) and reload the server once."""
        restored = []
        for item in reversed(items):
            assert item.txn is not None
            try:
                restored += item.txn.rollback(check_after=True)
            except CertwrightError as exc:
                log.error("%s: %s", item.job.lineage.name, exc)
        if restored:
            try:
                installer.reload()
            except Exception as exc:
                log.error("reloading the restored configuration failed: %s", _text(exc))


@dataclass
class _Staged:
    job: _Job
    plan: ChangePlan
    txn: Transaction | None
    endpoints: Sequence[Endpoint]
    expected: bytes


def _text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, CertwrightError) else f"{type(exc).__name__}: {exc}"


def _server_key(ns: Settings) -> tuple[str, ...]:
    """Lineages installed into the same server (same installer and settings) share one."""
    name = str(ns.installer)
    prefix = f"{name}_"
    settings = sorted(f"{k}={v}" for k, v in ns.options().items() if k.startswith(prefix))
    return (name, *settings)
