"""Renewed certificates go live in a running HAProxy under a steady stream of new TLS
connections: through the runtime API (no new process at all), or, with no admin socket, one
graceful reload; zero failed requests either way."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import Cli, tree_server
from tests.servers import probe
from tests.servers.haproxy import GLOBAL, HAPROXY_BINARY, NO_SOCKET, SITE, Haproxy
from tests.servers.pebble import Pebble
from tests.servers.ports import wait_until

pytestmark = pytest.mark.integration
NAMES = ("lb.example.org", "api.example.org")
LOAD = Path(__file__).resolve().parents[1] / "servers" / "tlsload.py"


@pytest.fixture
def lb(pebble: Pebble) -> Iterator[Haproxy]:
    with tree_server(lambda root: Haproxy(root, http_port=pebble.http_port), HAPROXY_BINARY,
                     "certwright-haproxy-") as server:
        yield server


@dataclass
class Load:
    proc: subprocess.Popen[str]
    stop: Path

    def finish(self) -> dict[str, object]:
        self.stop.touch()
        out, err = self.proc.communicate(timeout=90)
        summary: dict[str, object] = json.loads(out)
        summary["exit"] = self.proc.returncode
        summary["stderr"] = err
        return summary


def start_load(lb: Haproxy, tmp: Path) -> Load:
    stop = tmp / "stop-load"
    proc = subprocess.Popen([sys.executable, str(LOAD), str(lb.https_port), str(stop), *NAMES],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready = stop.with_name(stop.name + ".ready")
    wait_until(ready.exists, timeout=20, what="the load generator's first answer")
    return Load(proc, stop)


def serial(name: str, port: int) -> int:
    return probe.served_cert(port, name).serial_number


def issue_both(cli: Cli, lb: Haproxy) -> dict[str, int]:
    for name in NAMES:
        cli("run", "-a", "haproxy", "-i", "haproxy", *lb.args(), "-d", name)
    return {name: serial(name, lb.https_port) for name in NAMES}


def renew_under_load(cli: Cli, lb: Haproxy, tmp: Path,
                     *extra: str) -> tuple[dict[str, object], str]:
    load = start_load(lb, tmp)
    try:
        proc = cli("renew", "--force-renewal", "--no-random-sleep-on-renew", "-v", *extra,
                   account=False)
        deadline = time.monotonic() + 1.0  # a moment of the new certificates under load
        while time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        summary = load.finish()
    return summary, proc.stderr


def new_serials_seen(summary: dict[str, object], old: dict[str, int]) -> dict[str, bool]:
    seen = summary["seen"]
    assert isinstance(seen, dict)
    return {name: any(int(s, 16) != old[name] for s in seen[name]) for name in NAMES}


def test_renew_swaps_both_certificates_live_with_no_reload_and_no_failed_request(
        cli: Cli, lb: Haproxy, tmp_path: Path) -> None:
    """Two renewals at once (``--jobs 2``): one responder answers both through HAProxy,
    and the swaps take turns."""
    lb.write(GLOBAL + SITE)
    lb.start()
    old = issue_both(cli, lb)
    master, workers, reloads = lb.master_pid, lb.workers(), lb.reloads()
    calls = tmp_path / "haproxy-calls"
    wrapper = tmp_path / "haproxy-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {lb.binary} "$@"\n')
    wrapper.chmod(0o755)
    summary, log = renew_under_load(cli, lb, tmp_path, "--jobs", "2", "--haproxy-bin",
                                    str(wrapper))
    print({k: summary[k] for k in ("ok", "failed", "seconds")})
    assert summary["failed"] == 0 and summary["exit"] == 0, summary
    assert int(str(summary["ok"])) > 20, summary
    for name in NAMES:
        assert serial(name, lb.https_port) != old[name]
    assert all(new_serials_seen(summary, old).values()), summary
    assert lb.master_pid == master and lb.workers() == workers, "no new process"
    assert lb.reloads() == reloads
    assert "swapped in through" in log
    tests = [line for line in calls.read_text().splitlines() if line.startswith("-c ")]
    assert len(tests) == 1, "one haproxy -c; the second certificate alone is checked"


def test_without_a_socket_renew_reloads_once_with_no_failed_request(
        cli: Cli, lb: Haproxy, tmp_path: Path) -> None:
    lb.write(NO_SOCKET + SITE)
    lb.start()
    old = issue_both(cli, lb)
    master, workers, (reloads, failed) = lb.master_pid, lb.workers(), lb.reloads()
    summary, log = renew_under_load(cli, lb, tmp_path)
    print({k: summary[k] for k in ("ok", "failed", "seconds")})
    assert summary["failed"] == 0 and summary["exit"] == 0, summary
    for name in NAMES:
        assert serial(name, lb.https_port) != old[name]
    assert all(new_serials_seen(summary, old).values()), summary
    assert lb.master_pid == master
    assert lb.reloads() == (reloads + 1, failed), "one reload for both certificates"
    assert lb.workers() != workers
    assert "no admin-level runtime API socket" in log
