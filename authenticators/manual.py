"""manual: prove control through hook scripts, or by hand when someone is at the terminal.

Options (Certbot's names and meanings):

``--manual-auth-hook COMMAND`` (dest ``manual_auth_hook``, default None)
    Run through ``/bin/sh -c`` for each challenge before the CA validates it.
``--manual-cleanup-hook COMMAND`` (dest ``manual_cleanup_hook``, default None)
    Run for each challenge afterwards; a failure is only a warning.
``--manual-public-ip-logging-ok`` (dest ``manual_public_ip_logging_ok``)
    Deprecated and ignored; accepted so old command lines and renewal confs keep working.

A hook still running after ``--hook-timeout`` seconds (default 600) is killed with every
process it started (``core/runner.py``), and the challenge fails naming the hook.

Hooks see Certbot's environment variables: ``CERTBOT_DOMAIN`` (without ``*.``),
``CERTBOT_VALIDATION``, ``CERTBOT_TOKEN`` (http-01 only), ``CERTBOT_REMAINING_CHALLENGES``,
``CERTBOT_ALL_DOMAINS`` (comma-separated) and, for the cleanup hook, ``CERTBOT_AUTH_OUTPUT``
(what the auth hook printed on stdout, stripped).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

from certwright.authenticators._task import check_task
from certwright.core.errors import PluginError
from certwright.core.hooks import hook_timeout
from certwright.core.options import PluginOption, add_options
from certwright.core.settings import Settings

if TYPE_CHECKING:
    from certwright.core.interfaces import AddArgument, ChallengeTask, Identifier
    from certwright.core.runner import Completed

logger = logging.getLogger(__name__)

HTTP01 = "http-01"
DNS01 = "dns-01"
_ALIASES = {"http": HTTP01, "dns": DNS01}
_HOOK_VARIABLES = (
    "CERTBOT_DOMAIN",
    "CERTBOT_VALIDATION",
    "CERTBOT_TOKEN",
    "CERTBOT_REMAINING_CHALLENGES",
    "CERTBOT_ALL_DOMAINS",
    "CERTBOT_AUTH_OUTPUT",
)
_NEED_HOOK = (
    "the manual authenticator needs --manual-auth-hook in non-interactive mode "
    "(nobody is there to follow the instructions)"
)


def _preferred(config: Settings) -> list[str]:
    value = getattr(config, "pref_challs", None) or []
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(item).strip().lower() for item in items]
    return [_ALIASES.get(name, name) for name in names if name]


class ManualAuthenticator:
    """Runs ``--manual-auth-hook`` / ``--manual-cleanup-hook``, or asks a person to do it."""

    name: ClassVar[str] = "manual"
    description: ClassVar[str] = (
        "Run hook scripts, or follow instructions by hand (http-01, dns-01)"
    )

    def __init__(self, config: Settings) -> None:
        self.config = config
        self.auth_hook: str | None = getattr(config, "manual_auth_hook", None) or None
        self.cleanup_hook: str | None = getattr(config, "manual_cleanup_hook", None) or None
        self._auth_output: dict[ChallengeTask, str] = {}
        self.timeout = hook_timeout(config)

    typed_options: ClassVar[tuple[PluginOption, ...]] = (
        PluginOption("--manual-auth-hook", metavar="COMMAND",
                     help="command run through /bin/sh for each challenge before validation"),
        PluginOption("--manual-cleanup-hook", metavar="COMMAND",
                     help="command run through /bin/sh for each challenge after validation"),
        PluginOption("--manual-public-ip-logging-ok", bool, False, switch=True, hidden=True),
    )

    @classmethod
    def add_arguments(cls, add: AddArgument) -> None:
        add_options(cls.typed_options, add)

    def prepare(self) -> None:
        if self.auth_hook is None and getattr(self.config, "noninteractive", False):
            raise PluginError(_NEED_HOOK)

    def challenge_types(self, identifier: Identifier) -> Sequence[str]:
        if identifier.is_wildcard:
            supported = [DNS01]
        elif identifier.type == "ip":  # RFC 8738: no dns-01 for IP addresses
            supported = [HTTP01]
        else:
            supported = [HTTP01, DNS01]
        preferred = _preferred(self.config)
        if not preferred:
            return supported
        return [c for i, c in enumerate(preferred) if c in supported and c not in preferred[:i]]

    # -- challenges ----------------------------------------------------------------------

    def present(self, task: ChallengeTask) -> None:
        self.present_all([task])

    def present_all(self, tasks: Sequence[ChallengeTask]) -> None:
        """Run the auth hook for each task in order (``CERTBOT_REMAINING_CHALLENGES``
        counting down, as Certbot does), or show every record to publish and wait for one
        Enter: all of them are in place before the CA checks any."""
        for task in tasks:
            _check(task)
        if self.auth_hook is None:
            if getattr(self.config, "noninteractive", False):
                raise PluginError(_NEED_HOOK)
            _instruct(tasks)
            return
        for task in tasks:
            done = _run_hook(self.auth_hook, _hook_env(task), "--manual-auth-hook",
                             self.timeout)
            if done.returncode != 0:
                raise PluginError(_hook_failure("--manual-auth-hook", self.auth_hook, task, done))
            self._auth_output[task] = done.stdout.strip()

    def cleanup(self, task: ChallengeTask) -> None:
        output = self._auth_output.pop(task, "")
        if self.cleanup_hook is None:
            return
        try:
            done = _run_hook(self.cleanup_hook, _hook_env(task, auth_output=output),
                             "--manual-cleanup-hook", self.timeout)
        except PluginError as exc:
            logger.warning("%s", exc)
            return
        if done.returncode != 0:
            logger.warning(
                "%s", _hook_failure("--manual-cleanup-hook", self.cleanup_hook, task, done)
            )

    def renewal_params(self) -> Mapping[str, object]:
        params: dict[str, object] = {}
        if self.auth_hook is not None:
            params["manual_auth_hook"] = self.auth_hook
        if self.cleanup_hook is not None:
            params["manual_cleanup_hook"] = self.cleanup_hook
        return params


def _check(task: ChallengeTask) -> None:
    if task.challenge_type not in (HTTP01, DNS01):
        raise PluginError(
            f"the manual authenticator cannot answer {task.challenge_type} "
            f"for {task.identifier.value}; it does http-01 and dns-01"
        )
    check_task(task, ManualAuthenticator.name)  # its values go into a shell's environment


def _hook_env(task: ChallengeTask, auth_output: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _HOOK_VARIABLES}
    env["CERTBOT_DOMAIN"] = task.domain
    env["CERTBOT_VALIDATION"] = task.validation
    if task.challenge_type == HTTP01:
        env["CERTBOT_TOKEN"] = task.token
    env["CERTBOT_REMAINING_CHALLENGES"] = str(task.remaining)
    env["CERTBOT_ALL_DOMAINS"] = ",".join(task.all_domains)
    if auth_output is not None:
        env["CERTBOT_AUTH_OUTPUT"] = auth_output
    return env


def _run_hook(command: str, env: Mapping[str, str], option: str,
              timeout: float | None) -> Completed:
    from certwright.core import runner

    logger.debug("running hook: %s", command)
    done = runner.run(command, timeout=timeout, env=env, what=option)
    if done.stdout:
        logger.debug("hook %r printed: %s", command, done.stdout.rstrip())
    if done.stderr and done.returncode == 0:
        logger.info("hook %r wrote to stderr: %s", command, done.stderr.rstrip())
    return done


def _hook_failure(option: str, command: str, task: ChallengeTask, done: Completed) -> str:
    if done.returncode < 0:
        status = f"was killed by signal {-done.returncode}"
    else:
        status = f"failed with exit status {done.returncode}"
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    detail = lines[-1] if lines else "no error output"
    return f"{option} {command!r} {status} for {task.domain} ({task.challenge_type}): {detail}"


def _instruct(tasks: Sequence[ChallengeTask]) -> None:
    """Tell the person at the terminal what to publish for every task, then wait for one
    Enter (after the last record is visible: DNS propagation)."""
    text = "".join(_instruction(task) for task in tasks)
    if any(task.challenge_type == DNS01 for task in tasks):
        text += ("Keep any earlier TXT value shown for the same name until validation is "
                 "done.\nWait until every record is visible from outside (DNS propagation) "
                 "before going on.\n")
    sys.stdout.write(text + "\nPress Enter to continue ")
    sys.stdout.flush()
    if not sys.stdin.readline():
        what = ", ".join(sorted({f"{t.challenge_type} of {t.domain}" for t in tasks}))
        raise PluginError(f"no confirmation for the challenges ({what}): stdin is closed; "
                          "use --manual-auth-hook to automate it")


def _instruction(task: ChallengeTask) -> str:
    if task.challenge_type == HTTP01:
        host = f"[{task.domain}]" if ":" in task.domain else task.domain
        return (
            f"\nTo prove control of {task.domain}, make this URL (plain HTTP, port 80)\n\n"
            f"    http://{host}/.well-known/acme-challenge/{task.token}\n\n"
            f"answer with exactly this content:\n\n    {task.key_authorization}\n"
        )
    return (
        f"\nTo prove control of {task.identifier.value}, publish a DNS TXT record\n\n"
        f"    name:  {task.validation_name}.\n    value: {task.validation}\n"
    )
