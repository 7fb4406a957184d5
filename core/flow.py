"""Issuance as the protocol tells it: order → authorizations → challenges → finalize → download.

RFC 8555 §7.1 overview: the client places an order (§7.4), proves control of each
identifier through one challenge per pending authorization (§7.5, §8), finalizes the order
with a CSR, polls it to ``valid`` and downloads the chain (§7.4.2).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from certwright.core.acme import jws
from certwright.core.acme.client import AcmeClient, CertificateChain, raise_for_order
from certwright.core.acme.errors import AcmeError, TransportError
from certwright.core.acme.messages import Authorization, Challenge, Order
from certwright.core.errors import PluginError
from certwright.core.interfaces import (
    Authenticator,
    ChallengeTask,
    Identifier,
    SupportsPresentAll,
    SupportsWaitReady,
)
from certwright.core.keys import chain_top_issuer_cn, split_pem_chain

log = logging.getLogger(__name__)


@dataclass
class ValidationFailed(AcmeError):
    """Authorizations the CA did not validate; ``failed`` names their identifiers."""

    failed: tuple[str, ...] = ()


class Issued(NamedTuple):
    """A freshly issued certificate, split the way the store keeps it."""

    cert: str
    chain: str
    fullchain: str
    order: Order


class Options(NamedTuple):
    """What the flow needs beyond the client and the authenticator."""

    timeout: float = 90.0
    # how long an authenticator's wait_ready may take (DNS propagation); the issuance
    # timeout does not run meanwhile
    ready_timeout: float = 600.0
    preferred_challenges: Sequence[str] = ()
    preferred_chain: str | None = None
    profile: str | None = None
    replaces: str | None = None
    # a dry run (and reconfigure's check) must test the challenges: authorizations the CA
    # reuses are deactivated first and the order placed again (as Certbot does)
    fresh_authorizations: bool = False
    # --debug-challenges: called with the challenges once they are set up, before the CA
    # is asked to check them (it may wait for the user); the timeout starts again after it
    pause: Callable[[Sequence[ChallengeTask]], None] | None = None


# rounds of deactivate + order again: a CA may hold more than one valid authorization
# for a name and reuse the next one
FRESH_ROUNDS = 4


def obtain(
    client: AcmeClient,
    authenticator: Authenticator,
    identifiers: Sequence[Identifier],
    csr_der: bytes,
    opts: Options,
) -> Issued:
    deadline = time.monotonic() + opts.timeout
    order = client.new_order(identifiers, profile=opts.profile, replaces=opts.replaces)
    authzs = [client.authorization(url) for url in order.authorizations]
    _check_ordered(authzs, identifiers)
    if opts.fresh_authorizations:
        order, authzs = _without_reused(client, identifiers, opts, order, authzs)
        _check_ordered(authzs, identifiers)
    pending = [a for a in authzs if a.status == "pending"]
    tasks = [_task(client, authenticator, a, identifiers, opts) for a in pending]
    tasks = [(replace(t, remaining=len(tasks) - i - 1), c) for i, (t, c) in enumerate(tasks)]
    deadline = _prove_control(client, authenticator, tasks, pending, deadline, opts)
    raise_for_order(order)
    order = _finalize(client, order, csr_der, deadline)
    if order.status != "valid":  # "processing": the CA issues after it answers
        order = client.poll_order(order.url, deadline, initial=client.backoff.first)
    raise_for_order(order)
    if not order.certificate:
        raise AcmeError(type="serverInternal", detail=f"order {order.url} has no certificate")
    return _split(_choose_chain(client, client.download(order.certificate), opts), order)


def _finalize(client: AcmeClient, order: Order, csr_der: bytes, deadline: float) -> Order:
    """Finalize as soon as every authorization is valid: the order is ready then (RFC 8555
    §7.1.6), so it is not fetched first. A CA that has not moved it on yet answers
    ``orderNotReady``: the order is then polled until it is no longer pending, and
    finalized again (or its own error raised, when it became invalid)."""
    try:
        return client.finalize(order, csr_der)
    except AcmeError as err:
        if err.code != "orderNotReady":
            raise
        log.debug("order %s not ready yet: %s", order.url, err.detail)
    current = client.poll_order(order.url, deadline, until_ready=True)
    raise_for_order(current)
    return client.finalize(current, csr_der)


def _check_ordered(authzs: Sequence[Authorization], identifiers: Sequence[Identifier]) -> None:
    """An authorization for a name that was not ordered would hand that name to hooks and
    configs; refuse it."""
    ordered = {(i.type, i.value) for i in identifiers}
    for authz in authzs:
        if (authz.identifier.type, authz.identifier.value) not in ordered:
            raise TransportError(f"refusing the CA's response: authorization {authz.url} is "
                                 f"for {authz.identifier.value!r}, which was not ordered")


def _without_reused(
    client: AcmeClient,
    identifiers: Sequence[Identifier],
    opts: Options,
    order: Order,
    authzs: list[Authorization],
) -> tuple[Order, list[Authorization]]:
    """RFC 8555 §7.5.2: deactivate the order's already-valid authorizations and place it
    again, so that every challenge is really done. What can't be deactivated is warned
    about once; the run goes on (it then proves less than it seems to)."""
    stuck: set[str] = set()
    for _ in range(FRESH_ROUNDS):
        reused = [a for a in authzs if a.status == "valid" and a.url not in stuck]
        if not reused:
            break
        for authz in reused:
            try:
                client.deactivate_authorization(authz.url)
                log.debug("deactivated the reused authorization of %s (%s)",
                          authz.identifier.value, authz.url)
            except AcmeError as err:
                stuck.add(authz.url)
                log.warning("could not deactivate the valid authorization of %s (%s); "
                            "this dry run does not test its challenge",
                            authz.identifier.value, err)
        order = client.new_order(identifiers, profile=opts.profile, replaces=opts.replaces)
        authzs = [client.authorization(url) for url in order.authorizations]
    return order, authzs


def _prove_control(
    client: AcmeClient,
    authenticator: Authenticator,
    tasks: Sequence[tuple[ChallengeTask, Challenge]],
    authzs: Sequence[Authorization],
    deadline: float,
    opts: Options,
) -> float:
    """Present every challenge, wait until ready, answer, poll. The deadline returned is
    moved on by the time spent setting the challenges up, waiting for them and paused:
    the issuance timeout is the time the CA takes (Certbot's ``--issuance-timeout``), and
    a manual hook that sleeps for DNS propagation, or a plugin's ``wait_ready``, must not
    use it up before the CA is even asked."""
    presented: list[ChallengeTask] = []
    try:
        started = time.monotonic()
        _present(authenticator, [task for task, _ in tasks], presented)
        if presented and isinstance(authenticator, SupportsWaitReady):
            authenticator.wait_ready(presented, time.monotonic() + opts.ready_timeout)
        if opts.pause is not None and presented:
            opts.pause(presented)
        deadline += time.monotonic() - started
        answered = [client.answer(chall) for _, chall in tasks]
        # the CA validates after it answers: asking at once only finds "pending" (RFC 8555
        # §7.5.1); unless it already decided, the first ask waits the first backoff step
        wait = 0.0 if all(c.status in ("valid", "invalid") for c in answered) \
            else client.backoff.first
        failures = []
        for authz in authzs:
            final = client.poll_authorization(authz.url, deadline, initial=wait)
            wait = 0.0
            if final.status != "valid":
                failures.append((final, final.failed_challenge_error()))
        if failures:
            raise _validation_error(failures)
        return deadline
    finally:
        for task in presented:
            try:
                authenticator.cleanup(task)
            except Exception as exc:  # cleanup must not hide the real outcome
                log.warning("cleanup of %s for %s failed: %s", task.challenge_type,
                            task.domain, exc)


def _present(authenticator: Authenticator, tasks: list[ChallengeTask],
             presented: list[ChallengeTask]) -> None:
    """Set every challenge up before any is answered; ``presented`` gets each task that
    needs a cleanup (all of them for ``present_all``, also when it raised)."""
    if not tasks:
        return
    if isinstance(authenticator, SupportsPresentAll):  # one zone update or reload for all
        presented.extend(tasks)
        authenticator.present_all(list(tasks))
        return
    for task in tasks:
        presented.append(task)
        authenticator.present(task)


def _task(
    client: AcmeClient,
    authenticator: Authenticator,
    authz: Authorization,
    identifiers: Sequence[Identifier],
    opts: Options,
) -> tuple[ChallengeTask, Challenge]:
    ident = authz.identifier
    offered = {c.type: c for c in authz.challenges}
    supported = list(authenticator.challenge_types(ident))
    wanted = [t for t in opts.preferred_challenges if t in supported] or supported
    for ctype in wanted:
        if ctype in offered:
            chall = offered[ctype]
            key_authz = f"{chall.token}.{jws.thumbprint(client.key)}"
            task = ChallengeTask(
                identifier=ident,
                challenge_type=ctype,
                token=chall.token,
                key_authorization=key_authz,
                validation=_validation(ctype, key_authz),
                all_domains=tuple(i.value for i in identifiers),
            )
            return task, chall
    if ident.is_wildcard and "dns-01" not in supported:
        raise wildcard_needs_dns(ident, authenticator.name)
    raise PluginError(
        f"no usable challenge for {ident.value}: the CA offers {', '.join(sorted(offered))}; "
        f"{authenticator.name} can do {', '.join(wanted) or 'none'}"
    )


def wildcard_needs_dns(ident: Identifier, authenticator: str) -> PluginError:
    return PluginError(
        f"{ident.value} is a wildcard name: it needs the dns-01 challenge, which "
        f"{authenticator} can't do here (use --manual --preferred-challenges dns or a "
        "DNS plugin)"
    )


def _validation(ctype: str, key_authz: str) -> str:
    if ctype == "dns-01":
        return jws.b64(hashlib.sha256(key_authz.encode()).digest())
    return key_authz


def _validation_error(failures: list[tuple[Authorization, AcmeError | None]]) -> AcmeError:
    parts = []
    for authz, err in failures:
        parts.append(f"{authz.identifier.value}: {err or authz.status}")
    first = next((e for _, e in failures if e is not None), None)
    return ValidationFailed(
        type=first.type if first else "unauthorized",
        detail="validation failed for " + "; ".join(parts),
        status=first.status if first else 403,
        failed=tuple(authz.identifier.value for authz, _ in failures),
    )


def _choose_chain(client: AcmeClient, default: CertificateChain, opts: Options) -> str:
    """``--preferred-chain``: the first chain whose top certificate was issued by that CN."""
    wanted = opts.preferred_chain
    if not wanted:
        return default.pem
    candidates = [default.pem] + [client.download(url).pem for url in default.alternates]
    for pem in candidates:
        if chain_top_issuer_cn(pem) == wanted:
            return pem
    log.info("no chain issued by %r; using the default chain", wanted)
    return default.pem


def _split(pem: str, order: Order) -> Issued:
    parts = split_pem_chain(pem)
    if not parts:
        raise AcmeError(type="serverInternal", detail=f"{order.certificate}: no PEM certificate")
    return Issued(cert=parts[0], chain="".join(parts[1:]), fullchain="".join(parts), order=order)
