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

Runs of the two ways alternate (A B, B A, ...) after one unmeasured warm-up each, so load
from elsewhere on the machine hits both alike. Printed: medians (and the slowest run) of
both totals, and the old-certificate counts.
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
from dataclasses import dataclass, field
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


@dataclass
class Way:
    """One way of getting a renewed certificate served; ``renew()`` returns the seconds
    until it is (and the first clients' serials, seen right after the command returned)."""

    label: str
    renew: Callable[[], tuple[float, list[int | None], int]]
    totals: list[float] = field(default_factory=list)
    old_first: int = 0
    probes: int = 0

    def once(self, counted: bool) -> None:
        total, seen, want = self.renew()
        if counted:
            self.totals.append(total)
            self.old_first += sum(1 for s in seen if s != want)
            self.probes += len(seen)


def _certonly(store: Store, ca: Pebble, name: str) -> None:
    store.run("certonly", "--standalone", "--http-01-port", str(ca.http_port),
              "--http-01-address", "127.0.0.1", "-d", name, "--agree-tos", "-m",
              "x@example.org")


def installers_way(stack: ExitStack, ca: Pebble, base: Path, name: str) -> Way:
    first = make_tls_files(base / "first", names=[name])
    postfix, dovecot = servers(stack, first.key, first.fullchain)
    store = Store(base / "installers", ca)
    _certonly(store, ca, name)
    store.run("install", "--cert-name", name, "-i", "postfix", "-i", "dovecot",
              "--postfix-config-dir", str(postfix.etc), "--dovecot-config", str(dovecot.conf))
    points = listeners(postfix, dovecot)

    def renew() -> tuple[float, list[int | None], int]:
        wall = store.run("renew", "--force-renewal", "--cert-name", name)
        seen = first_clients(points, name)
        return wall, seen, live_serial(store.base / "config", name)

    return Way("installers (renew returns once verified)", renew)


def hook_way(stack: ExitStack, ca: Pebble, base: Path, name: str) -> Way:
    store = Store(base / "hook", ca)
    _certonly(store, ca, name)
    live = store.base / "config" / "live" / name
    postfix, dovecot = servers(stack, live / "privkey.pem", live / "fullchain.pem")
    points = listeners(postfix, dovecot)
    hook = f"postfix -c {postfix.etc} reload; doveadm -c {dovecot.conf} reload"

    def renew() -> tuple[float, list[int | None], int]:
        began = time.perf_counter()
        store.run("renew", "--force-renewal", "--cert-name", name)
        subprocess.run(hook, shell=True, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        seen = first_clients(points, name)
        want = live_serial(store.base / "config", name)
        wait_all(points, name, want)
        return time.perf_counter() - began, seen, want

    return Way("deploy hook (renew; postfix reload; doveadm reload; poll)", renew)


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
        with Pebble(base / "pebble") as ca, ExitStack() as stack:
            ways = (installers_way(stack, ca, base, "mail.example.org"),
                    hook_way(stack, ca, base, "mx.example.org"))
            for index in range(args.runs + 1):  # run 0 warms up; order alternates
                for way in ways if index % 2 == 0 else tuple(reversed(ways)):
                    way.once(counted=index > 0)
    except BenchError as exc:
        print(f"benchmark stopped: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for way in ways:
        print(f"{way.label}: median {statistics.median(way.totals):.3f} s, slowest "
              f"{max(way.totals):.3f} s over {len(way.totals)} runs; the first handshake "
              f"after the command returned got the old certificate {way.old_first}/"
              f"{way.probes} times")
    return 0


if __name__ == "__main__":
    sys.exit(main())
