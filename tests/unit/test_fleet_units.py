"""The fleet's pure parts: lineage names, entries refused with their place named, the
backoff, the write-back's difference, the pre-check's redirect rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from certwright.core.errors import ConfigError
from certwright.core.fleet.inventory import TomlInventory
from certwright.core.fleet.model import lineage_name, make_domain
from certwright.core.fleet.precheck import PrecheckOptions, _redirect_refused
from certwright.core.fleet.state import DomainState, FleetStore
from certwright.core.fleet.writeback import changes_for, desired


def test_lineage_is_named_by_the_shortest_name_ties_lexically() -> None:
    assert lineage_name(["www.example.org", "example.org", "a.example.org"]) == "example.org"
    assert lineage_name(["bb.example", "ab.example", "www.ab.example"]) == "ab.example"
    one = make_domain(["WWW.Example.org", "example.org."], "x", webroot="/srv", contact=None,
                      customer=None)
    other = make_domain(["example.org", "www.example.org"], "x", webroot="/srv",
                        contact=None, customer=None)
    assert one == other and one.name == "example.org"


@pytest.mark.parametrize(("names", "webroot", "needle"), [
    (["bad name.example.org"], "/srv", "bad name"),
    (["*.example.org"], "/srv", "wildcards"),
    (["192.0.2.1"], "/srv", "IP addresses"),
    ([], "/srv", "no domain name"),
    (["example.org"], "relative/dir", "absolute path"),
])
def test_bad_entries_are_refused_naming_the_entry(names: list[str], webroot: str,
                                                  needle: str) -> None:
    with pytest.raises(ConfigError, match="cn=x,dc=test") as caught:
        make_domain(names, "cn=x,dc=test", webroot=webroot, contact=None, customer=None)
    assert needle in str(caught.value)


def test_toml_bad_field_names_file_and_entry(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text('[[domain]]\nnames = ["a.example"]\nwebroot = "/srv"\n\n'
                    '[[domain]]\nnames = ["b.example"]\nwebroot = 7\n\n'
                    '[[domain]]\nnames = ["c.example"]\nwebrot = "/srv"\n')
    listing = TomlInventory(path).read()
    assert [d.name for d in listing.domains] == ["a.example"]
    assert [b.error for b in listing.bad] == [
        f"{path}: domain #2: field 'webroot' must be a string",
        f"{path}: domain #3: unknown field 'webrot'"]
    path.write_text("[[domain]\n")
    with pytest.raises(ConfigError, match=f"{path}: .*line 1"):
        TomlInventory(path).read()


def test_backoff_grows_and_is_capped_and_survives_a_reload(tmp_path: Path) -> None:
    state = DomainState("a.example", ["a.example"])
    waits = []
    for _ in range(5):
        state.failed("failed", "boom\nsecond line", 1000.0, base=60, maximum=300)
        assert state.next_attempt is not None
        waits.append(state.next_attempt - 1000.0)
    assert waits == [60, 120, 240, 300, 300]
    assert state.error == "boom second line"
    store = FleetStore(tmp_path)
    store.save_state(state)
    assert store.states()["a.example"].failures == 5
    assert (store.domains_dir / "a.example.json").stat().st_mode & 0o777 == 0o644
    state.failed("failed", "rate limited", 1000.0, wait=30)
    assert state.next_attempt == 1030.0
    state.succeeded(2000.0, 1100.0, "a.example")
    assert (state.failures, state.next_attempt, state.error) == (0, None, None)


def test_write_back_changes_only_what_differs() -> None:
    state = DomainState("a.example", ["a.example"], state="valid", not_after=86400.0,
                        last_attempt=3600.0)
    want = desired(state, "PEM")
    assert want["certwrightNotAfter"] == ("19700102000000Z",)
    assert want["certwrightError"] == ()
    current = {k: v for k, v in want.items() if v}
    assert changes_for(want, current, ["device", "certwrightDomain"]) == {}
    changes = changes_for(want, {**current, "certwrightError": ("old",)}, ["device"])
    assert changes == {"certwrightError": [("delete", [])],
                       "objectClass": [("add", ["certwrightDomain"])]}


def test_redirects_followed_as_the_validator_does() -> None:
    opts = PrecheckOptions(http_port=8080, https_port=8443)
    assert _redirect_refused("https://a.example/x", opts) is None
    assert _redirect_refused("http://a.example:8080/x", opts) is None
    assert "port 8444" in str(_redirect_refused("https://a.example:8444/x", opts))
    assert "only http and https" in str(_redirect_refused("ftp://a.example/x", opts))


def test_order_records_are_private(tmp_path: Path) -> None:
    from certwright.core.fleet.state import OrderRecord

    store = FleetStore(tmp_path)
    store.save_order(OrderRecord("a.example", "https://ca/order/1", ["a.example"], "KEY",
                                 "https://ca/dir", "acct"))
    assert (store.orders_dir / "a.example.json").stat().st_mode & 0o777 == 0o600
    assert store.orders_dir.stat().st_mode & 0o777 == 0o700
    assert store.pending_orders() == {"a.example"}
    with pytest.raises(Exception, match="refusing"):
        store.load_order("../x")


def test_progress_is_one_live_line_on_a_terminal_and_a_log_otherwise() -> None:
    import io

    from certwright.core.fleet.report import Outcome, Progress

    ok = Outcome("new", "a.example", None, "valid", None, None, None)
    bad = Outcome("failed", "b.example", None, "failed", None, "boom", 5.0)
    screen = io.StringIO()
    live = Progress(lambda text: None, stream=screen, live=True)
    live.start(3)
    live.done(ok)
    live.done(bad)
    live.finish()
    assert screen.getvalue().startswith("\r1 done, 0 failed, 2 remaining, ")
    assert "\r1 done, 1 failed, 1 remaining, " in screen.getvalue()
    said: list[str] = []
    plain = Progress(said.append, stream=io.StringIO(), live=False)
    plain.start(2)
    plain.done(ok)
    plain.done(bad)
    assert said == ["a.example: new", "b.example: failed: boom"]


def test_status_counts_states_from_the_store(tmp_path: Path) -> None:
    import json

    from certwright.core.fleet.report import status_report

    store = FleetStore(tmp_path)
    store.save_state(DomainState("a.example", ["a.example"], state="valid", not_after=0.0))
    failed = DomainState("b.example", ["b.example"], dn="cn=b,dc=t")
    failed.failed("precheck-failed", "HTTP 401", 100.0)
    store.save_state(failed)
    report = status_report(store.states().values())
    data = json.loads(report.as_json())
    assert data["summary"]["valid"] == 1 and data["summary"]["precheck-failed"] == 1
    row = next(d for d in data["domains"] if d["name"] == "b.example")
    assert row == {"name": "b.example", "dn": "cn=b,dc=t", "state": "precheck-failed",
                   "not_after": None, "error": "HTTP 401", "action": "precheck-failed",
                   "next_attempt": "1970-01-01T01:01:40+00:00"}
    text = report.table(everything=True, actions=False)
    assert "ACTION" not in text and "HTTP 401" in text
    assert text.splitlines()[-1].startswith("2 domains: valid 1, precheck-failed 1")


def test_modes_are_explicit_under_umask_000(tmp_path: Path) -> None:
    import os

    from certwright.core.fleet import webroot
    from certwright.core.fleet.state import OrderRecord

    old = os.umask(0)
    try:
        store = FleetStore(tmp_path / "config")
        store.save_state(DomainState("a.example", ["a.example"]))
        store.save_order(OrderRecord("a.example", "u", ["a.example"], "KEY", "s", "a"))
        root = tmp_path / "www"
        root.mkdir(mode=0o755)
        probe = webroot.put(str(root), "tok", "content")
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777
             for p in [store.root, store.domains_dir, store.orders_dir,
                       store.domains_dir / "a.example.json", store.orders_dir / "a.example.json",
                       root / ".well-known", probe.parent, probe]}
    assert modes == {"config/fleet": 0o755, "config/fleet/domains": 0o755,
                     "config/fleet/orders": 0o700, "config/fleet/domains/a.example.json": 0o644,
                     "config/fleet/orders/a.example.json": 0o600,
                     "www/.well-known": 0o755, "www/.well-known/acme-challenge": 0o755,
                     "www/.well-known/acme-challenge/tok": 0o644}


def test_a_broken_directory_connection_is_only_a_failed_write_back() -> None:
    from typing import Any, cast

    from certwright.core.fleet.writeback import WriteBack

    class Broken:
        def modify(self, dn: str, changes: object) -> None:
            raise ConnectionResetError("connection reset by peer")

        def entry(self, dn: str) -> None:
            raise OSError("socket closed")

    writeback = WriteBack(cast(Any, Broken()))
    domain = make_domain(["a.example"], "cn=a", webroot="/srv", contact=None, customer=None,
                         dn="cn=a,dc=t")
    state = DomainState("a.example", ["a.example"], state="valid", not_after=1.0)
    assert writeback.update(domain, state, "PEM") is False
    assert writeback.remove("cn=b,dc=t") is False
    assert writeback.failed == ["cn=a,dc=t", "cn=b,dc=t"]


def test_toml_installer_and_its_own_options_only(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text('[[domain]]\nnames = ["a.example"]\ninstaller = "nginx"\n'
                    '[domain.installer-options]\nnginx-server-root = "/srv/nginx"\n\n'
                    '[[domain]]\nnames = ["b.example"]\ninstaller = "nginx"\n'
                    '[domain.installer-options]\nconfig-dir = "/tmp/elsewhere"\n\n'
                    '[[domain]]\nnames = ["c.example"]\ninstaller = "../x"\n\n'
                    '[[domain]]\nnames = ["d.example"]\ninstaller = "caddy"\n')
    listing = TomlInventory(path).read()
    (good,) = listing.domains
    assert good.installer == "nginx" and good.webroot is None
    assert good.installer_options == (("nginx_server_root", "/srv/nginx"),)
    assert [b.where for b in listing.bad] == [f"{path}: domain #{n}" for n in (2, 3, 4)]
    assert "'config-dir' is not one of the nginx installer's" in listing.bad[0].error
    assert "not a plugin name" in listing.bad[1].error
    assert "no installer 'caddy' is installed here (installed: " in listing.bad[2].error


def test_installer_options_load_only_the_installers_named() -> None:
    """An idle sync or `status` imports no installer; naming one option loads that one."""
    import subprocess
    import sys

    code = ("import sys\nfrom certwright.core.fleet import cli\n"
            "config, _ = cli.parse(sys.argv[1:])\n"
            "print(sorted({m.split('.')[2] for m in sys.modules"
            " if m.startswith('certwright.installers.')}), config.installer_dests)\n")
    idle = subprocess.run([sys.executable, "-c", code, "sync"], capture_output=True,
                          text=True, check=True).stdout
    assert idle.strip() == "[] []"
    named = subprocess.run([sys.executable, "-c", code, "sync", "--nginx-ctl", "/bin/nginx"],
                           capture_output=True, text=True, check=True).stdout
    loaded, dests = named.strip().split("] ", 1)
    assert "nginx" in loaded and "apache" not in loaded and "nginx_ctl" in dests
