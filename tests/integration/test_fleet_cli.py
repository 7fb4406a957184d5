"""``certwright fleet``: the TOML inventory, --dry-run, status, schema, accounts per
customer, --max-new-orders, fleet.ini, the lock and the bind password's handling."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.fleet_env import CERTWRIGHT, FleetEnv, fleet, slapd
from tests.integration.test_fleet import _verify

pytestmark = pytest.mark.integration
__all__ = ["fleet", "slapd"]  # fixtures


def _toml(env: FleetEnv, path: Path, names: list[str]) -> list[str]:
    lines = []
    for i, name in enumerate(names):
        lines += ["[[domain]]", f'names = ["{name}", "www.{name}"]',
                  f'webroot = "{env.web.site(name)}"', f'customer = "k{i % 2}"',
                  f'contact = "ops@k{i % 2}.example.org"', ""]
    path.write_text("\n".join(lines))
    return names


def _toml_args(env: FleetEnv, path: Path) -> list[str]:
    return ["--inventory", str(path), "--server", env.front.directory_url, "--agree-tos",
            "-m", "hostmaster@example.org", "--precheck-dns", f"127.0.0.1:{env.ca.dns_port}",
            "--precheck-http-port", str(env.ca.http_port), "--fleet-address", "127.0.0.1"]


def _run(env: FleetEnv, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*env.argv(*args)], env=env.env(), capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def test_toml_dry_run_then_sync_per_customer_then_status(fleet: FleetEnv,
                                                         tmp_path: Path) -> None:
    inventory = tmp_path / "domains.toml"
    names = _toml(fleet, inventory, ["t1.example.org", "t2.example.org", "t3.example.org"])
    dry = _run(fleet, "sync", *_toml_args(fleet, inventory), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Dry run" in dry.stdout and "t1.example.org" in dry.stdout
    assert fleet.front.requests_log == []  # no CA contacted
    assert not fleet.config_dir.exists()  # nothing written
    done = _run(fleet, "sync", *_toml_args(fleet, inventory), "--account-per", "customer",
                "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["new"] == 3
    for name in names:
        _verify(fleet, name)
    accounts = json.loads((fleet.config_dir / "fleet" / "accounts.json").read_text())
    assert sorted(next(iter(accounts.values()))) == ["k0", "k1"]
    regrs = [p.read_text() for p in (fleet.config_dir / "accounts").rglob("regr.json")]
    assert len(regrs) == 2  # one per customer, with the customer's contact
    assert sorted("ops@k0" in r for r in regrs) == [False, True]
    assert sorted("ops@k1" in r for r in regrs) == [False, True]
    status = _run(fleet, "status", "--json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert set(shown) == {"domains", "summary"}
    assert {d["name"] for d in shown["domains"]} == set(names)
    assert set(shown["domains"][0]) >= {"name", "dn", "state", "not_after", "error",
                                        "next_attempt"}
    assert all(d["state"] == "valid" for d in shown["domains"])


def test_max_new_orders_and_fleet_ini(fleet: FleetEnv, tmp_path: Path) -> None:
    inventory = tmp_path / "domains.toml"
    _toml(fleet, inventory, [f"m{i}.example.org" for i in range(5)])
    ini = tmp_path / "fleet.ini"
    ini.write_text("# the hoster's settings\nmax-new-orders = 2\njobs = 2\nno-such-key = 1\n")
    first = _run(fleet, "sync", *_toml_args(fleet, inventory), "--fleet-config", str(ini),
                 "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)["summary"]
    assert (summary["new"], summary["deferred"]) == (2, 3)
    assert len(fleet.front.orders) == 2
    assert "no-such-key" in first.stderr  # warned about, not fatal
    second = _run(fleet, "sync", *_toml_args(fleet, inventory), "--json")
    assert json.loads(second.stdout)["summary"]["new"] == 3


def test_bad_toml_entry_is_named_and_others_go_on(fleet: FleetEnv, tmp_path: Path) -> None:
    inventory = tmp_path / "domains.toml"
    _toml(fleet, inventory, ["ok.example.org", "fine.example.org"])
    with inventory.open("a") as out:
        out.write('[[domain]]\nnames = ["bad name.example.org"]\nwebroot = "/srv"\n')
    proc = _run(fleet, "sync", *_toml_args(fleet, inventory))
    assert proc.returncode == 1
    assert f"{inventory}: domain #3" in proc.stdout + proc.stderr
    live = fleet.config_dir / "live" / "ok.example.org" / "cert.pem"
    assert live.exists()
    # a typo in a listed domain's entry keeps it from renewal, never deletes its lineage
    inventory.write_text(inventory.read_text().replace('webroot = "/', 'webroot = "', 1))
    proc = _run(fleet, "sync", *_toml_args(fleet, inventory), "--json")
    assert proc.returncode == 1
    assert "absolute path" in proc.stdout and live.exists()
    assert json.loads(proc.stdout)["summary"]["delete"] == 0
    broken = tmp_path / "broken.toml"
    broken.write_text("[[domain]\n")
    proc = _run(fleet, "sync", *_toml_args(fleet, broken))
    assert proc.returncode == 1 and f"{broken}: " in proc.stderr
    assert "line 1" in proc.stderr


def test_the_lock_keeps_two_syncs_apart(fleet: FleetEnv, tmp_path: Path) -> None:
    from certwright.core.storage.lock import store_lock

    inventory = tmp_path / "domains.toml"
    _toml(fleet, inventory, ["l1.example.org"])
    fleet.config_dir.mkdir(parents=True)
    with store_lock(fleet.config_dir, 0):
        proc = _run(fleet, "sync", *_toml_args(fleet, inventory))
    assert proc.returncode != 0 and "lock" in proc.stderr
    assert fleet.front.requests_log == []


def test_bind_password_only_from_a_file_and_never_shown(fleet: FleetEnv) -> None:
    fleet.add_sites(1, 1)
    proc = _run(fleet, "sync", f"--bind-password={fleet.ldap.password}")  # may start with -
    assert proc.returncode == 2 and "--bind-password-file" in proc.stderr
    assert fleet.ldap.password not in proc.stderr
    code, out = fleet.sync_json("-vv")
    assert code == 0, out
    logs = (fleet.base / "logs" / "certwright.log").read_text()
    assert fleet.ldap.password not in logs


def test_ldaps_and_plain_ldap_refused_without_tls(fleet: FleetEnv) -> None:
    fleet.add_sites(1, 1)
    args = fleet.sync_args()
    args[args.index("--ldap-url") + 1] = fleet.ldap.ldaps_url
    proc = subprocess.run(fleet.argv("sync", *args, "--json"), env=fleet.env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    bad = fleet.sync_args()
    bad.remove("--ldap-ca-file")
    bad.remove(str(fleet.ldap.ca_file))
    proc = subprocess.run(fleet.argv("sync", *bad), env=fleet.env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1 and "StartTLS failed" in proc.stderr
    assert "--ldap-ca-file" in proc.stderr
    plain = subprocess.run(fleet.argv("sync", *bad, "--ldap-insecure"), env=fleet.env(),
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr


def test_schema_command_prints_what_slapd_loads() -> None:
    from certwright.core.fleet import schema

    ldif = subprocess.run([CERTWRIGHT, "fleet", "schema"], capture_output=True, text=True,
                          check=True).stdout
    assert ldif == schema.ldif()
    classic = subprocess.run([CERTWRIGHT, "fleet", "schema", "--format", "schema",
                              "--oid-base", "1.3.6.1.4.1.99999"], capture_output=True,
                             text=True, check=True).stdout
    assert "objectclass ( 1.3.6.1.4.1.99999.2.1 NAME 'certwrightDomain'" in classic
    bad = subprocess.run([CERTWRIGHT, "fleet", "schema", "--oid-base", "x.y"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "numeric OID" in bad.stderr


def test_a_page_larger_than_the_server_allows_is_a_clear_error(fleet: FleetEnv) -> None:
    fleet.add_sites(3, 1)
    proc = _run(fleet, "sync", *fleet.sync_args(), "--ldap-page-size", "200")
    assert proc.returncode == 1
    assert "adminLimitExceeded" in proc.stderr and "--ldap-page-size" in proc.stderr


def test_fleet_lineages_are_ordinary_ones_for_certificates_and_renew(fleet: FleetEnv,
                                                                    tmp_path: Path) -> None:
    inventory = tmp_path / "domains.toml"
    _toml(fleet, inventory, ["r1.example.org"])
    assert _run(fleet, "sync", *_toml_args(fleet, inventory)).returncode == 0
    dirs = fleet.argv("status")[3:9]  # --config-dir/--work-dir/--logs-dir and values
    listed = subprocess.run([CERTWRIGHT, "certificates", *dirs], env=fleet.env(),
                            capture_output=True, text=True, timeout=60)
    assert "r1.example.org" in listed.stdout and "www.r1.example.org" in listed.stdout
    renewed = subprocess.run([CERTWRIGHT, "renew", "--force-renewal", "-n",
                              "--no-random-sleep-on-renew", "--cert-name", "r1.example.org",
                              *dirs], env=fleet.env(), capture_output=True, text=True,
                             timeout=120)
    assert renewed.returncode == 0, renewed.stdout + renewed.stderr
    assert (fleet.config_dir / "archive" / "r1.example.org" / "cert2.pem").exists()
    again = _run(fleet, "sync", *_toml_args(fleet, inventory), "--json")
    assert json.loads(again.stdout)["summary"]["keep"] == 1  # the fleet takes it as it is
