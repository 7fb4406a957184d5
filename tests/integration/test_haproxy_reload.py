"""The reload certwright sends HAProxy's master (SIGUSR2) is never lost in the moment the
master re-executes for an earlier reload (it blocks the signal then, and a second one
merges with the pending first)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from certwright.installers.haproxy import process
from tests.integration.conftest import tree_server
from tests.servers.haproxy import HAPROXY_BINARY, NO_SOCKET, SITE, Haproxy
from tests.servers.ports import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def lb() -> Iterator[Haproxy]:
    with tree_server(Haproxy, HAPROXY_BINARY, "certwright-haproxy-") as server:
        server.write(NO_SOCKET + SITE)
        yield server.start()


@pytest.mark.parametrize("round_", range(3))
def test_a_reload_right_after_another_is_a_reload_of_its_own(lb: Haproxy, round_: int) -> None:
    reloads, failed = lb.reloads()
    os.kill(lb.master_pid, signal.SIGUSR2)  # someone else's reload, still in progress
    process.reload(str(lb.pidfile), None)
    wait_until(lambda: lb.reloads()[0] >= reloads + 2, timeout=10,
               what="both reloads counted by the master")
    assert lb.reloads() == (reloads + 2, failed)


def test_a_master_that_is_gone_is_named(lb: Haproxy, tmp_path: object) -> None:
    pidfile = lb.root / "run" / "stale.pid"
    pidfile.write_text("999999999\n")
    with pytest.raises(process.PluginError, match="names no running process"):
        process.reload(str(pidfile), None)
