"""Serving http-01 answers through an installer's own server, for as long as the CA needs them.

An installer-authenticator (nginx, Apache, HAProxy…) never writes files: it implements
:class:`~certwright.core.interfaces.Http01Server` (a plan for its http-01 change, a config
test, a reload, and where to ask whether the answers are served) and the core does the rest:

apply the plan (journalled, as a temporary transaction) → config test → reload → wait until
the server answers every token (bounded; missing answers are logged and the CA has the last
word) → and, whatever happens, put the previous files back and reload. A failure while
presenting undoes at once; ``cleanup`` of the last task undoes the rest. The undo runs from
``except BaseException``/``finally``, so Ctrl-C and SIGTERM (turned into ``SystemExit`` by
:func:`certwright.core.checkpoint.signals_raise`) roll back too; a crash leaves an open
temporary journal that the next start rolls back.

Contract for an ``apply`` callable: it raises (having written nothing, or having undone what
it wrote) when it cannot apply the plan; the undo function it returns is called exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certwright.core.errors import CertwrightError, PluginError
from certwright.core.http01 import Fetch, http01_port, http01_types, http_get, wait_until_served
from certwright.core.settings import Settings

if TYPE_CHECKING:
    from certwright.core.installer_types import ChangePlan
    from certwright.core.interfaces import ChallengeTask, Http01Server, Identifier

log = logging.getLogger(__name__)

Undo = Callable[[], None]
ApplyPlan = Callable[["ChangePlan"], Undo]


def work_dir_of(config: Settings | Any) -> Path:
    """The work directory from the settings a plugin was given (``--work-dir``); never a
    guessed default."""
    value = getattr(config, "work_dir", None)
    if not value:
        raise PluginError("no work directory is configured (--work-dir): temporary "
                          "challenge changes are journalled there")
    return Path(str(value))


def temporary_applier(work_dir: Path, installer: str) -> ApplyPlan:
    """Apply a plan as a temporary transaction under ``work_dir``; returns its undo."""
    from certwright.core.transaction import temporary

    return lambda plan: temporary(work_dir, plan, lambda: None, installer=installer)


class ChallengeSession:
    """At most one applied challenge plan at a time; ``replace`` swaps it for another."""

    def __init__(self, apply: ApplyPlan, config_test: Callable[[], None],
                 reload: Callable[[], None], server: str = "the server") -> None:
        self._apply = apply
        self._config_test = config_test
        self._reload = reload
        self._server = server
        self._undo: Undo | None = None

    @property
    def active(self) -> bool:
        return self._undo is not None

    def replace(self, plan: ChangePlan, ready: Callable[[], None] | None = None) -> None:
        """Undo what is applied, then apply ``plan``, config-test, reload and wait for
        ``ready``; on failure nothing of ``plan`` stays (and the server is reloaded if it
        had been)."""
        self.close()
        if plan.empty:
            return
        undo = self._apply(plan)
        reloaded = False
        try:
            self._config_test()
            reloaded = True
            self._reload()
            if ready is not None:
                ready()
        except BaseException:
            undo()
            if reloaded:
                self._reload_quietly()
            raise
        self._undo = undo

    def close(self) -> None:
        """Put the previous configuration back and reload; safe to call at any time."""
        undo, self._undo = self._undo, None
        if undo is None:
            return
        try:
            undo()
        finally:
            self._reload_quietly()

    def _reload_quietly(self) -> None:
        try:
            self._reload()
        except CertwrightError as exc:
            log.warning("%s reload after removing the challenge answers failed: %s",
                        self._server, exc)


class Http01Answers:
    """The authenticator side of a :class:`ChallengeSession`: the tasks presented so far,
    all served by one applied plan (one reload however many tasks there are)."""

    def __init__(self, server: Http01Server, apply: ApplyPlan,
                 fetch: Callable[[], Fetch] = lambda: http_get) -> None:
        self.server = server
        self.fetch = fetch
        self.tasks: list[ChallengeTask] = []
        self.session = ChallengeSession(apply, server.config_test, server.reload, server.name)

    def present_all(self, tasks: Sequence[ChallengeTask]) -> None:
        """Serve every task given so far (these and earlier ones) with one reload."""
        for task in tasks:
            if task not in self.tasks:
                self.tasks.append(task)
        self.session.close()  # the new plan is made against the files as they were
        plan = self.server.plan_http01(self.tasks)
        probes = self.server.http01_probes(self.tasks)

        def served() -> None:
            for probe in wait_until_served(probes, fetch=self.fetch()):
                log.warning("%s does not answer http://%s%s at %s:%d yet; asking the CA "
                            "anyway", self.server.name, probe.domain, probe.path,
                            probe.host, probe.port)

        self.session.replace(plan, served)

    def cleanup(self, task: ChallengeTask) -> None:
        """Forget ``task``; the change is undone with the last one (safe to repeat)."""
        if task in self.tasks:
            self.tasks.remove(task)
        if not self.tasks:
            self.session.close()


class ServerHttp01Authenticator:
    """Mixin giving an :class:`~certwright.core.interfaces.Http01Server` the authenticator
    methods (``present``, ``present_all``, ``cleanup``). The temporary transaction goes to
    the configured work directory; ``fetch`` asks the server for an answer (tests may
    stand in for a server that is not running)."""

    config: Settings
    fetch: Fetch = staticmethod(http_get)
    _answers: Http01Answers | None = None

    def challenge_types(self, identifier: Identifier) -> Sequence[str]:
        return http01_types(identifier)

    def http01_port(self) -> int:
        """The port the CA asks on (``--http-01-port``, default 80)."""
        return http01_port(self.config)

    def _http01(self) -> Http01Answers:
        if self._answers is None:
            server: Http01Server = self  # type: ignore[assignment]
            apply = temporary_applier(work_dir_of(self.config), server.name)
            self._answers = Http01Answers(server, apply, lambda: self.fetch)
        return self._answers

    def present(self, task: ChallengeTask) -> None:
        self.present_all([task])

    def present_all(self, tasks: Sequence[ChallengeTask]) -> None:
        self._http01().present_all(tasks)

    def cleanup(self, task: ChallengeTask) -> None:
        if self._answers is not None:
            self._answers.cleanup(task)
