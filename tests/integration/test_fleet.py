"""``certwright fleet`` end to end: real slapd (the inventory and the write-back), real
nginx (the customers' web roots), Pebble behind the ACME front (which counts requests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509

from tests.integration.fleet_env import SPECIAL, FleetEnv, fleet, slapd

pytestmark = pytest.mark.integration
__all__ = ["fleet", "slapd"]  # fixtures


def _verify(env: FleetEnv, name: str) -> x509.Certificate:
    """The stored certificate names the site, matches its key and chains to Pebble's root
    (through the stored chain)."""
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_private_key,
    )

    live = env.config_dir / "live" / name
    cert = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    chain = x509.load_pem_x509_certificates((live / "chain.pem").read_bytes())
    key = load_pem_private_key((live / "privkey.pem").read_bytes(), None)
    assert (live / "privkey.pem").resolve().stat().st_mode & 0o777 == 0o600
    fmt = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert key.public_key().public_bytes(*fmt) == cert.public_key().public_bytes(*fmt)
    cert.verify_directly_issued_by(chain[0])
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert name in sans.get_values_for_type(x509.DNSName)
    return cert


def test_sync_issues_writes_back_then_does_nothing(fleet: FleetEnv) -> None:
    names = fleet.add_sites(12, 4)
    code, out = fleet.sync_json("--jobs", "4")
    assert code == 0, out
    assert out["summary"]["new"] == 12
    for name in names:
        cert = _verify(fleet, name)
        entry = fleet.entry(name)
        assert entry["certwrightStatus"] == ["valid"]
        stored = (fleet.config_dir / "live" / name / "fullchain.pem").read_text()
        assert entry["certwrightCertificate"] == [stored]
        expiry = cert.not_valid_after_utc.strftime("%Y%m%d%H%M%SZ")
        assert entry["certwrightNotAfter"] == [expiry]
        assert "certwrightDomain" in entry["objectClass"]
    assert len(fleet.finalizes()) == 12
    before = len(fleet.front.requests_log)
    code, again = fleet.sync_json()
    assert code == 0, again
    assert again["summary"]["keep"] == 12 and again["summary"]["ldap_writes"] == 0
    assert not [m for m, _ in fleet.front.requests_log[before:] if m == "POST"]


def _orders_for(env: FleetEnv, name: str) -> list[dict[str, object]]:
    return [o for o in env.front.orders
            if any(i.get("value") == name for i in o.get("identifiers", []))]  # type: ignore[union-attr]


def test_san_change_expands_and_removal_deletes(fleet: FleetEnv) -> None:
    names = fleet.add_sites(3, 1)
    fleet.sync_json()
    grow, drop = names[0], names[1]
    fleet.modify(grow, {"associatedDomain": [("MODIFY_ADD", [f"shop.{grow}"])]})
    fleet.modify(drop, {"letsencrypt": [("MODIFY_DELETE", [])]})
    code, out = fleet.sync_json()
    assert code == 0, out
    actions = {d["name"]: d["action"] for d in out["domains"]}
    assert actions == {grow: "expand", drop: "delete", names[2]: "keep"}
    sans = _verify(fleet, grow).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert sorted(sans) == sorted([grow, f"www.{grow}", f"shop.{grow}"])
    assert sorted(p.name for p in (fleet.config_dir / "archive" / grow).iterdir()) == [
        "cert1.pem", "cert2.pem", "chain1.pem", "chain2.pem", "fullchain1.pem",
        "fullchain2.pem", "privkey1.pem", "privkey2.pem"]
    assert not (fleet.config_dir / "renewal" / f"{drop}.conf").exists()
    assert not (fleet.config_dir / "live" / drop).exists()
    entry = fleet.entry(drop)
    assert not [a for a in entry if a.startswith("certwright") and a != "certwrightWebroot"]
    assert fleet.entry(grow)["certwrightCertificate"] == [
        (fleet.config_dir / "live" / grow / "fullchain.pem").read_text()]
    # shrinking back re-issues with fewer names
    fleet.modify(grow, {"associatedDomain": [("MODIFY_DELETE", [f"shop.{grow}"])]})
    code, out = fleet.sync_json()
    assert [d["action"] for d in out["domains"] if d["name"] == grow] == ["expand"]


def test_precheck_rejects_broken_sites_before_the_ca(fleet: FleetEnv) -> None:
    from tests.servers.ports import free_port

    good = fleet.add_sites(2, 1)
    broken = [*SPECIAL["basic_auth"], *SPECIAL["hidden_ban"], *SPECIAL["https_redirect"],
              "elsewhere.c01.example.org"]
    for name in broken:
        fleet.add_site(name, "c01")
    fleet.ca.challtestsrv.add_a("elsewhere.c01.example.org", ["192.0.2.7"])
    fleet.extra += ["--precheck-https-port", str(free_port())]
    try:
        code, out = fleet.sync_json(check=False)
    finally:
        fleet.ca.challtestsrv.clear_a("elsewhere.c01.example.org")
    assert code == 1
    rows = {d["name"]: d for d in out["domains"]}
    assert {n: rows[n]["state"] for n in good} == dict.fromkeys(good, "valid")
    errors = {n: rows[n]["error"] for n in broken}
    assert all(rows[n]["state"] == "precheck-failed" for n in broken), rows
    assert "HTTP 401" in errors["locked.c01.example.org"]
    assert "HTTP 403" in errors["hidden.c01.example.org"]
    assert "does not answer" in errors["tls-only.c01.example.org"]
    assert "192.0.2.7" in errors["elsewhere.c01.example.org"]
    for name in broken:
        assert not _orders_for(fleet, name), f"{name} reached the CA"
        entry = fleet.entry(name)
        assert entry["certwrightStatus"] == ["precheck-failed"]
        assert entry["certwrightError"] == [errors[name]]
        assert rows[name]["next_attempt"] is not None
    # the backoff holds: the next run skips them (and does not fail for them)
    code, again = fleet.sync_json()
    assert code == 0, again
    assert {d["name"]: d["action"] for d in again["domains"] if d["name"] in broken} == \
        dict.fromkeys(broken, "skip")
    assert again["summary"]["ldap_writes"] == 0


def test_rate_limited_ca_is_waited_out_by_every_thread(fleet: FleetEnv) -> None:
    import time

    names = fleet.add_sites(6, 2)
    arrivals: list[float] = []
    limited: list[float] = []
    handle, new_order = fleet.front._handle, fleet.front._new_order

    def timed_handle(req: object, method: str) -> None:
        arrivals.append(time.monotonic())
        handle(req, method)  # type: ignore[arg-type]

    def timed_new_order(req: object, body: bytes) -> None:
        was = len(fleet.front.rate_limit_orders)
        new_order(req, body)  # type: ignore[arg-type]
        if len(fleet.front.rate_limit_orders) < was:
            limited.append(time.monotonic())

    fleet.front._handle = timed_handle  # type: ignore[method-assign]
    fleet.front._new_order = timed_new_order  # type: ignore[method-assign]
    fleet.front.rate_limit_orders = ["2", "2"]
    code, out = fleet.sync_json("--jobs", "4", "--ca-concurrency", "1")
    assert code == 0, out
    assert out["summary"]["new"] == len(names)
    assert len(limited) == 2
    for moment in limited:
        early = [a - moment for a in arrivals if moment + 0.05 < a < moment + 1.95]
        assert not early, f"requests {early} s after a rateLimited answer with Retry-After 2"


def test_long_retry_after_defers_the_rest_of_the_run(fleet: FleetEnv) -> None:
    names = fleet.add_sites(4, 1)
    fleet.front.rate_limit_orders = ["3600"]
    code, out = fleet.sync_json("--jobs", "1", check=False)
    assert code == 1
    actions = sorted(d["action"] for d in out["domains"])
    assert actions == ["deferred", "deferred", "deferred", "failed"], out
    assert len(fleet.front.orders) == 1  # nothing more was asked of the CA
    failed = next(d for d in out["domains"] if d["action"] == "failed")
    assert "rateLimited" in failed["error"] or "too many" in failed["error"]
    assert failed["next_attempt"] is not None
    code, out = fleet.sync_json("--jobs", "1")  # the failed one waits; the others go
    assert sorted(d["action"] for d in out["domains"]) == ["new", "new", "new", "skip"]
    assert names


def test_failed_validation_backs_off_between_runs(fleet: FleetEnv, tmp_path: Path) -> None:
    fleet.add_sites(1, 1)
    lost = "unserved.c00.example.org"
    fleet.add_site(lost, "c00")
    elsewhere = tmp_path / "not-served"
    elsewhere.mkdir()
    fleet.modify(lost, {"certwrightWebroot": [("MODIFY_REPLACE", [str(elsewhere)])]})
    code, out = fleet.sync_json("--no-precheck", check=False)
    assert code == 1
    row = next(d for d in out["domains"] if d["name"] == lost)
    assert row["state"] == "failed" and row["next_attempt"]
    assert len(_orders_for(fleet, lost)) == 1
    assert fleet.entry(lost)["certwrightStatus"] == ["failed"]
    code, out = fleet.sync_json("--no-precheck")
    assert code == 0 and [d["action"] for d in out["domains"] if d["name"] == lost] == ["skip"]
    assert len(_orders_for(fleet, lost)) == 1  # not retried before its backoff
    state = (fleet.config_dir / "fleet" / "domains" / f"{lost}.json").read_text()
    assert '"failures": 1' in state


def test_kill_9_mid_sync_loses_nothing_and_issues_nothing_twice(fleet: FleetEnv) -> None:
    import os
    import signal
    import time

    names = fleet.add_sites(40, 5)
    proc = fleet.popen_sync("--jobs", "4")
    deadline = time.monotonic() + 120
    while len(fleet.finalizes()) < 10 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    killed_at = len(fleet.finalizes())
    assert 10 <= killed_at < len(names), "the run was not interrupted in the middle"
    code, out = fleet.sync_json("--jobs", "4")
    assert code == 0, out
    # one certificate each. (Counted from what Pebble took: the kill is triggered by the
    # front seeing a finalize's headers, so it can land before that request's body is
    # sent; the truncated request is refused and the order finalized once by the rerun.)
    finalized = fleet.finalized()
    assert len(finalized) == len(set(finalized)) == len(names)
    for name in names:
        _verify(fleet, name)
        assert fleet.entry(name)["certwrightStatus"] == ["valid"]
        versions = [p.name for p in (fleet.config_dir / "archive" / name).glob("cert*.pem")]
        assert versions == ["cert1.pem"]
    assert not list((fleet.config_dir / "fleet" / "orders").glob("*.json"))


def test_due_certificates_are_renewed_naming_what_they_replace(fleet: FleetEnv) -> None:
    from certwright.core import ari

    names = fleet.add_sites(3, 1)
    fleet.sync_json()
    old = {n: _verify(fleet, n) for n in names}
    fleet.clock_offset = 70 * 86400.0  # past two thirds of the 90 days
    code, out = fleet.sync_json()
    assert code == 0, out
    assert out["summary"]["renew"] == 3
    renewals = [o for o in fleet.front.orders if "replaces" in o]
    assert sorted(o["replaces"] for o in renewals) == sorted(ari.cert_id(c) for c in old.values())
    for name in names:
        new = _verify(fleet, name)
        assert new.serial_number != old[name].serial_number
        assert (fleet.config_dir / "archive" / name / "cert2.pem").exists()
        assert fleet.entry(name)["certwrightCertificate"] == [
            (fleet.config_dir / "live" / name / "fullchain.pem").read_text()]
    fleet.clock_offset = None
    code, out = fleet.sync_json()
    assert out["summary"]["keep"] == 3 and out["summary"]["ldap_writes"] == 0


def test_a_failed_write_back_keeps_the_certificate_and_is_retried(fleet: FleetEnv) -> None:
    names = fleet.add_sites(2, 1)
    locked = names[0]
    fleet.modify(locked, {"description": [("MODIFY_ADD", ["read-only"])]})
    proc = fleet.run("sync", "--json")
    out = json.loads(proc.stdout)
    assert out["summary"]["new"] == 2 and out["summary"]["writeback_failed"] == 1
    assert "insufficientAccessRights" in proc.stderr and fleet.dn(locked) in proc.stderr
    _verify(fleet, locked)  # the certificate is stored all the same
    assert "certwrightCertificate" not in fleet.entry(locked)
    fleet.modify(locked, {"description": [("MODIFY_DELETE", ["read-only"])]})
    orders = len(fleet.front.orders)
    code, again = fleet.sync_json()
    assert code == 0 and again["summary"]["keep"] == 2
    assert again["summary"]["ldap_writes"] == 1 and len(fleet.front.orders) == orders
    assert fleet.entry(locked)["certwrightCertificate"] == [
        (fleet.config_dir / "live" / locked / "fullchain.pem").read_text()]


def test_redirect_flag_once_https_serves_the_certificate(fleet: FleetEnv) -> None:
    import time

    from cryptography.hazmat.primitives.serialization import Encoding

    names = fleet.add_sites(2, 1)
    fleet.extra += ["--precheck-https-port", str(fleet.web.https_port)]
    fleet.sync_json()
    served = names[0]
    live = fleet.config_dir / "live" / served
    fleet.web.serve_tls(served, live / "fullchain.pem", live / "privkey.pem")
    fleet.web.serve_tls(f"www.{served}", live / "fullchain.pem", live / "privkey.pem")
    from certwright.core.probe import served_certificate

    der = _verify(fleet, served).public_bytes(Encoding.DER)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the reload takes a moment
        try:
            if served_certificate("127.0.0.1", fleet.web.https_port, f"www.{served}",
                                  "https", 1.0) == der:
                break
        except OSError:
            pass
        time.sleep(0.05)
    fleet.sync_json()
    assert fleet.entry(served)["certwrightRedirect"] == ["TRUE"]
    assert "certwrightRedirect" not in fleet.entry(names[1])
    _, out = fleet.sync_json()
    assert out["summary"]["ldap_writes"] == 0


def test_sigterm_finishes_domains_in_flight_and_starts_no_new_one(fleet: FleetEnv) -> None:
    import os
    import signal
    import time

    names = fleet.add_sites(40, 4)
    proc = fleet.popen_sync("--jobs", "2")
    deadline = time.monotonic() + 120
    while len(fleet.finalizes()) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    stopped_at = len(fleet.front.orders)
    assert stopped_at < len(names)
    time.sleep(0.5)
    assert len(fleet.front.orders) == stopped_at  # nothing went on after the exit
    left = [p for p in fleet.web.www.rglob("*") if p.is_file()]
    assert left == [], "challenge or probe files left in the web roots"
    assert not list((fleet.config_dir / "fleet" / "orders").glob("*.json"))
    code, out = fleet.sync_json("--jobs", "4")
    assert code == 0, out
    assert len(fleet.finalizes()) == len(names)


def test_a_certificate_renewed_outside_the_fleet_is_written_back(fleet: FleetEnv) -> None:
    import subprocess

    from tests.integration.fleet_env import CERTWRIGHT

    names = fleet.add_sites(2, 1)
    fleet.sync_json()
    renewed = names[0]
    dirs = fleet.argv("status")[3:9]
    proc = subprocess.run([CERTWRIGHT, "renew", "--force-renewal", "-n", "--cert-name",
                           renewed, "--no-random-sleep-on-renew", *dirs], env=fleet.env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    before = len(fleet.posts())
    code, out = fleet.sync_json()
    assert code == 0 and out["summary"]["keep"] == 2 and out["summary"]["ldap_writes"] == 1
    assert len(fleet.posts()) == before
    assert fleet.entry(renewed)["certwrightCertificate"] == [
        (fleet.config_dir / "live" / renewed / "fullchain.pem").read_text()]
    cert = _verify(fleet, renewed)
    assert fleet.entry(renewed)["certwrightNotAfter"] == [
        cert.not_valid_after_utc.strftime("%Y%m%d%H%M%SZ")]


def test_a_kept_lineage_is_read_again_when_its_renewal_conf_changes(fleet: FleetEnv) -> None:
    names = fleet.add_sites(2, 1)
    fleet.sync_json()
    _, out = fleet.sync_json()  # kept, and remembered as kept until it is due
    assert out["summary"]["keep"] == 2
    conf = fleet.config_dir / "renewal" / f"{names[0]}.conf"
    conf.write_text("renew_before_expiry = 100 days\n" + conf.read_text())  # due now
    code, out = fleet.sync_json()
    assert code == 0
    assert {d["name"]: d["action"] for d in out["domains"]} == {names[0]: "renew",
                                                                 names[1]: "keep"}


def test_revoke_removed_revokes_before_deleting(fleet: FleetEnv) -> None:
    """``--revoke-removed``: the certificate of a removed domain is revoked at the CA
    (reason cessationOfOperation) and its lineage deleted; without it, only deleted."""
    names = fleet.add_sites(3, 1)
    fleet.sync_json()
    serials = {n: _verify(fleet, n).serial_number for n in names}
    gone, dropped = names[0], names[1]
    fleet.modify(gone, {"letsencrypt": [("MODIFY_DELETE", [])]})
    code, out = fleet.sync_json("--revoke-removed")
    assert code == 0, out
    status = fleet.ca.cert_status(serials[gone])
    assert status["Status"] == "Revoked" and status["Reason"] == 5, status
    assert not (fleet.config_dir / "live" / gone).exists()
    assert fleet.ca.cert_status(serials[names[2]])["Status"] == "Valid"
    fleet.modify(dropped, {"letsencrypt": [("MODIFY_DELETE", [])]})
    code, out = fleet.sync_json()
    assert code == 0, out
    assert not (fleet.config_dir / "live" / dropped).exists()
    assert fleet.ca.cert_status(serials[dropped])["Status"] == "Valid"
