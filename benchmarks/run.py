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
import contextlib
import functools
import json
import os
import platform
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.servers.nginx import Nginx, NginxServer  # noqa: E402
from tests.servers.pebble import Pebble  # noqa: E402
from tests.servers.ports import ServerStartError, free_port  # noqa: E402

CERTBOT_VERSION = "5.8.0"
DEFAULT_CERTBOT_VENV = ROOT / ".bench" / "certbot-venv"
PYCACHE = ROOT / ".bench" / "pycache"
EMAIL = "x@example.org"
DOMAIN = "bench.example.org"
TAIL_LINES = 25
RUN_TIMEOUT = 300.0


class BenchError(Exception):
    """A tool failed or could not be set up; the message says what and shows output."""


# -- measuring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds from spawn to reap
    cpu: float  # user + sys of the child (and of any children it waited for)


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, sample: Sample) -> None:
        self.wall.append(sample.wall)
        self.cpu.append(sample.cpu)

    def extend(self, other: Samples) -> None:
        self.wall.extend(other.wall)
        self.cpu.extend(other.cpu)

    def total(self) -> Sample:
        return Sample(sum(self.wall), sum(self.cpu))


Argv = Sequence[str] | Callable[[int], Sequence[str]]


def _tail(stream: IO[bytes], lines: int = TAIL_LINES) -> str:
    stream.seek(0)
    text = stream.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def run_once(argv: Sequence[str], env: Mapping[str, str]) -> Sample:
    """Run `argv` to completion, output to temp files; raise BenchError on a non-zero exit
    (a run longer than RUN_TIMEOUT is killed)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err)
        watchdog = threading.Timer(RUN_TIMEOUT, proc.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if proc.returncode != 0:
            why = f" (killed after {RUN_TIMEOUT:.0f} s)" if wall >= RUN_TIMEOUT else ""
            raise BenchError(
                f"{' '.join(argv)}\nexited with {proc.returncode}{why}\n"
                f"--- stderr (last {TAIL_LINES} lines) ---\n{_tail(err)}\n"
                f"--- stdout (last {TAIL_LINES} lines) ---\n{_tail(out)}")
    return Sample(wall, usage.ru_utime + usage.ru_stime)


def measure(argv: Argv, env: Mapping[str, str], repeat: int) -> Samples:
    """Run a command `repeat` times. `argv` may be a function of the run index, called
    before the clock starts (so it can prepare fresh directories)."""
    samples = Samples()
    for index in range(repeat):
        samples.add(run_once(argv(index) if callable(argv) else argv, env))
    return samples


# -- the tools -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    name: str
    exe: Path
    extra: tuple[str, ...] = ()  # added to register / certonly

    def argv(self, *args: str) -> list[str]:
        return [str(self.exe), *args]


def certbot_version(exe: Path) -> str | None:
    """What `certbot --version` prints ("certbot 5.8.0" -> "5.8.0"), None if it fails."""
    if not exe.exists():
        return None
    try:
        done = subprocess.run([str(exe), "--version"], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = (done.stdout + done.stderr).split()
    return words[1] if done.returncode == 0 and len(words) >= 2 else None


def pip_install(venv: Path, requirement: str) -> None:
    """`pip install requirement` into `venv` (created when missing)."""
    print(f"installing {requirement} into {venv}", file=sys.stderr, flush=True)
    # A test CA in REQUESTS_CA_BUNDLE would also be all that pip trusts.
    env = {k: v for k, v in os.environ.items()
           if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")}
    python = venv / "bin" / "python"
    steps = [[python.as_posix(), "-m", "pip", "install", "-q", requirement]]
    if not python.exists():
        steps.insert(0, [sys.executable, "-m", "venv", str(venv)])
    for step in steps:
        done = subprocess.run(step, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(step)} failed:\n{done.stderr[-3000:]}")


def ensure_certbot(venv: Path) -> Path:
    """Certbot CERTBOT_VERSION in its own venv; reused when it is already there."""
    exe = venv / "bin" / "certbot"
    if certbot_version(exe) == CERTBOT_VERSION:
        return exe
    pip_install(venv, f"certbot=={CERTBOT_VERSION}")
    version = certbot_version(exe)
    if version != CERTBOT_VERSION:
        raise BenchError(f"{exe} reports version {version}, expected {CERTBOT_VERSION}")
    return exe


def _ask_python(python: Path, code: str) -> str:
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def dist_version(python: Path, dist: str) -> str:
    return _ask_python(python, f"import importlib.metadata as m; print(m.version({dist!r}))")


def python_version(python: Path) -> str:
    return _ask_python(python, "import platform; print(platform.python_version())")


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


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    metric: str
    certwright: list[float]  # samples; the table shows the median
    certbot: list[float]  # empty for a certwright-only row
    target: float | None = None  # the largest acceptable certwright/certbot ratio
    limit: float | None = None  # certwright-only rows: the largest acceptable median (s)

    @property
    def ratio(self) -> float | None:
        if not self.certbot:
            return None
        return statistics.median(self.certwright) / statistics.median(self.certbot)

    @property
    def verdict(self) -> str:
        if self.limit is not None:
            return "ok" if statistics.median(self.certwright) < self.limit else "NOT OK"
        if self.target is None or self.ratio is None:
            return "-"
        return "ok" if self.ratio <= self.target else "NOT OK"

    @property
    def target_text(self) -> str:
        if self.limit is not None:
            return f"< {self.limit:.2f} s"
        return f"<= {self.target:.2f}x" if self.target is not None else "-"


def rows_for(metric: str, results: Mapping[str, Samples], *, wall_target: float | None = None,
             cpu_target: float | None = None, cpu: bool = True) -> list[Row]:
    """A wall row (and a CPU row) from per-tool samples."""
    cw, cb = results["certwright"], results["certbot"]
    rows = [Row(f"{metric}, wall", cw.wall, cb.wall, wall_target)]
    if cpu:
        rows.append(Row(f"{metric}, CPU", cw.cpu, cb.cpu, cpu_target))
    return rows


def _seconds(samples: Sequence[float]) -> str:
    return f"{statistics.median(samples):.3f} s" if samples else "-"


def _spread(samples: Sequence[float]) -> str:
    if not samples:
        return "-"
    return f"{min(samples):.3f}-{max(samples):.3f} (n={len(samples)})"


def print_table(rows: Sequence[Row]) -> None:
    header = ("metric", "certwright", "certbot", "ratio", "target", "ok")
    cells = [header] + [
        (row.metric, _seconds(row.certwright), _seconds(row.certbot),
         f"{row.ratio:.2f}x" if row.ratio is not None else "-", row.target_text, row.verdict)
        for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]

    def line(values: Sequence[str]) -> str:
        first = values[0].ljust(widths[0])
        rest = [v.rjust(w) for v, w in zip(values[1:-1], widths[1:-1], strict=True)]
        return "  ".join([first, *rest, values[-1]]).rstrip()

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for values in cells[1:]:
        print(line(values))
    print("\nmedians; spread (min-max, n runs):")
    for row in rows:
        print(f"  {row.metric}: certwright {_spread(row.certwright)}, "
              f"certbot {_spread(row.certbot)}")


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


# -- nginx: deploy one certificate into a config with many server blocks --------------------

NGINX_BINARY = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_SITES = 1000
NGINX_TARGET = "site-0500.example.org"

NGINX_MAIN = """\
# generated by benchmarks/run.py: {sites} server blocks, one included file each
worker_processes 1;
pid {root}/run/nginx.pid;
error_log {root}/logs/error.log;

events {{
    worker_connections 256;
}}

http {{
    access_log {root}/logs/access.log;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    default_type text/plain;
    server_names_hash_max_size 4096;
    server_names_hash_bucket_size 128;

    include {root}/sites-enabled/*;
}}
"""

NGINX_SITE = """\
server {{
    listen 127.0.0.1:{http_port};
    server_name {name};
    root {www};
}}
"""


def nginx_site_name(index: int) -> str:
    return f"site-{index:04d}.example.org"


def write_nginx_tree(root: Path, http_port: int, sites: int = NGINX_SITES) -> Path:
    """A new nginx tree: root/nginx.conf (pid, logs, temp paths inside root) including
    root/sites-enabled/*, which holds `sites` files site-NNNN.conf (1..sites) of one plain
    HTTP server block each. Returns the main file."""
    for sub in ("run", "logs", "tmp", "sites-enabled", "www"):
        (root / sub).mkdir(parents=True)
    root.chmod(0o755)
    (root / "www").chmod(0o755)
    enabled = root / "sites-enabled"
    for index in range(1, sites + 1):
        (enabled / f"site-{index:04d}.conf").write_text(NGINX_SITE.format(
            http_port=http_port, name=nginx_site_name(index), www=root / "www"))
    main = root / "nginx.conf"
    main.write_text(NGINX_MAIN.format(root=root, sites=sites))
    return main


class TreeNginx(NginxServer):
    """nginx in the foreground on a tree from write_nginx_tree (the tests' server base).
    Both tools reload it (`nginx -s reload` signals the master named in the tree's pid
    file, which is this child)."""

    def __init__(self, root: Path, http_port: int) -> None:
        super().__init__(root, http_port=http_port, binary=NGINX_BINARY)

    def halt(self) -> None:
        pid = self._proc.pid if self._proc is not None else None
        super().halt()
        # Certbot starts a daemonized nginx when its reload fails; end that one too (by
        # the pid it wrote into this tree), never anything looked up by name.
        pid_file = self.root / "run" / "nginx.pid"
        try:
            other = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        if other != pid:
            with contextlib.suppress(OSError):
                os.kill(other, signal.SIGQUIT)


def served_certificate(port: int, server_name: str, timeout: float = 10.0) -> bytes:
    """DER of the certificate nginx presents on 127.0.0.1:port for SNI `server_name`
    (retried until `timeout`: a reload takes effect when the new workers are up)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock, \
                    context.wrap_socket(sock, server_hostname=server_name) as tls:
                der = tls.getpeercert(binary_form=True)
            if der:
                return der
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise BenchError(f"no TLS handshake on 127.0.0.1:{port} for "
                                 f"{server_name}: {exc}") from exc
        time.sleep(0.05)


def lists_nginx(plugins_output: str) -> bool:
    """Whether `plugins --installers` output (either tool) has an entry "* nginx"."""
    return any(line.strip() == "* nginx" for line in plugins_output.splitlines())


def ensure_certbot_nginx(certbot: Tool, scratch: Path) -> None:
    """Certbot's nginx plugin: certbot-nginx CERTBOT_VERSION is installed into Certbot's
    venv when `certbot plugins --installers` does not list nginx."""

    def listed() -> bool:
        done = subprocess.run(certbot.argv("plugins", "--installers", *Bench.dirs(scratch)),
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        return lists_nginx(done.stdout)

    if listed():
        return
    pip_install(certbot.exe.parent.parent, f"certbot-nginx=={CERTBOT_VERSION}")
    if not listed():
        raise BenchError(f"`certbot plugins --installers` does not list nginx after "
                         f"installing certbot-nginx=={CERTBOT_VERSION}")


def ensure_certwright_nginx(certwright: Tool, env: Mapping[str, str]) -> None:
    done = subprocess.run(certwright.argv("plugins", "--installers"), capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, env=dict(env))
    if done.returncode != 0 or not lists_nginx(done.stdout):
        raise BenchError(f"{certwright.exe} has no nginx installer "
                         f"(`certwright plugins --installers`):\n{done.stdout}{done.stderr}")


def section_nginx_install(bench: Bench) -> list[Row]:
    """`install --nginx --cert-name site-0500.example.org` into a config of 1,000 server
    blocks in 1,000 included files; each run on a freshly generated tree with its own
    running nginx and its own copy of the store."""
    certwright, certbot = bench.tools
    ensure_certbot_nginx(certbot, bench.base / "certbot-plugins")
    ensure_certwright_nginx(certwright, bench.base_env)
    store = bench._built.get("nginx-lineage")
    if store is None:
        store = bench.fresh_store(certwright, "nginx-lineage")
        run_once(bench.certonly(certwright, store, NGINX_TARGET), bench.env)
        bench._built["nginx-lineage"] = store
    expected = ssl.PEM_cert_to_DER_cert(
        (store / "config" / "live" / NGINX_TARGET / "cert.pem").read_text())

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
