"""A throwaway nginx on loopback, run in the foreground from its own temp dir.

It serves a web root over plain HTTP (for webroot http-01). Everything it writes (pid,
logs, temp paths) stays in ``workdir``. Tests that install certificates into nginx use the
Debian-shaped tree in ``nginx_tree`` instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Self

from tests.servers.ports import free_port, wait_for_port
from tests.servers.process import ManagedProcess

NGINX_BINARY = "/usr/sbin/nginx"

_CONF = """\
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log info;
daemon off;
events {{ worker_connections 64; }}
http {{
    access_log {work}/access.log;
    client_body_temp_path {work}/tmp/body;
    proxy_temp_path {work}/tmp/proxy;
    fastcgi_temp_path {work}/tmp/fastcgi;
    uwsgi_temp_path {work}/tmp/uwsgi;
    scgi_temp_path {work}/tmp/scgi;
    default_type text/plain;
    server {{
        listen {host}:{http_port};
        server_name {server_names};
        root {root};
    }}
}}
"""



class Nginx:
    """``Nginx(workdir, root, http_port)``: a web root served over plain HTTP."""

    def __init__(
        self,
        workdir: Path,
        root: Path,
        *,
        http_port: int | None = None,
        server_names: str = "_",
        host: str = "127.0.0.1",
        binary: str = NGINX_BINARY,
    ) -> None:
        self.workdir = workdir.resolve()
        self.root = root.resolve()
        self.host = host
        self.http_port = http_port or free_port(host)
        self.server_names = server_names
        self.binary = shutil.which(binary) or binary
        self.conf_path = self.workdir / "nginx.conf"
        self._proc = ManagedProcess(
            [self.binary, "-c", str(self.conf_path), "-p", str(self.workdir)],
            log_path=self.workdir / "nginx.out",
        )

    def _write_conf(self) -> None:
        (self.workdir / "tmp").mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(
            _CONF.format(
                work=self.workdir,
                host=self.host,
                http_port=self.http_port,
                root=self.root,
                server_names=self.server_names,
            )
        )

    def start(self) -> Self:
        self._write_conf()
        proc = self._proc.start()
        wait_for_port(
            self.host, self.http_port, proc=proc, log=self.workdir / "error.log", what="nginx"
        )
        return self

    def stop(self) -> None:
        self._proc.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
