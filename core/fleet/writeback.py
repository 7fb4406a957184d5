"""Write-back: the domain's entry gets its certificate and status (the ``certwrightDomain``
auxiliary class, added when missing). Only what differs from what the entry holds is
written, so a run with nothing to do writes nothing; a write that failed differs again on
the next run and is retried then. The certificate in the store never depends on it.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping, Sequence

from certwright.core.fleet.ldap_source import LdapInventory
from certwright.core.fleet.model import Domain
from certwright.core.fleet.schema import OBJECT_CLASS, READ, WRITTEN
from certwright.core.fleet.state import DomainState

log = logging.getLogger(__name__)
Changes = dict[str, list[tuple[str, Sequence[str]]]]


def gtime(when: float) -> str:
    return datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y%m%d%H%M%SZ")


CERT = "certwrightCertificate"
NOT_AFTER = "certwrightNotAfter"
Fullchain = str | Callable[[], str | None] | None


def desired(state: DomainState, fullchain: str | None, redirect: bool = False
            ) -> dict[str, tuple[str, ...]]:
    """The certwright attributes the entry should hold (an empty tuple: none).
    ``certwrightRedirect`` becomes TRUE once https serves the certificate (``redirect``);
    certwright never sets it back (the hoster may)."""
    want: dict[str, tuple[str, ...]] = {a: () for a in WRITTEN if a != "certwrightRedirect"}
    if fullchain:
        want["certwrightCertificate"] = (fullchain,)
    if fullchain and state.not_after:
        want["certwrightNotAfter"] = (gtime(state.not_after),)
    want["certwrightStatus"] = (state.state,)
    if state.error:
        want["certwrightError"] = (state.error,)
    if state.last_attempt:
        want["certwrightLastAttempt"] = (gtime(state.last_attempt),)
    if redirect:
        want["certwrightRedirect"] = ("TRUE",)
    return want


def changes_for(want: Mapping[str, tuple[str, ...]], current: Mapping[str, tuple[str, ...]],
                object_classes: Sequence[str]) -> Changes:
    """What to write. The search does not fetch the certificate itself (kilobytes per
    entry): when ``current`` lacks it, it counts as up to date when the expiry is (a
    certificate's notAfter changes with every issuance)."""
    changes: Changes = {}
    for attr, values in want.items():
        have = tuple(current.get(attr, ()))
        if values == have:
            continue
        if attr == CERT and CERT not in current and want.get(NOT_AFTER) == \
                tuple(current.get(NOT_AFTER, ())):
            continue
        changes[attr] = [("replace", list(values))] if values else [("delete", [])]
    if changes and OBJECT_CLASS.lower() not in {c.lower() for c in object_classes}:
        changes["objectClass"] = [("add", [OBJECT_CLASS])]
    return changes


class WriteBack:
    def __init__(self, ldap: LdapInventory | None, dry_run: bool = False) -> None:
        self.ldap = ldap
        self.dry_run = dry_run
        self.written = 0
        self.failed: list[str] = []

    def update(self, domain: Domain, state: DomainState, fullchain: Fullchain,
               redirect: bool = False) -> bool:
        """Bring ``domain``'s entry up to date; False when the write failed (reported).
        ``fullchain`` may be a function: it is read only when the entry needs it."""
        if self.ldap is None or domain.dn is None:
            return True
        placeholder = "-" if fullchain is not None else None
        changes = changes_for(desired(state, placeholder, redirect), domain.current,
                              domain.object_classes)
        if CERT in changes and changes[CERT][0][0] == "replace":
            pem = fullchain() if callable(fullchain) else fullchain
            if not pem:
                return self._failed(domain.dn, "the stored certificate can't be read")
            changes[CERT] = [("replace", [pem])]
        return self._apply(domain.dn, changes)

    def remove(self, dn: str) -> bool:
        """Take certwright's attributes and class off ``dn`` (the class stays when the
        entry still needs it for an attribute that is not ours to remove)."""
        if self.ldap is None:
            return True
        try:
            found = self.ldap.entry(dn)
        except Exception as exc:  # never more than a failed write-back
            return self._failed(dn, str(exc))
        if found is None:
            return True  # the entry itself is gone
        current, classes = found
        changes: Changes = {a: [("delete", [])] for a in WRITTEN if current.get(a)}
        has_class = OBJECT_CLASS.lower() in {c.lower() for c in classes}
        if has_class and not any(current.get(a) for a in READ):
            with_class: Changes = {**changes, "objectClass": [("delete", [OBJECT_CLASS])]}
            if self._apply(dn, with_class, quiet=True):
                return True
        return self._apply(dn, changes)

    def _apply(self, dn: str, changes: Changes, quiet: bool = False) -> bool:
        if not changes:
            return True
        if self.dry_run:
            log.info("would write to %s: %s", dn, ", ".join(sorted(changes)))
            return True
        try:
            assert self.ldap is not None
            self.ldap.modify(dn, changes)
        except Exception as exc:  # never more than a failed write-back: the certificate
            return False if quiet else self._failed(dn, str(exc))  # is stored already
        self.written += 1
        return True

    def _failed(self, dn: str, error: str) -> bool:
        log.error("write-back to %s failed (retried on the next run): %s", dn, error)
        self.failed.append(dn)
        return False
