"""The Postfix installer against a real Postfix instance and Pebble: what is served over
SMTP STARTTLS and implicit TLS, rollback, failures caught before and after the reload."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cryptography import x509

from tests.integration.conftest import Cli
from tests.integration.mailsetup import (
    NAME,
    lineage_serial,
    mailroot,
    old_tls,
    postfix,
    postfix_args,
    serial,
    standalone,
    wait_serial,
)
from tests.servers.mail import Postfix, verified_certificate
from tests.servers.pebble import Pebble
from tests.servers.tlsca import TlsFiles, make_tls_files

__all__ = ["mailroot", "old_tls", "postfix"]  # fixtures used by name


def _wrapper(directory: Path, body: str) -> Path:
    """A ``postfix`` command that runs ``body`` (sh) before handing over to the real one."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "postfix"
    script.write_text(f"#!/bin/sh\n{body}\nexec /usr/sbin/postfix \"$@\"\n")
    script.chmod(0o755)
    return script


def test_run_without_names_serves_pebble_chain_on_every_listener(
        cli: Cli, pebble: Pebble, postfix: Postfix, old_tls: TlsFiles) -> None:
    before_plain = (postfix.etc / "master.cf").read_text()
    done = cli("run", *standalone(pebble), "-i", "postfix", *postfix_args(postfix))
    assert "Successfully deployed" in done.stdout, done.stdout
    # no -d: the name came from myhostname
    new = lineage_serial(cli.config_dir)
    root = pebble.root_pem()
    for port, protocol in ((postfix.smtp, "smtp-starttls"), (postfix.smtps, "smtps")):
        der = verified_certificate(port, NAME, protocol, root)
        assert x509.load_der_x509_certificate(der).serial_number == new, protocol
    main = subprocess.run(["postconf", "-c", str(postfix.etc), "-h",
                           "smtpd_tls_chain_files", "smtpd_tls_protocols"],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    live = cli.config_dir / "live" / NAME
    assert main == [f"{live}/privkey.pem, {live}/fullchain.pem", ">=TLSv1.2"]
    assert (postfix.etc / "master.cf").read_text() == before_plain
    conf = (cli.config_dir / "renewal" / f"{NAME}.conf").read_text()
    assert "installer = postfix" in conf
    assert f"postfix_config_dir = {postfix.etc}" in conf


def test_rollback_restores_main_cf_byte_for_byte_and_the_old_certificate(
        cli: Cli, pebble: Pebble, postfix: Postfix, old_tls: TlsFiles) -> None:
    old = serial(postfix.smtp, "smtp-starttls")
    before = postfix.snapshot()
    cli("run", *standalone(pebble), "-i", "postfix", "-d", NAME, *postfix_args(postfix))
    assert postfix.snapshot() != before
    cli("rollback", "--checkpoints", "1", account=False)
    assert postfix.snapshot() == before
    wait_serial(postfix.smtp, "smtp-starttls", old)
    wait_serial(postfix.smtps, "smtps", old)


def test_failing_config_test_rolls_back(cli: Cli, pebble: Pebble, postfix: Postfix,
                                        tmp_path: Path) -> None:
    cli("certonly", *standalone(pebble), "-d", NAME)
    old = serial(postfix.smtp, "smtp-starttls")
    before = postfix.snapshot()
    ctl = _wrapper(tmp_path / "bin", '[ "$3" = check ] && { echo "fatal: injected"; exit 1; }')
    done = cli("install", "--cert-name", NAME, "-i", "postfix", *postfix_args(postfix),
               "--postfix-ctl", str(ctl), check=False, account=False)
    assert done.returncode == 1
    assert "config test failed" in done.stderr and "injected" in done.stderr, done.stderr
    assert "previous configuration was restored" in done.stderr
    assert postfix.snapshot() == before
    assert serial(postfix.smtp, "smtp-starttls") == old


def test_key_that_does_not_match_is_caught_by_the_handshake_and_rolled_back(
        cli: Cli, pebble: Pebble, postfix: Postfix, tmp_path: Path) -> None:
    cli("certonly", *standalone(pebble), "-d", NAME)
    old = serial(postfix.smtp, "smtp-starttls")
    before = postfix.snapshot()
    other = make_tls_files(tmp_path / "other", names=[NAME])
    archive_key = (cli.config_dir / "live" / NAME / "privkey.pem").resolve()
    # after the config test passed: the key on disk no longer matches the certificate
    ctl = _wrapper(tmp_path / "bin", f'[ "$3" = reload ] && [ ! -e {tmp_path}/once ] && '
                   f'touch {tmp_path}/once && cat {other.key} > {archive_key}')
    done = cli("install", "--cert-name", NAME, "-i", "postfix", *postfix_args(postfix),
               "--postfix-ctl", str(ctl), check=False, account=False)
    assert done.returncode == 1
    assert "verify failed" in done.stderr, done.stderr
    assert f"127.0.0.1:{postfix.smtp}" in done.stderr  # the listener is named
    assert postfix.snapshot() == before
    wait_serial(postfix.smtp, "smtp-starttls", old)
    wait_serial(postfix.smtps, "smtps", old)


def test_master_cf_overrides_of_the_old_files_follow_and_others_are_reported(
        cli: Cli, pebble: Pebble, postfix: Postfix, old_tls: TlsFiles, tmp_path: Path) -> None:
    other = make_tls_files(tmp_path / "other", names=[NAME])
    etc = str(postfix.etc)
    subprocess.run(["postconf", "-c", etc, "-P",
                    f"127.0.0.1:{postfix.smtps}/inet/smtpd_tls_chain_files="
                    f"{old_tls.key},{old_tls.fullchain}",
                    f"127.0.0.1:{postfix.plain}/inet/smtpd_tls_security_level=may",
                    f"127.0.0.1:{postfix.plain}/inet/smtpd_tls_chain_files="
                    f"{other.key},{other.fullchain}"], check=True)
    postfix.reload()
    kept = x509.load_pem_x509_certificate(other.cert.read_bytes()).serial_number
    wait_serial(postfix.plain, "smtp-starttls", kept)
    before = postfix.snapshot()
    master_before = (postfix.etc / "master.cf").read_bytes()
    done = cli("run", *standalone(pebble), "-i", "postfix", "-d", NAME, *postfix_args(postfix))
    assert (postfix.etc / "master.cf").read_bytes() != master_before
    assert f"master.cf service 127.0.0.1:{postfix.plain}/inet overrides" in done.stdout
    new = lineage_serial(cli.config_dir)
    assert serial(postfix.smtps, "smtps") == new  # its override was updated
    assert serial(postfix.smtp, "smtp-starttls") == new
    assert serial(postfix.plain, "smtp-starttls") == kept  # its own certificate, left alone
    cli("rollback", "--checkpoints", "1", account=False)
    assert postfix.snapshot() == before  # master.cf too, byte for byte
    old = x509.load_pem_x509_certificate(old_tls.cert.read_bytes()).serial_number
    wait_serial(postfix.smtp, "smtp-starttls", old)
    wait_serial(postfix.smtps, "smtps", old)


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_bad_input_is_one_clear_line_and_changes_nothing(
        cli: Cli, postfix: Postfix, old_tls: TlsFiles, tmp_path: Path) -> None:
    before = postfix.snapshot()
    given = ["install", "-i", "postfix", "--cert-path", str(old_tls.cert), "--key-path",
             str(old_tls.key), "--fullchain-path", str(old_tls.fullchain), "-d", NAME]
    not_postfix = tmp_path / "nginx"
    not_postfix.mkdir()
    line = _one_line_error(cli(*given, "--postfix-config-dir", str(not_postfix),
                               check=False, account=False))
    assert f"{not_postfix} is not a Postfix configuration directory" in line
    lonely = tmp_path / "bin"
    lonely.mkdir()
    (lonely / "postfix").symlink_to("/usr/sbin/postfix")
    cli.extra_env["PATH"] = str(lonely)
    line = _one_line_error(cli(*given, *postfix_args(postfix), "--postfix-ctl",
                               str(lonely / "postfix"), check=False, account=False))
    assert "postconf is not found" in line
    cli.extra_env["PATH"] = str(tmp_path / "nowhere")
    line = _one_line_error(cli(*given, *postfix_args(postfix), check=False, account=False))
    assert "Postfix is not installed here" in line
    assert postfix.snapshot() == before
    assert os.path.exists(postfix.etc / "main.cf")


def test_files_only_leaves_main_cf_to_the_admin_and_still_checks_the_listeners(
        cli: Cli, pebble: Pebble, postfix: Postfix) -> None:
    cli("certonly", *standalone(pebble), "-d", NAME)
    before = postfix.snapshot()
    done = cli("install", "--cert-name", NAME, "-i", "postfix", *postfix_args(postfix),
               "--postfix-files-only", check=False, account=False)
    # main.cf names the admin's files, not the lineage: reloaded, checked, and refused
    assert done.returncode == 1 and "does not serve the new certificate" in done.stderr
    assert postfix.snapshot() == before
    live = cli.config_dir / "live" / NAME
    subprocess.run(["postconf", "-c", str(postfix.etc), "-e",
                    f"smtpd_tls_chain_files = {live}/privkey.pem, {live}/fullchain.pem"],
                   check=True)
    after_admin = postfix.snapshot()
    cli("install", "--cert-name", NAME, "-i", "postfix", *postfix_args(postfix),
        "--postfix-files-only", account=False)
    assert postfix.snapshot() == after_admin
    assert serial(postfix.smtp, "smtp-starttls") == lineage_serial(cli.config_dir)
    assert "postfix_files_only = True" in (
        cli.config_dir / "renewal" / f"{NAME}.conf").read_text()


def test_dry_run_shows_the_main_cf_diff_and_changes_nothing(
        cli: Cli, pebble: Pebble, postfix: Postfix) -> None:
    before = postfix.snapshot()
    done = cli("run", *standalone(pebble), "-i", "postfix", "-d", NAME, "--dry-run",
               *postfix_args(postfix))
    live = cli.config_dir / "live" / NAME
    assert f"+smtpd_tls_chain_files = {live}/privkey.pem, {live}/fullchain.pem" in done.stdout
    assert f"-smtpd_tls_chain_files = {postfix.root}/tls/key.pem" in done.stdout
    assert postfix.snapshot() == before
    assert not (cli.config_dir / "live" / NAME).exists()


def test_run_with_only_a_mail_installer_asks_for_an_authenticator(
        cli: Cli, postfix: Postfix) -> None:
    before = cli.snapshot()
    done = cli("run", "-i", "postfix", "-d", NAME, *postfix_args(postfix), check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: the postfix installer does not answer ACME challenges: choose an "
        "authenticator too (--standalone, --webroot -w DIR, --manual, ...)"]
    assert cli.snapshot() == before
