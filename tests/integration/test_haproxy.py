"""`run -a haproxy -i haproxy`, install, enhance, renew and rollback against a real HAProxy
(master-worker mode, a real backend) with Pebble as the CA."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from cryptography import x509

from tests.conftest import require_binary
from tests.integration.conftest import Cli
from tests.servers import probe
from tests.servers.haproxy import HAPROXY_BINARY, Haproxy
from tests.servers.pebble import Pebble
from tests.servers.tree_server import new_root

pytestmark = pytest.mark.integration
NAMES = ("lb.example.org", "api.example.org")


@pytest.fixture
def lb(pebble: Pebble) -> Iterator[Haproxy]:
    require_binary(HAPROXY_BINARY)
    root = new_root("certwright-haproxy-")
    server = Haproxy(root, http_port=pebble.http_port)
    server.write()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def served(lb: Haproxy, name: str, root_pem: bytes | None = None) -> x509.Certificate:
    return probe.served_cert(lb.https_port, name, cadata=root_pem)


def lineage_serial(cli: Cli, name: str) -> int:
    pem = (cli.config_dir / "live" / name / "cert.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).serial_number


def test_run_end_to_end_two_names_redirect_hsts(cli: Cli, lb: Haproxy, pebble: Pebble) -> None:
    lb.start()
    for name in NAMES:
        cli("run", "-a", "haproxy", "-i", "haproxy", *lb.args(), "-d", name,
            "--redirect", "--hsts")
    root = pebble.root_pem()
    for name in NAMES:
        cert = served(lb, name, root_pem=root)  # the chain verifies against Pebble's root
        assert cert.serial_number == lineage_serial(cli, name)
    answer = probe.http_get(lb.http_port, NAMES[0], "/some/page?x=1")
    assert answer.status == 301 and answer.location == f"https://{NAMES[0]}/some/page?x=1"
    answer = probe.http_get(lb.http_port, NAMES[0], "/.well-known/acme-challenge/nothing")
    assert answer.status != 301, "the challenge path stays on plain http"
    over_tls = probe.http_get(lb.https_port, NAMES[1], "/", tls=True, cadata=root)
    assert over_tls.status == 200 and b"backend says hello" in over_tls.body
    assert "strict-transport-security" in over_tls.head.lower()
    text = lb.conf.read_text()
    assert "# the site: comments and layout must survive" in text
    assert f"bind 127.0.0.1:{lb.http_port}   # plain http" in text
    pem = lb.root / "certwright" / f"{NAMES[0]}.pem"
    assert pem.stat().st_mode & 0o777 == 0o600
    conf = (cli.config_dir / "renewal" / f"{NAMES[0]}.conf").read_text()
    assert "installer = haproxy" in conf and f"haproxy_config = {lb.conf}" in conf
