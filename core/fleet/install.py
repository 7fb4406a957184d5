"""Domains served through a certwright installer (nginx, Apache): installed after all
issuance with one reload per server, by the machinery `renew` uses
(:class:`certwright.core.verbs.redeploy.Deployer`: stage every lineage's change, reload
once, check each name by handshake, roll back what isn't served).

A lineage is marked pending (``<work-dir>/deploy-pending/<name>``) before its new
certificate is stored and unmarked once its server was seen serving it, so a crash or a
failed reload between the two is caught up by the next sync (or `renew`). The renewal
conf records the installer and its options, so a plain `certwright renew` redeploys it.

:class:`ServerAuthenticators` gives a domain whose web root can't answer (the pre-check
refused it, or there is none) its installer's own http-01 answers instead.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from certwright.core.fleet.model import Domain
from certwright.core.interfaces import Authenticator, ChallengeTask, SupportsPresentAll
from certwright.core.settings import Settings, Source, from_values
from certwright.core.storage.lineage import Lineage
from certwright.core.verbs import redeploy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstallOptions:
    """What every installer domain shares: the run's installer options (from the command
    line or ``fleet.ini``, by dest name) and the ports the fleet's servers listen on."""

    options: Mapping[str, str]
    http_port: int = 80
    https_port: int = 443


def options_for(domain: Domain, shared: InstallOptions) -> dict[str, object]:
    """The installer's options for ``domain``: the run's, under the entry's own."""
    assert domain.installer is not None
    prefix = domain.installer.replace("-", "_") + "_"
    found: dict[str, object] = {k: v for k, v in shared.options.items()
                                if k.startswith(prefix) and v is not None}
    found.update(dict(domain.installer_options))
    return found


def renewal_params(domain: Domain, shared: InstallOptions) -> dict[str, object]:
    """What the lineage's renewal conf keeps so that `renew` installs it the same way."""
    if domain.installer is None:
        return {}
    return {"installer": domain.installer, "https_port": shared.https_port,
            **options_for(domain, shared)}


def install_key(domain: Domain, shared: InstallOptions) -> str | None:
    """What the domain is installed with (installer, options, port), as one string; the
    state keeps it, so a change is seen without reading the lineage."""
    if domain.installer is None:
        return None
    params = renewal_params(domain, shared)
    return json.dumps(sorted((k, str(v)) for k, v in params.items()))


def settings_for(domain: Domain, shared: InstallOptions, config_dir: Path, work_dir: Path
                 ) -> Settings:
    values: dict[str, object] = {
        "config_dir": str(config_dir), "work_dir": str(work_dir),
        "logs_dir": str(work_dir / "logs"), "installer": domain.installer,
        "https_port": shared.https_port, "http01_port": shared.http_port,
        "noninteractive": True, "verb": "fleet", **options_for(domain, shared)}
    return from_values(values, dict.fromkeys(values, Source.CALLER))


class FleetInstall:
    """Collects the lineages to serve during a sync, then serves them all at once."""

    def __init__(self, config_dir: Path, work_dir: Path, shared: InstallOptions) -> None:
        self.config_dir = config_dir
        self.work_dir = work_dir
        self.shared = shared
        self.deployer = redeploy.Deployer(work_dir, lambda text: log.info("%s", text))

    def mark(self, lineage_name: str) -> None:
        """Before the new certificate is stored: it is owed to the server from now on."""
        redeploy.mark(self.work_dir, lineage_name)

    def pending(self) -> set[str]:
        return redeploy.pending(self.work_dir)

    def add(self, domain: Domain, lineage: Lineage) -> None:
        self.deployer.add(settings_for(domain, self.shared, self.config_dir, self.work_dir),
                          lineage)

    def run(self) -> dict[str, str]:
        """Per lineage name: "" when its server now serves it, else what went wrong."""
        if not self.deployer.jobs:
            return {}
        return self.deployer.run()


class ServerAnswerer:
    """http-01 answers served through the installer's own authenticator (``nginx``,
    ``apache``): it puts the challenge path past redirects, basic auth and hidden-dir bans
    in a temporary change. Domains of one server take turns (each turn edits and reloads
    that server); the lock is held from ``present`` to ``cleanup``."""

    def __init__(self, auth: Authenticator, lock: threading.Lock) -> None:
        self.auth = auth
        self.lock = lock
        self.held = False

    def present(self, tasks: Sequence[ChallengeTask]) -> None:
        self.lock.acquire()
        self.held = True
        if isinstance(self.auth, SupportsPresentAll):
            self.auth.present_all(tasks)
        else:
            for task in tasks:
                self.auth.present(task)

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        if not self.held:
            return
        try:
            for task in tasks:
                self.auth.cleanup(task)
        finally:
            self.held = False
            self.lock.release()


class ServerAuthenticators:
    """One prepared authenticator per server (installer and its options), shared by the
    domains served there."""

    def __init__(self, config_dir: Path, work_dir: Path, shared: InstallOptions) -> None:
        self.config_dir = config_dir
        self.work_dir = work_dir
        self.shared = shared
        self._lock = threading.Lock()
        self._found: dict[tuple[str, ...], tuple[Authenticator, threading.Lock]] = {}

    @staticmethod
    def available(domain: Domain) -> bool:
        """Whether the domain's installer answers challenges too."""
        from certwright.core import plugins

        if domain.installer is None:
            return False
        info = plugins.load_named(plugins.AUTHENTICATORS, domain.installer)
        return info is not None and info.cls is not None

    def answerer(self, domain: Domain) -> ServerAnswerer:
        from certwright.core import plugins

        assert domain.installer is not None
        options = options_for(domain, self.shared)
        key = (domain.installer, *sorted(f"{k}={v}" for k, v in options.items()))
        with self._lock:
            found = self._found.get(key)
            if found is None:
                cls = plugins.find(plugins.AUTHENTICATORS, domain.installer)
                auth: Authenticator = cls(settings_for(domain, self.shared, self.config_dir,
                                                       self.work_dir))
                auth.prepare()
                found = self._found[key] = (auth, threading.Lock())
        return ServerAnswerer(*found)
