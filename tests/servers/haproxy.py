"""HAProxy in master-worker mode from a temp tree on loopback, with a real backend.

``haproxy -W -S MASTER_SOCK -f haproxy.cfg`` runs in the foreground (the master is our
child; it writes its pid to the ``pidfile`` named in ``global``, where certwright finds it
for a reload); the backend is ``python -m http.server`` on its own loopback port, serving
``www/``. Templates get ``{root}``, ``{http}``, ``{https}``, ``{backend}``, ``{admin}``
(the admin-level ``stats socket``) and ``{pidfile}``. Both are stopped by pid (SIGTERM to
the master ends its workers).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Self

from tests.servers.ports import free_port, wait_for_port, wait_until
from tests.servers.process import ManagedProcess
from tests.servers.tree_server import TreeServer

HAPROXY_BINARY = "/usr/sbin/haproxy"

GLOBAL = """\
global
    pidfile {pidfile}
    stats socket {admin} mode 600 level admin
    log stderr format short local0 notice

defaults
    mode http
    log global
    timeout connect 5s
    timeout client 10s
    timeout server 10s
"""

NO_SOCKET = GLOBAL.replace("    stats socket {admin} mode 600 level admin\n", "")

SITE = """
# the site: comments and layout must survive
frontend www
    bind 127.0.0.1:{http}   # plain http
    default_backend app

backend app
    server app1 127.0.0.1:{backend}
"""
PLAIN = GLOBAL + SITE


class Haproxy(TreeServer):
    name: ClassVar[str] = "haproxy"
    scratch: tuple[str, ...] = ("run", "www", "server.out", "backend.out")

    def __init__(self, root: Path, *, http_port: int | None = None,
                 https_port: int | None = None, binary: str = HAPROXY_BINARY,
                 conf: str = "haproxy.cfg", more: Sequence[str] = ()) -> None:
        super().__init__(root)
        self.binary = binary
        self.http_port = http_port or free_port(self.host)
        self.https_port = https_port or free_port(self.host)
        self.backend_port = free_port(self.host)
        self.conf = self.root / conf
        """What ``-f`` gets: a file, or a directory of ``*.cfg`` files."""
        self.more = [self.root / rel for rel in more]
        """Files or directories given with further ``-f`` options, in order."""
        (self.root / "run").mkdir(exist_ok=True)
        www = self.root / "www"
        www.mkdir(exist_ok=True)
        (www / "index.html").write_text("backend says hello\n")
        self.admin = self.root / "run" / "admin.sock"
        self.master_sock = self.root / "run" / "master.sock"
        self.pidfile = self.root / "run" / "haproxy.pid"
        self._backend: ManagedProcess | None = None

    def values(self) -> dict[str, object]:
        return {"http": self.http_port, "https": self.https_port,
                "backend": self.backend_port, "admin": self.admin, "pidfile": self.pidfile}

    def write(self, text: str = PLAIN, rel: str | None = None) -> Path:
        return self.template(rel or str(self.conf.relative_to(self.root)), text)

    def command(self) -> list[str]:
        files = [a for path in (self.conf, *self.more) for a in ("-f", str(path))]
        return [self.binary, "-W", "-S", str(self.master_sock), *files]

    def ports(self) -> Sequence[int]:
        return (self.http_port,)

    def launch(self) -> None:
        if self._backend is None or not self._backend.running:
            self._backend = ManagedProcess(
                [sys.executable, "-m", "http.server", "--bind", self.host,
                 "--directory", str(self.root / "www"), str(self.backend_port)],
                log_path=self.root / "backend.out")
            started = self._backend.start()
            wait_for_port(self.host, self.backend_port, proc=started,
                          log=self.root / "backend.out", what="haproxy's backend")
        super().launch()

    def halt(self) -> None:
        super().halt()
        if self._backend is not None:
            self._backend.stop()

    def reload(self) -> None:
        """SIGUSR2 to the master: it re-executes itself and starts a new worker."""
        os.kill(self.master_pid, signal.SIGUSR2)

    @property
    def master_pid(self) -> int:
        if self._proc is None or self._proc.pid is None:
            raise RuntimeError("haproxy is not running")
        return self._proc.pid

    def workers(self) -> set[int]:
        """The master's live children (its workers)."""
        found = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            if fields[1] == str(self.master_pid) and fields[0] != "Z":
                found.add(int(entry))
        return found

    def master_cli(self, command: str) -> str:
        """One command on the master CLI (``-S``)."""
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(5)
            conn.connect(str(self.master_sock))
            conn.sendall(command.encode() + b"; quit\n")
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        return data.decode()

    def master_answers(self) -> bool:
        try:
            self.master_cli("show proc")
        except OSError:
            return False
        return True

    def start(self) -> Self:
        """Up once the worker listens and the master CLI answers (it opens a moment
        after the worker; and it is closed for a moment while the master re-executes)."""
        super().start()
        wait_until(self.master_answers, what="haproxy's master CLI", log=self.log)
        return self

    def reloads(self) -> tuple[int, int]:
        """(reloads, failed reloads) as the master counts them (``show proc``)."""
        wait_until(self.master_answers, what="haproxy's master CLI", log=self.log)
        for line in self.master_cli("show proc").splitlines():
            words = line.split()
            if len(words) > 4 and words[1] == "master":
                return int(words[2]), int(words[4].rstrip("]"))
        raise RuntimeError("the master CLI shows no master line")

    def args(self) -> list[str]:
        files = [a for path in (self.conf, *self.more) for a in ("--haproxy-config", str(path))]
        return [*files, "--haproxy-bin", self.binary,
                "--http-01-port", str(self.http_port), "--https-port", str(self.https_port)]
