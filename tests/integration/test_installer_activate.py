"""The ``activate()`` installer capability and renew's one-reload-per-server redeploy,
through a third-party installer (a fake distribution) for a real TLS server process
(``runtime_tls_server.py``) whose configuration is one combined PEM file per certificate,
so that every renewal is a non-empty plan (as with HAProxy)."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from tests.integration.conftest import Cli
from tests.integration.conftest import live_serial as serial_of
from tests.integration.test_auth_capabilities import dns_args, fake_distribution
from tests.servers.pebble import Pebble
from tests.servers.ports import free_port, wait_for_port
from tests.servers.process import ManagedProcess

pytestmark = pytest.mark.integration
SERVER = Path(__file__).with_name("runtime_tls_server.py")

INSTALLER = '''
import hashlib, os, signal, socket, ssl
from pathlib import Path

from certwright.core.errors import PluginError
from certwright.core.interfaces import ChangePlan, Endpoint, FileChange


class TlsFake:
    """Writes <dir>/<cert-name>.pem (chain and key); reload: SIGHUP to the server."""

    name = "tlsfake"
    description = "a TLS server with a runtime API (test plugin)"

    def __init__(self, config):
        self.dir = config.tlsfake_dir
        self.port = int(config.tlsfake_port or 0)
        self.pidfile = config.tlsfake_pidfile
        self.socket = config.tlsfake_socket

    @classmethod
    def add_arguments(cls, add):
        for option in ("dir", "port", "pidfile", "socket"):
            add(f"--tlsfake-{option}", default=None)

    def prepare(self):
        if not self.dir or not os.path.isdir(self.dir):
            raise PluginError(f"--tlsfake-dir {self.dir!r} is not a directory")

    def discover_names(self):
        return set()

    def plan_deploy(self, req):
        path = Path(self.dir) / f"{req.cert_name}.pem"
        try:
            new = Path(req.fullchain_path).read_bytes() + Path(req.key_path).read_bytes()
        except FileNotFoundError:  # planned before the certificate exists (preflight)
            new = b"(the certificate and key, once issued)\\n"
        old = path.read_bytes() if path.exists() else None
        if old == new:
            return ChangePlan(f"tlsfake: {req.cert_name}")
        expected = None if old is None else hashlib.sha256(old).hexdigest()
        return ChangePlan(f"tlsfake: {req.cert_name}",
                          (FileChange(str(path), new, expected, secret=True),))

    def endpoints(self, req):
        return [Endpoint("127.0.0.1", self.port, name) for name in req.domains]

    def config_test(self):
        for path in Path(self.dir).glob("*.pem"):
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(path)
            except (OSError, ssl.SSLError) as exc:
                raise PluginError(f"{path}: {exc}") from None

    def reload(self):
        os.kill(int(Path(self.pidfile).read_text()), signal.SIGHUP)

    def renewal_params(self):
        return {"tlsfake_dir": self.dir, "tlsfake_port": str(self.port),
                "tlsfake_pidfile": self.pidfile, "tlsfake_socket": self.socket}


class TlsFakeLive(TlsFake):
    """The same, with activate(): each changed file is loaded through the runtime API."""

    name = "tlsfake-live"

    @classmethod
    def add_arguments(cls, add):
        """The --tlsfake-* options are tlsfake's."""

    def activate(self, plan):
        for change in plan.changes:
            with socket.socket(socket.AF_UNIX) as conn:
                conn.settimeout(5)
                conn.connect(self.socket)
                conn.sendall(f"set {change.path}\\n".encode())
                answer = conn.makefile().readline()
            if answer.strip() != "ok":
                raise PluginError(f"runtime API: {answer.strip()}")
'''


@dataclass
class TlsServer:
    base: Path
    port: int

    @property
    def state(self) -> dict[str, int]:
        return dict(json.loads((self.base / "state.json").read_text()))

    def args(self, installer: str, socket_path: str | None = None) -> list[str]:
        return ["-i", installer, "--tlsfake-dir", str(self.base / "certs"),
                "--tlsfake-port", str(self.port), "--tlsfake-pidfile", str(self.base / "pid"),
                "--tlsfake-socket", socket_path or str(self.base / "control")]

    def served(self, name: str) -> int:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=name) as tls:
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsServer]:
    base = tmp_path / "tls"
    (base / "certs").mkdir(parents=True)
    port = free_port()
    proc = ManagedProcess([sys.executable, str(SERVER), str(base / "certs"), str(port),
                           str(base / "control"), str(base / "state.json")],
                          log_path=base / "server.log")
    started = proc.start()
    (base / "pid").write_text(str(started.pid))
    wait_for_port("127.0.0.1", port, proc=started, log=base / "server.log", what="tls server")
    try:
        yield TlsServer(base, port)
    finally:
        proc.stop()


@pytest.fixture
def site_cli(cli: Cli, tmp_path: Path) -> Cli:
    site = tmp_path / "site"
    fake_distribution(site)
    (site / "tlsfake_inst.py").write_text(INSTALLER)
    (site / "fakedns-1.0.dist-info" / "entry_points.txt").write_text(
        "[certwright.authenticators]\nfakedns = fakedns_auth:FakeDns\n"
        "[certwright.installers]\ntlsfake = tlsfake_inst:TlsFake\n"
        "tlsfake-live = tlsfake_inst:TlsFakeLive\n")
    cli.extra_env.update(PYTHONPATH=str(site), FAKEDNS_LOG=str(tmp_path / "events"))
    return cli


NAMES = ("one.live.example.org", "two.live.example.org", "three.live.example.org")


def test_activate_makes_the_certificate_live_without_a_reload(
        site_cli: Cli, pebble: Pebble, tls_server: TlsServer) -> None:
    site_cli("run", *dns_args(pebble, "a"), *tls_server.args("tlsfake-live"),
             "-d", NAMES[0])
    assert tls_server.served(NAMES[0]) == serial_of(site_cli, NAMES[0])
    assert tls_server.state == {"reloads": 0, "activations": 1}
    pem = tls_server.base / "certs" / f"{NAMES[0]}.pem"
    assert pem.stat().st_mode & 0o777 == 0o600, "it holds the private key"


def test_a_failing_activate_falls_back_to_a_reload(
        site_cli: Cli, pebble: Pebble, tls_server: TlsServer, tmp_path: Path) -> None:
    proc = site_cli("run", *dns_args(pebble, "a"),
                    *tls_server.args("tlsfake-live", str(tmp_path / "no-such-socket")),
                    "-d", NAMES[0], "-v")
    assert tls_server.served(NAMES[0]) == serial_of(site_cli, NAMES[0])
    assert tls_server.state == {"reloads": 1, "activations": 0}
    assert "activating tlsfake: " in proc.stderr and "reloading instead" in proc.stderr


@pytest.mark.parametrize("installer, reloads, activations",
                         [("tlsfake", 1, 0), ("tlsfake-live", 0, 3)])
def test_renew_makes_every_changed_certificate_live_at_once(
        site_cli: Cli, pebble: Pebble, tls_server: TlsServer, installer: str,
        reloads: int, activations: int) -> None:
    """Each renewal rewrites that certificate's PEM file (a non-empty plan): renew still
    reloads the server once for all of them, or activates each without a reload."""
    for name in NAMES:
        site_cli("run", *dns_args(pebble, "a"), *tls_server.args(installer), "-d", name)
    before = tls_server.state
    old = {name: tls_server.served(name) for name in NAMES}
    site_cli("renew", "--force-renewal", "--jobs", "3", "--no-random-sleep-on-renew")
    after = tls_server.state
    assert after["reloads"] - before["reloads"] == reloads
    assert after["activations"] - before["activations"] == activations
    for name in NAMES:
        assert tls_server.served(name) == serial_of(site_cli, name) != old[name]
    assert not os.listdir(site_cli.base / "work" / "deploy-pending")


def test_the_test_server_counts_each_reload(tls_server: TlsServer) -> None:
    """The server process itself: a reload is counted and reads every file."""
    before = tls_server.state["reloads"]
    os.kill(int((tls_server.base / "pid").read_text()), signal.SIGHUP)
    deadline = time.monotonic() + 5
    while tls_server.state["reloads"] == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert tls_server.state["reloads"] == before + 1


def test_a_failed_reload_takes_every_staged_change_back_and_the_next_renew_installs(
        site_cli: Cli, pebble: Pebble, tls_server: TlsServer, tmp_path: Path) -> None:
    for name in NAMES[:2]:
        site_cli("run", *dns_args(pebble, "a"), *tls_server.args("tlsfake"), "-d", name)
    certs = tls_server.base / "certs"
    before = {p.name: p.read_bytes() for p in certs.iterdir()}
    old = {name: tls_server.served(name) for name in NAMES[:2]}
    proc = site_cli("renew", "--force-renewal", "--no-random-sleep-on-renew",
                    "--tlsfake-pidfile", str(tmp_path / "no-such-pidfile"), check=False)
    assert proc.returncode == 1
    assert proc.stdout.count("renewed, but installing it failed: tlsfake: reload failed") == 2
    assert {p.name: p.read_bytes() for p in certs.iterdir()} == before, \
        "the staged files were taken back"
    assert {name: tls_server.served(name) for name in NAMES[:2]} == old
    reloads = tls_server.state["reloads"]
    proc = site_cli("renew", "--no-random-sleep-on-renew")
    assert "2 installed again" in proc.stdout, proc.stdout
    assert tls_server.state["reloads"] == reloads + 1
    for name in NAMES[:2]:
        assert tls_server.served(name) == serial_of(site_cli, name) != old[name]
