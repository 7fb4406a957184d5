"""nginx serving a hosting fleet's web roots over plain http on loopback.

Each site ``<name>`` is ``<www>/<name>``; ``www.<name>`` is served from the same
directory (a ``map`` on the Host header), so any number of sites needs one server block.
Sites with their own block reproduce what breaks validation at hosters: ``basic_auth``
(the whole site behind a password), ``hidden_ban`` (``location ~ /\\.`` denied),
``https_redirect`` (everything redirected to https, where nothing answers).
:meth:`FleetWeb.serve_tls` adds an https site on ``https_port`` (and reloads).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tests.servers.nginx import NginxServer
from tests.servers.ports import free_port

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
{special}{tls}}}
"""

_TLS = """\
    server {{
        listen {host}:{https} ssl;
        server_name {name};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {www}/{name};
    }}
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
        self.https_port = free_port(self.host)
        self.tls_sites: dict[str, tuple[Path, Path]] = {}
        self.special = [(_AUTH, s) for s in basic_auth] + [(_HIDDEN, s) for s in hidden_ban] \
            + [(_REDIRECT, s) for s in https_redirect]

    def site(self, name: str) -> Path:
        path = self.www / name
        path.mkdir(exist_ok=True)
        path.chmod(0o755)
        return path

    def write_conf(self) -> None:
        (self.root / "htpasswd").write_text("user:{PLAIN}secret\n")
        special = "".join(
            text.format(host=self.host, http=self.http_port, www=self.www, site=site,
                        names=f"{site} www.{site}", root=self.root)
            for text, site in self.special)
        tls = "".join(_TLS.format(host=self.host, https=self.https_port, name=name, cert=cert,
                                  key=key, www=self.www)
                      for name, (cert, key) in self.tls_sites.items())
        self.template("nginx.conf", _CONF, host=self.host, www=self.www, special=special,
                      tls=tls)

    def serve_tls(self, name: str, cert: Path, key: Path) -> None:
        """What the hoster's config generator does once the certificate is in LDAP."""
        self.tls_sites[name] = (cert, key)
        self.write_conf()
        self.reload()

    def launch(self) -> None:
        self.write_conf()
        super().launch()
