"""Issuance for one fleet domain through the http-01 challenge in its web root, with the
order kept in the store so that a crash never makes the CA issue twice.

Order of steps (RFC 8555 §7.4): newOrder → the order is recorded (URL, names, the CSR's
key) → authorizations and challenges → finalize → poll → download. A run that finds a
record resumes that order where the CA has it: ``valid`` is downloaded, ``processing``
polled, ``ready`` finalized with the recorded key, ``pending`` validated; ``invalid`` (or
an order the CA no longer knows) is dropped and a new one placed.

:func:`obtain` is the one entry point; the rest of the fleet does not know the protocol.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from certwright.core import keys
from certwright.core.acme import jws
from certwright.core.acme.client import AcmeClient, raise_for_order
from certwright.core.acme.errors import AcmeError
from certwright.core.acme.messages import Authorization, Order
from certwright.core.errors import PluginError
from certwright.core.fleet import webroot
from certwright.core.fleet.model import Domain
from certwright.core.fleet.state import FleetStore, OrderRecord
from certwright.core.flow import ValidationFailed
from certwright.core.interfaces import ChallengeTask
from certwright.core.names import parse_identifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Issued:
    cert: str
    chain: str
    fullchain: str
    key_pem: bytes
    resumed: bool


class NoNewOrders(Exception):
    """The cap on new orders for this run is reached (``--max-new-orders``)."""


class Answerer(Protocol):
    """Serves http-01 answers: every task of one order at once, then takes them away."""

    def present(self, tasks: Sequence[ChallengeTask]) -> None: ...

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None: ...


class WebrootAnswerer:
    """Files in the domain's web root (no server touched)."""

    def __init__(self, webroot: str | None, name: str) -> None:
        self.webroot, self.name = webroot, name
        self.written: list[Path] = []

    def present(self, tasks: Sequence[ChallengeTask]) -> None:
        if self.webroot is None:
            raise PluginError(f"{self.name}: no web root to answer the http-01 challenge")
        for task in tasks:
            self.written.append(webroot.put(self.webroot, task.token, task.key_authorization))

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        for path in self.written:
            webroot.remove(path)
        self.written.clear()


def obtain(client: AcmeClient, account_id: str, server: str, domain: Domain,
           fleet: FleetStore, may_order: Callable[[], bool], timeout: float = 90.0,
           replaces: str | None = None, answerer: Answerer | None = None) -> Issued:
    """A certificate for ``domain``; ``may_order`` is asked before a new order is placed;
    ``answerer`` serves the challenges (default: files in the domain's web root)."""
    deadline = time.monotonic() + timeout
    record, order = _resume(client, fleet, domain, server)
    resumed = record is not None
    if record is None or order is None:
        if not may_order():
            raise NoNewOrders()
        key = keys.KeySpec().generate()
        idents = [parse_identifier(n) for n in domain.names]
        try:
            order = client.new_order(idents, replaces=replaces)
        except AcmeError as exc:  # a CA refusing the hint (RFC 9773 §5): order without it
            if not replaces or exc.code == "rateLimited":
                raise
            log.info("%s: the CA refused replaces=%s (%s); ordering without it",
                     domain.name, replaces, exc)
            order = client.new_order(idents)
        record = OrderRecord(name=domain.name, url=order.url, names=list(domain.names),
                             key_pem=keys.key_to_pem(key).decode("ascii"), server=server,
                             account=account_id)
        fleet.save_order(record)  # before anything the CA could turn into a certificate
    if order.status == "pending":
        _validate(client, domain, [client.authorization(u) for u in order.authorizations],
                  deadline, answerer or WebrootAnswerer(domain.webroot, domain.name))
        order = client.order(order.url)
    raise_for_order(order)
    if order.status == "ready":
        key = keys.load_private_key(record.key_pem.encode("ascii"), "order record")
        idents = [parse_identifier(n) for n in record.names]
        order = client.finalize(order, keys.make_csr(key, idents))
    if order.status != "valid":
        order = client.poll_order(order.url, deadline)
    raise_for_order(order)
    if not order.certificate:
        raise AcmeError(type="serverInternal", detail=f"order {order.url} has no certificate")
    parts = keys.split_pem_chain(client.download(order.certificate).pem)
    if not parts:
        raise AcmeError(type="serverInternal", detail=f"{order.certificate}: no certificate")
    return Issued(cert=parts[0], chain="".join(parts[1:]), fullchain="".join(parts),
                  key_pem=record.key_pem.encode("ascii"), resumed=resumed)


def _resume(client: AcmeClient, fleet: FleetStore, domain: Domain, server: str
            ) -> tuple[OrderRecord | None, Order | None]:
    record = fleet.load_order(domain.name)
    if record is None:
        return None, None
    if record.server != server or sorted(record.names) != sorted(domain.names):
        log.info("%s: the recorded order is for other names or another CA; ordering anew",
                 domain.name)
        fleet.drop_order(domain.name)
        return None, None
    try:
        order = client.order(record.url)
    except AcmeError as exc:
        log.info("%s: the recorded order %s is gone (%s); ordering anew", domain.name,
                 record.url, exc)
        fleet.drop_order(domain.name)
        return None, None
    if order.status == "invalid":
        fleet.drop_order(domain.name)
        return None, None
    log.info("%s: resuming order %s (%s)", domain.name, record.url, order.status)
    return record, order


def _validate(client: AcmeClient, domain: Domain, authzs: Sequence[Authorization],
              deadline: float, answerer: Answerer) -> None:
    wanted = set(domain.names)
    pending = []
    for authz in authzs:
        if authz.identifier.value not in wanted:
            raise AcmeError(type="malformed", detail=f"authorization {authz.url} is for "
                            f"{authz.identifier.value!r}, which was not ordered")
        if authz.status == "pending":
            pending.append(authz)
    tasks: list[ChallengeTask] = []
    try:
        answers = []
        for authz in pending:
            chall = next((c for c in authz.challenges if c.type == "http-01"), None)
            if chall is None:
                raise PluginError(f"{authz.identifier.value}: the CA offers no http-01 "
                                  "challenge")
            key_authz = f"{chall.token}.{jws.thumbprint(client.key)}"
            tasks.append(ChallengeTask(
                identifier=authz.identifier, challenge_type="http-01", token=chall.token,
                key_authorization=key_authz, validation=key_authz, all_domains=domain.names))
            answers.append(chall)
        if tasks:
            answerer.present(tasks)
        for chall in answers:
            client.answer(chall)
        failures = []
        for authz in pending:
            final = client.poll_authorization(authz.url, deadline)
            if final.status != "valid":
                failures.append(f"{final.identifier.value}: "
                                f"{final.failed_challenge_error() or final.status}")
        if failures:
            raise ValidationFailed(type="unauthorized", status=403,
                                   detail="validation failed for " + "; ".join(failures),
                                   failed=tuple(f.split(":")[0] for f in failures))
    finally:
        if tasks:
            answerer.cleanup(tasks)
