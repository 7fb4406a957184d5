"""HAProxy: certificates through the runtime API vs the usual deploy hook, side by side.

    .venv/bin/python benchmarks/haproxy_swap.py            # make bench-haproxy
    .venv/bin/python benchmarks/haproxy_swap.py --quick

One HAProxy (master-worker, tests.servers.haproxy) with FRONTENDS frontends/backends and
CERTS certificates in a crt-list, one Pebble. Each measured step runs while a load generator
(tests/servers/tlsload.py) opens new TLS connections in a steady stream; its failed
requests are counted per step.

- ``install one``: ``certwright install --cert-name X -i haproxy`` of a lineage not yet
  served (runtime API: ``new``/``set``/``commit ssl cert``, ``add ssl crt-list``), vs the
  deploy hook: copy the combined PEM, add its crt-list line, ``haproxy -c``, reload (USR2)
  and wait for the new worker.
- ``renew 50``: ``certwright renew --force-renewal`` of LINEAGES lineages (ACME included;
  swaps through the runtime API); then, on the same renewed files, the deploy step alone
  both ways: the installer's ``runtime.swap_all`` of every PEM (one transaction at a time,
  what ``activate`` runs), vs the hook's copy, ``haproxy -c``, reload and wait.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography import x509  # noqa: E402

from certwright.installers.haproxy import process, runtime  # noqa: E402
from tests.servers.haproxy import GLOBAL, Haproxy  # noqa: E402
from tests.servers.pebble import Pebble  # noqa: E402
from tests.servers.tlsca import TestCA, cert_pem, key_pem  # noqa: E402
from tests.servers.tree_server import new_root  # noqa: E402

CERTWRIGHT = str(Path(sys.executable).parent / "certwright")
LOAD = ROOT / "tests" / "servers" / "tlsload.py"

SITE = """
frontend www
    bind 127.0.0.1:{http}
    bind 127.0.0.1:{https} ssl crt-list {root}/bulk/list alpn h2,http/1.1
    default_backend app

backend app
    server app1 127.0.0.1:{backend}
"""
MANY = """
frontend fe{n:04d}
    bind unix@{root}/run/fe{n:04d}.sock
    default_backend be{n:04d}

backend be{n:04d}
    server s1 127.0.0.1:{backend}
"""


class Bench:
    def __init__(self, args: argparse.Namespace, ca: Pebble, lb: Haproxy, base: Path) -> None:
        self.args, self.ca, self.lb, self.base = args, ca, lb, base
        self.ca_tls = TestCA.create()

    def cli(self, *argv: str) -> subprocess.CompletedProcess[str]:
        cmd = [CERTWRIGHT, *argv, "--config-dir", str(self.base / "config"), "--work-dir",
               str(self.base / "work"), "--logs-dir", str(self.base / "logs"), "-n",
               "--server", self.ca.directory_url, "--agree-tos", "-m", "bench@example.org"]
        proc = subprocess.run(cmd, env=self.ca.env(os.environ), capture_output=True,
                              text=True, timeout=900, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    @contextmanager
    def load(self, names: list[str]) -> Iterator[dict[str, object]]:
        stop = self.base / f"stop-{time.monotonic_ns()}"
        env = dict(os.environ, TLSLOAD_THREADS=str(self.args.load_threads))
        proc = subprocess.Popen([sys.executable, str(LOAD), str(self.lb.https_port),
                                 str(stop), *names], stdout=subprocess.PIPE, text=True,
                                env=env)
        ready = stop.with_name(stop.name + ".ready")
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        summary: dict[str, object] = {}
        try:
            yield summary
        finally:
            stop.touch()
            out, _ = proc.communicate(timeout=120)
            summary.update(json.loads(out))

    def hook_deploy(self, pems: dict[Path, bytes], lines: list[str]) -> None:
        """What a deploy hook does: copy, add list lines, haproxy -c, reload, wait."""
        for path, data in pems.items():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.chmod(0o600)
            os.replace(tmp, path)
        if lines:
            with open(self.lb.root / "bulk" / "list", "a") as handle:
                handle.writelines(line + "\n" for line in lines)
        done = subprocess.run([self.lb.binary, "-c", "-q", "-f", str(self.lb.conf)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"haproxy -c failed: {done.stdout}{done.stderr}")
        process.reload(str(self.lb.pidfile), None)

    def new_pem(self, name: str) -> bytes:
        cert, key = self.ca_tls.issue_server_cert([name], [])
        return cert_pem(cert) + cert_pem(self.ca_tls.cert) + key_pem(key)


def build(root: Path, http: int, certs: int, frontends: int, ca: TestCA) -> list[str]:
    bulk = root / "bulk"
    bulk.mkdir()
    names, lines = [], []
    for i in range(certs):
        name = f"bulk-{i:04d}.example.org"
        cert, key = ca.issue_server_cert([name], [])
        pem = bulk / f"{name}.pem"
        pem.write_bytes(cert_pem(cert) + cert_pem(ca.cert) + key_pem(key))
        pem.chmod(0o600)
        lines.append(f"{pem} {name}")
        names.append(name)
    (bulk / "list").write_text("".join(line + "\n" for line in lines))
    return names


def timed(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} s" if values else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--frontends", type=int, default=1000)
    parser.add_argument("--certs", type=int, default=500)
    parser.add_argument("--lineages", type=int, default=50)
    parser.add_argument("--load-threads", type=int, default=2)
    args = parser.parse_args()
    installs = 3 if args.quick else 5
    renews = 1 if args.quick else 3
    base = Path(tempfile.mkdtemp(prefix="certwright-bench-haproxy-"))
    root = new_root("certwright-bench-haproxy-lb-")
    with Pebble(base / "pebble") as ca:
        lb = Haproxy(root, http_port=ca.http_port)
        bench = Bench(args, ca, lb, base)
        t0 = time.perf_counter()
        bulk = build(root, lb.http_port, args.certs, args.frontends, bench.ca_tls)
        many = "".join(MANY.format(n=n, root=root, backend=lb.backend_port)
                       for n in range(args.frontends))
        lb.write(GLOBAL + SITE + many.replace("{", "{{").replace("}", "}}"))
        lb.start()
        print(f"# {args.frontends} frontends/backends, {args.certs} certificates in the "
              f"crt-list: built and started in {time.perf_counter() - t0:.1f} s")
        haproxy = ["-i", "haproxy", "--haproxy-config", str(lb.conf), "--haproxy-bin",
                   lb.binary, "--http-01-port", str(lb.http_port), "--https-port",
                   str(lb.https_port), "--no-redirect"]
        lineages = [f"renew-{i:03d}.example.org" for i in range(args.lineages)]
        t0 = time.perf_counter()
        for name in lineages:
            bench.cli("run", "-a", "haproxy", *haproxy, "-d", name)
        print(f"# {args.lineages} lineages issued and installed in "
              f"{time.perf_counter() - t0:.1f} s")
        load_names = [bulk[0], bulk[-1], lineages[0], lineages[-1]]
        results: dict[str, dict[str, list[float]]] = {}

        def record(metric: str, how: str, seconds: float, summary: dict[str, object]) -> None:
            row = results.setdefault(f"{metric}|{how}", {"s": [], "failed": [], "ok": []})
            row["s"].append(seconds)
            row["failed"].append(float(str(summary.get("failed", 0))))
            row["ok"].append(float(str(summary.get("ok", 0))))

        for i in range(installs):
            name = f"extra-{i:02d}.example.org"
            bench.cli("certonly", "-a", "haproxy", *haproxy[2:-1], "-d", name)
            with bench.load(load_names) as summary:
                seconds = timed(lambda n=name: bench.cli("install", "--cert-name", n,
                                                         *haproxy))
            record("install one more certificate", "runtime API", seconds, summary)
            hook_name = f"hook-{i:02d}.example.org"
            pem = root / "bulk" / f"{hook_name}.pem"
            data = bench.new_pem(hook_name)
            with bench.load(load_names) as summary:
                seconds = timed(lambda p=pem, d=data, h=hook_name:
                                bench.hook_deploy({p: d}, [f"{p} {h}"]))
            record("install one more certificate", "hook: cp, haproxy -c, reload", seconds,
                   summary)
        api = runtime.check_socket(str(lb.admin))
        lock, crt_list = str(base / "swap.lock"), str(root / "certwright" / "crt-list")

        def swap(items: list[tuple[str, str, int]]) -> None:
            runtime.swap_all(api, lock, items, crt_list, {})

        reloaded = 0
        for _ in range(renews):
            before = lb.reloads()[0]
            with bench.load(load_names) as summary:
                seconds = timed(lambda: bench.cli("renew", "--force-renewal",
                                                  "--no-random-sleep-on-renew"))
            reloaded += lb.reloads()[0] - before
            record(f"renew --force-renewal, {args.lineages} lineages (ACME incl.)",
                   "runtime API", seconds, summary)
            managed = sorted((root / "certwright").glob("renew-*.pem"))
            pems = {p: p.read_bytes() for p in managed}
            items = [(str(p), d.decode(), x509.load_pem_x509_certificate(d).serial_number)
                     for p, d in pems.items()]
            with bench.load(load_names) as summary:
                seconds = timed(lambda i=items: swap(i))
            record(f"deploy step only, {args.lineages} PEMs", "runtime API (swap_all)",
                   seconds, summary)
            with bench.load(load_names) as summary:
                seconds = timed(lambda p=pems: bench.hook_deploy(p, []))
            record(f"deploy step only, {args.lineages} PEMs",
                   "hook: cp, haproxy -c, reload", seconds, summary)
        print(f"# reloads during the {renews} runtime-API renewals (the master's count): "
              f"{reloaded}")
        lb.stop()
    shutil.rmtree(base, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    print(f"{'metric':58} {'how':32} {'median':>9} {'n':>2} {'failed':>6} {'ok':>7}")
    for key, row in results.items():
        metric, how = key.split("|")
        print(f"{metric:58} {how:32} {median(row['s']):>9} {len(row['s']):>2} "
              f"{int(sum(row['failed'])):>6} {int(sum(row['ok'])):>7}")
    for metric, ours, theirs in (
            ("install one more certificate", "runtime API", "hook: cp, haproxy -c, reload"),
            (f"deploy step only, {args.lineages} PEMs", "runtime API (swap_all)",
             "hook: cp, haproxy -c, reload")):
        a = results.get(f"{metric}|{ours}", {}).get("s", [])
        b = results.get(f"{metric}|{theirs}", {}).get("s", [])
        if a and b:
            print(f"{metric}: runtime API / hook = "
                  f"{statistics.median(a) / statistics.median(b):.2f}x")
    failed = sum(sum(r["failed"]) for r in results.values())
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
