"""Small pieces shared by the http-01 authenticators (webroot, standalone).

http-01 (RFC 8555 §8.3): the CA fetches ``http://<domain>/.well-known/acme-challenge/<token>``
on port 80 and expects the key authorization as the body. A wildcard identifier can never be
proven this way (§7.1.3 / §8.3), so these authenticators offer nothing for one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from certwright.core.errors import PluginError

if TYPE_CHECKING:
    from certwright.core.interfaces import ChallengeTask, Identifier

HTTP01 = "http-01"
WELL_KNOWN = ".well-known"
ACME_CHALLENGE = "acme-challenge"
CHALLENGE_PATH = f"/{WELL_KNOWN}/{ACME_CHALLENGE}/"
"""URL path prefix the CA requests; the token follows it."""

_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def http01_types(identifier: Identifier) -> list[str]:
    """``["http-01"]`` for a name or IP address, ``[]`` for a wildcard."""
    return [] if identifier.is_wildcard else [HTTP01]


def is_valid_token(token: str) -> bool:
    """A token is base64url without padding (§8.1), so it is always a safe file name."""
    return bool(token) and all(c in _BASE64URL for c in token)


def http01_token(task: ChallengeTask, plugin: str) -> str:
    """The token of an http-01 ``task``; PluginError for another type or an unsafe token."""
    if task.challenge_type != HTTP01:
        raise PluginError(
            f"the {plugin} authenticator cannot answer {task.challenge_type} "
            f"for {task.identifier.value}; it only does http-01"
        )
    if not is_valid_token(task.token):
        raise PluginError(
            f"refusing http-01 token {task.token!r} for {task.domain}: "
            "not base64url as RFC 8555 requires"
        )
    return task.token
