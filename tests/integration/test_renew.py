"""`renew` against a real Pebble issuing short-lived certificates."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.integration.conftest import Cli, standalone
from tests.integration.conftest import live_version as version
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration


@pytest.fixture
def short_ca(pebble_factory) -> Pebble:
    """Certificates valid for 30 s: due (half the lifetime left) after 15 s."""
    ca: Pebble = pebble_factory(validity_seconds=30)
    return ca


def _hook(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


def test_renew_uses_stored_options_and_runs_hooks(pebble: Pebble, tmp_path: Path) -> None:
    cli = Cli(tmp_path, pebble)
    log = tmp_path / "hooks.log"
    deploy = _hook(tmp_path / "deploy.sh",
                   f'echo "deploy $RENEWED_LINEAGE $RENEWED_DOMAINS" >> {log}\n')
    cli("certonly", *standalone(pebble), "-d", "r1.example.org", "-d", "www.r1.example.org",
        "--deploy-hook", deploy, "--key-type", "rsa")
    cli("certonly", *standalone(pebble), "-d", "r2.example.org")
    hooks_dir = cli.config_dir / "renewal-hooks"
    for kind in ("pre", "deploy", "post"):
        (hooks_dir / kind).mkdir(parents=True, exist_ok=True)
        _hook(hooks_dir / kind / "10-log", f'echo "dir-{kind} $RENEWED_DOMAINS" >> {log}\n')
    log.write_text("")
    proc = cli("renew", "--no-random-sleep-on-renew", "--force-renewal",
               "--pre-hook", f"echo pre >> {log}", "--post-hook",
               f'echo "post [$RENEWED_DOMAINS] [$FAILED_DOMAINS]" >> {log}', account=False)
    assert "2 renewed" in proc.stdout
    assert version(cli, "r1.example.org") == 2 and version(cli, "r2.example.org") == 2
    lines = log.read_text().splitlines()
    assert lines.count("pre") == 1 and lines.count("dir-pre ") == 1
    live = cli.config_dir / "live" / "r1.example.org"
    assert f"deploy {live} r1.example.org www.r1.example.org" in lines
    assert sum(line.startswith("dir-deploy") for line in lines) == 2
    post = [line for line in lines if line.startswith("post")]
    assert len(post) == 1 and "r1.example.org" in post[0] and "r2.example.org" in post[0]
    assert lines[-1].startswith("dir-post") or lines[-2].startswith("dir-post")
    conf = (cli.config_dir / "renewal" / "r1.example.org.conf").read_text()
    assert "key_type = rsa" in conf and f"renew_hook = {deploy}" in conf
    assert "pre_hook" in conf, "options given to renew are saved, like Certbot"


def test_stored_pre_and_post_hooks_run_on_renew_and_dry_run(
        pebble: Pebble, tmp_path: Path) -> None:
    cli = Cli(tmp_path, pebble)
    log = tmp_path / "hooks.log"
    cli("certonly", *standalone(pebble), "-d", "s1.example.org",
        "--pre-hook", f"echo pre-s >> {log}", "--post-hook", f"echo post-s >> {log}",
        "--deploy-hook", f"echo deploy-s >> {log}")
    cli("certonly", *standalone(pebble), "-d", "s2.example.org",
        "--pre-hook", f"echo pre-s >> {log}", "--post-hook", f"echo post-t >> {log}")
    log.write_text("")
    cli("renew", "--no-random-sleep-on-renew", "--force-renewal", account=False)
    lines = log.read_text().splitlines()
    # each distinct stored command once; pre before, post after the renewals
    assert lines == ["pre-s", "deploy-s", "post-s", "post-t"], lines
    log.write_text("")
    cli("renew", "--dry-run", "--no-random-sleep-on-renew", account=False)
    assert log.read_text().splitlines() == ["pre-s", "post-s", "post-t"]  # no deploy hook


def test_nothing_due_is_quick_and_runs_no_hooks(cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    cli("certonly", *standalone(pebble), "-d", "quiet.example.org")
    marker = tmp_path / "pre-ran"
    proc = cli("renew", "--pre-hook", f"touch {marker}", account=False)
    assert "1 not due for renewal" in proc.stdout
    assert not marker.exists()
    assert version(cli, "quiet.example.org") == 1


def test_due_certificates_are_renewed_in_parallel(short_ca: Pebble, tmp_path: Path) -> None:
    cli = Cli(tmp_path, short_ca)
    for i in range(4):
        cli("certonly", *standalone(short_ca), "-d", f"p{i}.example.org")
    assert "4 not due" in cli("renew", account=False).stdout
    proc = cli("renew", "--jobs", "4", "--no-random-sleep-on-renew", account=False,
               clock_offset=15.5)  # half of the 30 s lifetime has passed
    assert "4 renewed" in proc.stdout, proc.stdout
    assert all(version(cli, f"p{i}.example.org") == 2 for i in range(4))


def test_failure_is_reported_and_others_continue(pebble: Pebble, tmp_path: Path,
                                                 www_root: Path) -> None:
    cli = Cli(tmp_path, pebble)
    cli("certonly", *standalone(pebble), "-d", "good.example.org")
    cli("certonly", *standalone(pebble), "-d", "bad.example.org")
    conf = cli.config_dir / "renewal" / "bad.example.org.conf"
    conf.write_text(conf.read_text().replace("authenticator = standalone",
                                             "authenticator = nosuchplugin"))
    proc = cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False,
               check=False)
    assert proc.returncode == 1
    assert "1 renewed" in proc.stdout and "good.example.org" in proc.stdout
    assert "bad.example.org: unknown authenticator 'nosuchplugin'" in proc.stdout
    assert version(cli, "good.example.org") == 2 and version(cli, "bad.example.org") == 1


def test_a_lineage_with_missing_files_does_not_stop_the_others(
        pebble: Pebble, tmp_path: Path) -> None:
    cli = Cli(tmp_path, pebble)
    log = tmp_path / "post.log"
    for name in ("z1", "z2", "z3"):
        cli("certonly", *standalone(pebble), "-d", f"{name}.example.org")
    for path in (cli.config_dir / "archive" / "z1.example.org").iterdir():
        path.unlink()  # removed by hand
    proc = cli("renew", "--force-renewal", "--no-random-sleep-on-renew", "--post-hook",
               f'echo "[$RENEWED_DOMAINS]" >> {log}', account=False, check=False)
    assert proc.returncode == 1
    assert "2 renewed" in proc.stdout and "z1.example.org:" in proc.stdout, proc.stdout
    assert version(cli, "z2.example.org") == 2 and version(cli, "z3.example.org") == 2
    assert "z2.example.org" in log.read_text()  # the post hook ran


def test_stored_reuse_key_lasts_and_autorenew_off_is_kept(
        cli: Cli, pebble: Pebble) -> None:
    cli("certonly", *standalone(pebble), "-d", "rk.example.org", "--reuse-key")
    live = cli.config_dir / "live" / "rk.example.org" / "privkey.pem"
    key = live.read_bytes()
    conf = cli.config_dir / "renewal" / "rk.example.org.conf"
    for _ in range(2):
        cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False)
        assert live.read_bytes() == key
        assert "reuse_key = True" in conf.read_text()
    cli("renew", "--force-renewal", "--no-random-sleep-on-renew", "--new-key", account=False)
    assert live.read_bytes() != key and "reuse_key = True" in conf.read_text()
    # an operator's switch: "no" counts as off (configobj's as_bool) and survives renewals
    conf.write_text(conf.read_text().replace("[renewalparams]\n",
                                             "[renewalparams]\nautorenew = no\n"))
    cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False)
    assert "autorenew = no" in conf.read_text()


def test_dry_run_changes_nothing(cli: Cli, pebble: Pebble) -> None:
    cli("certonly", *standalone(pebble), "-d", "dry.example.org")
    before = cli.snapshot()
    proc = cli("renew", "--dry-run", account=False)
    assert "renewed in a dry run" in proc.stdout
    assert cli.snapshot() == before


def test_second_run_waits_for_the_lock(cli: Cli, pebble: Pebble) -> None:
    from certwright.core.storage.lock import lock

    cli("certonly", *standalone(pebble), "-d", "lock.example.org")
    with lock(cli.config_dir / ".certwright.lock"):
        proc = cli("renew", "--lock-timeout", "0", account=False, check=False)
    assert proc.returncode != 0
    assert "holds the lock" in proc.stderr


def test_certbot_lock_is_respected(cli: Cli, pebble: Pebble) -> None:
    import fcntl

    cli("certonly", *standalone(pebble), "-d", "cblock.example.org")
    with open(cli.config_dir / ".certbot.lock", "a+") as held:
        fcntl.lockf(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running Certbot would
        proc = cli("renew", "--lock-timeout", "0", account=False, check=False)
    assert proc.returncode != 0 and "Certbot" in proc.stderr
    assert cli("renew", account=False).returncode == 0


def test_parallel_renewals_sharing_a_web_root(cli: Cli, web, www_root: Path) -> None:
    for i in range(6):
        cli("certonly", "--webroot", "-w", str(www_root), "-d", f"w{i}.example.org")
    proc = cli("renew", "--force-renewal", "--jobs", "6", "--no-random-sleep-on-renew",
               account=False)
    assert "6 renewed" in proc.stdout, proc.stdout + proc.stderr
    assert not (www_root / ".well-known").exists(), "the last one out removes what was made"
