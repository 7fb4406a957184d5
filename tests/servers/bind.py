"""A real BIND (`named`) on loopback, authoritative for test zones that accept TSIG-signed
dynamic updates (RFC 2136), for the dns-01 tests and the benchmark.

    with Bind(workdir, zones=("example.test", "delegated.test")) as dns:
        dns.address            # "127.0.0.1:<port>", the value for pebble's -dnsserver
        dns.txt("_acme-challenge.example.test")

Each zone has an SOA, an NS ``ns1.<zone>`` whose A record is 127.0.0.1, and whatever
``records`` adds. The TSIG key (``key_name``, ``secret``, hmac-sha256) may update TXT and
CNAME records anywhere in each zone. Recursion is on for loopback clients, so a CNAME
from one test zone into another is followed as a resolver would (Pebble's validation asks
this server); nothing outside the test zones is looked up by the tests. Everything
(config, zones, journals, pid, log) lives under ``workdir``; named runs in the foreground
(``-g``), its log is ``<workdir>/named.log``, and ``stop()`` ends only the process started
here.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

from tests.servers.ports import ServerStartError, free_port, wait_for_port, wait_until
from tests.servers.process import ManagedProcess, StartStop, stop_process

NAMED = "named"
KEY_NAME = "certwright-test."
ALGORITHM = "hmac-sha256"


def _zone_text(zone: str, extra: Sequence[str]) -> str:
    lines = [
        "$TTL 60",
        f"@ IN SOA ns1.{zone}. hostmaster.{zone}. 1 3600 600 86400 60",
        f"@ IN NS ns1.{zone}.",
        "ns1 IN A 127.0.0.1",
        *extra,
    ]
    return "\n".join(lines) + "\n"


class Bind(StartStop):
    """named authoritative for ``zones`` on 127.0.0.1:``port`` (UDP and TCP)."""

    def __init__(self, workdir: Path | str, *, zones: Sequence[str] = ("example.test",),
                 records: Mapping[str, Sequence[str]] | None = None,
                 signed_only: Sequence[str] = (),
                 host: str = "127.0.0.1", startup_timeout: float = 20.0) -> None:
        self.workdir = Path(workdir).resolve()
        self.zones = tuple(zones)
        self.records = {zone: list((records or {}).get(zone, ())) for zone in self.zones}
        self.signed_only = tuple(signed_only)  # zones that answer only TSIG-signed queries
        self.host = host
        self.startup_timeout = startup_timeout
        self.key_name = KEY_NAME
        self.algorithm = ALGORITHM
        self.secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.port = 0
        self._process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "named.log"

    def _config(self) -> str:
        zones = "".join(
            f'zone "{zone}" {{ type primary; file "{self.workdir}/{zone}.zone";\n'
            f'  update-policy {{ grant {self.key_name} zonesub TXT CNAME; }};\n'
            f'  allow-transfer {{ key {self.key_name}; }};\n'
            + (f'  allow-query {{ key {self.key_name}; }};\n' if zone in self.signed_only
               else "") + "};\n"
            for zone in self.zones)
        return (
            "options {\n"
            f'  directory "{self.workdir}";\n'
            f'  pid-file "{self.workdir}/named.pid";\n'
            f'  session-keyfile "{self.workdir}/session.key";\n'
            f'  managed-keys-directory "{self.workdir}";\n'
            f"  listen-on port {self.port} {{ {self.host}; }};\n"
            "  listen-on-v6 { none; };\n"
            "  recursion yes; allow-recursion { 127.0.0.1; };\n"
            "  dnssec-validation no;\n"
            "  notify no;\n"
            "};\n"
            "controls { };\n"
            f'key "{self.key_name}" {{ algorithm {self.algorithm}; secret "{self.secret}"; }};\n'
            + zones
        )

    def start(self) -> Self:
        binary = shutil.which(NAMED) or (f"/usr/sbin/{NAMED}"
                                         if Path(f"/usr/sbin/{NAMED}").exists() else None)
        if binary is None:
            raise ServerStartError(f"{NAMED} not found (apt-get install bind9)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            self.port = free_port(self.host)
            for zone in self.zones:
                (self.workdir / f"{zone}.zone").write_text(
                    _zone_text(zone, self.records[zone]))
                for journal in self.workdir.glob(f"{zone}.zone.jnl"):
                    journal.unlink()
            conf = self.workdir / "named.conf"
            conf.write_text(self._config())
            process = ManagedProcess([binary, "-g", "-c", str(conf)],
                                     log_path=self.log_path, cwd=self.workdir)
            self._process = process
            proc = process.start()
            try:
                wait_for_port(self.host, self.port, timeout=self.startup_timeout, proc=proc,
                              log=self.log_path, what=f"named (pid {proc.pid})")
                wait_until(self._updates_work, what=f"named (pid {proc.pid})",
                           timeout=self.startup_timeout, proc=proc, log=self.log_path)
                return self
            except ServerStartError as exc:
                self.stop()
                if "address in use" not in str(exc) or attempt == 2:
                    raise
        return self

    def _updates_work(self) -> bool:
        """Ready once every zone takes an update (just after "running" one may still get
        SERVFAIL): a delete of a record that is not there changes nothing."""
        try:
            for zone in self.zones:
                self.update(zone, ("delete", f"ready.{zone}", "TXT", "none"))
        except (OSError, RuntimeError, EOFError):
            return False
        except Exception as exc:  # dnspython's timeout and parse errors
            if type(exc).__module__.startswith("dns."):
                return False
            raise
        return True

    def stop(self) -> None:
        stop_process(self)

    # -- what the zone holds (asked over DNS, as a resolver would) ---------------------------
    def txt(self, name: str) -> list[str]:
        """The TXT strings at ``name`` (no CNAME followed), sorted."""
        import dns.message
        import dns.query
        import dns.rdatatype

        query = dns.message.make_query(name.rstrip(".") + ".", dns.rdatatype.TXT)
        reply = dns.query.udp(query, self.host, port=self.port, timeout=3)
        found = []
        for rrset in reply.answer:
            if rrset.rdtype == dns.rdatatype.TXT and rrset.name == query.question[0].name:
                found += [b"".join(r.strings).decode() for r in rrset]
        return sorted(found)

    def update(self, zone: str, *changes: tuple[str, str, str, str]) -> None:
        """Apply ``(action, name, type, value)`` changes (action ``add`` or ``delete``) with
        the test key, as a zone's admin would."""
        import dns.query
        import dns.rcode
        import dns.tsigkeyring
        import dns.update

        keyring = dns.tsigkeyring.from_text({self.key_name: (self.algorithm, self.secret)})
        update = dns.update.UpdateMessage(zone + ".", keyring=keyring,
                                          keyname=self.key_name, keyalgorithm=self.algorithm)
        for action, name, rdtype, value in changes:
            if action == "add":
                update.add(name + ".", 60, rdtype, value)
            else:
                update.delete(name + ".", rdtype, value)
        reply = dns.query.tcp(update, self.host, port=self.port, timeout=5)
        if reply.rcode() != dns.rcode.NOERROR:
            raise RuntimeError(f"update of {zone} refused: {dns.rcode.to_text(reply.rcode())}")

    def records_of(self, zone: str, rdtype: str = "TXT") -> list[tuple[str, str]]:
        """Every ``(name, value)`` of ``rdtype`` in ``zone`` (a zone transfer over TCP)."""
        import dns.query
        import dns.rdatatype
        import dns.tsigkeyring
        import dns.zone

        keyring = dns.tsigkeyring.from_text({self.key_name: (self.algorithm, self.secret)})
        deadline = time.monotonic() + 5
        while True:
            try:
                xfr = dns.query.xfr(self.host, zone + ".", port=self.port, keyring=keyring,
                                    keyname=self.key_name, keyalgorithm=self.algorithm,
                                    timeout=5)
                z = dns.zone.from_xfr(xfr)
                break
            except (OSError, EOFError):
                if time.monotonic() > deadline:
                    raise
        wanted = dns.rdatatype.from_text(rdtype)
        out = []
        for name, rdataset in z.iterate_rdatasets(wanted):
            for rdata in rdataset:
                value = (b"".join(rdata.strings).decode() if wanted == dns.rdatatype.TXT
                         else rdata.to_text())
                out.append((name.derelativize(z.origin).to_text().rstrip("."), value))
        return sorted(out)
