"""ARI (RFC 9773) and profiles, through a local front that adds them to Pebble."""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Cli
from tests.integration.conftest import live_version as version
from tests.integration.conftest import standalone as shared_standalone
from tests.servers.acme_front import AcmeFront
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration
NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture
def front(pebble: Pebble, tmp_path: Path) -> Iterator[AcmeFront]:
    with AcmeFront(pebble, tmp_path / "front", profiles={"classic": "90 days",
                                                         "shortlived": "6 days"}) as f:
        yield f


class FrontCli(Cli):
    """Runs certwright against the front instead of Pebble itself."""

    def __init__(self, base: Path, ca: Pebble, front: AcmeFront) -> None:
        super().__init__(base, ca, extra_env=front.env(os.environ))
        self.front = front

    def __call__(self, *args: str, **kw):  # type: ignore[no-untyped-def]
        if "--server" not in args:
            args = (*args, "--server", self.front.directory_url)
        return super().__call__(*args, **kw)


def standalone(ca: Pebble) -> list[str]:
    return shared_standalone(ca, "--no-random-sleep-on-renew")


def test_ari_window_decides_and_renewal_carries_replaces(
        pebble: Pebble, front: AcmeFront, tmp_path: Path) -> None:
    from cryptography import x509

    from certwright.core.ari import cert_id

    cli = FrontCli(tmp_path, pebble, front)
    cli("certonly", *standalone(pebble)[:-1], "-d", "ari.example.org")
    cert = x509.load_pem_x509_certificate(
        (cli.config_dir / "live" / "ari.example.org" / "cert.pem").read_bytes())
    ident = cert_id(cert)
    # a window in the future: not due, and the answer is remembered (Retry-After)
    front.ari_window = (NOW + datetime.timedelta(days=5), NOW + datetime.timedelta(days=6))
    front.ari_retry_after = 3600
    assert "1 not due" in cli("renew", *standalone(pebble), account=False).stdout
    assert front.ari_requests == [ident]
    conf = (cli.config_dir / "renewal" / "ari.example.org.conf").read_text()
    assert "[acme_renewal_info]" in conf and "ari_retry_after" in conf
    cli("renew", *standalone(pebble), account=False)
    assert front.ari_requests == [ident], "not asked again before Retry-After"
    # the CA moves the window into the past (e.g. a mass revocation): renew now
    conf_path = cli.config_dir / "renewal" / "ari.example.org.conf"
    conf_path.write_text(conf_path.read_text().split("[acme_renewal_info]")[0])
    front.ari_window = (NOW - datetime.timedelta(hours=2), NOW - datetime.timedelta(hours=1))
    proc = cli("renew", *standalone(pebble), account=False)
    assert "1 renewed" in proc.stdout, proc.stdout + proc.stderr
    assert version(cli, "ari.example.org") == 2
    assert front.orders[-1].get("replaces") == ident


def test_a_window_that_opens_before_retry_after_is_kept(
        pebble: Pebble, front: AcmeFront, tmp_path: Path) -> None:
    cli = FrontCli(tmp_path, pebble, front)
    cli("certonly", *standalone(pebble)[:-1], "-d", "soon.example.org")
    now = datetime.datetime.now(datetime.UTC)
    front.ari_window = (now + datetime.timedelta(seconds=2), now + datetime.timedelta(seconds=3))
    front.ari_retry_after = 6 * 3600
    assert "1 not due" in cli("renew", *standalone(pebble), account=False).stdout
    asked = len(front.ari_requests)
    # 3.5 s later: the chosen moment has passed; Retry-After has not
    proc = cli("renew", *standalone(pebble), account=False, clock_offset=3.5)
    assert "1 renewed" in proc.stdout, proc.stdout + proc.stderr
    assert len(front.ari_requests) == asked, "the stored answer was used"
    # the renewed certificate has a window of its own: it is asked about, not the old one
    front.ari_window = (now + datetime.timedelta(days=5), now + datetime.timedelta(days=6))
    assert "1 not due" in cli("renew", *standalone(pebble), account=False).stdout
    assert len(front.ari_requests) == asked + 1 and front.ari_requests[-1] != front.ari_requests[0]


def test_ari_errors_are_not_fatal(pebble: Pebble, front: AcmeFront, tmp_path: Path) -> None:
    cli = FrontCli(tmp_path, pebble, front)
    cli("certonly", *standalone(pebble)[:-1], "-d", "arifail.example.org")
    front.ari_fail = True
    proc = cli("renew", *standalone(pebble), account=False)
    assert proc.returncode == 0 and "1 not due" in proc.stdout
    assert "ARI check for arifail.example.org failed" in proc.stderr


def test_profiles(pebble: Pebble, front: AcmeFront, tmp_path: Path) -> None:
    cli = FrontCli(tmp_path, pebble, front)
    cli("certonly", *standalone(pebble)[:-1], "-d", "prof.example.org",
        "--preferred-profile", "shortlived")
    assert front.orders[-1].get("profile") == "shortlived"
    conf = (cli.config_dir / "renewal" / "prof.example.org.conf").read_text()
    assert "preferred_profile = shortlived" in conf
    cli("certonly", *standalone(pebble)[:-1], "-d", "prof2.example.org",
        "--preferred-profile", "nosuch")
    assert "profile" not in front.orders[-1], "falls back to the CA's default"
    proc = cli("certonly", *standalone(pebble)[:-1], "-d", "prof3.example.org",
               "--required-profile", "nosuch", check=False)
    assert proc.returncode != 0 and "does not offer the profile 'nosuch'" in proc.stderr
    cli("renew", "--force-renewal", *standalone(pebble), "--cert-name", "prof.example.org",
        account=False)
    assert front.orders[-1].get("profile") == "shortlived", "the profile is kept for renewal"


def test_a_profile_given_to_renew_replaces_the_stored_one(
        front: AcmeFront, pebble: Pebble, tmp_path: Path) -> None:
    cli = FrontCli(tmp_path, pebble, front)
    cli("certonly", *standalone(pebble), "-d", "pr.example.org",
        "--required-profile", "shortlived")
    cli("renew", "--force-renewal", "--no-random-sleep-on-renew",
        "--preferred-profile", "classic", account=False)
    assert front.orders[-1].get("profile") == "classic", front.orders[-1]
    text = (cli.config_dir / "renewal" / "pr.example.org.conf").read_text()
    assert "preferred_profile = classic" in text and "required_profile" not in text
    proc = cli("certonly", *standalone(pebble), "-d", "pr2.example.org",
               "--required-profile", "classic", "--preferred-profile", "classic",
               check=False)
    assert "not both" in proc.stderr and proc.returncode == 1


def test_a_rate_limited_order_is_waited_out_or_reported_with_its_time(
        pebble: Pebble, front: AcmeFront, tmp_path: Path) -> None:
    cli = FrontCli(tmp_path, pebble, front)
    front.rate_limit_orders = ["1"]
    started = time.monotonic()
    cli("certonly", *standalone(pebble)[:-1], "-d", "limited.example.org")
    assert time.monotonic() - started >= 1.0
    assert [o["identifiers"][0]["value"] for o in front.orders] == ["limited.example.org"] * 2
    assert (cli.config_dir / "live" / "limited.example.org" / "cert.pem").exists()

    front.rate_limit_orders = ["7200"]
    failed = cli("certonly", *standalone(pebble)[:-1], "-d", "later.example.org", check=False)
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if "rateLimited" in line]
    assert len(errors) == 1, failed.stderr
    assert "retry after 7200 s, at " in errors[0] and " UTC" in errors[0]
    assert not (cli.config_dir / "live" / "later.example.org").exists()


def test_certonly_and_renew_agree_on_what_is_due(
        pebble: Pebble, front: AcmeFront, tmp_path: Path) -> None:
    """One rule: inside the CA's ARI window, or within renew_before_expiry, `certonly` for
    the same names renews, as `renew` does; outside both, neither does."""
    cli = FrontCli(tmp_path, pebble, front)
    name = "agree.example.org"
    args = (*standalone(pebble)[:-1], "-d", name)
    cli("certonly", *args)
    front.ari_window = (NOW + datetime.timedelta(days=5), NOW + datetime.timedelta(days=6))
    assert "not yet due" in cli("certonly", *args).stdout
    assert "1 not due" in cli("renew", *standalone(pebble), account=False).stdout
    assert version(cli, name) == 1
    # the CA's window has opened (for every certificate it issued); the answer stored
    # until its Retry-After is dropped, as a later run would find it
    conf = cli.config_dir / "renewal" / f"{name}.conf"
    conf.write_text(conf.read_text().split("[acme_renewal_info]")[0])
    front.ari_window = (NOW - datetime.timedelta(hours=2), NOW - datetime.timedelta(hours=1))
    proc = cli("certonly", *args)
    assert "not yet due" not in proc.stdout and version(cli, name) == 2, proc.stdout
    assert "1 renewed" in cli("renew", *standalone(pebble), account=False).stdout
    assert version(cli, name) == 3
    # no window yet, but renew_before_expiry says it is due
    front.ari_window = (NOW + datetime.timedelta(days=5), NOW + datetime.timedelta(days=6))
    conf.write_text("renew_before_expiry = 100 days\n" + conf.read_text())
    proc = cli("certonly", *args)
    assert "not yet due" not in proc.stdout and version(cli, name) == 4, proc.stdout
    assert "1 renewed" in cli("renew", *standalone(pebble), account=False).stdout
    assert version(cli, name) == 5


def test_an_unreachable_ca_is_not_remembered_as_one_without_ari(
        pebble: Pebble, front: AcmeFront, tmp_path: Path) -> None:
    cli = FrontCli(tmp_path, pebble, front)
    cli("certonly", *standalone(pebble)[:-1], "-d", "down.example.org")
    front.unreachable = True
    proc = cli("renew", *standalone(pebble), account=False)
    assert proc.returncode == 0 and "1 not due" in proc.stdout, proc.stdout + proc.stderr
    assert front.ari_requests == []
    # back a minute later, with a window already open: the next run asks, and renews
    front.unreachable = False
    front.ari_window = (NOW - datetime.timedelta(hours=2), NOW - datetime.timedelta(hours=1))
    proc = cli("renew", *standalone(pebble), account=False)
    assert "1 renewed" in proc.stdout, proc.stdout + proc.stderr
    assert len(front.ari_requests) == 1 and version(cli, "down.example.org") == 2


def test_renew_jobs_fetches_the_directory_once_per_ca(
        pebble: Pebble, front: AcmeFront, tmp_path: Path) -> None:
    """Every order, account lookup and ARI request of one run shares one transport per
    CA: one directory fetch, one nonce pool (nonces from answers are used again)."""
    from urllib.parse import urlsplit

    cli = FrontCli(tmp_path, pebble, front)
    count = 6
    for i in range(count):
        cli("certonly", *standalone(pebble)[:-1], "-d", f"shared{i}.example.org")
    front.requests_log.clear()
    proc = cli("renew", "--force-renewal", "--jobs", "4", *standalone(pebble),
               account=False)
    assert f"{count} renewed" in proc.stdout, proc.stdout + proc.stderr
    log = list(front.requests_log)
    directory = urlsplit(front.directory_url).path
    new_nonce = urlsplit(front.directory()["newNonce"]).path
    fetched = log.count(("GET", directory))
    heads = log.count(("HEAD", new_nonce))
    print(f"{count} lineages, --jobs 4: {len(log)} requests, {fetched} directory GETs, "
          f"{heads} newNonce HEADs")
    assert fetched == 1, log
    assert heads <= 4, "at most one fresh nonce per worker thread"
