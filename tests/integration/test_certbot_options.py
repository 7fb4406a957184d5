"""Certbot 5.8.0's whole command line: every option its own parser knows is accepted here,
with Certbot's meaning, or (obsolete) with a one-line notice."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from certwright.core import __version__
from tests.integration.conftest import CERTWRIGHT, Cli, nginx_tree
from tests.integration.conftest import live_version as version
from tests.integration.conftest import standalone as shared_standalone
from tests.integration.test_nginx import PLAIN_SITE, http_get, served
from tests.servers.acme_front import AcmeFront
from tests.servers.nginx_tree import NginxTree
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration

# Certbot's options that come with plugins certwright does not have yet (none now: the
# DNS plugins' came with dns-rfc2136 and the dns-lexicon providers). Certbot's Apache
# options appear only with certbot-apache installed; they belong to the Apache issue.
LATER: frozenset[str] = frozenset()
LATER_PREFIXES = ("--apache-",)

# Builds Certbot's parser exactly as `certbot` does (every installed plugin's options
# included) and prints each action's option strings and arity, without parsing anything.
CERTBOT_PARSER = """
import json
from certbot._internal import cli
from certbot._internal.cli import helpful
from certbot._internal.plugins import disco

class Built(Exception):
    pass

def stop(self):
    raise Built(self)

helpful.HelpfulArgumentParser.parse_args = stop
try:
    cli.prepare_and_parse_args(disco.PluginsRegistry.find_all(), ["certbot"])
except Built as built:
    parser = built.args[0].parser
print(json.dumps([{"options": a.option_strings, "nargs": a.nargs}
                  for a in parser._actions if a.option_strings]))
"""


def certbot_actions(venv: Path) -> list[dict[str, object]]:
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", CERTBOT_PARSER],
                          capture_output=True, text=True, timeout=120, check=True)
    found: list[dict[str, object]] = json.loads(proc.stdout)
    return found


def test_every_option_of_certbots_own_parser_is_accepted(certbot_venv: Path) -> None:
    from certwright.core import cli

    actions = certbot_actions(certbot_venv)
    strings = {s for a in actions for s in a["options"]}  # type: ignore[attr-defined]
    assert len(strings) >= 130 and "--webroot-path" in strings, "Certbot's parser was built"
    assert strings >= LATER, "the options left for later are Certbot's"
    ours = cli._full_parser()._option_string_actions
    missing, shape = [], []
    for action in actions:
        takes_value = action["nargs"] != 0
        for option in action["options"]:  # type: ignore[attr-defined]
            if option in LATER or option.startswith(LATER_PREFIXES):
                continue
            mine = ours.get(option)
            if mine is None:
                missing.append(option)
            elif mine.nargs != "?" and (mine.nargs != 0) != takes_value:
                shape.append(option)
    assert not missing, f"Certbot options certwright refuses: {missing}"
    assert not shape, f"options that take a value in one and not the other: {shape}"


# -- obsolete options: accepted, said once ------------------------------------------------
def test_obsolete_options_are_accepted_with_one_notice_each(cli: Cli) -> None:
    proc = cli("certificates", "--text", "-t", "--no-self-upgrade", "--no-bootstrap",
               "--os-packages-only", "--no-permissions-check", "--staple-ocsp",
               "--no-staple-ocsp", "--staple-ocsp", "--disable-renew-updates",
               "--preconfigured-renewal", "--renew-with-new-domains", "--nginx",
               "--nginx-sleep-seconds", "2", account=False)
    notes = [line for line in proc.stderr.splitlines() if line.startswith("Note: ")]
    assert notes == [
        "Note: --os-packages-only is deprecated and has no effect",
        "Note: --no-self-upgrade is deprecated and has no effect",
        "Note: --no-bootstrap is deprecated and has no effect",
        "Note: --no-permissions-check is deprecated and has no effect",
        "Note: --staple-ocsp: OCSP stapling is not configured (Let's Encrypt ended its "
        "OCSP service in 2025)",
        "Note: --nginx-sleep-seconds has no effect: certwright checks that nginx serves the "
        "new certificate instead of sleeping after a reload",
    ], proc.stderr
    assert proc.stderr.count("Note: ") == len(notes)
    eff = cli("certificates", "--eff-email", account=False)
    assert eff.stderr == "Note: --eff-email: certwright does not pass your address on to " \
        "the EFF; subscribe at https://supporters.eff.org/subscribe if you wish\n"
    quiet = cli("certificates", "--text", "--no-staple-ocsp", account=False)
    assert quiet.stderr == "", "--text and --no-staple-ocsp say nothing"
    silenced = cli("certificates", "-q", "--no-bootstrap", account=False)
    assert silenced.stderr == "" and silenced.stdout == "", "-q: errors only, as Certbot"


def test_must_staple_says_once_that_ocsp_ended(cli: Cli, pebble: Pebble) -> None:
    proc = cli("certonly", *standalone(pebble), "-d", "staple.example.org", "--must-staple")
    assert proc.stderr.count("Note: --must-staple: Let's Encrypt ended its OCSP") == 1
    conf = cli.config_dir / "renewal" / "staple.example.org.conf"
    assert "must_staple = True" in conf.read_text(), "still Certbot's stored option"


@pytest.mark.parametrize(("args", "message"), [
    (["enhance", "--hsts", "--auto-hsts", "--cert-name", "x"],
     "--hsts and --auto-hsts can't be used together"),
    (["certificates", "--force-interactive"],  # the harness gives -n
     "-n/--non-interactive and --force-interactive can't be used together"),
    (["renew", "--force-interactive"], "--force-interactive can't be used with renew"),
    (["certonly", "--standalone", "-d", "*.example.org", "--allow-subset-of-names"],
     "--allow-subset-of-names can't be used with a wildcard name"),
])
def test_options_that_exclude_each_other(cli: Cli, args: list[str], message: str) -> None:
    proc = cli(*args, check=False, account=False)
    assert proc.returncode == 1
    assert proc.stderr == f"Error: {message}\n"


# -- logging ------------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [["-vvv"], ["--verbose-level", "2"], ["-v", "-v"]])
def test_verbosity_flags_show_debug_lines(cli: Cli, flags: list[str]) -> None:
    assert "certwright certificates" not in cli("certificates", account=False).stderr
    proc = cli("certificates", *flags, account=False)
    assert "certwright certificates" in proc.stderr, proc.stderr  # the debug line


def test_debug_shows_the_traceback_of_an_error(cli: Cli) -> None:
    plain = cli("renew", "-d", "x.example.org", check=False, account=False)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    proc = cli("renew", "-d", "x.example.org", "--debug", check=False, account=False)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.rstrip().endswith("Error: renew takes no -d: it renews every "
                                         "certificate that is due, or the one named by "
                                         "--cert-name; for other names use certonly")


# -- permissions --------------------------------------------------------------------------
def test_strict_permissions_refuses_a_dir_others_can_write(cli: Cli) -> None:
    cli.config_dir.mkdir(parents=True)
    os.chmod(cli.config_dir, 0o777)
    cli("certificates", account=False)  # without the flag: as before
    proc = cli("certificates", "--strict-permissions", check=False, account=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"Error: {cli.config_dir}: writable by others (mode 0777);"
                                   " --strict-permissions refuses it")
    os.chmod(cli.config_dir, 0o755)
    cli("certificates", "--strict-permissions", account=False)


# -- account: EAB algorithm, User-Agent ---------------------------------------------------
def test_eab_binding_is_signed_with_the_chosen_mac() -> None:
    from certwright.core.acme import jws

    key = jws.jwk_of(ec.generate_private_key(ec.SECP256R1()))
    secret = b"0123456789abcdef0123456789abcdef"
    mac_key = base64.urlsafe_b64encode(secret).decode().rstrip("=")
    for alg, digest in (("HS256", hashlib.sha256), ("HS384", hashlib.sha384),
                        ("HS512", hashlib.sha512)):
        binding = jws.eab_binding(key, kid="kid-1", hmac_key_b64=mac_key,
                                  url="https://ca/new-acct", alg=alg)
        header = json.loads(base64.urlsafe_b64decode(binding["protected"] + "=="))
        assert header == {"alg": alg, "kid": "kid-1", "url": "https://ca/new-acct"}
        signed = f"{binding['protected']}.{binding['payload']}".encode()
        expected = hmac.new(secret, signed, digest).digest()
        assert base64.urlsafe_b64decode(binding["signature"] + "==") == expected


@pytest.mark.parametrize("alg", ["HS384", "hs512"])
def test_eab_hmac_alg_registers_at_a_ca_requiring_eab(pebble_factory, tmp_path: Path,
                                                      alg: str) -> None:
    ca = pebble_factory(eab=True)
    cli = Cli(tmp_path, ca)
    assert ca.eab is not None
    cli("register", "--eab-kid", ca.eab.kid, "--eab-hmac-key", ca.eab.hmac_key,
        "--eab-hmac-alg", alg)
    assert list((cli.config_dir / "accounts").rglob("regr.json"))
    bad = cli("register", "--eab-kid", ca.eab.kid, "--eab-hmac-key", ca.eab.hmac_key,
              "--eab-hmac-alg", "RS256", check=False)
    assert bad.returncode == 2 and "--eab-hmac-alg" in bad.stderr


def test_user_agent_comment_goes_into_the_default_user_agent(
        pebble: Pebble, tmp_path: Path) -> None:
    with AcmeFront(pebble, tmp_path / "front") as front:
        cli = Cli(tmp_path / "a", pebble, extra_env=front.env(os.environ))
        cli("register", "--server", front.directory_url, "--user-agent-comment",
            "Wrapper/1.0")
        assert set(front.user_agents) == {f"certwright/{__version__} (Wrapper/1.0)"}
        front.user_agents.clear()
        cli = Cli(tmp_path / "b", pebble, extra_env=front.env(os.environ))
        cli("register", "--server", front.directory_url, "--user-agent-comment",
            "Wrapper/1.0", "--user-agent", "Fleet/2")
        assert set(front.user_agents) == {"Fleet/2"}, "ignored with --user-agent"
    refused = cli("certificates", "--user-agent-comment", "a (b)", check=False,
                  account=False)
    assert refused.returncode == 2 and "may not contain parentheses" in refused.stderr


# -- lineage options ----------------------------------------------------------------------
def standalone(ca: Pebble) -> list[str]:
    return shared_standalone(ca, "--no-random-sleep-on-renew")


def test_no_autorenew_is_stored_and_renew_leaves_the_certificate_alone(
        cli: Cli, pebble: Pebble) -> None:
    cli("certonly", *standalone(pebble), "-d", "manual-only.example.org", "--no-autorenew")
    cli("certonly", *standalone(pebble), "-d", "auto.example.org")
    renewal = cli.config_dir / "renewal"
    assert "autorenew = False" in (renewal / "manual-only.example.org.conf").read_text()
    assert "autorenew =" not in (renewal / "auto.example.org.conf").read_text()
    for name in ("manual-only.example.org", "auto.example.org"):  # both due now
        conf = renewal / f"{name}.conf"
        conf.write_text("renew_before_expiry = 36500 days\n" + conf.read_text())
    cli("renew", *standalone(pebble), account=False)
    assert version(cli, "auto.example.org") == 2
    assert version(cli, "manual-only.example.org") == 1
    # certonly on the lineage without the flag keeps the operator's switch
    cli("certonly", *standalone(pebble), "-d", "manual-only.example.org", "--force-renewal")
    assert "autorenew = False" in (renewal / "manual-only.example.org.conf").read_text()


def test_run_deploy_hooks_runs_them_after_a_dry_run_with_the_current_certificate(
        cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\necho "$RENEWED_LINEAGE|$RENEWED_DOMAINS" >> {ran}\n')
    hook.chmod(0o755)
    name = "hooks-dry.example.org"
    cli("certonly", *standalone(pebble), "-d", name, "--deploy-hook", str(hook))
    ran.unlink()
    cli("certonly", *standalone(pebble), "-d", name, "--dry-run", "--deploy-hook", str(hook))
    cli("renew", *standalone(pebble), "--dry-run", account=False)
    assert not ran.exists(), "a dry run runs no deploy hook by default"
    live = cli.config_dir / "live" / name
    cli("certonly", *standalone(pebble), "-d", name, "--dry-run", "--run-deploy-hooks",
        "--deploy-hook", str(hook))
    assert ran.read_text() == f"{live}|{name}\n"
    cli("renew", *standalone(pebble), "--dry-run", "--run-deploy-hooks", account=False)
    assert ran.read_text() == f"{live}|{name}\n" * 2, "the stored hook, on renew too"
    cli("reconfigure", "--cert-name", name, *standalone(pebble), "--run-deploy-hooks",
        account=False)
    assert ran.read_text() == f"{live}|{name}\n" * 3, "and after reconfigure's test"
    assert version(cli, name) == 1, "the current certificate; nothing saved"


def test_break_my_certs_guards_a_real_certificate_against_a_test_ca(
        cli: Cli, pebble: Pebble) -> None:
    name = "real.example.org"
    cli("certonly", *standalone(pebble), "-d", name)
    test_ca = pebble.directory_url + "?staging"  # a test CA by Certbot's rule
    args = ("certonly", *standalone(pebble), "-d", name, "--force-renewal",
            "--server", test_ca)
    proc = cli(*args, check=False)
    assert proc.returncode == 1
    assert f"comes from {pebble.directory_url}" in proc.stderr
    assert "give --break-my-certs" in proc.stderr
    assert version(cli, name) == 1
    cli(*args, "--dry-run")  # a dry run saves nothing: allowed
    cli(*args, "--break-my-certs")
    assert version(cli, name) == 2


OTHER_SITE = """\
server {{
    listen 127.0.0.1:{http};
    server_name other.example.org;
    root {www};
    location /api/ {{
        return 200 "other\\n";
    }}
}}
"""


@pytest.fixture
def tree(pebble: Pebble) -> Iterator[NginxTree]:
    with nginx_tree(pebble) as found:
        yield found


def test_run_and_install_redirect_by_default_enhance_does_not(
        cli: Cli, tree: NginxTree) -> None:
    """Certbot's --redirect: "redirect enabled for install and run, disabled for enhance"."""
    tree.site("example", PLAIN_SITE)
    tree.site("other", OTHER_SITE)
    tree.start()
    cli("run", "--nginx", *tree.args(), "-d", "example.org")
    assert http_get(tree.http_port, "example.org", "/api/") == (301,
                                                                "https://example.org/api/")
    cli("run", "--nginx", *tree.args(), "-d", "other.example.org", "--no-redirect")
    assert http_get(tree.http_port, "other.example.org", "/api/") == (200, "")
    cli("enhance", "--nginx", *tree.args(), "--cert-name", "other.example.org", "--uir",
        account=False)
    assert http_get(tree.http_port, "other.example.org", "/api/") == (200, "")
    cli("install", "--nginx", *tree.args(), "--cert-name", "other.example.org",
        account=False)
    assert http_get(tree.http_port, "other.example.org", "/api/")[0] == 301
    refused = cli("install", "--nginx", *tree.args(), "--cert-name", "example.org",
                  "--auto-hsts", check=False, account=False)
    assert refused.returncode == 1 and "can't do: auto-hsts" in refused.stderr
    assert not list((cli.config_dir / "archive").glob("*/cert2.pem"))


def test_debug_challenges_waits_with_the_challenge_served_before_the_ca_checks(
        pebble: Pebble, tmp_path: Path) -> None:
    cli = Cli(tmp_path, pebble)
    name = "paused.example.org"
    argv = [CERTWRIGHT, "certonly", *standalone(pebble), "-d", name, "--debug-challenges",
            "--force-interactive", "-v", "--agree-tos", "-m", "admin@example.org",
            "--server", pebble.directory_url, *cli.dirs()]
    with open(tmp_path / "stderr", "w") as err:
        proc = subprocess.Popen(argv, env=pebble.env(os.environ), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None and proc.stdin is not None
        os.set_blocking(proc.stdout.fileno(), False)
        out, deadline = b"", time.monotonic() + 60
        while b"Press Enter" not in out and time.monotonic() < deadline:
            out += proc.stdout.read() or b""
            time.sleep(0.05)
        try:
            text = out.decode()
            assert "Press Enter" in text, (text, (tmp_path / "stderr").read_text())
            found = re.search(r"http://(\S+)/\.well-known/acme-challenge/(\S+) must answer: "
                              r"(\S+)", text)
            assert found and found[1] == name, text
            time.sleep(1)
            assert proc.poll() is None, "it waits"
            request = urllib.request.Request(
                f"http://127.0.0.1:{pebble.http_port}/.well-known/acme-challenge/{found[2]}",
                headers={"Host": name})
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(request, timeout=5) as served:
                assert served.read().decode() == found[3]
            proc.stdin.write(b"\n")
            proc.stdin.close()
            assert proc.wait(timeout=60) == 0, (tmp_path / "stderr").read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert (cli.config_dir / "live" / name / "cert.pem").exists()
    quiet = cli("certonly", *standalone(pebble), "-d", "unpaused.example.org",
                "--debug-challenges")  # non-interactive: said, not waited for
    assert "1 challenge(s) set up" in quiet.stdout


def test_values_are_read_as_certbot_reads_them(tmp_path: Path) -> None:
    """--preferred-challenges adds up over repeats (and cli.ini lists); counts and
    timeouts are not negative; a User-Agent is one clean header line."""
    from certwright.core import cli_parser
    from certwright.core.errors import UsageError

    def parse(*args: str) -> object:
        return cli_parser.parse([*args, "--config-dir", str(tmp_path / "c")],
                                cli_parser.build_parser())

    ns = parse("certonly", "--preferred-challenges", "dns", "--preferred-challenges",
               "http,dns")
    assert list(ns.pref_challs) == ["dns-01", "http-01"]  # type: ignore[attr-defined]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "cli.ini").write_text("preferred-challenges = [http, dns]\n")
    assert list(parse("certonly").pref_challs) == ["http-01", "dns-01"]  # type: ignore[attr-defined]
    for bad in (("--max-log-backups", "-1"), ("--issuance-timeout", "-5"),
                ("--user-agent", "a\r\nX-Injected: 1"), ("--user-agent", " padded")):
        with pytest.raises(UsageError, match=bad[0]):
            parse("certificates", *bad)


def test_changed_names_for_a_cert_name_are_confirmed_unless_renew_with_new_domains(
        cli: Cli, pebble: Pebble) -> None:
    cli("certonly", *standalone(pebble), "-d", "a.example.org", "--cert-name", "named")

    def interactive(*args: str, answer: str) -> subprocess.CompletedProcess[str]:
        argv = [CERTWRIGHT, "certonly", *standalone(pebble), "--cert-name", "named",
                "-d", "a.example.org", "-d", "b.example.org", "--force-interactive",
                "--server", pebble.directory_url, *cli.dirs(), *args]
        return subprocess.run(argv, env=pebble.env(os.environ), input=answer, text=True,
                              capture_output=True, timeout=120)

    refused = interactive(answer="n\n")
    assert "changes names:\n  + b.example.org\nDid you intend" in refused.stdout
    assert refused.returncode == 1 and "nothing was changed" in refused.stderr
    assert version(cli, "named") == 1
    taken = interactive("--renew-with-new-domains", answer="")  # nothing asked
    assert taken.returncode == 0, taken.stderr
    assert "Did you intend" not in taken.stdout
    assert version(cli, "named") == 2
    # non-interactive (-n): Certbot's default answer, yes
    cli("certonly", *standalone(pebble), "--cert-name", "named", "-d", "c.example.org")
    assert version(cli, "named") == 3


def test_staging_means_lets_encrypts_staging_even_over_its_production_url() -> None:
    """As Certbot: --staging with Let's Encrypt's production URL (given, or stored for a
    lineage being renewed) asks staging; a test CA never replaces a real certificate
    without --break-my-certs."""
    import argparse

    from certwright.core import session
    from certwright.core.cas import LE_PRODUCTION, LE_STAGING
    from certwright.core.errors import ConfigError

    def ns(**given: object) -> argparse.Namespace:
        base: dict[str, object] = {"server": None, "staging": False, "dry_run": False,
                                   "break_my_certs": False}
        return argparse.Namespace(**{**base, **given})

    assert session.server_url(ns(server=LE_PRODUCTION, staging=True)) == LE_STAGING
    assert session.server_url(ns(staging=True)) == LE_STAGING
    assert session.server_url(ns(server=LE_PRODUCTION)) == LE_PRODUCTION
    with pytest.raises(ConfigError, match="--break-my-certs"):
        session.refuse_test_over_real(ns(server=LE_PRODUCTION, staging=True), "x",
                                      LE_PRODUCTION)
    session.refuse_test_over_real(ns(server=LE_PRODUCTION, staging=True,
                                     break_my_certs=True), "x", LE_PRODUCTION)
    session.refuse_test_over_real(ns(staging=True), "x", LE_STAGING)  # test over test


def test_relative_paths_to_install_are_taken_from_the_current_directory(
        cli: Cli, tree: NginxTree, tmp_path: Path) -> None:
    from cryptography import x509

    tree.site("example", PLAIN_SITE)
    tree.start()
    cli("certonly", "--nginx", *tree.args(), "-d", "example.org")
    here = tmp_path / "here"
    (here / "tls").mkdir(parents=True)
    live = cli.config_dir / "live" / "example.org"
    for name in ("cert.pem", "privkey.pem", "fullchain.pem", "chain.pem"):
        shutil.copyfile(live / name, here / "tls" / name)
    cli("install", "--nginx", *tree.args(), "-d", "example.org", "--cert-path",
        "tls/cert.pem", "--key-path", "tls/privkey.pem", "--fullchain-path",
        "tls/fullchain.pem", "--chain-path", "tls/chain.pem", account=False, cwd=here)
    text = "".join(p.read_text() for p in tree.root.rglob("*.conf")) + \
        (tree.root / "sites-available" / "example").read_text()
    assert f"ssl_certificate {here}/tls/fullchain.pem;" in text
    served_cert = served(tree, "example.org")
    assert served_cert == x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())


def test_quiet_still_says_a_failed_hook(cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    hook = tmp_path / "fails.sh"
    hook.write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    hook.chmod(0o755)
    proc = cli("certonly", *standalone(pebble), "-d", "quiet.example.org", "-q",
               "--deploy-hook", str(hook), "--no-bootstrap")
    assert proc.stdout == ""
    assert proc.stderr == (f"deploy hook {str(hook)!r} failed with exit status 3: broken\n")
