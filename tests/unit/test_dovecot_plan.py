"""The Dovecot planner: the managed file for a request, and the listeners then checked
(pure: the effective config is given as doveconf prints it)."""

from __future__ import annotations

from certwright.core.interfaces import DeployRequest
from certwright.installers.dovecot.conf import error_line, parse, version
from certwright.installers.dovecot.plan import listener_endpoints, managed_file

LIVE = "/etc/certwright/live/mail.example.org"
REQ = DeployRequest("mail.example.org", ("mail.example.org",), f"{LIVE}/cert.pem",
                    f"{LIVE}/privkey.pem", f"{LIVE}/chain.pem", f"{LIVE}/fullchain.pem")
OURS_23 = f"ssl_cert = <{LIVE}/fullchain.pem\nssl_key = <{LIVE}/privkey.pem\n"

EFFECTIVE_23 = """\
# 2.3.19.1 (9b53102964): /etc/dovecot/dovecot.conf
ssl_cert = </etc/dovecot/private/dovecot.pem
ssl_key = </etc/dovecot/private/dovecot.key
protocol imap {
  ssl_cert = </etc/dovecot/private/dovecot.pem
  ssl_key = </etc/dovecot/private/dovecot.key
}
local_name other.example.net {
  ssl_cert = </etc/other/cert.pem
  ssl_key = </etc/other/key.pem
}
protocol pop3 {
  ssl_cert = </etc/pop/cert.pem
  ssl_key = </etc/pop/key.pem
}
"""


def test_23_sets_the_global_pair_and_follows_filters_that_named_the_old_files() -> None:
    made = managed_file(parse(EFFECTIVE_23), REQ, version(EFFECTIVE_23), False, "")
    body = made.text.split("\n", 2)[2]  # after the two header lines
    assert body == OURS_23 + "protocol imap {\n" + "".join(
        f"  {line}\n" for line in OURS_23.splitlines()) + "}\n"
    assert "ssl =" not in made.text
    assert made.shadowed == {"pop3"}
    assert len(made.notes) == 2 and "local_name other.example.net" in made.notes[0]


def test_24_syntax_is_detected_and_written() -> None:
    text = "# 2.4.1 (abc): /etc/dovecot/dovecot.conf\ndovecot_config_version = 2.4.0\n"
    made = managed_file(parse(text), REQ, version(text), False, "")
    assert f"ssl_server_cert_file = {LIVE}/fullchain.pem\n" in made.text
    assert f"ssl_server_key_file = {LIVE}/privkey.pem\n" in made.text
    assert "ssl_cert" not in made.text and "<" not in made.text
    assert version("dovecot_config_version = 2.4.0\n") == (2, 4)


def test_ssl_required_only_when_asked_and_yes_only_over_the_admins_no() -> None:
    text = EFFECTIVE_23.split("protocol")[0]
    assert "ssl = required\n" in managed_file(parse(text), REQ, (2, 3), True, "").text
    plain = managed_file(parse(text + "ssl = no\n"), REQ, (2, 3), False, "")
    assert "ssl = yes\n" in plain.text
    # the next install finds ssl = yes (its own) in effect: kept, not dropped
    again = managed_file(parse(text + "ssl = yes\n"), REQ, (2, 3), False, plain.text)
    assert "ssl = yes\n" in again.text
    # required written earlier, not asked now: the admin's setting comes back
    earlier = managed_file(parse(text), REQ, (2, 3), True, "").text
    assert "ssl =" not in managed_file(parse(text + "ssl = required\n"), REQ, (2, 3), False,
                                       earlier).text


FULL = """\
listen = *, ::
protocols = imap pop3 lmtp
service imap-login {
  inet_listener imap {
    address =
    port = 143
    ssl = no
  }
  inet_listener imaps {
    address =
    port = 993
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    address = 192.0.2.7
    port = 110
    ssl = no
  }
  inet_listener pop3s {
    port = 0
    ssl = yes
  }
}
service managesieve-login {
  inet_listener sieve {
    port = 4190
    ssl = no
  }
}
service submission-login {
  inet_listener submission {
    port = 587
    ssl = no
  }
}
"""


def test_listeners_of_served_protocols_only_disabled_ones_left_out() -> None:
    found = listener_endpoints(parse(FULL), set(), "mail.example.org")
    assert [(e.host, e.port, e.protocol) for e in found] == [
        ("127.0.0.1", 143, "imap-starttls"), ("127.0.0.1", 993, "imaps"),
        ("192.0.2.7", 110, "pop3-starttls")]
    assert [e.port for e in listener_endpoints(parse(FULL), {"imap"}, "x")] == [110]


def test_doveconf_error_names_file_and_line() -> None:
    said = ("doveconf: Fatal: Error in configuration file /etc/dovecot/dovecot.conf line 9: "
            "Unknown setting: ssl_kye\n")
    assert error_line(said) == ("Error in configuration file /etc/dovecot/dovecot.conf "
                                "line 9: Unknown setting: ssl_kye")


def test_after_a_renewal_a_managed_file_another_certificate_took_over_is_left_alone() -> None:
    from dataclasses import replace

    text = EFFECTIVE_23.split("protocol")[0]
    other = managed_file(parse(text), replace(REQ, cert_name="other.example.org"), (2, 3),
                         False, "").text
    renewal = managed_file(parse(text), replace(REQ, takeover=False), (2, 3), False, other)
    assert renewal.elsewhere and renewal.text == other
    assert "now serves the certificate other.example.org" in renewal.notes[0]
    assert not managed_file(parse(text), REQ, (2, 3), False, other).elsewhere
