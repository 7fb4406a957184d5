"""`make bench`: certwright and Certbot side by side against one local Pebble CA.

Both tools run as separate processes against the same Pebble (PEBBLE_VA_NOSLEEP=1, no
nonce rejection, no authz reuse) and the same nginx serving one web root on the port
where Pebble validates http-01. Each section prints medians and the certwright/Certbot
ratio next to its target.

    .venv/bin/python benchmarks/run.py                # every section
    .venv/bin/python benchmarks/run.py --only help    # one section (repeatable)
    .venv/bin/python benchmarks/run.py --quick        # fewer repetitions

Wall time is measured around the child process (spawn to reap); CPU time is the child's
user+sys from os.wait4. Runs of the two tools alternate (A B, B A, ...) so drift on the
machine hits both alike. Each tool gets one unmeasured warm-up run per section kind.

Accounts are registered before anything is measured: certificate sections measure
issuance with an existing account, for both tools. Every measured certificate has a name
never used before in this Pebble.

To add a section: write `def section_x(bench: Bench) -> list[Row]` and list it in SECTIONS.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import fleet as fleet_bench  # noqa: E402
from benchmarks.apache_tree import section_apache_install  # noqa: E402
from benchmarks.dns_rfc2136 import section_dns_rfc2136  # noqa: E402
from benchmarks.measure import (  # noqa: E402
    BenchError,
    Row,
    Samples,
    measure,
    print_table,
    rows_for,
    run_once,
)
from benchmarks.nginx_tree import (  # noqa: E402
    NGINX_BINARY,
    NGINX_SITES,
    NGINX_TARGET,
    TreeNginx,
    served_certificate,
    write_nginx_tree,
)
from benchmarks.tools import (  # noqa: E402
    CERTBOT_VERSION,
    Tool,
    dist_version,
    ensure_certbot,
    ensure_certbot_installer,
    lists_installer,
    python_version,
)
from tests.servers.nginx import Nginx  # noqa: E402
from tests.servers.pebble import Pebble  # noqa: E402
from tests.servers.ports import ServerStartError, free_port  # noqa: E402

DEFAULT_CERTBOT_VENV = ROOT / ".bench" / "certbot-venv"
PYCACHE = ROOT / ".bench" / "pycache"
EMAIL = "x@example.org"
DOMAIN = "bench.example.org"


# -- the bench: servers, accounts, stores ----------------------------------------------------


@dataclass
class Bench:
    """Shared state of one benchmark run. Pebble and nginx start on first use."""

    base: Path
    tools: tuple[Tool, ...]
    quick: bool
    stack: ExitStack
    base_env: dict[str, str]  # for both tools; `env` adds trust in Pebble
    _ca: Pebble | None = None
    _env: dict[str, str] | None = None
    _accounts: dict[str, Path] = field(default_factory=dict)
    _warm: set[tuple[str, str]] = field(default_factory=set)
    _serial: int = 0
    _built: dict[str, Path] = field(default_factory=dict)  # stores built by sections

    def reps(self, normal: int, quick: int) -> int:
        return quick if self.quick else normal

    @property
    def www(self) -> Path:
        return self.base / "www"

    @property
    def ca(self) -> Pebble:
        if self._ca is None:
            self.www.mkdir()
            self.www.chmod(0o755)  # nginx workers (www-data) must read it
            ca = self.stack.enter_context(Pebble(self.base / "pebble"))
            self.stack.enter_context(Nginx(self.base / "nginx", self.www,
                                           http_port=ca.http_port))
            self._ca = ca
        return self._ca

    @property
    def env(self) -> dict[str, str]:
        """Environment for both tools: trusts Pebble's API certificate."""
        if self._env is None:
            self._env = self.ca.env(self.base_env)
        return self._env

    def next_id(self) -> int:
        self._serial += 1
        return self._serial

    def name(self, tool: Tool, label: str) -> str:
        """A domain name used nowhere else in this Pebble's life."""
        return f"{tool.name}-{label}-{self.next_id()}.{DOMAIN}"

    @staticmethod
    def dirs(store: Path) -> list[str]:
        return ["--config-dir", str(store / "config"), "--work-dir", str(store / "work"),
                "--logs-dir", str(store / "logs")]

    def account_store(self, tool: Tool) -> Path:
        """A store holding only a registered account (registered once per tool)."""
        if tool.name not in self._accounts:
            store = self.base / "accounts" / tool.name
            run_once(tool.argv("register", "--server", self.ca.directory_url, "--agree-tos",
                               "-m", EMAIL, "-n", *tool.extra, *self.dirs(store)), self.env)
            self._accounts[tool.name] = store
        return self._accounts[tool.name]

    def fresh_store(self, tool: Tool, label: str) -> Path:
        """New config/work/logs dirs containing a copy of the tool's account."""
        store = self.base / "stores" / f"{tool.name}-{label}-{self.next_id()}"
        shutil.copytree(self.account_store(tool), store, symlinks=True)
        return store

    def one_lineage(self, tool: Tool, key: str, name: str) -> tuple[Path, bytes]:
        """A store of ``tool``'s with one lineage for ``name`` (issued once, kept under
        ``key`` for later sections) and its certificate, DER."""
        store = self._built.get(key)
        if store is None:
            store = self.fresh_store(tool, key)
            run_once(self.certonly(tool, store, name), self.env)
            self._built[key] = store
        pem = (store / "config" / "live" / name / "cert.pem").read_text()
        return store, ssl.PEM_cert_to_DER_cert(pem)

    def certonly(self, tool: Tool, store: Path, name: str) -> list[str]:
        return tool.argv("certonly", "--webroot", "-w", str(self.www), "-d", name,
                         "--server", self.ca.directory_url, "--agree-tos", "-m", EMAIL, "-n",
                         *tool.extra, *self.dirs(store))

    def warm_up(self, tool: Tool, kind: str, argv: Callable[[], Sequence[str]]) -> None:
        """One unmeasured run per tool and kind (page cache, .pyc files, account)."""
        if (tool.name, kind) not in self._warm:
            run_once(argv(), self.env if kind != "help" else self.base_env)
            self._warm.add((tool.name, kind))

    def warm_up_certonly(self, tool: Tool) -> None:
        self.warm_up(tool, "certonly", lambda: self.certonly(
            tool, self.fresh_store(tool, "warm"), self.name(tool, "warm")))


def alternate(bench: Bench, repeat: int, one_run: Callable[[Tool, int], Samples]
              ) -> dict[str, Samples]:
    """`repeat` runs per tool, order alternating (A B, B A, ...); samples by tool name."""
    results = {tool.name: Samples() for tool in bench.tools}
    for index in range(repeat):
        order = bench.tools if index % 2 == 0 else tuple(reversed(bench.tools))
        for tool in order:
            results[tool.name].extend(one_run(tool, index))
    return results


# -- sections --------------------------------------------------------------------------------


def section_help(bench: Bench) -> list[Row]:
    """`--help`, no CA needed."""
    repeat = bench.reps(15, 5)
    for tool in bench.tools:
        bench.warm_up(tool, "help", functools.partial(tool.argv, "--help"))
    results = alternate(bench, repeat,
                        lambda tool, _: measure(tool.argv("--help"), bench.base_env, 1))
    return rows_for("--help", results, wall_target=0.4)


def section_one(bench: Bench) -> list[Row]:
    """One certificate with webroot, fresh store holding only an account."""
    repeat = bench.reps(7, 3)
    for tool in bench.tools:
        bench.warm_up_certonly(tool)

    def one_run(tool: Tool, _: int) -> Samples:
        store = bench.fresh_store(tool, "one")
        return measure(bench.certonly(tool, store, bench.name(tool, "one")), bench.env, 1)

    results = alternate(bench, repeat, one_run)
    return rows_for("1 cert (webroot)", results, wall_target=0.15, cpu_target=0.5)


def section_twenty(bench: Bench) -> list[Row]:
    """20 certificates one after another into one store (as a user would), total time."""
    count, repeat = 20, bench.reps(2, 1)
    for tool in bench.tools:
        bench.warm_up_certonly(tool)

    def one_batch(tool: Tool, _: int) -> Samples:
        store = bench.fresh_store(tool, "twenty")
        batch = measure(lambda i: bench.certonly(tool, store, bench.name(tool, f"b{i}")),
                        bench.env, count)
        totals = Samples()
        totals.add(batch.total())
        return totals

    results = alternate(bench, repeat, one_batch)
    return rows_for(f"{count} certs in a row (total)", results)


# -- stores with many lineages ---------------------------------------------------------------

LINK_KINDS = ("cert", "chain", "fullchain", "privkey")


def copy_store(src: Path, dst: Path) -> Path:
    """Copy a store (symlinks kept as links); renewal confs get dst's paths instead of src's."""
    shutil.copytree(src, dst, symlinks=True)
    for conf in (dst / "config" / "renewal").glob("*.conf"):
        conf.write_text(conf.read_text().replace(str(src), str(dst)))
    return dst


def clone_lineage(config: Path, name: str, new_names: Sequence[str]) -> None:
    """Copies of lineage `name` under other names: archive dir copied, live links made,
    renewal conf written with the name replaced. The certificate itself is unchanged."""
    conf_text = (config / "renewal" / f"{name}.conf").read_text()
    for new in new_names:
        shutil.copytree(config / "archive" / name, config / "archive" / new)
        live = config / "live" / new
        live.mkdir()
        for kind in LINK_KINDS:
            (live / f"{kind}.pem").symlink_to(f"../../archive/{new}/{kind}1.pem")
        (config / "renewal" / f"{new}.conf").write_text(conf_text.replace(name, new))


def issue_real(bench: Bench, label: str, count: int) -> tuple[Path, list[str]]:
    """A certwright store with `count` real certificates (webroot through the bench's nginx)."""
    certwright = bench.tools[0]
    store = bench.fresh_store(certwright, label)
    names = [bench.name(certwright, f"{label}-{i}") for i in range(count)]
    for name in names:
        run_once(bench.certonly(certwright, store, name), bench.env)
    return store, names


def many_lineages(bench: Bench, count: int) -> Path:
    """A store (certwright-issued, built once per count) with `count` lineages, none due:
    one real 90-day certificate and count - 1 copies of it under other names."""
    key = f"lineages-{count}"
    if key not in bench._built:
        store, (name,) = issue_real(bench, key, 1)
        stem = name.split(".", 1)[0]
        clone_lineage(store / "config", name,
                      [name.replace(stem, f"{stem}-c{i}", 1) for i in range(1, count)])
        bench._built[key] = store
    return bench._built[key]


def store_per_tool(bench: Bench, src: Path, label: str) -> dict[str, Path]:
    return {tool.name: copy_store(src, bench.base / "stores" / f"{label}-{tool.name}")
            for tool in bench.tools}


def renew_argv(bench: Bench, tool: Tool, store: Path, *extra: str) -> list[str]:
    return tool.argv("renew", "-n", "--no-random-sleep-on-renew", *extra, *bench.dirs(store))


def idle_section(bench: Bench, label: str, metric: str, target: float,
                 argv: Callable[[Tool, Path], list[str]]) -> list[Row]:
    """A read-only command over the 200-lineage store: each tool its own copy of it, one
    warm-up run per tool, then alternating measured runs."""
    stores = store_per_tool(bench, many_lineages(bench, 200), label)
    for tool in bench.tools:
        run_once(argv(tool, stores[tool.name]), bench.env)  # warm-up (caches, .pyc)
    results = alternate(bench, bench.reps(5, 3), lambda tool, _: measure(
        argv(tool, stores[tool.name]), bench.env, 1))
    return rows_for(metric, results, wall_target=target)


def section_renew_idle(bench: Bench) -> list[Row]:
    """`renew` with 200 lineages, none due."""
    return idle_section(bench, "idle", "renew, 200 lineages none due", 0.2,
                        lambda tool, store: renew_argv(bench, tool, store))


def section_certificates(bench: Bench) -> list[Row]:
    """`certificates` with 200 lineages."""
    return idle_section(bench, "certificates", "certificates, 200 lineages", 0.25,
                        lambda tool, store: tool.argv("certificates", *bench.dirs(store)))


def section_renew_10k(bench: Bench) -> list[Row]:
    """certwright alone: `renew` with 10,000 lineages, none due."""
    certwright = bench.tools[0]
    store = many_lineages(bench, 10_000)
    argv = renew_argv(bench, certwright, store)
    run_once(argv, bench.env)  # warm-up
    samples = measure(argv, bench.env, bench.reps(3, 1))
    return [Row("renew, 10k lineages none due (certwright only), wall", samples.wall, [],
                limit=2.0),
            Row("renew, 10k lineages none due (certwright only), CPU", samples.cpu, [])]


def _not_at_version_2(store: Path, names: Sequence[str]) -> list[str]:
    """Names whose live cert link does not point at version 2."""
    live = store / "config" / "live"
    return [n for n in names
            if os.readlink(live / n / "cert.pem") != f"../../archive/{n}/cert2.pem"]


def section_renew_due(bench: Bench) -> list[Row]:
    """50 lineages, all renewed (--force-renewal stands in for "due"): certwright with
    --jobs 8, Certbot (which has no --jobs) one after another. One run each."""
    count = 50
    src, names = issue_real(bench, "due", count)
    stores = store_per_tool(bench, src, "due")
    results = {}
    for tool in bench.tools:
        jobs = ("--jobs", "8") if tool.name == "certwright" else ()
        samples = Samples()
        samples.add(run_once(renew_argv(bench, tool, stores[tool.name], "--force-renewal",
                                        *jobs), bench.env))
        missing = _not_at_version_2(stores[tool.name], names)
        if missing:
            raise BenchError(f"{tool.name} renew exited 0 but {len(missing)} of {count} "
                             f"lineages are not at version 2, e.g. {missing[0]}")
        results[tool.name] = samples
    return rows_for(f"renew --force-renewal, {count} lineages (certwright --jobs 8)",
                    results, wall_target=0.05)


def ensure_certwright_nginx(certwright: Tool, env: Mapping[str, str]) -> None:
    done = subprocess.run(certwright.argv("plugins", "--installers"), capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, env=dict(env))
    if done.returncode != 0 or not lists_installer(done.stdout, "nginx"):
        raise BenchError(f"{certwright.exe} has no nginx installer "
                         f"(`certwright plugins --installers`):\n{done.stdout}{done.stderr}")


def section_nginx_install(bench: Bench) -> list[Row]:
    """`install --nginx --cert-name site-0500.example.org` into a config of 1,000 server
    blocks in 1,000 included files; each run on a freshly generated tree with its own
    running nginx and its own copy of the store."""
    certwright, certbot = bench.tools
    ensure_certbot_installer(certbot, "nginx", Bench.dirs(bench.base / "certbot-plugins"))
    ensure_certwright_nginx(certwright, bench.base_env)
    store, expected = bench.one_lineage(certwright, "nginx-lineage", NGINX_TARGET)

    def one_run(tool: Tool, label: str) -> Samples:
        work = bench.base / "nginx-install" / f"{tool.name}-{label}"
        http_port, https_port = free_port(), free_port()
        write_nginx_tree(work / "nginx", http_port)
        tool_store = copy_store(store, work / "store")
        argv = tool.argv("install", "--nginx", "--cert-name", NGINX_TARGET,
                         "--nginx-server-root", str(work / "nginx"),
                         "--nginx-ctl", NGINX_BINARY, "--https-port", str(https_port), "-n",
                         *bench.dirs(tool_store))
        samples = Samples()
        with TreeNginx(work / "nginx", http_port):
            samples.add(run_once(argv, bench.env))
            if served_certificate(https_port, NGINX_TARGET) != expected:
                raise BenchError(f"{tool.name} install exited 0 but nginx does not serve "
                                 f"the certificate of {NGINX_TARGET} on port {https_port} "
                                 f"(tree: {work / 'nginx'})")
        return samples

    for tool in bench.tools:
        one_run(tool, "warm")  # unmeasured: page cache, .pyc files
    results = alternate(bench, bench.reps(3, 3), lambda tool, i: one_run(tool, str(i)))
    return rows_for(f"install --nginx, 1 name, {NGINX_SITES:,} server blocks", results,
                    wall_target=0.2)


@dataclass(frozen=True)
class Section:
    name: str
    run: Callable[[Bench], list[Row]]


SECTIONS: tuple[Section, ...] = (
    Section("help", section_help),
    Section("one", section_one),
    Section("twenty", section_twenty),
    Section("renew-idle", section_renew_idle),
    Section("renew-10k", section_renew_10k),
    Section("certificates", section_certificates),
    Section("renew-due", section_renew_due),
    Section("nginx-install", section_nginx_install),
    Section("dns-rfc2136", lambda bench: section_dns_rfc2136(bench, ROOT)),
    Section("apache-install", functools.partial(section_apache_install, copy_store=copy_store,
                                                alternate=alternate)),
    Section("fleet-2000", fleet_bench.section_fleet_2000),
    Section("fleet-idle-10k", fleet_bench.section_fleet_idle_10k),
)


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    names = [s.name for s in SECTIONS]
    parser.add_argument("--only", action="append", choices=names, metavar="NAME",
                        help=f"run only this section (repeatable): {', '.join(names)}")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--certwright", type=Path,
                        default=Path(sys.executable).parent / "certwright",
                        help="certwright executable (default: beside this Python)")
    parser.add_argument("--certbot-venv", type=Path, default=DEFAULT_CERTBOT_VENV,
                        help=f"venv with certbot {CERTBOT_VERSION} (created when missing)")
    parser.add_argument("--json", type=Path, help="also write the samples here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--keep-python-env", action="store_true",
                        help="run the tools with PYTHONDONTWRITEBYTECODE etc. as inherited "
                             "(default: bytecode cached in .bench/pycache for both)")
    return parser.parse_args(argv)


def tool_env(keep_python_env: bool) -> dict[str, str]:
    """The environment both tools run in.

    Unless told to keep it as is, bytecode caching is switched on, into .bench/pycache:
    with PYTHONDONTWRITEBYTECODE set, an editable install (certwright here) compiles its
    own modules from source on every start, while pip precompiled Certbot's at install
    time. A user's installation of either tool has bytecode, so both get it here.
    """
    env = dict(os.environ)
    if not keep_python_env:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def describe(certbot_venv: Path) -> str:
    """One line: versions, CPUs, Pebble settings."""
    python = certbot_venv / "bin" / "python"
    return (f"certwright {dist_version(Path(sys.executable), 'certwright')} "
            f"(Python {platform.python_version()}) vs certbot {CERTBOT_VERSION} "
            f"(acme {dist_version(python, 'acme')}, Python {python_version(python)}); "
            f"{os.cpu_count()} CPUs; Pebble: PEBBLE_VA_NOSLEEP=1, nonce rejection 0, "
            f"authz reuse 0")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sections = [s for s in SECTIONS if not args.only or s.name in args.only]
    if not args.certwright.exists():
        print(f"no certwright at {args.certwright} (make venv)", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="certwright-bench-"))
    base.chmod(0o755)  # nginx workers must traverse it to the web root
    rows: list[Row] = []
    try:
        tools = (Tool("certwright", args.certwright),
                 Tool("certbot", ensure_certbot(args.certbot_venv), ("--no-eff-email",)))
        print(describe(args.certbot_venv), flush=True)
        with ExitStack() as stack:
            env = tool_env(args.keep_python_env)
            print(f"bytecode: PYTHONDONTWRITEBYTECODE={env.get('PYTHONDONTWRITEBYTECODE', '')}"
                  f" PYTHONPYCACHEPREFIX={env.get('PYTHONPYCACHEPREFIX', '')}; accounts "
                  "registered before measuring (issuance only)", flush=True)
            bench = Bench(base, tools, args.quick, stack, env)
            for section in sections:
                print(f"[{section.name}] running ...", file=sys.stderr, flush=True)
                began = time.monotonic()
                rows += section.run(bench)
                print(f"[{section.name}] done in {time.monotonic() - began:.1f} s",
                      file=sys.stderr, flush=True)
    except (BenchError, ServerStartError) as exc:
        print(f"\nbenchmark stopped: {exc}\n(work files kept in {base})", file=sys.stderr)
        return 1
    print()
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) | {"ratio": r.ratio} for r in rows],
                                        indent=2) + "\n")
    if args.keep:
        print(f"\nwork files kept in {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
