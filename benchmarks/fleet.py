"""The fleet sections of `make bench` (see README.md beside this file).

`fleet-2000`: N domains from an empty store (2,000; 300 with --quick) in one
`certwright fleet sync --jobs 16` (TOML inventory, pre-check on, one account registered
beforehand), against the status quo the hoster runs: a loop calling `certbot certonly
--webroot` once per domain. A Certbot loop over 2,000 domains takes over an hour here, so
it is measured on a sample of domains (20; 5 with --quick) run one after another, and its
median per domain is multiplied by N; the row says so.

`fleet-idle-10k`: certwright alone, a sync over 10,000 domains with nothing due (a store
of 10,000 lineages, each known to the fleet), from a TOML inventory and from a real slapd;
target under 3 s.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.measure import BenchError, Row, measure, run_once
from certwright.core.fleet.state import DomainState, FleetStore
from tests.servers.slapd import Slapd

if TYPE_CHECKING:
    from benchmarks.run import Bench

JOBS = "16"


def _toml(path: Path, names: Sequence[str], webroot: Path) -> Path:
    path.write_text("".join(f'[[domain]]\nnames = ["{n}"]\nwebroot = "{webroot}"\n'
                            f'customer = "c{i % 50}"\n\n' for i, n in enumerate(names)))
    return path


def _sync_argv(bench: Bench, store: Path, *inventory: str) -> list[str]:
    b = bench
    ca = b.ca
    return [*b.tools[0].argv("fleet", "sync"), *inventory, "--jobs", JOBS,
            "--server", ca.directory_url, "--agree-tos", "-m", "x@example.org",
            "--precheck-dns", f"127.0.0.1:{ca.dns_port}",
            "--precheck-http-port", str(ca.http_port), "--fleet-address", "127.0.0.1",
            *b.dirs(store)]


def section_fleet_2000(bench: Bench) -> list[Row]:
    b = bench
    quick = b.quick
    count, sample = (300, 5) if quick else (2000, 20)
    certwright, certbot = b.tools
    store = b.fresh_store(certwright, "fleet")
    names = [b.name(certwright, "fleet") for _ in range(count)]
    inventory = _toml(store / "domains.toml", names, b.www)
    fleet = measure(_sync_argv(bench, store, "--inventory", str(inventory)),
                    b.env, 1)
    issued = sum(1 for n in names if (store / "config" / "live" / n / "cert.pem").exists())
    if issued != count:
        raise BenchError(f"fleet sync issued {issued} of {count} certificates")
    b.warm_up_certonly(certbot)
    loop = b.fresh_store(certbot, "loop")
    per_domain = measure(lambda _: b.certonly(
        certbot, loop, b.name(certbot, "loop")), b.env, sample)
    estimate = statistics.median(per_domain.wall) * count
    label = (f"fleet sync {count} domains --jobs {JOBS} vs Certbot loop (median of {sample} "
             f"runs x {count}), wall")
    return [Row(label, fleet.wall, [estimate], target=0.05),
            Row(f"fleet sync {count} domains, CPU (certwright only)", fleet.cpu, [])]


def _idle_store(bench: Bench, count: int) -> tuple[Path, list[str]]:
    from benchmarks.run import copy_store, many_lineages

    b = bench
    src = many_lineages(bench, count)
    store = copy_store(src, b.base / "stores" / f"fleet-idle-{count}")
    names = sorted(p.name[:-5] for p in (store / "config" / "renewal").glob("*.conf"))
    fleet = FleetStore(store / "config")
    for name in names:
        fleet.save_state(DomainState(name, [name], lineage=name, state="valid",
                                     webroot=str(b.www)))
    return store, names


def _ldif(names: Sequence[str], webroot: Path) -> str:
    out = ["dn: ou=domains,{suffix}\nobjectClass: organizationalUnit\nou: domains\n"]
    for i, name in enumerate(names):
        out.append(f"dn: cn={name},ou=domains,{{suffix}}\nobjectClass: device\n"
                   "objectClass: domainRelatedObject\nobjectClass: extensibleObject\n"
                   f"cn: {name}\nassociatedDomain: {name}\nletsencrypt: TRUE\n"
                   f"o: c{i % 50}\ncertwrightWebroot: {webroot}\n")
    return "\n".join(out)


def section_fleet_idle_10k(bench: Bench) -> list[Row]:
    b = bench
    count = 10_000
    store, names = _idle_store(bench, count)
    inventory = _toml(store / "domains.toml", names, b.www)
    toml_argv = _sync_argv(bench, store, "--inventory", str(inventory), "--json")
    run_once(toml_argv, b.env)  # warm-up: the CA's directory, the lineage cache
    rows = []
    samples = measure(toml_argv, b.env, 3 if not b.quick else 1)
    rows.append(Row(f"fleet sync, {count} domains none due, TOML (certwright only), wall",
                    samples.wall, [], limit=3.0))
    rows.append(Row(f"fleet sync, {count} domains none due, TOML (certwright only), CPU",
                    samples.cpu, []))
    ldap = b.stack.enter_context(Slapd(
        b.base / "slapd", size_limit=500,
        initial_ldif=_ldif(names, b.www)))
    ldap_argv = _sync_argv(bench, store, *ldap.args(), "--base-dn",
                           f"ou=domains,{ldap.suffix}", "--json")
    run_once(ldap_argv, b.env)  # warm-up
    samples = measure(ldap_argv, b.env, 3 if not b.quick else 1)
    rows.append(Row(f"fleet sync, {count} domains none due, LDAP (certwright only), wall",
                    samples.wall, [], limit=3.0))
    rows.append(Row(f"fleet sync, {count} domains none due, LDAP (certwright only), CPU",
                    samples.cpu, []))
    _check_nothing_done(store, count)
    return rows


def _check_nothing_done(store: Path, count: int) -> None:
    renewed = list((store / "config" / "archive").glob("*/cert2.pem"))
    if renewed:
        raise BenchError(f"an idle sync over {count} domains issued {len(renewed)} "
                         "certificates")
