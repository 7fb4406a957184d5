"""RFC 8555 operations over a Transport. Each method is one protocol step."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

from josepy.jwk import JWK

from certwright.core import poll
from certwright.core.acme import jws
from certwright.core.acme.errors import AcmeError, TransportError
from certwright.core.acme.identifiers import Identifier
from certwright.core.acme.messages import (
    Account,
    Authorization,
    Challenge,
    Directory,
    Order,
    identifier_json,
)
from certwright.core.acme.transport import RequestTimeout, Response, Transport
from certwright.core.poll import Wait, poll_until

log = logging.getLogger(__name__)

T = TypeVar("T")
POLL_REQUEST_TIMEOUT = 10.0

REVOCATION_REASONS = {
    "unspecified": 0,
    "keycompromise": 1,
    "affiliationchanged": 3,
    "superseded": 4,
    "cessationofoperation": 5,
}


class PollTimeout(TransportError):
    """A resource did not reach a final state before the deadline."""


class CertificateChain(NamedTuple):
    """A downloaded certificate chain (§7.4.2) and the URLs of alternate chains."""

    pem: str
    alternates: tuple[str, ...] = ()


CA_BACKOFF = poll.Backoff(first=0.02, factor=1.6, maximum=3.0)
"""Polling schedule for the CA: start fast, grow, but never past 3 s."""


class AcmeClient:
    """An ACME account's view of one CA. ``kid`` is the account URL once known."""

    def __init__(
        self, transport: Transport, key: JWK, kid: str | None = None,
        backoff: poll.Backoff | None = None,
    ) -> None:
        self.transport = transport
        self.key = key
        self.kid = kid
        self.backoff = backoff or CA_BACKOFF

    @property
    def directory(self) -> Directory:
        return self.transport.directory

    def _post(self, url: str, payload: Mapping[str, Any] | None,
              timeout: float | None = None) -> Response:
        if self.kid is None:
            raise TransportError("no ACME account: register first")
        return self.transport.post(url, payload, self.key, self.kid, timeout=timeout)

    def post_as_get(self, url: str, timeout: float | None = None) -> Response:
        return self._post(url, None, timeout)

    # -- accounts (§7.3) --------------------------------------------------------------
    def register(
        self,
        contact: Sequence[str] = (),
        *,
        agree_tos: bool = True,
        eab_kid: str | None = None,
        eab_hmac_key: str | None = None,
        eab_alg: str = "HS256",
        only_return_existing: bool = False,
    ) -> Account:
        url = self.directory.new_account
        payload: dict[str, Any] = {}
        if only_return_existing:
            payload["onlyReturnExisting"] = True
        else:
            payload["contact"] = list(contact)
            payload["termsOfServiceAgreed"] = agree_tos
        if eab_kid and eab_hmac_key and not only_return_existing:
            payload["externalAccountBinding"] = jws.eab_binding(
                self.key, kid=eab_kid, hmac_key_b64=eab_hmac_key, url=url, alg=eab_alg
            )
        resp = self.transport.post(url, payload, self.key, None)
        if not resp.location:
            raise TransportError(f"{url}: newAccount answered without a Location header")
        self.kid = resp.location
        return Account.from_json(resp.location, resp.json())

    def lookup_account(self) -> Account:
        """Find the account for this key without creating one (``onlyReturnExisting``)."""
        return self.register(only_return_existing=True)

    def account(self) -> Account:
        assert_kid = self.kid or ""
        return Account.from_json(assert_kid, self.post_as_get(assert_kid).json())

    def update_account(self, contact: Sequence[str]) -> Account:
        kid = self.kid or ""
        return Account.from_json(kid, self._post(kid, {"contact": list(contact)}).json())

    def deactivate_account(self) -> Account:
        kid = self.kid or ""
        return Account.from_json(kid, self._post(kid, {"status": "deactivated"}).json())

    def change_key(self, new_key: JWK) -> None:
        """Roll the account over to ``new_key`` (§7.3.5)."""
        url = self.directory.key_change
        inner = jws.key_change_inner(new_key, self.key, account_url=self.kid or "", url=url)
        self._post(url, inner)
        self.key = new_key

    # -- orders (§7.4) ----------------------------------------------------------------
    def new_order(
        self,
        identifiers: Sequence[Identifier],
        *,
        profile: str | None = None,
        replaces: str | None = None,
    ) -> Order:
        payload: dict[str, Any] = {"identifiers": [identifier_json(i) for i in identifiers]}
        if profile:
            payload["profile"] = profile
        if replaces:
            payload["replaces"] = replaces
        resp = self._post(self.directory.new_order, payload)
        return Order.from_json(resp.location or "", resp.json())

    def order(self, url: str) -> Order:
        return Order.from_json(url, self.post_as_get(url).json())

    def authorization(self, url: str) -> Authorization:
        return Authorization.from_json(url, self.post_as_get(url).json())

    def answer(self, challenge: Challenge) -> Challenge:
        """Tell the CA the challenge is ready (§7.5.1)."""
        return Challenge.from_json(self._post(challenge.url, {}).json())

    def deactivate_authorization(self, url: str) -> None:
        self._post(url, {"status": "deactivated"})

    def finalize(self, order: Order, csr_der: bytes) -> Order:
        resp = self._post(order.finalize, {"csr": jws.b64(csr_der)})
        return Order.from_json(order.url, resp.json())

    def poll(
        self,
        fetch: Callable[[], tuple[T, Response]],
        done: Callable[[T], bool],
        *,
        deadline: float,
        what: str,
        initial: float = 0.0,
    ) -> T:
        """Fetch until ``done``; wait Retry-After when given, else back off from ~20 ms.
        A fetch the server leaves unanswered is asked again (it is only a read)."""
        unanswered = [False]

        def check() -> T | Wait | None:
            try:
                value, resp = fetch()
            except RequestTimeout:
                log.warning("no answer polling %s; asking again", what)
                unanswered[0] = True
                return Wait(0.0)
            unanswered[0] = False
            if done(value):
                return value
            after = resp.retry_after
            return None if after is None else Wait(min(after, 60.0))

        found = poll_until(check, deadline=deadline, first=self.backoff.first,
                           factor=self.backoff.factor, maximum=self.backoff.maximum,
                           initial=initial)
        if found is None:
            why = ": the CA does not answer" if unanswered[0] else ""
            raise PollTimeout(f"timed out waiting for {what}{why} (see --issuance-timeout)")
        return found

    def poll_authorization(self, url: str, deadline: float, *,
                           initial: float = 0.0) -> Authorization:
        """Until the authorization is no longer pending; ``initial``: seconds to wait
        before the first ask (a challenge just answered is not validated at once)."""

        def fetch() -> tuple[Authorization, Response]:
            resp = self.post_as_get(url, _poll_timeout(deadline))
            return Authorization.from_json(url, resp.json()), resp

        return self.poll(fetch, lambda a: a.status != "pending", deadline=deadline,
                         what=f"authorization {url}", initial=initial)

    def poll_order(self, url: str, deadline: float, *, until_ready: bool = False,
                   initial: float = 0.0) -> Order:
        """Until the order is done (valid or invalid); ``until_ready``: only until it is
        no longer pending (ready to be finalized, or invalid). ``initial``: seconds to
        wait before the first ask (an order just finalized is still being issued)."""
        busy = ("pending",) if until_ready else ("pending", "processing", "ready")

        def fetch() -> tuple[Order, Response]:
            resp = self.post_as_get(url, _poll_timeout(deadline))
            return Order.from_json(url, resp.json()), resp

        return self.poll(fetch, lambda o: o.status not in busy, deadline=deadline,
                         what=f"order {url}", initial=initial)

    def download(self, url: str) -> CertificateChain:
        resp = self.post_as_get(url)
        return CertificateChain(resp.content.decode("ascii", "replace"),
                                resp.links.get("alternate", ()))

    # -- revocation (§7.6) ------------------------------------------------------------
    def revoke(self, cert_der: bytes, reason: int = 0, cert_key: JWK | None = None) -> None:
        """Revoke with the account key, or with the certificate's own key (``jwk``)."""
        payload = {"certificate": jws.b64(cert_der), "reason": reason}
        url = self.directory.revoke_cert
        if cert_key is not None:
            self.transport.post(url, payload, cert_key, None)
        else:
            self._post(url, payload)


def _poll_timeout(deadline: float) -> float:
    """Per-request timeout while polling: short, so one lost answer costs little."""
    return max(1.0, min(POLL_REQUEST_TIMEOUT, deadline - time.monotonic()))


def raise_for_order(order: Order) -> None:
    if order.status == "invalid":
        raise order.error or AcmeError(type="orderInvalid", detail=f"order {order.url} is invalid")
