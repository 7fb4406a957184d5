"""`kill -9` of `renew` at many moments never leaves a live/ link at a mismatched or
missing file, and the next run starts cleanly."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from certwright.core.storage.lineage import cert_matches_key, list_lineages
from tests.integration.conftest import CERTWRIGHT, Cli
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration
NAMES = [f"k{i}.example.org" for i in range(4)]


def check_store(config_dir: Path) -> None:
    for lin in list_lineages(config_dir):
        assert lin.error is None
        for kind in ("cert", "chain", "fullchain", "privkey"):
            assert (lin.live_dir / f"{kind}.pem").resolve().is_file()
        versions = set(lin.link_versions().values())
        assert len(versions) == 1, f"{lin.name}: live links disagree: {lin.link_versions()}"
        assert cert_matches_key(lin.cert_pem(), lin.privkey_pem()), lin.name


def test_kill_renew_at_many_points(pebble: Pebble, tmp_path: Path) -> None:
    cli = Cli(tmp_path, pebble)
    for name in NAMES:
        cli("certonly", "--standalone", "--http-01-port", str(pebble.http_port),
            "--http-01-address", "127.0.0.1", "-d", name)
    argv = [CERTWRIGHT, "renew", "--force-renewal", "--no-random-sleep-on-renew", "--jobs", "2",
            "--new-key", *cli.dirs(), "-n"]
    rng = random.Random(8555)
    killed_mid_run = 0
    for _ in range(12):
        proc = subprocess.Popen(argv, env=pebble.env(os.environ), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.6))
        if proc.poll() is None:
            killed_mid_run += 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        check_store(cli.config_dir)
    assert killed_mid_run >= 6, "the kills should land while renewals are under way"
    done = cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False)
    assert "4 renewed" in done.stdout
    check_store(cli.config_dir)
