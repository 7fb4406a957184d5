"""nginx serving a hosting fleet's web roots over plain http on loopback.

Each site ``<name>`` is ``<www>/<name>``; ``www.<name>`` is served from the same
directory (a ``map`` on the Host header), so any number of sites needs one server block.
Sites with their own block reproduce what breaks validation at hosters: ``basic_auth``
(the whole site behind a password), ``hidden_ban`` (``location ~ /\\.`` denied),
``https_redirect`` (everything redirected to https, where nothing answers).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tests.servers.nginx import NginxServer

_CONF = """\
worker_processes 2;
pid {root}/run/nginx.pid;
error_log {root}/logs/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
{temp_paths}    default_type text/plain;
    map $host $site {{
        ~^(?:www\\.|shop\\.)?(?<bare>.+)$ $bare;
    }}
    server {{
        listen {host}:{http} default_server;
        server_name _;
        root {www}/$site;
    }}
{special}}}
"""

_AUTH = """\
    server {{
        listen {host}:{http};
        server_name {names};
        root {www}/{site};
        auth_basic "customers only";
        auth_basic_user_file {root}/htpasswd;
    }}
"""
_HIDDEN = """\
    server {{
        listen {host}:{http};
        server_name {names};
        root {www}/{site};
        location ~ /\\. {{ deny all; }}
    }}
"""
_REDIRECT = """\
    server {{
        listen {host}:{http};
        server_name {names};
        return 301 https://$host$request_uri;
    }}
"""


class FleetWeb(NginxServer):
    def __init__(self, workdir: Path, www: Path, *, http_port: int,
                 basic_auth: Sequence[str] = (), hidden_ban: Sequence[str] = (),
                 https_redirect: Sequence[str] = ()) -> None:
        super().__init__(workdir, http_port=http_port)
        self.www = www.resolve()
        self.special = [(_AUTH, s) for s in basic_auth] + [(_HIDDEN, s) for s in hidden_ban] \
            + [(_REDIRECT, s) for s in https_redirect]

    def site(self, name: str) -> Path:
        path = self.www / name
        path.mkdir(exist_ok=True)
        path.chmod(0o755)
        return path

    def launch(self) -> None:
        (self.root / "htpasswd").write_text("user:{PLAIN}secret\n")
        special = "".join(
            text.format(host=self.host, http=self.http_port, www=self.www, site=site,
                        names=f"{site} www.{site}", root=self.root)
            for text, site in self.special)
        self.template("nginx.conf", _CONF, host=self.host, www=self.www, special=special)
        super().launch()
