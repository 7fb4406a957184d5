"""nginx run from a temp config tree on loopback (see :mod:`tests.servers.tree_server`).

:class:`NginxServer` is what every nginx in the tests shares: ``nginx -c MAIN -p ROOT -g
'daemon off;'`` in the foreground, everything it writes inside the tree, a graceful stop.
:class:`Nginx` serves a web root over plain HTTP (for webroot http-01); the Debian-shaped
tree certwright installs into is :class:`tests.servers.nginx_tree.NginxTree`.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from tests.servers.ports import free_port
from tests.servers.tree_server import TreeServer

NGINX_BINARY = "/usr/sbin/nginx"

TEMP_PATHS = """\
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
"""


class NginxServer(TreeServer):
    """nginx whose main file is ``main`` (relative to the tree), answering ``http_port``."""

    name: ClassVar[str] = "nginx"
    scratch: tuple[str, ...] = ("run", "logs", "tmp", "nginx.pid", "server.out")

    def __init__(self, root: Path, *, main: str = "nginx.conf", http_port: int | None = None,
                 binary: str = NGINX_BINARY, wrap: Sequence[str] = ()) -> None:
        super().__init__(root)
        self.binary = shutil.which(binary) or binary
        self.main = self.root / main
        self.http_port = http_port or free_port(self.host)
        self.wrap = list(wrap)
        """A command prefix (a namespace, say) the server runs under."""
        for sub in ("run", "logs", "tmp"):
            (self.root / sub).mkdir(exist_ok=True)

    def values(self) -> dict[str, object]:
        return {"http": self.http_port, "temp_paths": TEMP_PATHS.format(root=self.root)}

    @property
    def log(self) -> Path:
        return self.root / "logs" / "error.log"

    def ctl(self, *argv: str) -> list[str]:
        """An nginx command line for this tree (``-t``, ``-s reload``…)."""
        return [*self.wrap, self.binary, "-c", str(self.main), "-p", str(self.root), *argv]

    def command(self) -> list[str]:
        return self.ctl("-g", "daemon off;")

    def ports(self) -> Sequence[int]:
        return (self.http_port,)

    def halt(self) -> None:
        """SIGQUIT first: a graceful stop lets workers exit with the master."""
        if self.running and self._proc is not None and self._proc.proc is not None:
            self._proc.proc.send_signal(signal.SIGQUIT)
        super().halt()

    def args(self) -> list[str]:
        return ["--nginx-server-root", str(self.root), "--nginx-conf", str(self.main),
                "--nginx-ctl", self.binary]


_WEB_ROOT = """\
worker_processes 1;
pid {root}/run/nginx.pid;
error_log {root}/logs/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {root}/logs/access.log;
{temp_paths}    default_type text/plain;
    server {{
        listen {host}:{http};
        server_name {server_names};
        root {www};
    }}
}}
"""


class Nginx(NginxServer):
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
        self.host = host
        super().__init__(workdir, http_port=http_port, binary=binary)
        self.workdir = self.root
        self.www = root.resolve()
        self.server_names = server_names
        self.conf_path = self.main

    def launch(self) -> None:
        self.template("nginx.conf", _WEB_ROOT, host=self.host, www=self.www,
                      server_names=self.server_names)
        super().launch()
