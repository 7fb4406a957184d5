"""A Debian-shaped nginx config tree in a temp dir, run by a real nginx on loopback.

``nginx.conf`` includes ``conf.d/*.conf`` and ``sites-enabled/*`` like Debian's; the test
writes site files into it, starts nginx, and lets certwright edit the tree. Everything
nginx writes (pid, logs, temp files) stays inside the tree.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
from pathlib import Path
from typing import Self

from tests.servers.ports import free_port, wait_for_port
from tests.servers.process import ManagedProcess

NGINX = "/usr/sbin/nginx"

MAIN = """\
# main configuration (test tree)
worker_processes 1;
pid {root}/run/nginx.pid;
error_log {root}/logs/error.log info;

events {{
    worker_connections 64;
}}

http {{
    access_log {root}/logs/access.log;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    default_type text/plain;

    include {root}/conf.d/*.conf;
    include {root}/sites-enabled/*;
}}
"""


class NginxTree:
    def __init__(self, root: Path, *, http_port: int | None = None) -> None:
        self.root = root.resolve()
        self.http_port = http_port or free_port()
        self.https_port = free_port()
        self.www = self.root / "www"
        for sub in ("run", "logs", "tmp", "conf.d", "sites-enabled", "sites-available"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.www.mkdir(parents=True, exist_ok=True)
        (self.www / "index.html").write_text("plain site\n")
        self.main = self.root / "nginx.conf"
        self.main.write_text(MAIN.format(root=self.root))
        self._proc = ManagedProcess([NGINX, "-c", str(self.main), "-p", str(self.root),
                                     "-g", "daemon off;"], log_path=self.root / "nginx.out")

    def site(self, name: str, text: str) -> Path:
        """Write ``sites-available/<name>`` and link it from ``sites-enabled``, as Debian does."""
        path = self.root / "sites-available" / name
        path.write_text(text.format(http=self.http_port, https=self.https_port, www=self.www))
        link = self.root / "sites-enabled" / name
        if not link.exists():
            link.symlink_to(path)
        return path

    def start(self) -> Self:
        proc = self._proc.start()
        wait_for_port("127.0.0.1", self.http_port, proc=proc, log=self.root / "logs/error.log",
                      what="nginx")
        return self

    def stop(self) -> None:
        if self._proc.running and self._proc.proc is not None:
            self._proc.proc.send_signal(signal.SIGQUIT)
        self._proc.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def args(self) -> list[str]:
        """certwright options that point the nginx plugin at this tree."""
        return ["--nginx-server-root", str(self.root), "--https-port", str(self.https_port),
                "--http-01-port", str(self.http_port)]

    def snapshot(self) -> dict[str, str]:
        """sha256 of every config file (not logs/pids), to check rollbacks byte for byte."""
        out = {}
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root)
            if rel.parts[0] in ("run", "logs", "tmp", "www"):
                continue
            if path.is_dir() and not path.is_symlink():
                out[str(rel) + "/"] = "dir"  # a directory left behind counts too
                continue
            try:
                if path.is_symlink():
                    out[str(rel)] = "-> " + str(path.readlink())
                else:
                    out[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
            except FileNotFoundError:  # a temp file renamed away while we looked
                continue
        return out

    def copy_to(self, dest: Path) -> None:
        shutil.copytree(self.root, dest, symlinks=True)
