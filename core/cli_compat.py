"""The rest of Certbot's command line: options certwright gives Certbot's meaning, and
options that are obsolete (here or in Certbot itself), accepted with a one-line notice.

Certbot 5.8.0's whole option set is accepted (a test builds Certbot's own parser and
checks each option); the Apache and DNS-plugin options come with those plugins.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from certwright.core.errors import ConfigError

OCSP_ENDED = "Let's Encrypt ended its OCSP service in 2025"
EAB_ALGS = ("HS256", "HS384", "HS512")

# obsolete in Certbot itself (its DeprecatedArgumentAction): no meaning anywhere
DEPRECATED = ("--os-packages-only", "--no-self-upgrade", "--no-bootstrap",
              "--no-permissions-check")


class Obsolete(argparse.Action):
    """An option accepted for compatibility that changes nothing; its notice is said once
    (see :func:`notices`). ``nargs`` 0 for a flag, None for an option with a value."""

    def __init__(self, option_strings: list[str], dest: str, notice: str = "",
                 nargs: int | None = 0, **kwargs: Any) -> None:
        kwargs.setdefault("help", argparse.SUPPRESS)
        kwargs.setdefault("default", None)
        super().__init__(option_strings, dest, nargs=nargs, **kwargs)
        self.notice = notice

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(ns, self.dest, True if self.nargs == 0 else values)


def user_agent_comment(value: str) -> str:
    """Certbot's rule: the comment goes inside the User-Agent's parentheses."""
    if "(" in value or ")" in value or any(ord(c) < 32 for c in value):
        raise argparse.ArgumentTypeError("may not contain parentheses or control characters")
    return value


def eab_alg(value: str) -> str:
    alg = value.strip().upper()
    if alg not in EAB_ALGS:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {value!r} (choose from {', '.join(EAB_ALGS)})")
    return alg


def add_common(p: argparse.ArgumentParser) -> None:
    add = p.add_argument
    add("-t", "--text", dest="text_mode", action="store_true",
        help="accepted for Certbot's command lines: output is always text")
    add("--verbose-level", type=int, default=None, metavar="N",
        help="verbosity as a number (as N times -v)")
    add("--debug", action="store_true", help="show tracebacks of errors")
    add("--strict-permissions", action="store_true",
        help="refuse config, work and logs dirs not owned by this user or writable by others")
    for flag in DEPRECATED:
        add(flag, action=Obsolete, notice=f"{flag} is deprecated and has no effect")


def add_certificate(p: argparse.ArgumentParser) -> None:
    g = next(g for g in p._action_groups if g.title == "certificate")
    add = g.add_argument
    add("--renew-with-new-domains", action="store_true",
        help="with --cert-name and other names than stored: renew now whatever the expiry "
             "(certwright always does)")
    add("--run-deploy-hooks", action="store_true",
        help="on a dry run (or reconfigure) run the deploy hooks, with the current "
             "certificate, once the test has succeeded")
    add("--debug-challenges", action="store_true",
        help="once the challenges are set up, show them and wait for Enter before the CA "
             "is asked to check them (interactive runs)")
    add("--break-my-certs", action="store_true",
        help="let a test (staging) CA's certificate replace one from a real CA")
    add("--no-autorenew", dest="autorenew", action="store_false", default=True,
        help="store autorenew = False: `renew` leaves the certificate alone")
    add("--disable-renew-updates", action="store_true",
        help="accepted for Certbot's command lines: renew changes no server configuration "
             "beyond deploying the renewed certificate")
    add("--staple-ocsp", dest="staple", action=Obsolete,
        notice=f"--staple-ocsp: OCSP stapling is not configured ({OCSP_ENDED})")
    add("--no-staple-ocsp", dest="staple", action="store_false", help=argparse.SUPPRESS)


def add_account(p: argparse.ArgumentParser) -> None:
    g = next(g for g in p._action_groups if g.title == "account and server")
    add = g.add_argument
    add("--eab-hmac-alg", type=eab_alg, default="HS256", metavar="ALG",
        help=f"MAC algorithm of the External Account Binding ({', '.join(EAB_ALGS)}; "
             "default HS256)")
    add("--user-agent-comment", type=user_agent_comment, default=None, metavar="TEXT",
        help="a comment added to the default User-Agent (ignored with --user-agent)")


def add_plugin(p: argparse.ArgumentParser) -> None:
    g = next(g for g in p._action_groups if g.title == "plugins")
    g.add_argument("--auto-hsts", action="store_true",
                   help="HSTS with a max-age raised on each renewal (needs an installer "
                        "that offers it)")


def add_obsolete(group: Any, options: Mapping[str, tuple[bool, str]]) -> None:
    """A plugin's ``obsolete_options``: ``{"--flag": (takes_value, notice)}``."""
    for flag, (takes_value, notice) in options.items():
        # declared already by another plugin of the same server
        with contextlib.suppress(argparse.ArgumentError):
            group.add_argument(flag, dest=flag[2:].replace("-", "_"), action=Obsolete,
                               nargs=None if takes_value else 0, notice=notice)


def finish(ns: argparse.Namespace, actions: Iterable[argparse.Action]) -> None:
    """Checks and settings that need the whole command line; ``ns.notices`` gets the
    one-line notices of obsolete options given."""
    if ns.verb == "renew" and ns.force_interactive:  # renew never asks anything
        raise ConfigError("--force-interactive can't be used with renew")
    if ns.noninteractive and ns.force_interactive:
        raise ConfigError("-n/--non-interactive and --force-interactive can't be used "
                          "together")
    if ns.allow_subset_of_names and any(str(d).startswith("*.") for d in ns.domains):
        raise ConfigError("--allow-subset-of-names can't be used with a wildcard name")
    if ns.hsts and ns.auto_hsts:
        raise ConfigError("--hsts and --auto-hsts can't be used together")
    if ns.verbose_level is not None and not ns.verbose:
        ns.verbose = max(0, ns.verbose_level)
    found: list[str] = []
    for action in actions:
        given = getattr(ns, action.dest, None) not in (None, False)
        if isinstance(action, Obsolete) and given and action.notice not in found:
            found.append(action.notice)
    if ns.eff_email:
        found.append("--eff-email: certwright does not pass your address on to the EFF; "
                     "subscribe at https://supporters.eff.org/subscribe if you wish")
    if ns.must_staple:
        found.append(f"--must-staple: {OCSP_ENDED} and refuses such certificates; the "
                     "extension is asked for only because this CA may still use it")
    ns.notices = found
