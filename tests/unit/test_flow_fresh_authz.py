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
