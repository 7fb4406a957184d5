"""Plan before ordering, against a real nginx and Pebble (through a front that records
every newOrder): what the nginx installer refuses is refused before any order, with the
message it gives; a block that allows only RSA ciphers gets an RSA key when no key type was
given, and refuses an ECDSA one up front (``--dry-run`` too, without contacting the CA)."""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.integration.conftest import Cli, nginx_tree
from tests.integration.test_nginx import served
from tests.servers.acme_front import AcmeFront
from tests.servers.nginx_tree import NginxTree
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration

RSA_ONLY = """\
server {{
    listen 127.0.0.1:{http};
    listen 127.0.0.1:{https} ssl;
    server_name example.org;
    root {www};
    ssl_certificate {root}/snakeoil.pem;
    ssl_certificate_key {root}/snakeoil.key;
    ssl_protocols TLSv1.2;
    ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384;
}}
"""
# a certificate per name, picked by nginx at each handshake: replacing the line would
# serve this certificate for other.test too, so the installer refuses
PER_NAME = """\
server {{
    listen 127.0.0.1:{http};
    listen 127.0.0.1:{https} ssl;
    server_name example.org other.test;
    ssl_certificate {root}/$ssl_server_name.pem;
    ssl_certificate_key {root}/$ssl_server_name.key;
}}
"""


class FrontCli(Cli):
    def __init__(self, base: Path, ca: Pebble, front: AcmeFront) -> None:
        super().__init__(base, ca, extra_env=front.env(os.environ))
        self.front = front

    def __call__(self, *args: str, **kw):  # type: ignore[no-untyped-def]
        return super().__call__(*args, "--server", self.front.directory_url, **kw)


@pytest.fixture
def front(pebble: Pebble, tmp_path: Path) -> Iterator[AcmeFront]:
    with AcmeFront(pebble, tmp_path / "front") as f:
        yield f


@pytest.fixture
def tree(pebble: Pebble) -> Iterator[NginxTree]:
    with nginx_tree(pebble) as t:
        root = t.root
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "snakeoil")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
        (root / "snakeoil.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (root / "snakeoil.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        yield t


def site(tree: NginxTree, text: str) -> None:
    tree.site("example", text.replace("{root}", str(tree.root)))


def refused(cli: Cli, *args: str) -> str:
    proc = cli(*args, check=False)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_key_type_the_block_cannot_serve_is_refused_before_ordering(
        pebble: Pebble, front: AcmeFront, tree: NginxTree, tmp_path: Path) -> None:
    site(tree, RSA_ONLY)
    tree.start()
    cli = FrontCli(tmp_path, pebble, front)
    before = tree.snapshot()
    for extra in ((), ("--dry-run",)):
        out = refused(cli, "run", "--nginx", *tree.args(), "-d", "example.org",
                      "--key-type", "ecdsa", *extra)
        assert "sites-enabled/example:9: ssl_ciphers allows no ECDSA certificate" in out, out
        assert "--key-type rsa" in out
        assert front.orders == [], extra  # nothing was ordered
        assert not (cli.config_dir / "accounts").exists(), extra  # nor the CA asked at all
    assert tree.snapshot() == before


def test_no_key_type_given_picks_one_the_block_can_serve(
        pebble: Pebble, front: AcmeFront, tree: NginxTree, tmp_path: Path) -> None:
    site(tree, RSA_ONLY)
    tree.start()
    cli = FrontCli(tmp_path, pebble, front)
    dry = cli("run", "--nginx", *tree.args(), "-d", "example.org", "--dry-run")
    assert "Using an RSA key" in dry.stdout + dry.stderr
    proc = cli("run", "--nginx", *tree.args(), "-d", "example.org")
    assert "Successfully deployed" in proc.stdout, proc.stdout + proc.stderr
    assert isinstance(served(tree, "example.org").public_key(), rsa.RSAPublicKey)
    conf = (cli.config_dir / "renewal" / "example.org.conf").read_text()
    assert "key_type = rsa" in conf  # renewals keep it


def test_an_installer_refusal_comes_before_the_order(
        pebble: Pebble, front: AcmeFront, tree: NginxTree, tmp_path: Path) -> None:
    for name in ("example.org", "other.test"):
        (tree.root / f"{name}.pem").write_bytes((tree.root / "snakeoil.pem").read_bytes())
        (tree.root / f"{name}.key").write_bytes((tree.root / "snakeoil.key").read_bytes())
    site(tree, PER_NAME)
    tree.start()
    cli = FrontCli(tmp_path, pebble, front)
    # what installing a certificate already at hand says: the message to expect
    expected = refused(cli, "install", "--nginx", *tree.args(), "-d", "example.org",
                       "--cert-path", str(tree.root / "snakeoil.pem"),
                       "--key-path", str(tree.root / "snakeoil.key"))
    assert "sites-enabled/example:5: ssl_certificate names its file with variables" \
        in expected, expected
    for verb in (("run", "--nginx"), ("certonly", "--nginx", "-i", "nginx"),
                 ("run", "--nginx", "--dry-run")):
        out = refused(cli, *verb, *tree.args(), "-d", "example.org")
        assert out == expected, verb  # the same message, before any order
        assert front.orders == [], verb
        assert not (cli.config_dir / "live").exists(), verb


def test_install_says_why_a_key_type_cannot_be_served(
        cli: Cli, tree: NginxTree) -> None:
    """`install` of an existing ECDSA certificate: refused before any change, naming the
    ssl_ciphers line (it used to fail the handshake check with only a TLS alert)."""
    site(tree, RSA_ONLY)
    tree.start()
    cli("certonly", "--nginx", *tree.args(), "-d", "example.org")  # ECDSA, the default
    before = tree.snapshot()
    out = refused(cli, "install", "--nginx", *tree.args(), "--cert-name", "example.org")
    assert "sites-enabled/example:9: ssl_ciphers allows no ECDSA certificate" in out, out
    assert "has an ECDSA key" in out
    assert tree.snapshot() == before
    assert served(tree, "example.org").subject.rfc4514_string() == "CN=snakeoil"


STREAM_ONLY = """\
# a stream-only nginx: no http block to answer http-01 from
worker_processes 1;
pid {root}/run/nginx.pid;
error_log {root}/logs/error.log info;
events {{
    worker_connections 64;
}}
stream {{
    server {{
        listen 127.0.0.1:{port};
        return "tcp\\n";
    }}
}}
"""


def test_an_authenticator_refusal_comes_before_the_order(
        pebble: Pebble, front: AcmeFront, tree: NginxTree, tmp_path: Path) -> None:
    """The nginx authenticator plans its http-01 change for placeholder tokens first: a
    configuration it can't answer from is refused before any order (it used to be
    refused once the order and its authorizations existed)."""
    tree.main.write_text(STREAM_ONLY.format(root=tree.root, port=tree.http_port))
    cli = FrontCli(tmp_path, pebble, front)
    out = refused(cli, "certonly", "--nginx", *tree.args(), "-d", "example.org")
    assert "no http block to include" in out, out
    assert front.orders == []


PROXIED = """\
server {{
    listen 127.0.0.1:{http};
    listen 127.0.0.1:{https} ssl proxy_protocol;
    server_name example.org;
    root {www};
    ssl_certificate {root}/snakeoil.pem;
    ssl_certificate_key {root}/snakeoil.key;
}}
"""


def test_listens_behind_the_proxy_protocol_are_not_probed(
        cli: Cli, tree: NginxTree) -> None:
    """A TLS listen that expects a PROXY protocol header can't be checked by a plain
    handshake: it is left out of the check (it failed every install, after issuing)."""
    site(tree, PROXIED)
    tree.start()
    proc = cli("run", "--nginx", *tree.args(), "-d", "example.org")
    assert "Successfully deployed" in proc.stdout, proc.stdout + proc.stderr
    assert "expect the PROXY protocol" in proc.stdout
    text = (tree.root / "sites-available" / "example").read_text()
    assert f"{cli.config_dir}/live/example.org/fullchain.pem" in text
