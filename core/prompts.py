"""What an interactive `certonly`/`run` asks or waits for, in Certbot's words: the question
when ``--cert-name`` gets other names, and ``--debug-challenges``' pause."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from certwright.core.errors import ConfigError
from certwright.core.interfaces import ChallengeTask
from certwright.core.settings import Settings

Say = Callable[[str], None]
Ask = Callable[[str], str] | None


def confirm_new_names(config: Settings, name: str, have: Iterable[str],
                      want: Iterable[str], ask: Ask) -> None:
    """Asked only when interactive (the answer defaults to yes), never with
    --renew-with-new-domains; "no" stops the command with nothing changed."""
    if ask is None or config.renew_with_new_domains:
        return
    had, wanted = set(have), set(want)
    added = "".join(f"\n  + {n}" for n in sorted(wanted - had))
    removed = "".join(f"\n  - {n}" for n in sorted(had - wanted))
    answer = ask(f"Certificate {name} changes names:{added}{removed}\n"
                 "Did you intend to make this change? [Y/n] ")
    if answer.strip().lower() in ("n", "no"):
        raise ConfigError(f"--cert-name {name} and the -d names given differ; "
                          "nothing was changed")


def challenge_pause(config: Settings, say: Say, ask: Ask
                    ) -> Callable[[Sequence[ChallengeTask]], None]:
    """--debug-challenges: say the challenges are set up (with -v what the CA will check)
    and, when interactive, wait for Enter before the CA is asked to check them."""

    def pause(tasks: Sequence[ChallengeTask]) -> None:
        say(f"{len(tasks)} challenge(s) set up; the CA has not been asked to check them yet.")
        for task in tasks if config.verbose else ():
            if task.challenge_type == "http-01":
                say(f"  http://{task.domain}/.well-known/acme-challenge/{task.token}"
                    f" must answer: {task.key_authorization}")
            elif task.challenge_type == "dns-01":
                say(f"  {task.validation_name} TXT must be: {task.validation}")
            else:
                say(f"  {task.challenge_type} for {task.domain}: {task.key_authorization}")
        if ask is not None:
            ask("Press Enter to let the CA check them: ")

    return pause
