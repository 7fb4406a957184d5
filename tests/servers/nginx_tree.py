"""A Debian-shaped nginx config tree in a temp dir, run by a real nginx on loopback.

``nginx.conf`` includes ``conf.d/*.conf`` and ``sites-enabled/*`` like Debian's; the test
writes site files into it, starts nginx, and lets certwright edit the tree. Everything
nginx writes (pid, logs, temp files) stays inside the tree.
"""

from __future__ import annotations

from pathlib import Path

from tests.servers.nginx import NGINX_BINARY, NginxServer
from tests.servers.ports import free_port

NGINX = NGINX_BINARY

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
{temp_paths}    default_type text/plain;

    include {root}/conf.d/*.conf;
    include {root}/sites-enabled/*;
}}
"""


class NginxTree(NginxServer):
    scratch = (*NginxServer.scratch, "www")

    def __init__(self, root: Path, *, http_port: int | None = None) -> None:
        super().__init__(root, http_port=http_port)
        self.https_port = free_port()
        self.www = self.root / "www"
        for sub in ("conf.d", "sites-enabled", "sites-available"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.www.mkdir(parents=True, exist_ok=True)
        (self.www / "index.html").write_text("plain site\n")
        self.template("nginx.conf", MAIN)

    def values(self) -> dict[str, object]:
        return {**super().values(), "https": self.https_port, "www": self.www}

    def site(self, name: str, text: str) -> Path:
        """Write ``sites-available/<name>`` and link it from ``sites-enabled``, as Debian does."""
        path = self.template(f"sites-available/{name}", text)
        link = self.root / "sites-enabled" / name
        if not link.exists():
            link.symlink_to(path)
        return path

    def args(self) -> list[str]:
        """certwright options that point the nginx plugin at this tree."""
        return ["--nginx-server-root", str(self.root), "--https-port", str(self.https_port),
                "--http-01-port", str(self.http_port)]
