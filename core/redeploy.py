"""After `renew`: get every renewed certificate served, with one reload per server.

A lineage whose renewal conf names an installer is *marked* (an empty file
``<work-dir>/deploy-pending/<name>``) before it is renewed, and unmarked once its server was
seen serving the new certificate. `renew` installs marked lineages again even when they
are not due, so a crash, a failed config test or a failed reload between saving a
certificate and serving it is caught up by the next run instead of leaving the old
certificate served until it expires.

Certificates whose server configuration already names ``live/`` (the usual case after the
first install) need no change, only a reload: those of one server are reloaded together
once and then verified one by one. A lineage whose configuration does need a change goes
through the whole pipeline (:func:`certwright.core.deploy.apply_plan`) on its own.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from certwright.core.errors import CertwrightError
from certwright.core.storage.files import atomic_write, ensure_dir
from certwright.core.storage.lineage import Lineage

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
    ns: argparse.Namespace
    lineage: Lineage


class Deployer:
    """Collects lineages to serve, then serves them: :meth:`run` returns, per lineage
    name, "" when its server now serves it, else what went wrong."""

    def __init__(self, work_dir: Path, say: Say) -> None:
        self.work_dir = work_dir
        self.say = say
        self.jobs: list[_Job] = []

    def add(self, ns: argparse.Namespace, lineage: Lineage) -> None:
        self.jobs.append(_Job(ns, lineage))

    def run(self) -> dict[str, str]:
        groups: dict[tuple[str, ...], list[_Job]] = {}
        for job in self.jobs:
            groups.setdefault(_server_key(job.ns), []).append(job)
        results: dict[str, str] = {}
        for group in groups.values():
            results.update(self._serve(group))
        for name, error in results.items():
            if not error:
                unmark(self.work_dir, name)
        return results

    def _serve(self, group: list[_Job]) -> dict[str, str]:
        from certwright.core.deploy import apply_plan, expected_certificate, verify
        from certwright.core.install import load_installer, request_for

        name = str(group[0].ns.installer)
        try:
            installer = load_installer(group[0].ns, name)
        except Exception as exc:  # never the whole run: each lineage reports it
            log.debug("loading %s failed", name, exc_info=True)
            return {job.lineage.name: _text(exc) for job in group}
        results: dict[str, str] = {}
        waiting = []
        for job in group:
            try:
                req = replace(request_for(job.ns, job.lineage), takeover=False)
                plan = installer.plan_deploy(req)
                expected = expected_certificate(req.cert_path)
                if plan.empty:
                    waiting.append((job, installer.endpoints(req), expected))
                    continue
                apply_plan(installer, plan, work_dir=self.work_dir, say=self.say,
                           endpoints=installer.endpoints(req), expected_der=expected)
                results[job.lineage.name] = ""
            except Exception as exc:
                log.debug("installing %s failed", job.lineage.name, exc_info=True)
                results[job.lineage.name] = _text(exc)
        if not waiting:
            return results
        try:
            installer.reload()
        except Exception as exc:
            return results | {job.lineage.name: f"{name}: reload failed: {_text(exc)}"
                              for job, _, _ in waiting}
        for job, endpoints, expected in waiting:
            try:
                verify(endpoints, expected)
                results[job.lineage.name] = ""
            except Exception as exc:
                results[job.lineage.name] = f"{name}: {_text(exc)}"
        log.info("%s reloaded once for %d certificate(s)", name, len(waiting))
        return results


def _text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, CertwrightError) else f"{type(exc).__name__}: {exc}"


def _server_key(ns: argparse.Namespace) -> tuple[str, ...]:
    """Lineages installed into the same server (same installer and settings) share one."""
    name = str(ns.installer)
    prefix = f"{name}_"
    settings = sorted(f"{k}={v}" for k, v in vars(ns).items() if k.startswith(prefix))
    return (name, *settings)
