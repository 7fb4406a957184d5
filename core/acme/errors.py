"""ACME problem documents (RFC 8555 §6.7) and transport failures as exceptions."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from certwright.core.errors import CertwrightError

ERROR_PREFIX = "urn:ietf:params:acme:error:"


class Subproblem(NamedTuple):
    """One per-identifier problem inside a problem document (RFC 8555 §6.7.1)."""

    type: str
    detail: str
    identifier: str | None = None

    @property
    def code(self) -> str:
        return self.type.removeprefix(ERROR_PREFIX)


class TransportError(CertwrightError):
    """The server could not be reached or did not answer like an ACME server."""


@dataclass
class AcmeError(CertwrightError):
    """A problem document from the CA: data and exception at once."""

    type: str
    detail: str = ""
    status: int = 0
    subproblems: tuple[Subproblem, ...] = ()
    retry_after: float | None = None
    url: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    received: float = field(default_factory=time.time, repr=False)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    @property
    def code(self) -> str:
        """The short error name: ``badNonce``, ``rateLimited``, ``unauthorized``…"""
        return self.type.removeprefix(ERROR_PREFIX)

    def __str__(self) -> str:
        text = f"{self.code}: {self.detail}" if self.detail else self.code
        if self.subproblems:
            parts = "; ".join(
                f"{s.identifier or '?'}: {s.code}: {s.detail}" for s in self.subproblems
            )
            text += f" ({parts})"
        if self.code == "rateLimited" and self.retry_after is not None:
            at = time.strftime("%Y-%m-%d %H:%M:%S UTC",
                               time.gmtime(self.received + self.retry_after))
            text += f" (retry after {self.retry_after:.0f} s, at {at})"
        return text

    def __hash__(self) -> int:
        return id(self)

    @classmethod
    def from_json(
        cls, doc: Mapping[str, Any], status: int = 0, retry_after: float | None = None,
        url: str = "",
    ) -> AcmeError:
        subs = tuple(
            Subproblem(
                type=printable(s.get("type", "")),
                detail=printable(s.get("detail", "")),
                identifier=_identifier_text(s.get("identifier")),
            )
            for s in doc.get("subproblems") or ()
            if isinstance(s, Mapping)
        )
        given = doc.get("status", status)
        return cls(
            type=printable(doc.get("type", "about:blank")),
            detail=printable(doc.get("detail", "")),
            status=given if isinstance(given, int) and not isinstance(given, bool) else status,
            subproblems=subs,
            retry_after=retry_after,
            url=url,
            raw=dict(doc),
        )


def _identifier_text(value: object) -> str | None:
    if isinstance(value, Mapping):
        return printable(value.get("value", ""))
    return None


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(value: object) -> str:
    """CA text as one terminal-safe line: blanks for line breaks and tabs, ``\\xNN`` for
    other control characters (an escape sequence could rewrite the user's screen)."""
    text = str(value)
    return _CONTROL.sub(lambda m: " " if m.group() in "\n\r\t" else
                        f"\\x{ord(m.group()):02x}", text)
