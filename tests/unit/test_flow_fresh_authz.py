"""Dry runs deactivate reused authorizations (RFC 8555 §7.5.2). Pebble deactivates
whatever it is asked to, so a CA that refuses, or that holds several valid
authorizations for one name, is scripted here."""

import logging

from certwright.core import flow
from certwright.core.acme.errors import AcmeError
from certwright.core.acme.messages import Authorization, Order
from certwright.core.interfaces import Identifier

NAME = Identifier("dns", "a.example.org")


class ScriptedCA:
    """Each new order gets the next authorization of ``authzs`` (url -> status)."""

    def __init__(self, authzs: list[tuple[str, str]], refuse: set[str] = frozenset()):
        self.authzs = list(authzs)
        self.refuse = refuse
        self.deactivated: list[str] = []
        self.orders = 0

    def new_order(self, identifiers, profile=None, replaces=None):
        url, _ = self.authzs[min(self.orders, len(self.authzs) - 1)]
        self.orders += 1
        return Order(url=f"https://ca/order/{self.orders}", status="pending",
                     identifiers=(NAME,), authorizations=(url,), finalize="https://ca/fin")

    def authorization(self, url):
        status = dict(self.authzs)[url]
        if url in self.deactivated:
            status = "deactivated"
        return Authorization(url=url, identifier=NAME, status=status, challenges=())

    def deactivate_authorization(self, url):
        if url in self.refuse:
            raise AcmeError(type="malformed", detail="not supported here")
        self.deactivated.append(url)


def test_every_reused_authorization_is_deactivated_until_a_pending_one_comes():
    ca = ScriptedCA([("https://ca/authz/1", "valid"), ("https://ca/authz/2", "valid"),
                     ("https://ca/authz/3", "pending")])
    order, authzs = flow._without_reused(ca, [NAME], flow.Options(), ca.new_order([NAME]),
                                         [ca.authorization("https://ca/authz/1")])
    assert ca.deactivated == ["https://ca/authz/1", "https://ca/authz/2"]
    assert [a.status for a in authzs] == ["pending"] and order.url.endswith("/3")


def test_a_ca_that_refuses_is_warned_about_once_and_the_run_goes_on(caplog):
    ca = ScriptedCA([("https://ca/authz/1", "valid")], refuse={"https://ca/authz/1"})
    with caplog.at_level(logging.WARNING):
        _, authzs = flow._without_reused(ca, [NAME], flow.Options(), ca.new_order([NAME]),
                                         [ca.authorization("https://ca/authz/1")])
    assert [a.status for a in authzs] == ["valid"]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "a.example.org" in warned[0] and "not supported" in warned[0]
    assert ca.orders == 2  # ordered once more, then no new valid authorization to try


class FinalizingCA:
    """finalize answers orderNotReady ``not_ready`` times; the order reads ``states`` in
    turn meanwhile (a CA that moves the order to ready a moment after its authorizations)."""

    def __init__(self, not_ready: int, states: list[str]) -> None:
        self.not_ready, self.states = not_ready, list(states)
        self.finalized = 0
        self.polled: list[str] = []

    def order_with(self, status: str, error: AcmeError | None = None) -> Order:
        return Order(url="https://ca/order/1", status=status, identifiers=(NAME,),
                     authorizations=(), finalize="https://ca/fin", error=error)

    def finalize(self, order, csr_der):
        if self.not_ready:
            self.not_ready -= 1
            raise AcmeError(type="urn:ietf:params:acme:error:orderNotReady", status=403,
                            detail="order is pending")
        self.finalized += 1
        return self.order_with("processing")

    def poll_order(self, url, deadline, *, until_ready=False):
        assert until_ready
        status = self.states.pop(0)
        self.polled.append(status)
        error = AcmeError(type="urn:ietf:params:acme:error:unauthorized", detail="gone") \
            if status == "invalid" else None
        return self.order_with(status, error)


def test_finalize_goes_first_and_an_order_not_ready_yet_is_waited_for_once():
    ca = FinalizingCA(not_ready=1, states=["ready"])
    done = flow._finalize(ca, ca.order_with("pending"), b"csr", deadline=0.0)
    assert done.status == "processing" and ca.finalized == 1 and ca.polled == ["ready"]


def test_finalize_at_once_when_the_ca_takes_it():
    ca = FinalizingCA(not_ready=0, states=[])
    assert flow._finalize(ca, ca.order_with("ready"), b"csr", 0.0).status == "processing"
    assert ca.polled == []  # the order is not fetched before finalizing


def test_an_order_that_turned_invalid_raises_its_own_error():
    ca = FinalizingCA(not_ready=1, states=["invalid"])
    try:
        flow._finalize(ca, ca.order_with("pending"), b"csr", 0.0)
    except AcmeError as err:
        assert err.code == "unauthorized" and "gone" in str(err)
    else:
        raise AssertionError("an invalid order must raise")
    assert ca.finalized == 0
