"""Renewing one certificate served by Postfix and Dovecot: certwright's installers against
the usual deploy hook.

    .venv/bin/python benchmarks/mail_renew.py [--runs 10]      (as root: the servers need it)

Two pairs of throwaway servers (``tests.servers.mail``) on loopback and one Pebble:

- **installers**: one lineage installed with ``install -i postfix -i dovecot``; measured is
  ``renew --force-renewal`` from spawn to return. It returns once every listener (SMTP
  STARTTLS, submissions, IMAP STARTTLS, IMAPS, POP3, POP3S, ManageSieve) was seen serving
  the new certificate; the first handshake after it returns is checked too.
- **hook**: another lineage, its servers configured by hand with its ``live/`` files, and
  the usual deploy hook run after ``renew --force-renewal``: ``postfix reload; doveadm
  reload``. Measured: from the spawn of renew until every listener serves the new
  certificate (polled every 5 ms after the hook returns), and how often the first
  handshake on each listener right after the hook returned got the old certificate.

Printed: medians (and the slowest run) of both totals, and the old-certificate counts.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.measure import BenchError, run_once  # noqa: E402
from tests.servers.mail import Dovecot, Postfix, mail_root  # noqa: E402
from tests.servers.pebble import Pebble  # noqa: E402
from tests.servers.probe import served_cert  # noqa: E402
from tests.servers.tlsca import make_tls_files  # noqa: E402

CERTWRIGHT = Path(sys.executable).parent / "certwright"
POLL = 0.005
DEADLINE = 15.0


def listeners(postfix: Postfix, dovecot: Dovecot) -> list[tuple[int, str]]:
    return [(postfix.smtp, "smtp-starttls"), (postfix.smtps, "smtps"),
            (dovecot.imap, "imap-starttls"), (dovecot.imaps, "imaps"),
            (dovecot.pop3, "pop3-starttls"), (dovecot.pop3s, "pop3s"), (dovecot.sieve, "sieve")]


def serial_at(port: int, protocol: str, name: str) -> int | None:
    try:
        return served_cert(port, name, protocol, timeout=5.0).serial_number
    except OSError:
        return None


def first_clients(points: list[tuple[int, str]], name: str) -> list[int | None]:
    """One handshake on every listener, all started at once (each is a first client)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(points)) as pool:
        return list(pool.map(lambda p: serial_at(p[0], p[1], name), points))


def live_serial(config: Path, name: str) -> int:
    from cryptography import x509

    pem = (config / "live" / name / "cert.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).serial_number


def wait_all(points: list[tuple[int, str]], name: str, want: int) -> None:
    deadline = time.monotonic() + DEADLINE
    left = list(points)
    while left:
        left = [p for p in left if serial_at(p[0], p[1], name) != want]
        if left and time.monotonic() > deadline:
            raise BenchError(f"{left} still not serving {want:x} after {DEADLINE} s")
        if left:
            time.sleep(POLL)


class Store:
    def __init__(self, base: Path, ca: Pebble) -> None:
        self.base, self.ca = base, ca
        self.env = ca.env(os.environ)

    def dirs(self) -> list[str]:
        return ["--config-dir", str(self.base / "config"), "--work-dir",
                str(self.base / "work"), "--logs-dir", str(self.base / "logs")]

    def argv(self, *args: str) -> list[str]:
        return [str(CERTWRIGHT), *args, *self.dirs(), "-n", "--server",
                self.ca.directory_url, "--no-random-sleep-on-renew"]

    def run(self, *args: str) -> float:
        return run_once(self.argv(*args), self.env).wall


def servers(stack: ExitStack, key: Path, fullchain: Path) -> tuple[Postfix, Dovecot]:
    root = mail_root()
    stack.callback(shutil.rmtree, root, True)
    return (stack.enter_context(Postfix(root, key, fullchain)),
            stack.enter_context(Dovecot(root, key, fullchain)))


def installers_runs(ca: Pebble, base: Path, runs: int, name: str
                    ) -> tuple[list[float], int, int]:
    with ExitStack() as stack:
        first = make_tls_files(base / "first", names=[name])
        postfix, dovecot = servers(stack, first.key, first.fullchain)
        store = Store(base / "installers", ca)
        auth = ["--standalone", "--http-01-port", str(ca.http_port), "--http-01-address",
                "127.0.0.1"]
        store.run("certonly", *auth, "-d", name, "--agree-tos", "-m", "x@example.org")
        store.run("install", "--cert-name", name, "-i", "postfix", "-i", "dovecot",
                  "--postfix-config-dir", str(postfix.etc), "--dovecot-config",
                  str(dovecot.conf))
        points = listeners(postfix, dovecot)
        totals: list[float] = []
        old_first = probes = 0
        for run in range(runs + 1):  # run 0 is a warm-up, not counted
            wall = store.run("renew", "--force-renewal", "--cert-name", name)
            want = live_serial(base / "installers" / "config", name)
            seen = first_clients(points, name)
            if run:
                totals.append(wall)
                old_first += sum(1 for s in seen if s != want)
                probes += len(seen)
        return totals, old_first, probes


def hook_runs(ca: Pebble, base: Path, runs: int, name: str) -> tuple[list[float], int, int]:
    with ExitStack() as stack:
        store = Store(base / "hook", ca)
        auth = ["--standalone", "--http-01-port", str(ca.http_port), "--http-01-address",
                "127.0.0.1"]
        store.run("certonly", *auth, "-d", name, "--agree-tos", "-m", "x@example.org")
        live = base / "hook" / "config" / "live" / name
        postfix, dovecot = servers(stack, live / "privkey.pem", live / "fullchain.pem")
        points = listeners(postfix, dovecot)
        hook: Callable[[], None] = lambda: subprocess.run(  # noqa: E731
            f"postfix -c {postfix.etc} reload; doveadm -c {dovecot.conf} reload",
            shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        totals: list[float] = []
        old_first = probes = 0
        for run in range(runs + 1):  # run 0 is a warm-up, not counted
            began = time.perf_counter()
            store.run("renew", "--force-renewal", "--cert-name", name)
            hook()
            seen = first_clients(points, name)
            want = live_serial(base / "hook" / "config", name)
            wait_all(points, name, want)
            if run:
                totals.append(time.perf_counter() - began)
                old_first += sum(1 for s in seen if s != want)
                probes += len(seen)
        return totals, old_first, probes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the Postfix and Dovecot instances need root", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="certwright-bench-mail-"))
    base.chmod(0o755)
    try:
        with Pebble(base / "pebble") as ca:
            ours = installers_runs(ca, base, args.runs, "mail.example.org")
            theirs = hook_runs(ca, base, args.runs, "mx.example.org")
    except BenchError as exc:
        print(f"benchmark stopped: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for label, (totals, old, probes) in (("installers (renew returns when verified)", ours),
                                         ("deploy hook (renew; postfix reload; doveadm "
                                          "reload; poll)", theirs)):
        print(f"{label}: median {statistics.median(totals):.3f} s, slowest "
              f"{max(totals):.3f} s over {len(totals)} runs; first handshake after return "
              f"served the old certificate {old}/{probes} times")
    return 0


if __name__ == "__main__":
    sys.exit(main())
