"""What one `certonly --webroot` loads: modules a certificate does not need stay unloaded
(each costs start-up CPU on every run, and the benchmark's CPU target is tight)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Cli
from tests.servers.nginx import Nginx

pytestmark = pytest.mark.integration

# loaded only by the paths that use them: hooks and plugin commands (subprocess),
# replacing an existing live directory (ctypes), never (logging.handlers, uuid, platform)
NOT_NEEDED = ("logging.handlers", "uuid", "platform", "ctypes", "subprocess", "pickle",
              "secrets",
              # a new lineage journals no config change, runs no hook, installs nothing,
              # has no ARI window or cached summary to read, and webroot declares no
              # typed options
              "certwright.core.transaction", "certwright.core.journal",
              "certwright.core.filestate", "certwright.core.runner",
              "certwright.core.installer_types", "certwright.core.ari_check",
              "certwright.core.lineage_cache", "certwright.core.options")

_PROBE = """
import json, sys
from certwright.core.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def test_certonly_loads_only_what_it_needs(cli: Cli, web: Nginx, www_root: Path,
                                           tmp_path: Path) -> None:
    cli("register")
    report = tmp_path / "modules.json"
    argv = [sys.executable, "-c", _PROBE, str(report), "certonly", "--webroot", "-w",
            str(www_root), "-d", "lean.example.org", "--server", cli.ca.directory_url,
            "-n", *cli.dirs()]
    env = cli.ca.env(os.environ)
    env.pop("COVERAGE_PROCESS_CONFIG", None)  # coverage (make test) loads pickle and more
    proc = subprocess.run(argv, env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(report.read_text())
    assert found["code"] == 0
    assert (cli.config_dir / "live" / "lean.example.org" / "cert.pem").exists()
    loaded = set(found["modules"])
    assert sorted(loaded & set(NOT_NEEDED)) == []
    assert sorted(m for m in loaded if m.split(".")[0] in DNS_LIBRARIES) == []


# imported only when a DNS authenticator is used (dnspython, dns-lexicon and its own)
DNS_LIBRARIES = ("dns", "lexicon", "tldextract", "boto3", "requests_unixsocket")


@pytest.mark.parametrize("args", [
    ("--help", "all"),
    ("plugins", "--authenticators"),
    ("certificates",),
    ("--help", "dns-rfc2136"),
])
def test_dns_libraries_load_only_when_a_dns_plugin_is_used(cli: Cli, tmp_path: Path,
                                                           args: tuple[str, ...]) -> None:
    report = tmp_path / "modules.json"
    argv = [sys.executable, "-c", _PROBE, str(report), *args, *cli.dirs()]
    proc = subprocess.run(argv, env=cli.ca.env(os.environ), capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(report.read_text())
    assert found["code"] == 0
    if args[0] == "plugins":
        assert "dns-cloudflare" in proc.stdout and "dns-rfc2136" in proc.stdout
    loaded = sorted(m for m in found["modules"] if m.split(".")[0] in DNS_LIBRARIES)
    assert loaded == []


def test_log_rotated_on_each_run(cli: Cli) -> None:
    logs = cli.base / "logs"
    for _ in range(3):
        cli("certificates", account=False)
    assert sorted(p.name for p in logs.iterdir()) == [
        "certwright.log", "certwright.log.1", "certwright.log.2"]
    assert (logs / "certwright.log").stat().st_mode & 0o777 == 0o600
