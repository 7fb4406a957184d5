"""The Dovecot installer against a real Dovecot and Pebble, and one lineage installed into
Postfix and Dovecot at once, renewed into both."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cryptography import x509

from tests.integration.conftest import Cli
from tests.integration.mailsetup import (
    NAME,
    dovecot,
    dovecot_args,
    lineage_serial,
    mailroot,
    old_tls,
    postfix,
    postfix_args,
    serial,
    standalone,
    wait_serial,
)
from tests.servers.mail import Dovecot, Postfix, verified_certificate
from tests.servers.pebble import Pebble

__all__ = ["dovecot", "mailroot", "old_tls", "postfix"]  # fixtures used by name


def _listeners(server: Dovecot) -> list[tuple[int, str]]:
    return [(server.imap, "imap-starttls"), (server.imaps, "imaps"),
            (server.pop3, "pop3-starttls"), (server.pop3s, "pop3s"), (server.sieve, "sieve")]


def test_install_serves_pebble_chain_on_imap_starttls_imaps_pop3_and_sieve(
        cli: Cli, pebble: Pebble, dovecot: Dovecot) -> None:
    cli("certonly", *standalone(pebble), "-d", NAME)
    done = cli("install", "--cert-name", NAME, "-i", "dovecot", *dovecot_args(dovecot),
               account=False)
    assert "Successfully deployed" in done.stdout, done.stdout
    new = lineage_serial(cli.config_dir)
    root = pebble.root_pem()
    for port, protocol in ((dovecot.imap, "imap-starttls"), (dovecot.imaps, "imaps"),
                           (dovecot.pop3s, "pop3s")):
        der = verified_certificate(port, NAME, protocol, root)
        assert x509.load_der_x509_certificate(der).serial_number == new, protocol
    for port, protocol in _listeners(dovecot):
        assert serial(port, protocol) == new, protocol
    # one certificate setting in the effective config, ours; ssl = required was not asked
    shown = subprocess.run(["doveconf", "-c", str(dovecot.conf), "-n"], capture_output=True,
                           text=True, check=True).stdout
    assert shown.count("ssl_cert = ") == 1
    assert f"ssl_cert = <{cli.config_dir}/live/{NAME}/fullchain.pem" in shown
    assert "ssl = required" not in shown
    conf = (cli.config_dir / "renewal" / f"{NAME}.conf").read_text()
    assert "installer = dovecot" in conf and f"dovecot_config = {dovecot.conf}" in conf


def test_require_tls_only_when_asked_and_rollback_is_byte_for_byte(
        cli: Cli, pebble: Pebble, dovecot: Dovecot) -> None:
    cli("certonly", *standalone(pebble), "-d", NAME)
    old = serial(dovecot.imaps, "imaps")
    before = dovecot.snapshot()
    cli("install", "--cert-name", NAME, "-i", "dovecot", *dovecot_args(dovecot),
        "--dovecot-require-tls", account=False)
    effective = subprocess.run(["doveconf", "-c", str(dovecot.conf), "-h", "ssl"],
                               capture_output=True, text=True, check=True).stdout.strip()
    assert effective == "required"
    wait_serial(dovecot.imap, "imap-starttls", lineage_serial(cli.config_dir))
    cli("rollback", "--checkpoints", "1", account=False)
    assert dovecot.snapshot() == before
    for port, protocol in _listeners(dovecot):
        wait_serial(port, protocol, old)


def test_syntax_error_is_one_line_naming_file_and_line_and_changes_nothing(
        cli: Cli, dovecot: Dovecot, old_tls: object, mailroot: Path) -> None:
    with dovecot.conf.open("a") as handle:
        handle.write("ssl_kye = </nowhere\n")
    lines = dovecot.conf.read_text().count("\n")
    before = dovecot.snapshot()
    tls = mailroot / "tls"
    done = cli("install", "-i", "dovecot", *dovecot_args(dovecot), "--cert-path",
               str(tls / "cert.pem"), "--key-path", str(tls / "key.pem"), "-d", NAME,
               check=False, account=False)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, done.stderr
    assert f"{dovecot.conf} line {lines}: Unknown setting: ssl_kye" in errors[0]
    assert dovecot.snapshot() == before


def _counting(directory: Path, name: str, real: list[str]) -> Path:
    """A command that notes each call's arguments, then runs ``real`` with them."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / name
    script.write_text(f'#!/bin/sh\necho "$*" >> {directory}/{name}.calls\n'
                      f'exec {" ".join(real)} "$@"\n')
    script.chmod(0o755)
    return script


def test_one_lineage_into_postfix_and_dovecot_renews_into_both_with_one_reload_each(
        cli: Cli, pebble: Pebble, postfix: Postfix, dovecot: Dovecot, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    ctl = _counting(bin_dir, "postfix", ["/usr/sbin/postfix"])
    reload_cmd = _counting(bin_dir, "dovecot-reload", ["doveadm", "-c", str(dovecot.conf),
                                                       "reload"])
    cli("certonly", *standalone(pebble), "-d", NAME)
    old = serial(postfix.smtp, "smtp-starttls")
    before = (postfix.snapshot(), dovecot.snapshot())
    cli("install", "--cert-name", NAME, "-i", "postfix", "-i", "dovecot",
        *postfix_args(postfix), "--postfix-ctl", str(ctl), *dovecot_args(dovecot),
        "--dovecot-reload-cmd", str(reload_cmd), account=False)
    first = lineage_serial(cli.config_dir)
    for port, protocol in ((postfix.smtp, "smtp-starttls"), (postfix.smtps, "smtps"),
                           *_listeners(dovecot)):
        assert serial(port, protocol) == first, protocol
    conf = (cli.config_dir / "renewal" / f"{NAME}.conf").read_text()
    assert 'installer = "postfix,dovecot"' in conf, conf
    for calls in bin_dir.glob("*.calls"):
        calls.unlink()
    done = cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False)
    second = lineage_serial(cli.config_dir)
    assert second != first, done.stdout
    for port, protocol in ((postfix.smtp, "smtp-starttls"), (postfix.smtps, "smtps"),
                           *_listeners(dovecot)):
        assert serial(port, protocol) == second, protocol  # verified before renew returned
    postfix_calls = (bin_dir / "postfix.calls").read_text().splitlines()
    assert [c for c in postfix_calls if c.endswith("reload")] == [f"-c {postfix.etc} reload"]
    assert (bin_dir / "dovecot-reload.calls").read_text().count("\n") == 1
    # the renewal rewrote the renewal conf: both servers' options are still there
    cli("renew", "--force-renewal", "--cert-name", NAME, "--no-random-sleep-on-renew",
        account=False)
    third = lineage_serial(cli.config_dir)
    assert third != second
    for port, protocol in ((postfix.smtp, "smtp-starttls"), *_listeners(dovecot)):
        assert serial(port, protocol) == third, protocol
    # the install into both servers was one command: one checkpoint undoes both
    cli("rollback", "--checkpoints", "1", account=False)
    assert (postfix.snapshot(), dovecot.snapshot()) == before
    for port, protocol in ((postfix.smtp, "smtp-starttls"), *_listeners(dovecot)):
        wait_serial(port, protocol, old)


def test_key_that_does_not_match_is_caught_by_the_handshake_and_rolled_back(
        cli: Cli, pebble: Pebble, dovecot: Dovecot, tmp_path: Path) -> None:
    from tests.servers.tlsca import make_tls_files

    cli("certonly", *standalone(pebble), "-d", NAME)
    old = serial(dovecot.imaps, "imaps")
    before = dovecot.snapshot()
    other = make_tls_files(tmp_path / "other", names=[NAME])
    archive_key = (cli.config_dir / "live" / NAME / "privkey.pem").resolve()
    reload_cmd = tmp_path / "reload"
    # after the config test passed: the key on disk no longer matches the certificate
    reload_cmd.write_text(f"#!/bin/sh\n[ -e {tmp_path}/once ] || {{ touch {tmp_path}/once; "
                          f"cat {other.key} > {archive_key}; }}\n"
                          f"exec doveadm -c {dovecot.conf} reload\n")
    reload_cmd.chmod(0o755)
    done = cli("install", "--cert-name", NAME, "-i", "dovecot", *dovecot_args(dovecot),
               "--dovecot-reload-cmd", str(reload_cmd), check=False, account=False)
    assert done.returncode == 1
    assert "verify failed" in done.stderr and f"127.0.0.1:{dovecot.imap}" in done.stderr, \
        done.stderr
    assert dovecot.snapshot() == before
    for port, protocol in _listeners(dovecot):
        wait_serial(port, protocol, old)


def test_a_dovecot_that_is_not_running_is_started_with_the_new_certificate(
        cli: Cli, pebble: Pebble, dovecot: Dovecot) -> None:
    cli("certonly", *standalone(pebble), "-d", NAME)
    dovecot.stop()
    cli("install", "--cert-name", NAME, "-i", "dovecot", *dovecot_args(dovecot),
        account=False, timeout=60)
    assert serial(dovecot.imaps, "imaps") == lineage_serial(cli.config_dir)


def test_deleting_a_lineage_both_servers_still_use_warns_about_each(
        cli: Cli, pebble: Pebble, postfix: Postfix, dovecot: Dovecot) -> None:
    cli("run", *standalone(pebble), "-i", "postfix", "-i", "dovecot", "-d", NAME,
        *postfix_args(postfix), *dovecot_args(dovecot))
    done = cli("delete", "--cert-name", NAME, account=False)
    said = done.stdout + done.stderr
    assert f"postfix still uses this certificate at {postfix.etc}/main.cf " \
           "(smtpd_tls_chain_files)" in said, said
    assert f"dovecot still uses this certificate at {dovecot.conf.parent}/certwright.conf:" \
        in said, said
    assert not (cli.config_dir / "live" / NAME).exists()
