"""Bench section `dns-rfc2136`: `example.test` + `*.example.test`-style orders over RFC 2136.

A real BIND (TSIG key, dynamic zone `example.test`) is the DNS server a Pebble of its own
resolves through. certwright (`--dns-rfc2136`, waiting by asking the zone's
authoritative servers) and Certbot 5.8.0 + certbot-dns-rfc2136 (its default
propagation wait, 60 s) each issue a certificate for a fresh name and its wildcard, from
a store holding only an account, with the same credentials file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.measure import BenchError, Row, Samples, rows_for, run_once
from benchmarks.tools import CERTBOT_VERSION, Tool, ensure_certbot, pip_install
from tests.servers.bind import Bind
from tests.servers.pebble import Pebble

ZONE = "example.test"
EMAIL = "x@example.org"


def certbot_dns_venv(root: Path) -> Path:
    """Certbot with certbot-dns-rfc2136 in `.bench/certbot-dns-venv` (made when missing);
    the plain Certbot venv of the other sections stays as it is."""
    venv = root / ".bench" / "certbot-dns-venv"
    exe = ensure_certbot(venv)
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import certbot_dns_rfc2136"],
                           capture_output=True)
    if probe.returncode != 0:
        pip_install(venv, f"certbot-dns-rfc2136=={CERTBOT_VERSION}")
    return exe


def section_dns_rfc2136(bench: Any, root: Path) -> list[Row]:
    """Run by benchmarks/run.py with its Bench (``base``, ``tools``, ``stack``, ``reps``,
    ``base_env``, ``next_id``, ``dirs``)."""
    base = bench.base / "dns"
    bind = bench.stack.enter_context(Bind(base / "bind", zones=(ZONE,)))
    ca = bench.stack.enter_context(Pebble(base / "pebble", dns_server=bind.address))
    env = ca.env(bench.base_env)
    creds = base / "rfc2136.ini"
    creds.write_text(f"dns_rfc2136_server = {bind.host}\ndns_rfc2136_port = {bind.port}\n"
                     f"dns_rfc2136_name = {bind.key_name}\n"
                     f"dns_rfc2136_secret = {bind.secret}\n"
                     "dns_rfc2136_algorithm = HMAC-SHA256\n")
    os.chmod(creds, 0o600)
    certwright = next(t for t in bench.tools if t.name == "certwright")
    tools = (certwright, Tool("certbot", certbot_dns_venv(root), ("--no-eff-email",)))
    accounts: dict[str, Path] = {}
    for tool in tools:
        accounts[tool.name] = base / "accounts" / tool.name
        run_once(tool.argv("register", "--server", ca.directory_url, "--agree-tos", "-m",
                           EMAIL, "-n", *tool.extra, *bench.dirs(accounts[tool.name])), env)

    def one_run(tool: Tool, label: str) -> Samples:
        store = base / "stores" / f"{tool.name}-{label}"
        shutil.copytree(accounts[tool.name], store, symlinks=True)
        name = f"{tool.name}-{label}-{bench.next_id()}.{ZONE}"
        argv = tool.argv("certonly", "--dns-rfc2136", "--dns-rfc2136-credentials", str(creds),
                         "-d", name, "-d", f"*.{name}", "--server", ca.directory_url, "-n",
                         *tool.extra, *bench.dirs(store))
        samples = Samples()
        samples.add(run_once(argv, env))
        if not (store / "config" / "live" / name / "cert.pem").exists():
            raise BenchError(f"{tool.name} exited 0 but stored no certificate for {name}")
        left = [r for r in bind.records_of(ZONE) if "_acme-challenge" in r[0]]
        if left:
            raise BenchError(f"{tool.name} left TXT records in {ZONE}: {left}")
        return samples

    for tool in tools:
        one_run(tool, "warm")  # unmeasured: page cache, .pyc files
    repeat = bench.reps(3, 1)
    results: dict[str, Samples] = {t.name: Samples() for t in tools}
    for index in range(repeat):  # alternating order, as the other sections
        for tool in (tools if index % 2 == 0 else tuple(reversed(tools))):
            results[tool.name].extend(one_run(tool, str(index)))
    return rows_for("certonly --dns-rfc2136, name + wildcard (BIND)", results,
                    wall_target=0.25)
