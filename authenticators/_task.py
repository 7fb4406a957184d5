"""Defence in depth for authenticators that hand challenge values to other programs.

The ACME layer already refuses a CA response whose token, URL or identifier is unsafe
(``core/acme/messages.py``); an authenticator that passes a task's values on to a shell
hook, a file name or a person checks them again, so a task built some other way (a
third-party flow, a test) can't smuggle a path or a newline through.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from certwright.core.errors import ConfigError, PluginError

if TYPE_CHECKING:
    from certwright.core.interfaces import ChallengeTask

_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_KEY_AUTHORIZATION = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def _valid_name(name: str) -> bool:
    from certwright.core.names import normalize_domain

    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    try:
        return normalize_domain(name) == name
    except ConfigError:
        return False


def check_task(task: ChallengeTask, plugin: str) -> None:
    """PluginError naming the value when anything in ``task`` is not what RFC 8555 allows."""
    problems = []
    if not _B64URL.fullmatch(task.token):
        problems.append(f"token {task.token!r} is not base64url")
    if not _KEY_AUTHORIZATION.fullmatch(task.key_authorization):
        problems.append(f"key authorization {task.key_authorization!r} is not token.thumbprint")
    if task.challenge_type == "dns-01" and not _B64URL.fullmatch(task.validation):
        problems.append(f"TXT value {task.validation!r} is not base64url")
    for name in (task.domain, *(n.removeprefix("*.") for n in task.all_domains)):
        if not _valid_name(name):
            problems.append(f"name {name!r} is not a DNS name or IP address")
    if problems:
        raise PluginError(f"{plugin}: refusing the {task.challenge_type} challenge: "
                          f"{problems[0]}")
