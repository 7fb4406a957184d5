"""Tricky nginx layouts, end to end: several blocks per file, nested includes, IPv6,
wildcard names, default_server, an existing TLS block and an existing redirect."""

from __future__ import annotations

import datetime
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.conftest import Cli, nginx_tree
from tests.integration.test_nginx import http_get
from tests.servers.nginx_tree import NginxTree
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration

TWO_BLOCKS = """\
server {{
    listen 127.0.0.1:{http};
    listen [::1]:{http};
    server_name one.example.org;
    root {www};
}}

# second block in the same file
server {{
    listen 127.0.0.1:{http};
    listen [::1]:{http};
    server_name two.example.org;
    root {www};
}}
"""
WILD_AND_DEFAULT = """\
server {{
    listen 127.0.0.1:{http};
    server_name *.wild.example.org;
    root {www};
}}
server {{
    listen 127.0.0.1:{http} default_server;
    server_name _;
    return 404;
}}
"""
EXISTING_TLS = """\
server {{
    listen 127.0.0.1:{http};
    server_name tls.example.org;
    return 301 https://$host$request_uri;
}}
server {{
    listen 127.0.0.1:{https} ssl;
    server_name tls.example.org;
    ssl_certificate {selfsigned};
    ssl_certificate_key {selfkey};
    root {www};
}}
"""
NESTED = """\
server {{
    listen 127.0.0.1:{http};
    server_name inner.example.org;
    root {www};
}}
"""


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    c, k = directory / "old.pem", directory / "old.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return c, k


@pytest.fixture
def tree(pebble: Pebble) -> Iterator[NginxTree]:
    with nginx_tree(pebble) as t:
        root = t.root
        cert, key = self_signed(root)
        t.site("two-blocks", TWO_BLOCKS)
        t.site("wild", WILD_AND_DEFAULT)
        t.site("tls", EXISTING_TLS.replace("{selfsigned}", str(cert)).replace("{selfkey}",
                                                                             str(key)))
        nested = root / "conf.d" / "nested"
        nested.mkdir(parents=True)
        (root / "conf.d" / "outer.conf").write_text(f"include {nested}/*.conf;\n")
        (nested / "inner.conf").write_text(NESTED.format(http=t.http_port, www=t.www))
        yield t.start()


def served(host: str, port: int, name: str, root_pem: bytes) -> x509.Certificate:
    ctx = ssl.create_default_context(cadata=root_pem.decode())
    with socket.create_connection((host, port), timeout=5) as s, \
            ctx.wrap_socket(s, server_hostname=name) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_layouts(cli: Cli, tree: NginxTree, pebble: Pebble) -> None:
    root_pem = pebble.root_pem()
    cli("run", "--nginx", *tree.args(), "-d", "one.example.org", "-d", "two.example.org",
        "--redirect")
    for name in ("one.example.org", "two.example.org"):
        served("127.0.0.1", tree.https_port, name, root_pem)
        served("::1", tree.https_port, name, root_pem)  # the IPv6 listener got TLS too
    cli("run", "--nginx", *tree.args(), "-d", "inner.example.org")
    served("127.0.0.1", tree.https_port, "inner.example.org", root_pem)
    cli("run", "--nginx", *tree.args(), "-d", "a.wild.example.org")
    served("127.0.0.1", tree.https_port, "a.wild.example.org", root_pem)
    tls_site = tree.root / "sites-available" / "tls"
    cli("run", "--nginx", *tree.args(), "-d", "tls.example.org", "--redirect")
    served("127.0.0.1", tree.https_port, "tls.example.org", root_pem)
    text = tls_site.read_text()
    assert text.count(f":{tree.https_port} ssl") == 1, "the TLS block was updated, not copied"
    assert "old.pem" not in text
    assert "certwright_redirect" not in text, "an existing redirect is left as it is"
    status, location = http_get(tree.http_port, "two.example.org", "/x")
    assert status == 301 and location == "https://two.example.org/x"
    # a name only the catch-all answers: the catch-all is copied, not given the certificate
    wild_site = tree.root / "sites-available" / "wild"
    before = wild_site.read_text()
    cli("run", "--nginx", *tree.args(), "-d", "stray.example.org", "--redirect")
    assert wild_site.read_text() == before
    served("127.0.0.1", tree.https_port, "stray.example.org", root_pem)
    assert http_get(tree.http_port, "stray.example.org", "/x") == (
        301, "https://stray.example.org/x")
    assert http_get(tree.http_port, "unknown.example.net", "/x")[0] == 404  # not redirected
    check = subprocess.run(tree.ctl("-t"), capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "duplicate" not in check.stderr
    names = cli("certificates", "--json", account=False).stdout
    for lineage in ("one.example.org", "inner.example.org", "a.wild.example.org",
                    "tls.example.org", "stray.example.org"):
        assert f'"name": "{lineage}"' in names
