"""A hosting fleet for the tests: real slapd holding the domains, real nginx serving their
web roots where Pebble validates http-01, the ACME front counting what reaches the CA, and
``certwright fleet`` run as a subprocess."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_binary
from tests.servers.acme_front import AcmeFront
from tests.servers.fleet_web import FleetWeb
from tests.servers.nginx import NGINX_BINARY
from tests.servers.pebble import Pebble
from tests.servers.slapd import SLAPD_BINARY, Slapd
from tests.servers.tree_server import new_root

CERTWRIGHT = str(Path(sys.executable).parent / "certwright")
CLOCKED_CLI = Path(__file__).resolve().parents[1] / "servers" / "clocked_cli.py"


def site_name(number: int, customer: int) -> str:
    return f"d{number:04d}.c{customer:02d}.example.org"


@dataclass
class FleetEnv:
    base: Path
    ldap: Slapd
    ca: Pebble
    front: AcmeFront
    web: FleetWeb
    ou: str
    extra: list[str] = field(default_factory=list)

    @property
    def config_dir(self) -> Path:
        return self.base / "config"

    def dn(self, name: str) -> str:
        return f"cn={name},{self.ou}"

    def add_site(self, name: str, customer: str, *, names: tuple[str, ...] | None = None,
                 flag: bool = True, webroot: bool = True) -> str:
        conn: Any = self.ldap.connection()
        attrs: dict[str, Any] = {
            "associatedDomain": list(names or (name, f"www.{name}")),
            "mail": f"admin@{customer}.example.org", "o": customer}
        if flag:
            attrs["letsencrypt"] = True
        classes = ["device", "domainRelatedObject", "extensibleObject"]
        if webroot:
            classes.append("certwrightDomain")
            attrs["certwrightWebroot"] = str(self.web.site(name))
        assert conn.add(self.dn(name), classes, attrs), conn.result
        conn.unbind()
        return self.dn(name)

    def add_sites(self, count: int, customers: int) -> list[str]:
        """``count`` sites spread over ``customers`` customers, in one LDAP connection."""
        conn: Any = self.ldap.connection()
        names = []
        for i in range(count):
            customer = f"c{i % customers:02d}"
            name = site_name(i, i % customers)
            attrs = {"associatedDomain": [name, f"www.{name}"], "letsencrypt": True,
                     "mail": f"admin@{customer}.example.org", "o": customer,
                     "certwrightWebroot": str(self.web.site(name))}
            assert conn.add(self.dn(name), ["device", "domainRelatedObject",
                                            "extensibleObject", "certwrightDomain"],
                            attrs), conn.result
            names.append(name)
        conn.unbind()
        return names

    def entry(self, name: str) -> dict[str, list[str]]:
        import ldap3

        conn: Any = self.ldap.connection()
        conn.search(self.dn(name), "(objectClass=*)", search_scope=ldap3.BASE,
                    attributes=["*"])
        raw = conn.response[0]["raw_attributes"]
        conn.unbind()
        return {k: [v.decode() for v in vs] for k, vs in raw.items()}

    def modify(self, name: str, changes: dict[str, Any]) -> None:
        conn: Any = self.ldap.connection()
        assert conn.modify(self.dn(name), changes), conn.result
        conn.unbind()

    clock_offset: float | None = None  # seconds certwright's clock runs ahead

    def argv(self, command: str, *args: str) -> list[str]:
        head = [CERTWRIGHT] if self.clock_offset is None else \
            [sys.executable, str(CLOCKED_CLI), str(self.clock_offset)]
        return [*head, "fleet", command, "--config-dir", str(self.config_dir),
                "--work-dir", str(self.base / "work"), "--logs-dir", str(self.base / "logs"),
                *args]

    def sync_args(self) -> list[str]:
        return [*self.ldap.args(), "--base-dn", self.ou, "--ldap-page-size", "100",
                "--server", self.front.directory_url, "--agree-tos",
                "-m", "hostmaster@example.org",
                "--precheck-dns", f"127.0.0.1:{self.ca.dns_port}",
                "--precheck-http-port", str(self.ca.http_port),
                "--fleet-address", "127.0.0.1", *self.extra]

    def run(self, command: str, *args: str, check: bool = True, timeout: float = 300
            ) -> subprocess.CompletedProcess[str]:
        extra = self.sync_args() if command == "sync" else []
        proc = subprocess.run(self.argv(command, *extra, *args), env=self.env(),
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"fleet {command} exited {proc.returncode}:\n"
                                 f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        return proc

    def env(self) -> dict[str, str]:
        return self.front.env(os.environ)

    def sync_json(self, *args: str, check: bool = True) -> tuple[int, dict[str, Any]]:
        proc = self.run("sync", "--json", *args, check=check)
        try:
            return proc.returncode, json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(f"not JSON:\n{proc.stdout}\n{proc.stderr}") from None

    def popen_sync(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv("sync", *self.sync_args(), *args), env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL)

    def posts(self) -> list[str]:
        return [path for method, path in self.front.requests_log if method == "POST"]

    def finalizes(self) -> list[str]:
        """Every finalize request seen (one a kill cut short included)."""
        return [p for p in self.posts() if "finalize" in p]

    def finalized(self) -> list[str]:
        """The finalize requests Pebble took (200): the certificates issued."""
        return [p for method, p, status in self.front.forwarded
                if method == "POST" and "finalize" in p and status == 200]


SPECIAL = {"basic_auth": ["locked.c01.example.org"], "hidden_ban": ["hidden.c01.example.org"],
           "https_redirect": ["tls-only.c01.example.org"]}


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    require_binary(SLAPD_BINARY)
    # 100 entries at most without paging (500 is slapd's default): the 500-domain sync
    # proves the paged search
    with Slapd(tmp_path_factory.mktemp("slapd"), size_limit=100) as server:
        yield server


@pytest.fixture
def fleet(slapd: Slapd, pebble: Pebble, tmp_path: Path) -> Iterator[FleetEnv]:
    require_binary(NGINX_BINARY)
    www = new_root("certwright-fleet-www-")
    ou = f"ou=f{secrets.token_hex(3)},{slapd.suffix}"
    conn = slapd.connection()
    assert conn.add(ou, ["organizationalUnit"]), conn.result  # type: ignore[attr-defined]
    with AcmeFront(pebble, tmp_path / "front") as front, \
            FleetWeb(tmp_path / "nginx", www, http_port=pebble.http_port, **SPECIAL) as web:
        yield FleetEnv(tmp_path, slapd, pebble, front, web, ou)
    shutil.rmtree(www, ignore_errors=True)
