"""Command-line options end to end against Pebble: TLS trust, webroots per name, cli.ini,
hook validation and usage errors, dry runs that really test the challenge."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from certwright.core.storage.renewal_conf import read_renewal_conf
from tests.integration.conftest import Cli, standalone
from tests.servers.nginx import Nginx
from tests.servers.pebble import Pebble
from tests.servers.tlsca import TestCA

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_no_verify_ssl_wins_over_a_ca_bundle_in_the_environment(
        cli: Cli, pebble: Pebble, tmp_path: Path, variable: str) -> None:
    stranger = TestCA.create("a CA that never signed Pebble's certificate")
    bundle = stranger.write_ca(tmp_path / "stranger.pem")
    # requests reads REQUESTS_CA_BUNDLE first; an empty one lets CURL_CA_BUNDLE through
    cli.extra_env = {"REQUESTS_CA_BUNDLE": "", variable: str(bundle)}
    name = f"noverify-{variable[:4].lower()}.example.org"
    refused = cli("certonly", *standalone(pebble), "-d", name, check=False)
    assert refused.returncode == 1 and "TLS error" in refused.stderr, refused.stderr
    proc = cli("certonly", *standalone(pebble), "-d", name, "--no-verify-ssl", check=False)
    assert proc.returncode == 0, proc.stderr
    assert (cli.config_dir / "live" / name / "cert.pem").exists()
    assert proc.stderr.count("not checked") == 1, proc.stderr
    assert "InsecureRequestWarning" not in proc.stderr


def test_each_name_gets_its_own_webroot_whatever_its_spelling(
        cli: Cli, pebble: Pebble, web: Nginx, www_root: Path, tmp_path: Path) -> None:
    # two -w that nginx both serves (a link to the same root), so that the certificate
    # is issued and the stored map shows which -w each name was given to
    second = tmp_path / "second-root"
    second.symlink_to(www_root)
    cli("certonly", "--webroot", "-w", str(www_root), "-d", "Dot.Example.org.",
        "-d", "bücher.example.org", "-w", str(second), "-d", "plain.example.org",
        "--cert-name", "spelling")
    conf = read_renewal_conf(cli.config_dir / "renewal" / "spelling.conf")
    assert conf.params["webroot_map"] == {
        "dot.example.org": str(www_root),
        "xn--bcher-kva.example.org": str(www_root),
        "plain.example.org": str(second),
    }
    # and `certificates -d` finds a lineage by any spelling of its names
    shown = cli("certificates", "-d", "BÜCHER.example.org.", account=False).stdout
    assert "spelling" in shown, shown


# /etc/letsencrypt/cli.ini as Debian's and Ubuntu's certbot package installs it
DEBIAN_STOCK_CLI_INI = """\
# Because we are using logrotate for greater flexibility, disable the
# internal certbot logrotation.
max-log-backups = 0
# Adjust interactive output regarding automated renewal
preconfigured-renewal = True
"""


def test_debians_stock_cli_ini_works_and_turns_log_rotation_off(
        cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    cli("certificates", account=False)
    cli("certificates", account=False)
    assert (logs / "certwright.log.1").exists()  # without it, each run starts a new log
    for old in logs.glob("certwright.log*"):
        old.unlink()
    cli.config_dir.mkdir(parents=True, exist_ok=True)
    (cli.config_dir / "cli.ini").write_text(DEBIAN_STOCK_CLI_INI)
    proc = cli("certonly", *standalone(pebble), "-d", "debian.example.org")
    assert proc.stderr == ""
    assert (cli.config_dir / "live" / "debian.example.org" / "cert.pem").exists()
    proc = cli("certificates", account=False)
    assert "debian.example.org" in proc.stdout and proc.stderr == ""
    assert sorted(p.name for p in logs.iterdir()) == ["certwright.log"]  # logrotate's job
    assert (logs / "certwright.log").read_text().count("certwright certonly") == 1


def test_cli_ini_lines_it_cant_use_are_warned_about_once_and_the_rest_applies(
        cli: Cli, pebble: Pebble) -> None:
    cli.config_dir.mkdir(parents=True)
    ini = cli.config_dir / "cli.ini"
    ini.write_text(DEBIAN_STOCK_CLI_INI + (  # lines 6 to 12
        "text = True\n"
        "bareword\n"
        "rsa-key-size = abc\n"
        "key-type: rsa   # an inline comment\n"
        "no-such-option = 1\n"
        "reuse-key = perhaps\n"
        "--email 'ini@example.org'\n"))
    proc = cli("certonly", *standalone(pebble), "-d", "warned.example.org", "--agree-tos",
               account=False)
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("Warning:")]
    assert warnings == [  # line 6, Debian's `text = True` of old, is Certbot's --text
        f"Warning: {ini}:7: unknown option 'bareword' (line ignored)",
        f"Warning: {ini}:8: argument --rsa-key-size: invalid int value: 'abc' (line ignored)",
        f"Warning: {ini}:10: unknown option 'no-such-option' (line ignored)",
        f"Warning: {ini}:11: reuse-key is a flag: give true or false, not 'perhaps' "
        "(line ignored)",
    ], proc.stderr
    cert = x509.load_pem_x509_certificate(
        (cli.config_dir / "live" / "warned.example.org" / "cert.pem").read_bytes())
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)  # key-type applied
    assert cert.public_key().key_size == 2048  # the bad size was left out
    shown = cli("show_account", account=False).stdout
    assert "ini@example.org" in shown  # the quoted e-mail without quotes


@pytest.mark.parametrize(("option", "command", "fragment"), [
    ("--pre-hook", "/nonexistent/hook", "/nonexistent/hook does not exist"),
    ("--post-hook", "no-such-program --flag", "no-such-program is not a command found"),
    ("--deploy-hook", "{tmp}/plain.sh", "exists but is not an executable file"),
    ("--manual-auth-hook", "'/no such/dir/auth.sh' x", "/no such/dir/auth.sh does not"),
])
def test_hooks_are_validated_before_the_ca_is_contacted(
        cli: Cli, pebble: Pebble, tmp_path: Path, option: str, command: str,
        fragment: str) -> None:
    marker = tmp_path / "pre-ran"
    plain = tmp_path / "plain.sh"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    command = command.replace("{tmp}", str(tmp_path))
    auth = ["--manual", "--manual-auth-hook", "true"] if option.startswith("--manual") \
        else standalone(pebble)
    proc = cli("certonly", *auth, "-d", "hooked.example.org", option, command,
               "--pre-hook" if option != "--pre-hook" else "--post-hook", f"touch {marker}",
               check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr  # Certbot's code too
    assert lines[0].startswith(f"Error: {option} ") and fragment in lines[0]
    assert "--disable-hook-validation" in lines[0]
    assert not cli.config_dir.exists() or not any(cli.config_dir.rglob("*.json")), \
        "no account registered: the CA was not contacted"
    assert not marker.exists(), "no hook ran"


def test_disable_hook_validation_lets_a_shell_builtin_through(
        cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    log = tmp_path / "hook.log"
    hook = f"cd {tmp_path} && echo pre >> {log.name}"  # `cd` is no program on PATH
    refused = cli("certonly", *standalone(pebble), "-d", "builtin.example.org",
                  "--pre-hook", hook, check=False)
    assert refused.returncode == 1 and "cd is not a command found" in refused.stderr
    cli("certonly", *standalone(pebble), "-d", "builtin.example.org", "--pre-hook", hook,
        "--disable-hook-validation")
    assert log.read_text() == "pre\n"


@pytest.mark.parametrize("args", [
    ["certonly", "--no-such-option"],
    ["certonly", "--rsa-key-size", "big"],
    ["certonly", "--reason", "whim"],
    ["certonly", "--cert-name"],
    ["frobnicate"],
    ["certificates", "-c", "/nonexistent/cli.ini"],
])
def test_what_the_argument_parser_rejects_exits_2_as_in_certbot(
        cli: Cli, args: list[str]) -> None:
    proc = cli(*args, check=False, account=False)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("Error: ")


@pytest.mark.parametrize(("args", "fragment"), [
    (["--webroot-map", "{a.example.org: /srv}"], "--webroot-map: not valid JSON"),
    (["-d", "a.example.org", "-w", "/srv/a", "-w", "/srv/b", "-d", "b.example.org"],
     "a.example.org is given before the first -w"),
    (["-w", "/srv/a", "-d", "bad..example.org"], "empty label"),
])
def test_input_refused_after_parsing_exits_1_as_in_certbot(
        cli: Cli, args: list[str], fragment: str) -> None:
    proc = cli("certonly", "--webroot", *args, check=False)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


@pytest.fixture
def reusing_ca(pebble_factory) -> Pebble:
    """A Pebble that reuses every valid authorization, as Let's Encrypt does."""
    ca: Pebble = pebble_factory(authz_reuse=100)
    return ca


def test_reconfigure_tests_the_new_webroot_even_when_the_ca_reuses_authorizations(
        reusing_ca: Pebble, www_root: Path, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "run", reusing_ca)
    unserved = tmp_path / "not-served"
    unserved.mkdir()
    with Nginx(tmp_path / "nginx", www_root, http_port=reusing_ca.http_port):
        cli("certonly", "--webroot", "-w", str(www_root), "-d", "reuse.example.org")
        conf = cli.config_dir / "renewal" / "reuse.example.org.conf"
        before = conf.read_bytes()
        # a web root nginx does not serve: the challenge can't pass, and the CA's valid
        # authorization must not stand in for it
        for names in (["-d", "reuse.example.org"], []):  # -w alone moves every name too
            proc = cli("reconfigure", "--cert-name", "reuse.example.org", "--webroot", "-w",
                       str(unserved), *names, account=False, check=False)
            assert proc.returncode == 1, proc.stdout + proc.stderr
            assert "reuse.example.org" in proc.stderr and "404" in proc.stderr, proc.stderr
            assert conf.read_bytes() == before
        # the served one passes, with a fresh challenge again
        served_too = tmp_path / "served-too"
        served_too.symlink_to(www_root)
        cli("reconfigure", "--cert-name", "reuse.example.org", "--webroot", "-w",
            str(served_too), "--key-type", "rsa", account=False)
        stored = read_renewal_conf(conf)
        assert stored.params["key_type"] == "rsa"
        assert stored.params["webroot_map"] == {"reuse.example.org": str(served_too)}


def test_a_dry_run_tests_the_challenge_even_when_the_ca_reuses_authorizations(
        reusing_ca: Pebble, www_root: Path, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "run", reusing_ca)
    with Nginx(tmp_path / "nginx", www_root, http_port=reusing_ca.http_port):
        cli("certonly", "--webroot", "-w", str(www_root), "-d", "dry-reuse.example.org")
        cli("renew", "--dry-run", "--no-random-sleep-on-renew", account=False)
    before = cli.snapshot()
    # nginx is gone: nothing serves the web root any more, and the dry run must say so
    proc = cli("renew", "--dry-run", "--no-random-sleep-on-renew", account=False, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "dry-reuse.example.org" in proc.stdout + proc.stderr
    proc = cli("certonly", "--dry-run", "--webroot", "-w", str(www_root), "-d",
               "dry-reuse.example.org", account=False, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert cli.snapshot() == before
