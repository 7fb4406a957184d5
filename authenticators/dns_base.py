"""What every DNS authenticator does the same way (``dns-rfc2136``, the dns-lexicon providers).

Options, Certbot's names for each plugin ``dns-NAME`` (dests ``dns_NAME_...``):

``--dns-NAME``
    Use this authenticator (as ``-a dns-NAME``).
``--dns-NAME-credentials FILE``
    The credentials file (:mod:`.dns_credentials`), mode 0600 or stricter.
``--dns-NAME-propagation-seconds N`` (default: none)
    Sleep N seconds after publishing the records, as Certbot does. Without it certwright
    does not sleep: it asks the zone's authoritative servers (its NS set) until every
    record is visible on each of them, within the ready timeout.

The records of an order are published before any challenge is answered, one change per
zone (:meth:`DnsAuthenticator.present_all`); the name a TXT goes to is
``_acme-challenge.<name>``, or the end of the CNAME chain it starts. Cleanup removes exactly
the records published (other TXT records at the same name stay). One instance may serve
parallel renewals with the same credentials (its state is guarded by a lock). Each record
is written down before it is published (:mod:`.dns_journal`): the records of a run that
was killed before its cleanup are removed by the next ``prepare`` with the same
credentials.

A subclass gives the provider's side: ``setup`` (read the credentials), ``lookup_server``
(where questions go), ``add_records`` and ``delete_records`` (one zone's change).
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from certwright.authenticators._task import check_task
from certwright.authenticators.dns_credentials import Credentials, read_credentials
from certwright.core.errors import PluginError

if TYPE_CHECKING:
    from certwright.authenticators.dns_journal import Journal
    from certwright.authenticators.dns_lookup import Server, Signer
    from certwright.core.interfaces import AddArgument, ChallengeTask, Identifier

log = logging.getLogger(__name__)

DNS01 = "dns-01"
EXTRA = "certwright[dns]"
POLL_FIRST, POLL_MAX = 0.05, 2.0


@dataclass(frozen=True)
class Record:
    """One TXT record published for a challenge: ``name`` in ``zone`` holds ``value``."""

    zone: str
    name: str
    value: str


def need(module: str, package: str, plugin: str) -> None:
    """PluginError naming what to install when ``module`` can't be imported."""
    import importlib

    try:
        importlib.import_module(module)
    except ModuleNotFoundError:
        raise PluginError(f"{plugin} needs the Python package {package}, which is not "
                          f"installed; install it with: pip install '{EXTRA}'") from None


def _seconds(value: object, flag: str) -> float | None:
    if value in (None, "", "None"):
        return None
    try:
        seconds = float(str(value))
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < 86400:
        raise PluginError(f"{flag} {value!r} is not a number of seconds (0 to 86399)")
    return seconds


class DnsAuthenticator:
    """dns-01 through a DNS provider; a subclass speaks the provider's protocol."""

    name: ClassVar[str] = "dns-base"
    description: ClassVar[str] = ""
    default_propagation: ClassVar[int] = 60  # Certbot's default, for the help text
    atomic_update: ClassVar[bool] = True  # add_records applies a zone's records all or none

    def __init__(self, config: argparse.Namespace) -> None:
        self.config = config
        prefix = self.prefix()
        raw = getattr(config, f"{prefix}_credentials", None)
        self.credentials_path: str | None = os.path.abspath(str(raw)) if raw else None
        self.propagation_raw = getattr(config, f"{prefix}_propagation_seconds", None)
        self._lock = threading.Lock()
        self._published: dict[ChallengeTask, list[Record]] = {}
        work_dir = getattr(config, "work_dir", None)
        self._journal: Journal | None = None
        if work_dir:
            from certwright.authenticators.dns_journal import Journal

            self._journal = Journal(str(work_dir), self.name, self.credentials_path)

    @classmethod
    def prefix(cls) -> str:
        return cls.name.replace("-", "_")

    @classmethod
    def add_arguments(cls, add: AddArgument) -> None:
        flag, prefix = "--" + cls.name, cls.prefix()
        # --NAME itself is the core's shortcut, made from the entry point
        add(f"{flag}-credentials", dest=f"{prefix}_credentials", default=None, metavar="FILE",
            help="the credentials file (mode 0600)")
        add(f"{flag}-propagation-seconds", dest=f"{prefix}_propagation_seconds", default=None,
            metavar="N", help="sleep N seconds after publishing the TXT records (Certbot's "
            f"default {cls.default_propagation}); without it certwright asks the zone's "
            "authoritative servers until every record is visible")

    # -- for subclasses -------------------------------------------------------------------
    def setup(self, credentials: Credentials) -> None:
        """Read what the provider needs from the credentials file (PluginError naming the
        key at fault)."""
        raise NotImplementedError

    def lookup_server(self) -> Server:
        """Where questions about names (CNAME, SOA, NS) go."""
        raise NotImplementedError

    def lookup_signer(self) -> Signer | None:
        return None

    def add_records(self, zone: str, records: Sequence[Record]) -> None:
        raise NotImplementedError

    def delete_records(self, zone: str, records: Sequence[Record]) -> None:
        raise NotImplementedError

    def modules(self) -> Sequence[tuple[str, str]]:
        """``(module, package)`` this plugin imports when used."""
        return (("dns.query", "dnspython"),)

    # -- the contract -----------------------------------------------------------------------
    @property
    def propagation(self) -> float | None:
        return _seconds(self.propagation_raw, f"--{self.name}-propagation-seconds")

    def prepare(self) -> None:
        self.prepare_provider()
        self._remove_orphans()

    def _remove_orphans(self) -> None:
        """Remove the records a killed run of this plugin with these credentials left."""
        journal = self._journal
        if journal is None:
            return
        by_zone: dict[str, list[Record]] = {}
        for record in journal.orphans():
            by_zone.setdefault(record.zone, []).append(record)
        for zone, records in by_zone.items():
            try:
                self.delete_records(zone, records)
            except PluginError as exc:
                log.warning("%s: TXT records an interrupted run left in %s are still there: "
                            "%s", self.name, zone, exc)
                continue
            journal.forget(records)
            log.warning("%s: removed %d TXT record(s) an interrupted run left in %s (%s)",
                        self.name, len(records), zone,
                        ", ".join(sorted({r.name for r in records})))

    def prepare_provider(self) -> None:
        """Check the libraries and read the credentials (``prepare`` without the removal
        of records left by a killed run)."""
        for module, package in self.modules():
            need(module, package, self.name)
        if not self.credentials_path:
            raise PluginError(f"{self.name} needs a credentials file: give "
                              f"--{self.name}-credentials FILE")
        _ = self.propagation  # a bad value stops here, before any order
        self.setup(read_credentials(self.credentials_path, f"--{self.name}-credentials"))

    def challenge_types(self, identifier: Identifier) -> Sequence[str]:
        return [DNS01] if identifier.type == "dns" else []  # RFC 8738: none for IPs

    def share_key(self) -> Hashable:
        return (self.name, self.credentials_path, str(self.propagation_raw))

    def present(self, task: ChallengeTask) -> None:
        self.present_all([task])

    def present_all(self, tasks: Sequence[ChallengeTask]) -> None:
        from certwright.authenticators import dns_lookup

        server, signer = self.lookup_server(), self.lookup_signer()
        zones: dict[str, list[tuple[ChallengeTask, Record]]] = {}
        for task in tasks:
            check_task(task, self.name)
            try:
                name = dns_lookup.record_name(task.validation_name, server, signer)
                zone = dns_lookup.find_zone(name, server, signer)
            except dns_lookup.LookupFailed as exc:
                raise PluginError(f"{self.name}: {exc}") from None
            zones.setdefault(zone, []).append((task, Record(zone, name, task.validation)))
        for zone, pairs in zones.items():
            records = list(dict.fromkeys(record for _, record in pairs))
            log.debug("%s: adding %d TXT record(s) to %s", self.name, len(records), zone)
            # one change for the zone when the provider applies it whole; else one record
            # at a time, each remembered once added (a failure midway is cleaned up)
            for batch in [records] if self.atomic_update else [[r] for r in records]:
                if self._journal is not None:  # written down first: a kill leaves a trace
                    self._journal.add(batch)
                try:
                    self.add_records(zone, batch)
                except BaseException:
                    if self._journal is not None:
                        self._journal.remove(batch)
                    raise
                with self._lock:
                    for task, record in pairs:
                        if record in batch:
                            self._published.setdefault(task, []).append(record)

    def wait_ready(self, tasks: Sequence[ChallengeTask], deadline: float) -> None:
        with self._lock:
            records = list(dict.fromkeys(r for t in tasks for r in self._published.get(t, ())))
        if not records:
            return
        if self.propagation is not None:
            time.sleep(max(0.0, min(self.propagation, deadline - time.monotonic())))
            return
        self._wait_visible(records, deadline)

    def _wait_visible(self, records: Sequence[Record], deadline: float) -> None:
        from certwright.authenticators import dns_lookup

        server, signer = self.lookup_server(), self.lookup_signer()
        begin, pause = time.monotonic(), POLL_FIRST
        servers: dict[str, list[tuple[str, list[dns_lookup.Server]]]] = {}
        missing: dict[tuple[Record, str], str] = {}
        while True:
            missing.clear()
            for record in records:
                try:
                    if record.zone not in servers:
                        servers[record.zone] = dns_lookup.authoritative(record.zone, server,
                                                                        signer)
                except dns_lookup.LookupFailed as exc:
                    missing[(record, str(server))] = str(exc)
                    continue
                for host, addresses in servers[record.zone]:
                    gap = self._not_visible(record, addresses, deadline)
                    if gap:
                        missing[(record, f"{host} ({gap[0]})")] = gap[1]
            if not missing:
                log.debug("%s: every TXT record is on the authoritative servers after %.2f s",
                          self.name, time.monotonic() - begin)
                return
            if time.monotonic() + pause > deadline:
                (record, where), why = next(iter(missing.items()))
                raise PluginError(
                    f"{self.name}: the TXT record at {record.name} is not visible on the "
                    f"authoritative server {where} after {time.monotonic() - begin:.0f} s "
                    f"({why}); {len(missing)} record/server pair(s) missing")
            time.sleep(pause)
            pause = min(POLL_MAX, pause * 2)

    def _not_visible(self, record: Record, addresses: Sequence[Server],
                     deadline: float) -> tuple[str, str] | None:
        """None when the first of a name server's addresses that answers has ``record``;
        else (address, why)."""
        from certwright.authenticators import dns_lookup

        server, signer = self.lookup_server(), self.lookup_signer()
        failed: tuple[str, str] | None = None
        for address in addresses:
            left = min(dns_lookup.QUERY_TIMEOUT, deadline - time.monotonic())
            sign = signer if address == server else None  # the key is that server's
            try:
                found = dns_lookup.txt_values(record.name, address, max(0.05, left), sign)
            except dns_lookup.LookupFailed as exc:
                failed = failed or (str(address), str(exc))
                continue
            return None if record.value in found else (str(address), "not there yet")
        return failed

    def cleanup(self, task: ChallengeTask) -> None:
        with self._lock:
            records = self._published.pop(task, [])
            still = {r for rs in self._published.values() for r in rs}
        by_zone: dict[str, list[Record]] = {}
        for record in records:
            if record not in still:  # another task (a shared instance) still needs it
                by_zone.setdefault(record.zone, []).append(record)
        for zone, mine in by_zone.items():
            self.delete_records(zone, mine)
            if self._journal is not None:
                self._journal.remove(mine)

    def renewal_params(self) -> Mapping[str, object]:
        params: dict[str, object] = {f"{self.prefix()}_credentials": self.credentials_path}
        if self.propagation_raw not in (None, "", "None"):
            params[f"{self.prefix()}_propagation_seconds"] = str(self.propagation_raw)
        return params
