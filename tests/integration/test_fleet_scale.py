"""A fleet of the size the issue names: 500 domains across 50 customers in one sync,
written back and verified; the second sync asks nothing of the CA and writes nothing."""

from __future__ import annotations

import time

import pytest

from tests.integration.fleet_env import FleetEnv, fleet, slapd
from tests.integration.test_fleet import _verify

pytestmark = pytest.mark.integration
__all__ = ["fleet", "slapd"]  # fixtures
DOMAINS, CUSTOMERS = 500, 50


def test_500_domains_issue_write_back_and_verify(fleet: FleetEnv) -> None:
    names = fleet.add_sites(DOMAINS, CUSTOMERS)
    started = time.monotonic()
    code, out = fleet.sync_json("--jobs", "16", "--account-per", "customer")
    took = time.monotonic() - started
    assert code == 0, out["summary"]
    assert out["summary"]["new"] == DOMAINS, out["summary"]
    print(f"\n{DOMAINS} domains, {CUSTOMERS} customers: first sync {took:.1f} s")
    for name in names:
        _verify(fleet, name)
        entry = fleet.entry(name)
        assert entry["certwrightStatus"] == ["valid"]
        assert entry["certwrightCertificate"] == [
            (fleet.config_dir / "live" / name / "fullchain.pem").read_text()]
    assert len(fleet.finalizes()) == DOMAINS
    assert len(list((fleet.config_dir / "accounts").rglob("regr.json"))) == CUSTOMERS
    before = len(fleet.front.requests_log)
    started = time.monotonic()
    code, again = fleet.sync_json("--jobs", "16", "--account-per", "customer")
    took = time.monotonic() - started
    print(f"second sync (nothing due) {took:.2f} s")
    assert code == 0
    assert again["summary"]["keep"] == DOMAINS and again["summary"]["ldap_writes"] == 0
    assert not [m for m, _ in fleet.front.requests_log[before:] if m == "POST"]
