"""Crashes and full disks while saving: the store is left either as it was or complete
(with whatever is still owed, such as deploy hooks, done by the next run)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from tests.integration.conftest import Cli, live_version, standalone
from tests.integration.crashpoints import Crash, killed
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration
NAME = "crash.example.org"
RENEW = ("renew", "--no-random-sleep-on-renew")


def version(cli: Cli, name: str = NAME) -> int:
    return live_version(cli, name)


def with_deploy_hook(cli: Cli, pebble: Pebble, tmp_path: Path) -> Path:
    log = tmp_path / "deploy.log"
    hook = tmp_path / "deploy.sh"
    hook.write_text(f'#!/bin/sh\necho "$RENEWED_LINEAGE" >> {log}\n')
    hook.chmod(0o755)
    cli("certonly", *standalone(pebble), "-d", NAME, "--deploy-hook", str(hook))
    log.write_text("")
    return log


def test_a_full_disk_writing_the_renewal_conf_leaves_it_not_renewed(
        cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    log = with_deploy_hook(cli, pebble, tmp_path)
    conf = cli.config_dir / "renewal" / f"{NAME}.conf"
    # a conf bigger than any certificate file: only its rewrite hits the file size limit
    conf.write_text(textwrap.indent("x" * 6000, "# ") + "\n" + conf.read_text())
    before = cli.snapshot()
    proc = cli(*RENEW, "--force-renewal", account=False, check=False, max_file_size=5000)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "File too large" in proc.stdout and str(conf) in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert version(cli) == 1, "not renewed: live/ still serves the previous certificate"
    assert cli.snapshot() == before
    assert log.read_text() == ""
    cli(*RENEW, "--force-renewal", account=False)
    assert version(cli) == 2 and log.read_text().splitlines() == [
        str(cli.config_dir / "live" / NAME)]


def test_killed_after_live_switched_runs_the_deploy_hooks_next_time(
        cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    log = with_deploy_hook(cli, pebble, tmp_path)
    crash = Crash("certwright.core.storage.lineage:Lineage._switch_live", "after")
    assert killed(crash.run(cli, *RENEW, "--force-renewal", account=False))
    assert version(cli) == 2 and log.read_text() == "", "renewed, hooks pending"
    proc = cli(*RENEW, account=False)  # not due: the hooks it owes run all the same
    assert log.read_text().splitlines() == [str(cli.config_dir / "live" / NAME)], proc.stdout
    assert "deploy hooks" in proc.stdout, proc.stdout
    cli(*RENEW, account=False)
    assert len(log.read_text().splitlines()) == 1, "run once, not again"


def test_killed_before_live_switched_runs_no_hooks_next_time(
        cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    log = with_deploy_hook(cli, pebble, tmp_path)
    crash = Crash("certwright.core.storage.lineage:Lineage._switch_live", "before")
    assert killed(crash.run(cli, *RENEW, "--force-renewal", account=False))
    assert version(cli) == 1
    proc = cli(*RENEW, account=False)
    assert log.read_text() == "" and "not due" in proc.stdout, proc.stdout


L = "certwright.core.storage.store"  # a lineage's first save
FIRST_SAVE_STEPS = [
    Crash(f"{L}:_claim_name", "after"),
    Crash(f"{L}:write_renewal_conf", "after"),       # the pending conf
    *(Crash(f"{L}:atomic_write", "after", n) for n in (1, 2, 3, 4)),  # the archive files
    Crash(f"{L}:_build_live_dir", "after"),
    Crash(f"{L}:_install_live_dir", "before"),
    Crash(f"{L}:_install_live_dir", "after"),
    Crash(f"{L}:_publish_conf", "before"),
    Crash(f"{L}:_publish_conf", "after"),
]


@pytest.mark.parametrize("crash", FIRST_SAVE_STEPS,
                         ids=lambda c: f"{c.where.split(':')[1]}-{c.when}-{c.count}")
def test_killed_during_a_first_save_the_same_command_makes_one_lineage(
        cli: Cli, pebble: Pebble, crash: Crash) -> None:
    from certwright.core.storage.lineage import list_lineages

    args = ("certonly", *standalone(pebble), "-d", NAME)
    proc = crash.run(cli, *args)
    assert killed(proc), proc.stdout + proc.stderr
    again = cli(*args)
    assert "Traceback" not in again.stdout + again.stderr
    [lineage] = list_lineages(cli.config_dir)
    assert lineage.name == NAME and lineage.error is None
    assert lineage.is_consistent() and lineage.names == [NAME]
    for top in ("live", "archive", "renewal"):
        entries = sorted(os.listdir(cli.config_dir / top))
        assert entries == sorted({"live": ["README", NAME], "archive": [NAME],
                                  "renewal": [f"{NAME}.conf"]}[top]), entries
    listing = cli("certificates", account=False).stdout
    assert f"Certificate Name: {NAME}" in listing
    renewed = cli(*RENEW, account=False).stdout  # a finished lineage's hooks are owed
    assert "not due" in renewed or "deploy hooks had not run and ran now" in renewed, renewed


def test_delete_drops_the_hooks_a_lineage_was_owed(
        cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    log = with_deploy_hook(cli, pebble, tmp_path)
    cli(*RENEW, "--force-renewal", account=False)
    crash = Crash("certwright.core.storage.lineage:Lineage._switch_live", "after")
    assert killed(crash.run(cli, *RENEW, "--force-renewal", account=False))
    assert version(cli) == 3
    cli("delete", "--cert-name", NAME, account=False)
    cli("certonly", *standalone(pebble), "-d", NAME,  # a new lineage, at version 1
        "--deploy-hook", str(tmp_path / "deploy.sh"))
    log.write_text("")
    cli(*RENEW, account=False)
    assert log.read_text() == "", "the deleted lineage's owed hooks are not run for the new one"


@pytest.mark.parametrize("first", [True, False], ids=["first-save", "certonly-renewal"])
def test_certonly_killed_before_its_deploy_hooks_leaves_them_to_renew(
        cli: Cli, pebble: Pebble, tmp_path: Path, first: bool) -> None:
    log = tmp_path / "deploy.log"
    hook = tmp_path / "deploy.sh"
    hook.write_text(f'#!/bin/sh\necho "$RENEWED_LINEAGE" >> {log}\n')
    hook.chmod(0o755)
    args = ["certonly", *standalone(pebble), "-d", NAME, "--deploy-hook", str(hook)]
    if not first:
        cli(*args)
        args.append("--force-renewal")
    log.write_text("")
    crash = Crash("certwright.core.verbs.issue:HookRunner.deploy", "before")
    assert killed(crash.run(cli, *args))
    assert version(cli) == (1 if first else 2) and log.read_text() == ""
    cli(*RENEW, account=False)
    assert log.read_text().splitlines() == [str(cli.config_dir / "live" / NAME)]
    cli(*RENEW, account=False)
    assert len(log.read_text().splitlines()) == 1


def test_owed_hooks_survive_a_failed_renewal_of_the_same_lineage(
        cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    log = with_deploy_hook(cli, pebble, tmp_path)
    crash = Crash("certwright.core.storage.lineage:Lineage._switch_live", "after")
    assert killed(crash.run(cli, *RENEW, "--force-renewal", account=False))
    failing = Crash("certwright.core.storage.lineage:Lineage.save_successor", "fail")
    proc = failing.run(cli, *RENEW, "--force-renewal", account=False)
    assert proc.returncode == 1 and version(cli) == 2 and log.read_text() == ""
    cli(*RENEW, account=False)  # not due: the hooks owed since the first run are run
    assert log.read_text().splitlines() == [str(cli.config_dir / "live" / NAME)]


def test_owed_hooks_survive_a_failed_certonly_of_the_same_lineage(
        cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    log = with_deploy_hook(cli, pebble, tmp_path)
    crash = Crash("certwright.core.storage.lineage:Lineage._switch_live", "after")
    assert killed(crash.run(cli, *RENEW, "--force-renewal", account=False))
    failing = Crash("certwright.core.storage.lineage:Lineage.save_successor", "fail")
    proc = failing.run(cli, "certonly", *standalone(pebble), "-d", NAME, "--force-renewal")
    assert proc.returncode == 1 and version(cli) == 2 and log.read_text() == ""
    cli(*RENEW, account=False)
    assert log.read_text().splitlines() == [str(cli.config_dir / "live" / NAME)]
