"""The Postfix deploy planner: which postconf edits a request makes, and which listeners
are then checked (pure: settings are given as ``postconf`` would have printed them)."""

from __future__ import annotations

from certwright.core.interfaces import DeployRequest
from certwright.installers.postfix.plan import Edit, listener_endpoints, plan_edits
from certwright.installers.postfix.postconf import Service, Settings, _service

LIVE = "/etc/certwright/live/mail.example.org"
REQ = DeployRequest("mail.example.org", ("mail.example.org",), f"{LIVE}/cert.pem",
                    f"{LIVE}/privkey.pem", f"{LIVE}/chain.pem", f"{LIVE}/fullchain.pem")


def settings(version: tuple[int, int] = (3, 7), services: list[Service] | None = None,
             **explicit: str) -> Settings:
    return Settings("/etc/postfix", dict(explicit), services or [], version)


def main_edits(found: list[Edit]) -> dict[str, str | None]:
    return {e.name: e.value for e in found if e.service is None}


def test_new_postfix_gets_one_chain_list_and_loses_older_pairs() -> None:
    found = plan_edits(settings(smtpd_tls_cert_file="/old/cert.pem",
                                smtpd_tls_key_file="/old/key.pem",
                                smtpd_tls_eccert_file="/old/ec.pem"), REQ)
    assert main_edits(found.edits) == {
        "smtpd_tls_chain_files": f"{LIVE}/privkey.pem, {LIVE}/fullchain.pem",
        "smtpd_tls_cert_file": None, "smtpd_tls_key_file": None,
        "smtpd_tls_eccert_file": None, "smtpd_tls_security_level": "may",
        "smtpd_tls_protocols": ">=TLSv1.2", "smtpd_tls_mandatory_protocols": ">=TLSv1.2"}


def test_old_postfix_gets_the_cert_and_key_pair_and_the_old_floor_syntax() -> None:
    found = main_edits(plan_edits(settings((3, 3)), REQ).edits)
    assert found["smtpd_tls_cert_file"] == f"{LIVE}/fullchain.pem"
    assert found["smtpd_tls_key_file"] == f"{LIVE}/privkey.pem"
    assert "smtpd_tls_chain_files" not in found
    assert found["smtpd_tls_protocols"] == "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"


def test_what_the_admin_set_stricter_stays() -> None:
    found = main_edits(plan_edits(settings(smtpd_tls_security_level="encrypt",
                                           smtpd_tls_protocols=">=TLSv1.3",
                                           smtpd_tls_mandatory_protocols=">=TLSv1.3",
                                           smtp_tls_security_level="dane"),
                                  REQ, client_tls=True).edits)
    assert set(found) == {"smtpd_tls_chain_files"}


def test_client_tls_only_when_asked_and_unset() -> None:
    assert "smtp_tls_security_level" not in main_edits(plan_edits(settings(), REQ).edits)
    asked = main_edits(plan_edits(settings(), REQ, client_tls=True).edits)
    assert asked["smtp_tls_security_level"] == "may"


def test_nothing_to_do_when_already_installed() -> None:
    done = settings(smtpd_tls_chain_files=f"{LIVE}/privkey.pem, {LIVE}/fullchain.pem",
                    smtpd_tls_security_level="may", smtpd_tls_protocols=">=TLSv1.2",
                    smtpd_tls_mandatory_protocols=">=TLSv1.2")
    assert plan_edits(done, REQ).edits == []


MASTER = [
    "smtp inet n - y - - smtpd",
    "submission inet n - y - - smtpd -o smtpd_tls_security_level=encrypt "
    "-o smtpd_tls_cert_file=/old/cert.pem -o smtpd_tls_key_file=/old/key.pem",
    "submissions inet n - y - - smtpd -o smtpd_tls_wrappermode=yes "
    "-o smtpd_tls_chain_files=/other/key.pem,/other/chain.pem",
    "[::1]:2526 inet n - y - - smtpd -o smtpd_tls_security_level=none",
    "pickup unix n - y 60 1 pickup",
]


def test_master_overrides_naming_old_files_follow_others_are_reported_and_skipped() -> None:
    services = [_service(line) for line in MASTER]
    pf = settings(services=services, smtpd_tls_cert_file="/old/cert.pem",
                  smtpd_tls_key_file="/old/key.pem", inet_interfaces="192.0.2.1, 127.0.0.1")
    found = plan_edits(pf, REQ)
    assert [e for e in found.edits if e.service] == [
        Edit("smtpd_tls_cert_file", f"{LIVE}/fullchain.pem", "submission/inet"),
        Edit("smtpd_tls_key_file", f"{LIVE}/privkey.pem", "submission/inet")]
    assert Edit("smtpd_tls_key_file", f"{LIVE}/privkey.pem", "submission/inet").argv() == \
        ["-P", f"submission/inet/smtpd_tls_key_file={LIVE}/privkey.pem"]
    assert found.shadowed == {"submissions/inet"}
    assert any("master.cf service submissions/inet overrides" in n for n in found.notes)
    checked = listener_endpoints(pf, found.edits, found.shadowed, "mail.example.org")
    assert [(e.host, e.port, e.protocol) for e in checked] == [
        ("192.0.2.1", 25, "smtp-starttls"), ("192.0.2.1", 587, "smtp-starttls")]


def test_files_only_changes_nothing_and_checks_what_is_configured() -> None:
    services = [_service(line) for line in MASTER[:1]]
    found = plan_edits(settings(services=services, smtpd_tls_security_level="may"), REQ,
                       files_only=True)
    assert found.edits == []
    assert len(listener_endpoints(settings(services=services, smtpd_tls_security_level="may"),
                                  found.edits, found.shadowed, "x.example.org")) == 1


def test_after_a_renewal_a_main_cf_another_certificate_took_over_is_left_alone() -> None:
    from dataclasses import replace

    other = settings(smtpd_tls_chain_files="/etc/certwright/live/b/privkey.pem, "
                                           "/etc/certwright/live/b/fullchain.pem")
    renewal = plan_edits(other, replace(REQ, takeover=False))
    assert renewal.edits == [] and renewal.elsewhere
    assert "now serves another certificate" in renewal.notes[0]
    assert plan_edits(other, REQ).edits  # an install asked for does take it over
    mine = settings(smtpd_tls_chain_files=f"{LIVE}/privkey.pem, {LIVE}/fullchain.pem")
    assert not plan_edits(mine, replace(REQ, takeover=False)).elsewhere


def test_names_from_myhostname_and_mydomain_where_postfix_takes_its_mail() -> None:
    from certwright.installers.postfix.plan import host_names

    assert host_names("mail.example.org", "example.org", "") == {"mail.example.org"}
    assert host_names("Mail.Example.org.", "example.org",
                      "mail.example.org, localhost, example.org") == {"mail.example.org",
                                                                     "example.org"}
    assert host_names("localhost", "localdomain", "localdomain") == set()


def test_an_ipv6_only_postfix_is_checked_on_ipv6_loopback() -> None:
    services = [_service(MASTER[0])]
    pf = settings(services=services, inet_protocols="ipv6", inet_interfaces="loopback-only")
    found = plan_edits(pf, REQ)
    assert [(e.host, e.port) for e in listener_endpoints(pf, found.edits, set(), "x")] == \
        [("::1", 25)]
