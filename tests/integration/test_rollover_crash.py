"""`update_account --rollover-key` killed or failing at each step never loses the account:
the next command finds it working, under one key the CA knows, with every renewal conf
pointing at it (RFC 8555 §7.3.5; the new key is on disk before the CA is told)."""

from __future__ import annotations

from pathlib import Path

import pytest

from certwright.core.storage.accounts import list_accounts
from tests.integration.conftest import Cli, standalone
from tests.integration.crashpoints import Crash, killed
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration
NAME = "roll.example.org"
A = "certwright.core.storage.accounts"
STEPS = [
    Crash(f"{A}:write_pending_key", "fail"),
    Crash(f"{A}:write_pending_key", "before"),
    Crash(f"{A}:write_pending_key", "after"),
    Crash("certwright.core.acme.client:AcmeClient.change_key", "after"),
    Crash(f"{A}:save_account", "fail"),
    Crash(f"{A}:save_account", "after"),
    Crash("certwright.core.rollover:write_renewal_conf", "fail"),
    Crash("certwright.core.rollover:repoint_lineages", "after"),
    Crash(f"{A}:delete_account", "before"),
    Crash(f"{A}:delete_account", "after"),
]


def account_dirs(cli: Cli) -> list[Path]:
    return sorted(p.parent for p in (cli.config_dir / "accounts").rglob("regr.json"))


@pytest.mark.parametrize("crash", STEPS, ids=lambda c: f"{c.where.split(':')[1]}-{c.when}")
def test_an_interrupted_rollover_keeps_the_account(
        cli: Cli, pebble: Pebble, crash: Crash) -> None:
    cli("certonly", *standalone(pebble), "-d", NAME)
    [before] = list_accounts(cli.config_dir, pebble.directory_url)
    proc = crash.run(cli, "update_account", "--rollover-key", account=False)
    if crash.when == "fail":
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr and "(simulated)" in proc.stderr, proc.stderr
    else:
        assert killed(proc), proc.stdout + proc.stderr
    shown = cli("show_account", account=False)  # the next start settles the rollover
    assert f"Account URL: {before.uri}" in shown.stdout, shown.stdout + shown.stderr
    [after] = list_accounts(cli.config_dir, pebble.directory_url)
    assert after.uri == before.uri
    [directory] = account_dirs(cli)
    assert directory.name == after.id
    assert not list((cli.config_dir / "accounts").rglob("*.pending"))
    conf = (cli.config_dir / "renewal" / f"{NAME}.conf").read_text()
    assert f"account = {after.id}" in conf
    cli("certonly", *standalone(pebble), "-d", NAME, "--force-renewal", account=False)
    assert account_dirs(cli) == [directory], "no new account was registered"
    # and a rollover goes through from there
    cli("update_account", "--rollover-key", account=False)
    [last] = list_accounts(cli.config_dir, pebble.directory_url)
    assert last.uri == before.uri and last.id != after.id


def test_parallel_renewals_settle_an_interrupted_rollover_once(
        cli: Cli, pebble: Pebble) -> None:
    names = [f"par{i}.example.org" for i in range(3)]
    for name in names:
        cli("certonly", *standalone(pebble), "-d", name)
    [before] = list_accounts(cli.config_dir, pebble.directory_url)
    crash = Crash("certwright.core.acme.client:AcmeClient.change_key", "after")
    assert killed(crash.run(cli, "update_account", "--rollover-key", account=False))
    proc = cli("renew", "--force-renewal", "--no-random-sleep-on-renew", "--jobs", "3",
               account=False)
    assert "3 renewed" in proc.stdout, proc.stdout + proc.stderr
    [after] = list_accounts(cli.config_dir, pebble.directory_url)
    assert after.uri == before.uri and after.id != before.id
    for name in names:
        conf = (cli.config_dir / "renewal" / f"{name}.conf").read_text()
        assert f"account = {after.id}" in conf
