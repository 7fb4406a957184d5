"""A real Pebble ACME CA and pebble-challtestsrv on loopback, for tests, the demo and benchmarks.

    with Pebble(workdir) as ca:
        subprocess.run([..., "--server", ca.directory_url], env=ca.env(), check=True)

What gets started (Debian's pebble 2.4.0 binaries):

- `pebble-challtestsrv` as the DNS server Pebble's validation authority asks: every A
  query is answered with 127.0.0.1, AAAA is disabled (so no IPv6 is tried), and TXT
  records for dns-01 are set through its management API (`set_txt`). Its own http-01,
  https-01 and tls-alpn-01 responders are switched off: the code under test answers.
- `pebble` with a generated JSON config: ACME API and management API on free loopback
  ports, over HTTPS with a throwaway CA (`ca_bundle`), validating http-01 on `http_port`
  and tls-alpn-01 on `tls_port` of 127.0.0.1.

Readiness is polled (directory URL, TCP ports), never slept for. Logs go to
`<workdir>/pebble.log` and `<workdir>/challtestsrv.log`; a failed start raises
ServerStartError with the log tail. `stop()` ends only the two processes started here.

Pebble keeps everything in memory: each (re)start makes a new issuing root and
intermediate and forgets all accounts, orders and certificates.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import requests

from tests.servers.ports import (
    ServerStartError,
    free_port,
    startup_failure,
    wait_for_port,
    wait_until,
)
from tests.servers.process import ManagedProcess, StartStop, clean_env, stop_process
from tests.servers.tlsca import TlsFiles, make_tls_files

PEBBLE_BINARY = "pebble"
CHALLTESTSRV_BINARY = "pebble-challtestsrv"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
DEFAULT_VALIDITY_SECONDS = 90 * 24 * 3600
PORT_RETRIES = 3  # fresh ports after "address already in use" (another process took ours)

# The external account binding keys in Pebble's example configuration
# (/usr/share/doc/pebble/examples/pebble-config-external-account-bindings.json).
# The values are base64url (no padding), exactly what a CA hands out as --eab-hmac-key.
EXAMPLE_EAB_KEYS: Mapping[str, str] = {
    "kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
    "kid-2": "b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH",
}


@dataclass(frozen=True)
class EabCredentials:
    """What a CA gives a user for external account binding (RFC 8555 §7.3.4)."""

    kid: str
    hmac_key: str  # base64url without padding


def fqdn(host: str) -> str:
    """`host` with exactly one trailing dot, the form challtestsrv stores TXT records under."""
    return host.rstrip(".") + "."


def _loopback_session() -> requests.Session:
    """A requests session that ignores the environment. With trust_env on, an inherited
    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE silently wins over `session.verify`, and proxy
    variables would route loopback calls elsewhere."""
    session = requests.Session()
    session.trust_env = False
    return session


def _address_in_use(exc: ServerStartError) -> bool:
    return "address already in use" in str(exc)


class PebbleChalltest(StartStop):
    """pebble-challtestsrv as a mock DNS server (DNS on UDP+TCP `dns_port`), on loopback.

    Every name resolves to `default_ipv4` unless `add_a` says otherwise; AAAA answers are
    empty when `default_ipv6` is "" (the default), so validation never tries IPv6.
    """

    def __init__(
        self,
        workdir: Path | str,
        *,
        dns_port: int | None = None,
        management_port: int | None = None,
        default_ipv4: str = "127.0.0.1",
        default_ipv6: str = "",
        host: str = "127.0.0.1",
        binary: str = CHALLTESTSRV_BINARY,
        startup_timeout: float = 15.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.host = host
        self.default_ipv4 = default_ipv4
        self.default_ipv6 = default_ipv6
        self.binary = binary
        self.startup_timeout = startup_timeout
        self._auto_ports = dns_port is None and management_port is None
        self._dns_port = dns_port
        self._management_port = management_port
        self._process: ManagedProcess | None = None
        self._http = _loopback_session()
        self.startup_seconds: float | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Self:
        if self.running:
            return self
        begin = time.monotonic()
        for attempt in range(PORT_RETRIES):
            if self._dns_port is None or (attempt and self._auto_ports):
                self._dns_port = free_port(self.host)
            if self._management_port is None or (attempt and self._auto_ports):
                self._management_port = free_port(self.host)
            try:
                self._start_once()
                break
            except ServerStartError as exc:
                self.stop()
                if not (self._auto_ports and _address_in_use(exc)) or attempt == PORT_RETRIES - 1:
                    raise
        self.startup_seconds = time.monotonic() - begin
        return self

    def _start_once(self) -> None:
        binary = shutil.which(self.binary)
        if binary is None:
            raise ServerStartError(f"{self.binary} not found on PATH")
        argv = [
            binary,
            "-defaultIPv4", self.default_ipv4,
            "-defaultIPv6", self.default_ipv6,
            "-dns01", self.dns_address,
            "-http01", "",
            "-https01", "",
            "-tlsalpn01", "",
            "-management", f"{self.host}:{self.management_port}",
        ]  # fmt: skip
        self.workdir.mkdir(parents=True, exist_ok=True)
        process = ManagedProcess(argv, log_path=self.log_path, cwd=self.workdir)
        self._process = process
        proc = process.start()
        what = f"pebble-challtestsrv (pid {proc.pid})"
        for port in (self.dns_port, self.management_port):
            wait_for_port(
                self.host,
                port,
                timeout=self.startup_timeout,
                proc=proc,
                log=self.log_path,
                what=what,
            )
        if proc.poll() is not None:  # a port answered, but not ours: someone else holds it
            raise startup_failure(what, "exited after its ports answered", proc, self.log_path)

    def stop(self) -> None:
        stop_process(self)
        self._http.close()

    # -- facts -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path:
        return self.workdir / "challtestsrv.log"

    @property
    def dns_port(self) -> int:
        if self._dns_port is None:
            raise RuntimeError("challtestsrv not started")
        return self._dns_port

    @property
    def dns_address(self) -> str:
        """host:port of the mock DNS server, the value for pebble's -dnsserver."""
        return f"{self.host}:{self.dns_port}"

    @property
    def management_port(self) -> int:
        if self._management_port is None:
            raise RuntimeError("challtestsrv not started")
        return self._management_port

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self.management_port}"

    # -- mock DNS data -----------------------------------------------------------------------
    def set_txt(self, host: str, value: str) -> None:
        """Add a TXT record (e.g. host "_acme-challenge.example.org"). Records for the same
        name accumulate, so a wildcard and its apex can both be answered."""
        self._post("/set-txt", {"host": fqdn(host), "value": value})

    def clear_txt(self, host: str) -> None:
        """Remove all TXT records of `host`."""
        self._post("/clear-txt", {"host": fqdn(host)})

    def add_a(self, host: str, addresses: Sequence[str]) -> None:
        """Answer A queries for `host` with `addresses` instead of the default IPv4."""
        self._post("/add-a", {"host": fqdn(host), "addresses": list(addresses)})

    def clear_a(self, host: str) -> None:
        self._post("/clear-a", {"host": fqdn(host)})

    def add_aaaa(self, host: str, addresses: Sequence[str]) -> None:
        self._post("/add-aaaa", {"host": fqdn(host), "addresses": list(addresses)})

    def clear_aaaa(self, host: str) -> None:
        self._post("/clear-aaaa", {"host": fqdn(host)})

    def set_default_ipv4(self, ip: str) -> None:
        """Change the answer for A queries without a specific mock ("" disables it)."""
        self._post("/set-default-ipv4", {"ip": ip})

    def _post(self, path: str, body: Mapping[str, Any]) -> None:
        response = self._http.post(self.management_url + path, json=body, timeout=5)
        if response.status_code != 200:
            raise RuntimeError(
                f"challtestsrv {path} {body!r}: HTTP {response.status_code} {response.text!r}"
            )


class Pebble(StartStop):
    """Pebble (ACME CA) plus pebble-challtestsrv (its DNS), both on loopback.

    Constructor arguments (all but `workdir` keyword-only):
      workdir               config, TLS files and logs go here (created if missing)
      http_port             port Pebble's VA connects to for http-01 (default: a free port)
      tls_port              port for tls-alpn-01 (default: a free port)
      validity_seconds      certificateValidityPeriod of issued certs (default 90 days;
                            Pebble's own default is 157766400 s, about 5 years)
      nonce_reject_percent  PEBBLE_WFE_NONCEREJECT (default 0; Pebble's own default is 5)
      authz_reuse           PEBBLE_AUTHZREUSE, % of valid authzs reused (default 0;
                            Pebble's own default is 50)
      eab                   require external account binding, keys from `eab_keys`
      eab_keys              kid -> base64url HMAC key (default: Pebble's example keys)
      chain_length          PEBBLE_CHAIN_LENGTH (intermediates per chain; Pebble: 1)
      alternate_roots       PEBBLE_ALTERNATE_ROOTS (extra chains to other roots)
      domain_blocklist      names Pebble refuses to issue for (config domainBlocklist)
      strict                run `pebble -strict`
      extra_env             more environment for pebble (overrides the above)
      listen_port / management_port   fixed API ports (default: free ports)
      dns_server            host:port Pebble resolves through (its -dnsserver) instead of
                            challtestsrv's (a real BIND or PowerDNS for dns-01 tests)
    """

    def __init__(
        self,
        workdir: Path | str,
        *,
        http_port: int | None = None,
        tls_port: int | None = None,
        validity_seconds: int = DEFAULT_VALIDITY_SECONDS,
        nonce_reject_percent: int = 0,
        authz_reuse: int = 0,
        eab: bool = False,
        eab_keys: Mapping[str, str] = EXAMPLE_EAB_KEYS,
        chain_length: int | None = None,
        alternate_roots: int | None = None,
        domain_blocklist: Sequence[str] = (),
        strict: bool = False,
        extra_env: Mapping[str, str] | None = None,
        listen_port: int | None = None,
        management_port: int | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 20.0,
        binary: str = PEBBLE_BINARY,
        challtestsrv_binary: str = CHALLTESTSRV_BINARY,
        dns_server: str | None = None,
    ) -> None:
        for name, percent in (("nonce_reject_percent", nonce_reject_percent),
                              ("authz_reuse", authz_reuse)):  # fmt: skip
            if not 0 <= percent <= 100:
                raise ValueError(f"{name} must be 0..100, not {percent}")
        if eab and not eab_keys:
            raise ValueError("eab=True needs at least one key in eab_keys")
        self.workdir = Path(workdir).resolve()
        self.host = host
        self.http_port = http_port if http_port is not None else free_port(host)
        self.tls_port = tls_port if tls_port is not None else free_port(host)
        self.validity_seconds = validity_seconds
        self.nonce_reject_percent = nonce_reject_percent
        self.authz_reuse = authz_reuse
        self.eab_required = eab
        self.eab_keys = dict(eab_keys)
        self.chain_length = chain_length
        self.alternate_roots = alternate_roots
        self.domain_blocklist = list(domain_blocklist)
        self.strict = strict
        self.extra_env = dict(extra_env or {})
        self.startup_timeout = startup_timeout
        self.binary = binary
        self.dns_server = dns_server
        self._auto_ports = listen_port is None and management_port is None
        self._listen_port = listen_port
        self._management_port = management_port
        self.challtestsrv = PebbleChalltest(
            self.workdir, host=host, binary=challtestsrv_binary, startup_timeout=startup_timeout
        )
        self._tls: TlsFiles | None = None
        self._process: ManagedProcess | None = None
        self._session: requests.Session | None = None
        self.startup_seconds: float | None = None  # whole start(): TLS files + both servers
        self.timings: dict[str, float] = {}  # per step, seconds

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Self:
        """Start challtestsrv and Pebble; return when the directory answers. Idempotent."""
        if self.running:
            return self
        begin = time.monotonic()
        try:
            if self._tls is None:
                self._tls = make_tls_files(self.workdir / "tls")
                self.timings["tls_files"] = time.monotonic() - begin
            if not self.challtestsrv.running:
                self.challtestsrv.start()
                self.timings["challtestsrv"] = self.challtestsrv.startup_seconds or 0.0
            self._start_pebble()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - begin
        return self

    def restart(self) -> Self:
        """Restart only the Pebble process, on the same ports (same directory URL).

        Pebble then has a new root and no accounts: a client's stored account gets
        urn:ietf:params:acme:error:accountDoesNotExist. challtestsrv keeps its records.
        """
        self._stop_pebble()
        begin = time.monotonic()
        try:
            self._start_pebble(allow_new_ports=False)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - begin
        return self

    def stop(self) -> None:
        """Stop Pebble, then challtestsrv (SIGTERM, bounded wait, SIGKILL). Idempotent."""
        self._stop_pebble()
        self.challtestsrv.stop()

    def _start_pebble(self, allow_new_ports: bool = True) -> None:
        begin = time.monotonic()
        for attempt in range(PORT_RETRIES):
            new_ports = attempt > 0 and allow_new_ports and self._auto_ports
            if self._listen_port is None or new_ports:
                self._listen_port = free_port(self.host)
            if self._management_port is None or new_ports:
                self._management_port = free_port(self.host)
            try:
                self._start_pebble_once()
                break
            except ServerStartError as exc:
                self._stop_pebble()
                retry = allow_new_ports and self._auto_ports and _address_in_use(exc)
                if not retry or attempt == PORT_RETRIES - 1:
                    raise
        self.timings["pebble"] = time.monotonic() - begin

    def _start_pebble_once(self) -> None:
        binary = shutil.which(self.binary)
        if binary is None:
            raise ServerStartError(f"{self.binary} not found on PATH")
        self.config_path.write_text(json.dumps(self.config(), indent=2) + "\n")
        argv = [
            binary,
            "-config",
            str(self.config_path),
            "-dnsserver",
            self.dns_server or self.challtestsrv.dns_address,
        ]
        if self.strict:
            argv += ["-strict"]
        process = ManagedProcess(
            argv, log_path=self.log_path, env=self._pebble_env(), cwd=self.workdir
        )
        self._process = process
        proc = process.start()
        session = _loopback_session()
        session.verify = str(self.ca_bundle)
        self._session = session
        what = f"pebble (pid {proc.pid})"

        def directory_answers() -> bool:
            try:
                # short: a real Pebble answers in about a millisecond, and a squatter on
                # the port that accepts but never speaks TLS must not stall the loop
                response = session.get(self.directory_url, timeout=0.5)
            except requests.RequestException:
                return False  # not listening yet (or someone else's TLS cert on that port)
            return response.status_code == 200 and "newNonce" in response.text

        wait_until(
            directory_answers,
            what=what,
            timeout=self.startup_timeout,
            proc=proc,
            log=self.log_path,
        )
        wait_for_port(
            self.host,
            self.management_port,
            timeout=self.startup_timeout,
            proc=proc,
            log=self.log_path,
            what=what,
        )
        # Pebble logs "Listening on" before it binds and exits when the bind fails.
        if proc.poll() is not None:
            raise startup_failure(what, "exited after its ports answered", proc, self.log_path)

    def _stop_pebble(self) -> None:
        stop_process(self)
        if self._session is not None:
            self._session.close()
            self._session = None

    def _pebble_env(self) -> dict[str, str]:
        env = clean_env(drop_prefixes=("PEBBLE_",))
        env["PEBBLE_VA_NOSLEEP"] = "1"
        env["PEBBLE_WFE_NONCEREJECT"] = str(self.nonce_reject_percent)
        env["PEBBLE_AUTHZREUSE"] = str(self.authz_reuse)
        if self.chain_length is not None:
            env["PEBBLE_CHAIN_LENGTH"] = str(self.chain_length)
        if self.alternate_roots is not None:
            env["PEBBLE_ALTERNATE_ROOTS"] = str(self.alternate_roots)
        env.update(self.extra_env)
        return env

    def config(self) -> dict[str, Any]:
        """The JSON config written for pebble (keys as pebble 2.4.0 reads them)."""
        tls = self._tls_files()
        settings: dict[str, Any] = {
            "listenAddress": f"{self.host}:{self.listen_port}",
            "managementListenAddress": f"{self.host}:{self.management_port}",
            "certificate": str(tls.cert),
            "privateKey": str(tls.key),
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "certificateValidityPeriod": self.validity_seconds,
            "externalAccountBindingRequired": self.eab_required,
        }
        if self.eab_required:
            settings["externalAccountMACKeys"] = dict(self.eab_keys)
        if self.domain_blocklist:
            settings["domainBlocklist"] = list(self.domain_blocklist)
        return {"pebble": settings}

    # -- facts -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running and self.challtestsrv.running

    @property
    def pids(self) -> tuple[int, ...]:
        """Pids of the processes started here that have not been stopped."""
        found = (self._process.pid if self._process else None, self.challtestsrv.pid)
        return tuple(pid for pid in found if pid is not None)

    @property
    def listen_port(self) -> int:
        if self._listen_port is None:
            raise RuntimeError("pebble not started")
        return self._listen_port

    @property
    def management_port(self) -> int:
        if self._management_port is None:
            raise RuntimeError("pebble not started")
        return self._management_port

    @property
    def directory_url(self) -> str:
        return f"https://{self.host}:{self.listen_port}/dir"

    @property
    def management_url(self) -> str:
        """Pebble's management API (HTTPS, same TLS CA): /roots/N, /cert-status-by-serial/…"""
        return f"https://{self.host}:{self.management_port}"

    @property
    def ca_bundle(self) -> Path:
        """The CA certificate that signs Pebble's HTTPS certificate (REQUESTS_CA_BUNDLE).
        It stays the same across restart(); Pebble's issuing root does not."""
        return self._tls_files().ca_cert

    @property
    def dns_port(self) -> int:
        return self.challtestsrv.dns_port

    @property
    def eab(self) -> EabCredentials | None:
        """The first EAB kid/key when EAB is required, else None."""
        if not self.eab_required:
            return None
        kid, key = next(iter(self.eab_keys.items()))
        return EabCredentials(kid=kid, hmac_key=key)

    @property
    def config_path(self) -> Path:
        return self.workdir / "pebble-config.json"

    @property
    def log_path(self) -> Path:
        return self.workdir / "pebble.log"

    @property
    def session(self) -> requests.Session:
        """A requests session that trusts `ca_bundle` (for raw ACME or management calls)."""
        if self._session is None:
            raise RuntimeError("pebble not started")
        return self._session

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a client subprocess: `base` (default os.environ) plus
        REQUESTS_CA_BUNDLE and SSL_CERT_FILE pointing at `ca_bundle`, and loopback added
        to NO_PROXY / no_proxy. (CURL_CA_BUNDLE is left alone: requests reads
        REQUESTS_CA_BUNDLE first.)"""
        env = clean_env(base)
        env["REQUESTS_CA_BUNDLE"] = str(self.ca_bundle)
        env["SSL_CERT_FILE"] = str(self.ca_bundle)
        for name in ("NO_PROXY", "no_proxy"):
            hosts = [h for h in env.get(name, "").split(",") if h]
            env[name] = ",".join([*hosts, *(h for h in LOOPBACK_NAMES if h not in hosts)])
        return env

    # -- management API ------------------------------------------------------------------------
    def directory(self) -> dict[str, Any]:
        return self._get_json(self.directory_url)

    def root_pem(self, index: int = 0) -> bytes:
        """PEM of issuing root `index` (0 = default chain; more with alternate_roots)."""
        return self._get(f"{self.management_url}/roots/{index}").content

    def intermediate_pem(self, index: int = 0) -> bytes:
        return self._get(f"{self.management_url}/intermediates/{index}").content

    def root_key_pem(self, index: int = 0) -> bytes:
        return self._get(f"{self.management_url}/root-keys/{index}").content

    def cert_status(self, serial: int | str) -> dict[str, Any]:
        """Pebble's record of an issued certificate: keys Certificate (PEM), Serial,
        Status ("Valid" / "Revoked"), and after revocation Reason and RevokedAt.

        `serial` is an int or hex (any case, optional 0x, colons allowed). Raises
        LookupError when Pebble does not know it."""
        if isinstance(serial, str):
            serial = int(serial.lower().removeprefix("0x").replace(":", ""), 16)
        url = f"{self.management_url}/cert-status-by-serial/{serial:x}"
        response = self.session.get(url, timeout=5)
        if response.status_code == 404:
            raise LookupError(f"Pebble knows no certificate with serial {serial:x}")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    # -- challtestsrv shortcuts ------------------------------------------------------------
    def set_txt(self, host: str, value: str) -> None:
        self.challtestsrv.set_txt(host, value)

    def clear_txt(self, host: str) -> None:
        self.challtestsrv.clear_txt(host)

    def add_a(self, host: str, addresses: Sequence[str]) -> None:
        self.challtestsrv.add_a(host, addresses)

    def clear_a(self, host: str) -> None:
        self.challtestsrv.clear_a(host)

    # -- helpers ---------------------------------------------------------------------------
    def _tls_files(self) -> TlsFiles:
        if self._tls is None:
            raise RuntimeError("pebble not started")
        return self._tls

    def _get(self, url: str) -> requests.Response:
        response = self.session.get(url, timeout=5)
        response.raise_for_status()
        return response

    def _get_json(self, url: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(url).json()
        return result

    def describe(self) -> str:
        """One line for logs: URLs, ports and pids."""
        return (
            f"Pebble {self.directory_url} (management {self.management_url}, pid "
            f"{self._process.pid if self._process else None}); challtestsrv DNS "
            f"{self.challtestsrv.dns_address}, management {self.challtestsrv.management_url} "
            f"(pid {self.challtestsrv.pid}); http-01 port {self.http_port}, tls-alpn-01 port "
            f"{self.tls_port}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tests.servers.pebble [workdir]`: run until SIGINT or SIGTERM (either stops
    both servers cleanly), printing the URLs and the environment to use."""
    import signal
    import sys
    import tempfile
    import threading

    args = list(sys.argv[1:] if argv is None else argv)
    workdir = Path(args[0]) if args else Path(tempfile.mkdtemp(prefix="pebble-"))
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # also when started in the background
        signal.signal(signum, lambda _signum, _frame: stopping.set())
    with Pebble(workdir) as ca:
        print(ca.describe())
        print(f"started in {ca.startup_seconds:.3f} s; logs in {workdir}")
        print(f"export REQUESTS_CA_BUNDLE={ca.ca_bundle}", flush=True)
        while ca.running and not stopping.wait(0.2):
            pass
        if not ca.running:
            print(f"a server exited; see {ca.log_path} and {ca.challtestsrv.log_path}")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
