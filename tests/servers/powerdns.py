"""A real PowerDNS authoritative server (sqlite3 backend, HTTP API) on loopback, for the
dns-lexicon tests: Pebble resolves through it, lexicon's powerdns provider edits it.

    with PowerDns(workdir, zones=("example.test",)) as pdns:
        pdns.address        # "127.0.0.1:<port>": DNS (UDP and TCP), pebble's -dnsserver
        pdns.api_url        # "http://127.0.0.1:<port>", with the key pdns.api_key

Each zone is made through the API (kind Native) with an NS ``ns1.<zone>`` whose A record
is 127.0.0.1. Everything (config, database, log) lives under ``workdir``; pdns_server runs
in the foreground without its guardian, and ``stop()`` ends only the process started here.
"""

from __future__ import annotations

import secrets
import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import requests

from tests.servers.ports import ServerStartError, free_port, wait_for_port
from tests.servers.process import ManagedProcess, StartStop, stop_process

PDNS = "pdns_server"
SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")


class PowerDns(StartStop):
    def __init__(self, workdir: Path | str, *, zones: Sequence[str] = ("example.test",),
                 host: str = "127.0.0.1", startup_timeout: float = 20.0) -> None:
        self.workdir = Path(workdir).resolve()
        self.zones = tuple(zones)
        self.host = host
        self.startup_timeout = startup_timeout
        self.api_key = secrets.token_hex(16)
        self.port = 0
        self.api_port = 0
        self._process: ManagedProcess | None = None
        self._http = requests.Session()
        self._http.trust_env = False  # loopback: no proxy, no CA bundle from the environment
        self._http.headers["X-API-Key"] = self.api_key

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "pdns.log"

    def start(self) -> Self:
        binary = shutil.which(PDNS) or "/usr/sbin/" + PDNS
        if not Path(binary).exists():
            raise ServerStartError(f"{PDNS} not found (apt-get install pdns-server "
                                   "pdns-backend-sqlite3)")
        if not SCHEMA.exists():
            raise ServerStartError(f"{SCHEMA} not found (apt-get install pdns-backend-sqlite3)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        database = self.workdir / "pdns.sqlite3"
        database.unlink(missing_ok=True)
        with sqlite3.connect(database) as db:
            db.executescript(SCHEMA.read_text())
        db.close()
        self.port, self.api_port = free_port(self.host), free_port(self.host)
        (self.workdir / "pdns.conf").write_text("\n".join([
            "launch=gsqlite3",
            f"gsqlite3-database={database}",
            f"local-address={self.host}",
            f"local-port={self.port}",
            "api=yes",
            f"api-key={self.api_key}",
            "webserver=yes",
            f"webserver-address={self.host}",
            f"webserver-port={self.api_port}",
            "webserver-allow-from=127.0.0.0/8",
            f"socket-dir={self.workdir}",
            "daemon=no",
            "guardian=no",
            "disable-syslog=yes",
            "loglevel=4",
            "default-ttl=60",
            "security-poll-suffix=",
            "",
        ]))
        argv = [binary, f"--config-dir={self.workdir}"]
        process = ManagedProcess(argv, log_path=self.log_path, cwd=self.workdir)
        self._process = process
        proc = process.start()
        try:
            for port in (self.port, self.api_port):
                wait_for_port(self.host, port, timeout=self.startup_timeout, proc=proc,
                              log=self.log_path, what=f"pdns_server (pid {proc.pid})")
            for zone in self.zones:
                self.create_zone(zone)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self)

    # -- the API -----------------------------------------------------------------------------
    def _api(self, method: str, path: str, body: Any = None) -> Any:
        url = f"{self.api_url}/api/v1/servers/localhost{path}"
        response = self._http.request(method, url, json=body, timeout=10)
        if response.status_code >= 300:
            raise RuntimeError(f"PowerDNS API {method} {path}: HTTP {response.status_code} "
                               f"{response.text[:200]}")
        return response.json() if response.content else None

    def create_zone(self, zone: str) -> None:
        self._api("POST", "/zones", {"name": zone + ".", "kind": "Native",
                                     "nameservers": [f"ns1.{zone}."]})
        self.set_rrset(zone, f"ns1.{zone}", "A", ["127.0.0.1"])

    def set_rrset(self, zone: str, name: str, rtype: str, contents: Sequence[str],
                  ttl: int = 60) -> None:
        records = [{"content": c, "disabled": False} for c in contents]
        change = {"name": name + ".", "type": rtype, "ttl": ttl,
                  "changetype": "REPLACE" if contents else "DELETE", "records": records}
        self._api("PATCH", f"/zones/{zone}.", {"rrsets": [change]})

    def records_of(self, zone: str, rtype: str = "TXT") -> list[tuple[str, str]]:
        """Every ``(name, value)`` of ``rtype`` in ``zone``, TXT values unquoted."""
        data = self._api("GET", f"/zones/{zone}.")
        out = []
        for rrset in data["rrsets"]:
            if rrset["type"] == rtype:
                for record in rrset["records"]:
                    value = record["content"]
                    if rtype == "TXT":
                        value = value.strip('"')
                    out.append((rrset["name"].rstrip("."), value))
        return sorted(out)
