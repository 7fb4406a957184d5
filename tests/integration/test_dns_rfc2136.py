"""dns-rfc2136 end to end: a real BIND (TSIG key, dynamic zones) that Pebble resolves
through, so every dns-01 challenge is checked against what certwright put in the zone."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from certwright.core.errors import PluginError
from certwright.core.interfaces import ChallengeTask, Identifier
from tests.conftest import require_binary
from tests.integration.conftest import CERTWRIGHT, Cli
from tests.servers.bind import Bind
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration

ZONES = ("example.test", "delegated.test", "lame.test", "signed.test")
RECORDS = {
    # only _acme-challenge of cn.example.test is delegated to another zone
    "example.test": ["_acme-challenge.cn CNAME _acme-challenge.cn.delegated.test."],
    # a second name server that does not answer: the zone never looks propagated
    "lame.test": ["@ IN NS ns2.lame.test.", "ns2 IN A 127.0.0.2"],
}


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bind]:
    require_binary("named")
    with Bind(tmp_path_factory.mktemp("bind"), zones=ZONES, records=RECORDS,
              signed_only=("signed.test",)) as server:
        yield server


@pytest.fixture(scope="module")
def dns_ca(bind: Bind, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with Pebble(tmp_path_factory.mktemp("pebble-bind"), dns_server=bind.address) as ca:
        yield ca


def credentials(bind: Bind, path: Path, *, secret: str | None = None, mode: int = 0o600,
                extra: str = "") -> Path:
    path.write_text(
        "# as certbot-dns-rfc2136 documents it\n"
        f"dns_rfc2136_server = {bind.host}\n"
        f"dns_rfc2136_port = {bind.port}\n"
        f"dns_rfc2136_name = {bind.key_name}\n"
        f"dns_rfc2136_secret = {secret or bind.secret}\n"
        "dns_rfc2136_algorithm = HMAC-SHA256\n" + extra)
    os.chmod(path, mode)
    return path


@pytest.fixture
def dns_cli(dns_ca: Pebble, tmp_path: Path) -> Cli:
    return Cli(tmp_path, dns_ca)


def acme_txt(bind: Bind) -> list[tuple[str, str]]:
    return [r for zone in ZONES for r in bind.records_of(zone) if "_acme-challenge" in r[0]]


def sans(cli: Cli, name: str) -> list[str]:
    pem = (cli.config_dir / "live" / name / "cert.pem").read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(ext.get_values_for_type(x509.DNSName))


def test_apex_and_wildcard_in_one_order_and_a_foreign_txt_survives(
        dns_cli: Cli, bind: Bind, tmp_path: Path) -> None:
    bind.update("example.test", ("add", "_acme-challenge.example.test", "TXT", "not-ours"))
    creds = credentials(bind, tmp_path / "rfc2136.ini")
    begin = time.monotonic()
    proc = dns_cli("certonly", "--dns-rfc2136", "--dns-rfc2136-credentials", str(creds),
                   "-d", "example.test", "-d", "*.example.test")
    took = time.monotonic() - begin
    assert sans(dns_cli, "example.test") == ["*.example.test", "example.test"], proc.stdout
    assert acme_txt(bind) == [("_acme-challenge.example.test", "not-ours")], \
        "exactly our two records were removed"
    assert took < 30, f"waited on the authoritative server, not slept: {took:.1f} s"
    conf = (dns_cli.config_dir / "renewal" / "example.test.conf").read_text()
    assert "authenticator = dns-rfc2136" in conf
    assert f"dns_rfc2136_credentials = {creds}" in conf
    assert not (dns_cli.base / "work" / "dns-01").exists(), "the record journal is gone"
    bind.update("example.test", ("delete", "_acme-challenge.example.test", "TXT", "not-ours"))


def test_a_cname_delegated_acme_challenge_is_followed(dns_cli: Cli, bind: Bind,
                                                      tmp_path: Path) -> None:
    creds = credentials(bind, tmp_path / "rfc2136.ini")
    dns_cli("certonly", "-a", "dns-rfc2136", "--dns-rfc2136-credentials", str(creds),
            "-d", "cn.example.test")
    assert sans(dns_cli, "cn.example.test") == ["cn.example.test"]
    assert acme_txt(bind) == []
    assert bind.records_of("example.test", "CNAME") == [
        ("_acme-challenge.cn.example.test", "_acme-challenge.cn.delegated.test.")]


def test_a_wrong_tsig_secret_fails_clearly_and_leaves_nothing(dns_cli: Cli, bind: Bind,
                                                             tmp_path: Path) -> None:
    creds = credentials(bind, tmp_path / "rfc2136.ini",
                        secret="d3Jvbmcgc2VjcmV0IG9mIDMyIGJ5dGVzIGxvbmcgISE=")
    proc = dns_cli("certonly", "--dns-rfc2136", "--dns-rfc2136-credentials", str(creds),
                   "-d", "wrong.example.test", "-d", "*.wrong.example.test", check=False)
    assert proc.returncode == 1
    error = proc.stderr.strip().splitlines()[-1]
    assert "TSIG" in error and str(creds) in error and "dns_rfc2136_secret" in error, error
    assert acme_txt(bind) == []
    assert not (dns_cli.config_dir / "live" / "wrong.example.test").exists()


def test_credentials_others_may_read_are_refused_before_any_order(
        dns_cli: Cli, bind: Bind, tmp_path: Path) -> None:
    creds = credentials(bind, tmp_path / "rfc2136.ini", mode=0o644)
    proc = dns_cli("certonly", "--dns-rfc2136", "--dns-rfc2136-credentials", str(creds),
                   "-d", "open.example.test", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"Error: {creds}: mode 0644 lets other users read these DNS credentials; make it "
        f"0600 (chmod 600 {creds})")
    assert not (dns_cli.config_dir / "renewal").exists()


@pytest.mark.parametrize("line, key", [
    ("dns_rfc2136_port = fifty-three\n", "dns_rfc2136_port"),
    ("dns_rfc2136_algorithm = HMAC-SHA3\n", "dns_rfc2136_algorithm"),
])
def test_a_bad_credential_value_is_named_with_its_line(
        dns_cli: Cli, bind: Bind, tmp_path: Path, line: str, key: str) -> None:
    creds = credentials(bind, tmp_path / "rfc2136.ini")
    text = creds.read_text()
    creds.write_text("".join(x for x in text.splitlines(True) if not x.startswith(key)) + line)
    proc = dns_cli("certonly", "--dns-rfc2136", "--dns-rfc2136-credentials", str(creds),
                   "-d", "bad.example.test", check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"Error: {creds}:6: {key}: "), proc.stderr


def authenticator(bind: Bind, tmp_path: Path, **options: object) -> object:
    from certwright.authenticators.dns_rfc2136 import Rfc2136Authenticator

    config = argparse.Namespace(
        dns_rfc2136_credentials=str(credentials(bind, tmp_path / "creds.ini")), **options)
    auth = Rfc2136Authenticator(config)
    auth.prepare()
    return auth


def task(name: str, value: str) -> ChallengeTask:
    return ChallengeTask(Identifier("dns", name), "dns-01", "tok", "tok.thumb", value)


def test_the_wait_asks_every_authoritative_server_and_is_bounded(bind: Bind,
                                                                 tmp_path: Path) -> None:
    auth = authenticator(bind, tmp_path)
    tasks = [task("lame.test", "value-a")]
    auth.present_all(tasks)  # type: ignore[attr-defined]
    try:
        assert bind.txt("_acme-challenge.lame.test") == ["value-a"]
        begin = time.monotonic()
        with pytest.raises(PluginError) as failed:
            auth.wait_ready(tasks, time.monotonic() + 1.5)  # type: ignore[attr-defined]
        assert time.monotonic() - begin < 3
        assert "127.0.0.2:53" in str(failed.value), failed.value
        assert "_acme-challenge.lame.test" in str(failed.value)
    finally:
        auth.cleanup(tasks[0])  # type: ignore[attr-defined]
    assert bind.txt("_acme-challenge.lame.test") == []


def test_propagation_seconds_sleeps_instead_of_asking(bind: Bind, tmp_path: Path) -> None:
    auth = authenticator(bind, tmp_path, dns_rfc2136_propagation_seconds="0.3")
    tasks = [task("lame.test", "value-b")]
    auth.present_all(tasks)  # type: ignore[attr-defined]
    try:
        begin = time.monotonic()
        auth.wait_ready(tasks, time.monotonic() + 5)  # type: ignore[attr-defined]
        assert 0.3 <= time.monotonic() - begin < 2
    finally:
        auth.cleanup(tasks[0])  # type: ignore[attr-defined]
    assert bind.txt("_acme-challenge.lame.test") == []


def test_a_renewal_conf_certbot_dns_rfc2136_wrote_renews(
        certbot_dns_venv: Path, dns_cli: Cli, dns_ca: Pebble, bind: Bind,
        tmp_path: Path) -> None:
    creds = credentials(bind, tmp_path / "rfc2136.ini")
    argv = [str(certbot_dns_venv / "bin" / "certbot"), "certonly", "--dns-rfc2136",
            "--dns-rfc2136-credentials", str(creds), "--dns-rfc2136-propagation-seconds", "1",
            "-d", "cb.example.test", "--server", dns_ca.directory_url, "--agree-tos",
            "-m", "cb@example.org", "--no-eff-email", *dns_cli.dirs(), "-n"]
    proc = subprocess.run(argv, env=dns_ca.env(os.environ), capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    conf = (dns_cli.config_dir / "renewal" / "cb.example.test.conf").read_text()
    assert "authenticator = dns-rfc2136" in conf and "dns_rfc2136_credentials" in conf
    live = dns_cli.config_dir / "live" / "cb.example.test"
    before = (live / "cert.pem").read_bytes()
    dns_cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False)
    assert (live / "cert.pem").read_bytes() != before
    assert os.readlink(live / "cert.pem") == "../../archive/cb.example.test/cert2.pem"
    assert acme_txt(bind) == []


def test_parallel_renewals_with_the_same_credentials_share_one_instance(
        dns_cli: Cli, bind: Bind, tmp_path: Path) -> None:
    creds = credentials(bind, tmp_path / "rfc2136.ini")
    names = ("par1.example.test", "par2.example.test")
    for name in names:
        dns_cli("certonly", "--dns-rfc2136", "--dns-rfc2136-credentials", str(creds),
                "-d", name, "-d", f"*.{name}")
    before = {n: (dns_cli.config_dir / "live" / n / "cert.pem").read_bytes() for n in names}
    proc = dns_cli("renew", "--force-renewal", "--jobs", "2", "--no-random-sleep-on-renew",
                   "-v")
    for name in names:
        assert (dns_cli.config_dir / "live" / name / "cert.pem").read_bytes() != before[name]
    assert acme_txt(bind) == []
    assert proc.returncode == 0


def test_signed_queries_when_the_credentials_ask_for_them(bind: Bind, tmp_path: Path) -> None:
    """signed.test answers only TSIG-signed questions: found with dns_rfc2136_sign_query,
    not without."""
    from certwright.authenticators.dns_rfc2136 import Rfc2136Authenticator

    def auth_for(sign: str) -> Rfc2136Authenticator:
        path = credentials(bind, tmp_path / f"creds-{sign}.ini",
                           extra=f"dns_rfc2136_sign_query = {sign}\n")
        auth = Rfc2136Authenticator(argparse.Namespace(dns_rfc2136_credentials=str(path)))
        auth.prepare()
        return auth

    tasks = [task("www.signed.test", "value-s")]
    unsigned = auth_for("false")
    with pytest.raises(PluginError) as failed:
        unsigned.present_all(tasks)
    assert str(failed.value) == (
        f"dns-rfc2136: {bind.address} knows no zone holding _acme-challenge.www.signed.test "
        "(it refused the question for _acme-challenge.www.signed.test); if the server "
        "answers only signed questions, set dns_rfc2136_sign_query = true in "
        f"{tmp_path / 'creds-false.ini'}")
    auth = auth_for("true")
    auth.present_all(tasks)
    try:
        assert bind.records_of("signed.test") == [("_acme-challenge.www.signed.test",
                                                   "value-s")]
        auth.wait_ready(tasks, time.monotonic() + 10)
    finally:
        auth.cleanup(tasks[0])
    assert bind.records_of("signed.test") == []


def test_records_a_killed_run_left_are_removed_by_the_next_run(
        dns_cli: Cli, bind: Bind, tmp_path: Path) -> None:
    creds = credentials(bind, tmp_path / "rfc2136.ini")
    argv = [CERTWRIGHT, "certonly", "--dns-rfc2136", "--dns-rfc2136-credentials", str(creds),
            "--dns-rfc2136-propagation-seconds", "120", "-d", "killed.example.test",
            *dns_cli.dirs(), "-n", "--server", dns_cli.ca.directory_url, "--agree-tos",
            "-m", "admin@example.org"]
    proc = subprocess.Popen(argv, env=dns_cli.ca.env(os.environ), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not bind.txt("_acme-challenge.killed.example.test"):
            assert proc.poll() is None and time.monotonic() < deadline, "no TXT published"
            time.sleep(0.05)
    finally:
        proc.kill()  # SIGKILL: no cleanup runs
        proc.wait()
    assert len(bind.txt("_acme-challenge.killed.example.test")) == 1, "left behind"
    journal = list((dns_cli.base / "work" / "dns-01").glob("*.json"))
    assert len(journal) == 1 and journal[0].stat().st_mode & 0o777 == 0o600
    assert [e["name"] for e in json.loads(journal[0].read_text())] == [
        "_acme-challenge.killed.example.test"]
    later = dns_cli("certonly", "--dns-rfc2136", "--dns-rfc2136-credentials", str(creds),
                    "-d", "after.example.test")
    assert acme_txt(bind) == []
    assert ("dns-rfc2136: removed 1 TXT record(s) an interrupted run left in example.test "
            "(_acme-challenge.killed.example.test)") in later.stderr
    assert not (dns_cli.base / "work" / "dns-01").exists(), "nothing left to remember"


def test_a_dry_run_leaves_no_trace_in_the_zone_or_the_store(dns_cli: Cli, bind: Bind,
                                                            tmp_path: Path) -> None:
    creds = credentials(bind, tmp_path / "rfc2136.ini")
    dns_cli("certonly", "--dry-run", "--dns-rfc2136", "--dns-rfc2136-credentials", str(creds),
            "-d", "dry.example.test", "-d", "*.dry.example.test")
    assert acme_txt(bind) == []
    assert not (dns_cli.config_dir / "live").exists()
    assert not (dns_cli.config_dir / "renewal").exists()
    assert not (dns_cli.base / "work" / "dns-01").exists()


def test_certbot_renews_what_certwright_issued_over_rfc2136(
        certbot_dns_venv: Path, dns_cli: Cli, dns_ca: Pebble, bind: Bind,
        tmp_path: Path) -> None:
    creds = credentials(bind, tmp_path / "rfc2136.ini")
    dns_cli("certonly", "--dns-rfc2136", "--dns-rfc2136-credentials", str(creds),
            "-d", "back.example.test", "-d", "*.back.example.test")
    argv = [str(certbot_dns_venv / "bin" / "certbot"), "renew", "--force-renewal",
            "--dns-rfc2136-propagation-seconds", "1", "--no-random-sleep-on-renew",
            *dns_cli.dirs(), "-n"]
    proc = subprocess.run(argv, env=dns_ca.env(os.environ), capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    live = dns_cli.config_dir / "live" / "back.example.test"
    assert os.readlink(live / "cert.pem") == "../../archive/back.example.test/cert2.pem"
    assert acme_txt(bind) == []
