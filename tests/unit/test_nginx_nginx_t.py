"""Planned nginx configs checked by the real nginx: ``nginx -t`` on many layouts, and a
short run on loopback for what ``-t`` cannot see (redirects, challenge answers, TLS).

Each tree lives in a temp dir with its pid, logs and temp paths inside it.
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from certwright.core.interfaces import (
    ChallengeTask,
    ChangePlan,
    DeployRequest,
    EnhanceRequest,
    Identifier,
)
from certwright.installers.nginx import NginxInstaller
from certwright.installers.nginx.enhance import plan_enhance
from certwright.installers.nginx.http01 import plan_http01
from certwright.installers.nginx.plan import plan_deploy
from certwright.installers.nginx.targets import Layout
from certwright.installers.nginx.tree import load_tree
from tests.conftest import require_binary
from tests.servers import probe
from tests.servers.nginx import NginxServer
from tests.servers.ports import free_port
from tests.servers.tlsca import TlsFiles, make_tls_files

MAIN = """\
# test tree
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/logs/error.log;
events {{
    worker_connections 32;
}}
http {{
    access_log off;
{temp_paths}    default_type application/octet-stream;

    include {root}/sites/*;
}}
"""


class Tree(NginxServer):
    """A tree of sites certwright plans for, checked by ``nginx -t`` and, when started,
    served on loopback."""

    def __init__(self, root: Path, nginx: str, tls: TlsFiles) -> None:
        super().__init__(root, binary=nginx)
        self.nginx, self.tls = self.binary, tls
        (self.root / "sites").mkdir(exist_ok=True)
        self.template("nginx.conf", MAIN)
        self.layout = Layout(str(self.root))

    def site(self, name: str, text: str, **values: object) -> None:
        (self.root / "sites" / name).write_bytes(
            text.format(old=self.tls.fullchain, oldkey=self.tls.key, **values).encode())

    def request(self, *domains: str, https: int = 443, http: int = 80) -> DeployRequest:
        return DeployRequest("example.org", domains, str(self.tls.cert), str(self.tls.key),
                             str(self.tls.fullchain), str(self.tls.fullchain),
                             https_port=https, http_port=http)

    def apply(self, plan: ChangePlan) -> None:
        for change in plan.changes:
            path = Path(change.path)
            if change.new_content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(change.new_content)

    def check(self) -> None:
        proc = subprocess.run(self.ctl("-t"), capture_output=True, text=True, timeout=30,
                              check=False)
        config = "\n".join(f"--- {p}\n{p.read_text()}" for p in sorted(self.root.rglob("*"))
                           if p.is_file() and p.suffix in ("", ".conf") and "logs" not in p.parts
                           and "tmp" not in p.parts)
        assert proc.returncode == 0, f"{proc.stderr}\n{config}"

    def deploy(self, req: DeployRequest) -> None:
        self.apply(plan_deploy(load_tree(str(self.main)), req, self.layout))
        self.check()
        assert plan_deploy(load_tree(str(self.main)), req, self.layout).empty

    def enhance(self, domains: tuple[str, ...], *what: str, https: int = 443,
                http: int = 80) -> None:
        req = EnhanceRequest(domains, frozenset(what), https_port=https, http_port=http)
        self.apply(plan_enhance(load_tree(str(self.main)), req, self.layout))
        self.check()
        assert plan_enhance(load_tree(str(self.main)), req, self.layout).empty

    def http01(self, tasks: list[ChallengeTask], port: int = 80) -> None:
        self.apply(plan_http01(load_tree(str(self.main)), tasks, self.layout, port))
        self.check()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"),
                          names=("example.org", "www.example.org", "*.example.org"))


@pytest.fixture
def tree(tmp_path: Path, tls: TlsFiles) -> Tree:
    return Tree(tmp_path, require_binary("nginx"), tls)


def challenge(domain: str, token: str) -> ChallengeTask:
    ka = f"{token}.thumbprint"
    return ChallengeTask(Identifier("dns", domain), "http-01", token, ka, ka)


LAYOUTS = {
    "several blocks in one file": """\
# three sites
server {{
    listen 80;
    server_name example.org;   # apex
    root /srv/apex;
}}
server {{
\tlisten 80;
\tserver_name www.example.org;
}}
server {{ listen 80; server_name unrelated.test; }}
""",
    "ipv6 and default servers with socket options": """\
server {{
    listen 80 default_server reuseport backlog=511;
    listen [::]:80 default_server ipv6only=on;
    server_name example.org www.example.org;
}}
server {{
    listen 443 ssl default_server;
    listen [::]:443 ssl default_server ipv6only=on;
    server_name other.test;
    ssl_certificate {old};
    ssl_certificate_key {oldkey};
}}
""",
    "ipv6 twins in several blocks": """\
server {{
    listen 80;
    listen [::]:80 ipv6only=on;
    server_name example.org;
}}
server {{
    listen 127.0.0.1:80;
    listen [::]:80;
    server_name www.example.org;
}}
""",
    "no matching block": """\
server {{
    listen 127.0.0.1:80;
    server_name other.test;
}}
""",
    "existing https block": """\
server {{
    listen 80;
    listen 443 ssl;
    server_name example.org www.example.org;
    ssl_certificate {old};
    ssl_certificate_key {oldkey};
    ssl_protocols TLSv1.2 TLSv1.3;
}}
""",
    "odd layout": (
        "server {{ listen 80; server_name example.org; }}  # one line\r\n"
        "server {{   # comment\r\n\t\tlisten\t80 ;\r\n  server_name   www.example.org\r\n"
        "       alias.example.org ;\r\n  location / {{ return 200 \"}}\"; }}\r\n}}\r\n"),
    "debian default site": """\
server {{
    listen 80 default_server;
    listen [::]:80 default_server;
    root /var/www/html;
    index index.html index.htm index.nginx-debian.html;
    server_name _;
    location / {{
        try_files $uri $uri/ =404;
    }}
}}
""",
    "server-level redirect and separate https": """\
server {{
    listen 80;
    server_name example.org www.example.org;
    return 301 https://$host$request_uri;
}}
server {{
    listen 443 ssl;
    server_name example.org www.example.org;
    ssl_certificate {old};
    ssl_certificate_key {oldkey};
    location /app/ {{ add_header X-App 1; }}
}}
""",
    "block without listen": "server {{\n    server_name example.org www.example.org;\n}}\n",
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_deploy_enhance_and_http01_pass_nginx_t(tree: Tree, layout: str) -> None:
    tree.site("site", LAYOUTS[layout])
    tree.check()  # the layout itself is valid
    names = ("example.org", "www.example.org")
    tree.deploy(tree.request(*names))
    tree.enhance(names, "redirect", "hsts", "uir")
    tree.http01([challenge("example.org", "tokA"), challenge("www.example.org", "tokB"),
                 challenge("nowhere.test", "tokC")])


def test_wildcard_and_several_certificates_share_the_options(tree: Tree) -> None:
    tree.site("site", LAYOUTS["several blocks in one file"])
    tree.site("wild", "server {{ listen 80; server_name *.example.org; }}\n")
    tree.deploy(tree.request("*.example.org"))
    tree.deploy(tree.request("example.org"))
    tree.deploy(DeployRequest("second", ("new.test", "unrelated.test"), str(tree.tls.cert),
                              str(tree.tls.key), str(tree.tls.fullchain),
                              str(tree.tls.fullchain)))
    text = (tree.root / "sites/site").read_text()
    assert text.count("options-ssl-nginx.conf") == 2  # example.org and unrelated.test


def test_the_harness_catches_duplicate_listen_options(tree: Tree) -> None:
    tree.site("site", """\
server {{ listen 443 ssl default_server; server_name a; ssl_certificate {old};
         ssl_certificate_key {oldkey}; }}
server {{ listen 443 ssl default_server; server_name b; ssl_certificate {old};
         ssl_certificate_key {oldkey}; }}
""")
    with pytest.raises(AssertionError, match="duplicate default server"):
        tree.check()


# -- a short real run -----------------------------------------------------------------------
@pytest.fixture
def running(tree: Tree) -> Iterator[Tree]:
    try:
        yield tree
    finally:
        tree.stop()


def restart(tree: Tree, running: Tree, port: int) -> None:
    """(Re)start ``running`` (the tree's server) and wait for ``port``."""
    running.http_port = port
    running.restart()


def get(port: int, host: str, path: str) -> tuple[int, str, bytes]:
    """Status, Location and body of a plain HTTP/1.0 request (no redirects followed)."""
    answer = probe.http_get(port, host, path)
    return answer.status, answer.location, answer.body


def https_get(port: int, host: str, path: str) -> tuple[x509.Certificate, str]:
    answer = probe.http_get(port, host, path, tls=True)
    assert answer.cert is not None
    return answer.cert, answer.head


def test_served_behaviour(tree: Tree, running: Tree, www_root: Path) -> None:
    http, https = free_port(), free_port()
    (www_root / ".well-known/acme-challenge").mkdir(parents=True)
    (www_root / ".well-known/acme-challenge/file").write_text("from the webroot")
    (www_root / "index.html").write_text("site")
    tree.site("site", """\
server {{
    listen 127.0.0.1:{http};
    server_name example.org;
    root {www};
}}
server {{
    listen 127.0.0.1:{http};
    server_name www.example.org;
    return 301 https://example.org$request_uri;
}}
""", http=http, www=www_root)
    tree.deploy(tree.request("example.org", https=https, http=http))
    tree.enhance(("example.org",), "redirect", "hsts", https=https, http=http)
    restart(tree, running, http)

    cert, head = https_get(https, "example.org", "/")
    assert cert.serial_number == x509.load_pem_x509_certificate(
        tree.tls.cert.read_bytes()).serial_number
    assert head.startswith("HTTP/1.1 200") and "strict-transport-security" in head.lower()
    assert get(http, "example.org", "/page?x=1")[:2] == (301, "https://example.org/page?x=1")
    status, _, body = get(http, "example.org", "/.well-known/acme-challenge/file")
    assert (status, body) == (200, b"from the webroot")  # exempt from the redirect

    tree.http01([challenge("example.org", "tokA"), challenge("www.example.org", "tokB"),
                 challenge("fresh.test", "tokC")], port=http)
    # the installer's reload returns once new workers serve the new config: no sleep
    NginxInstaller(argparse.Namespace(nginx_conf=str(tree.main), nginx_ctl=tree.nginx,
                                      nginx_server_root=str(tree.root))).reload()
    for host, token in (("example.org", "tokA"), ("www.example.org", "tokB"),
                        ("fresh.test", "tokC")):
        status, _, body = get(http, host, f"/.well-known/acme-challenge/{token}")
        assert (status, body) == (200, f"{token}.thumbprint".encode()), host
    assert get(http, "www.example.org", "/x")[:2] == (301, "https://example.org/x")



def test_hash_bucket_size_set_in_an_http_level_include(tree: Tree) -> None:
    """``server_names_hash_bucket_size`` set in a file the http block includes is raised
    there (a second one in the http block stops nginx: "directive is duplicate")."""
    long_name = "a-rather-long-host-name-that-needs-a-wider-bucket.example.org"
    (tree.root / "sites" / "00-hash").write_text("server_names_hash_bucket_size 64;\n")
    tree.site("site", "server {{\n    listen 80 default_server;\n}}\n")
    tree.deploy(tree.request(long_name))  # a new block for the name: a wider bucket
    assert (tree.root / "sites" / "00-hash").read_text() == \
        "server_names_hash_bucket_size 128;\n"
