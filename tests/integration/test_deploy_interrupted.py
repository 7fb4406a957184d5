"""Any exception inside the deploy pipeline (a plugin's bug, Ctrl-C) rolls the change back
and reloads the old configuration, against a real nginx."""

from __future__ import annotations

import argparse
import datetime
import shutil
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certwright.core.deploy import apply_plan, expected_certificate
from certwright.core.interfaces import DeployRequest
from certwright.core.transaction import checkpoints, transactions
from certwright.installers.nginx import NginxInstaller
from tests.conftest import require_binary
from tests.servers.nginx_tree import NGINX, NginxTree
from tests.servers.tree_server import new_root

pytestmark = pytest.mark.integration

SITE = """\
server {{
    listen 127.0.0.1:{http};
    server_name example.org;
    root {www};
}}
"""


@pytest.fixture
def tree() -> Iterator[NginxTree]:
    require_binary(NGINX)
    root = new_root("certwright-deploy-")
    t = NginxTree(root)
    try:
        t.site("example", SITE)
        yield t.start()
    finally:
        t.stop()
        shutil.rmtree(root, ignore_errors=True)


def self_signed(folder: Path, name: str) -> DeployRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    folder.mkdir(mode=0o755, parents=True)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(pem)
    (folder / "fullchain.pem").write_bytes(pem)
    (folder / "chain.pem").write_bytes(b"")
    (folder / "privkey.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return DeployRequest(cert_name=name, domains=(name,), cert_path=str(folder / "cert.pem"),
                         key_path=str(folder / "privkey.pem"),
                         chain_path=str(folder / "chain.pem"),
                         fullchain_path=str(folder / "fullchain.pem"))


def serves_tls(port: int) -> bool:
    ctx = ssl._create_unverified_context()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock, \
                ctx.wrap_socket(sock, server_hostname="example.org"):
            return True
    except OSError:
        return False


class Buggy(NginxInstaller):
    """The real nginx installer, with an exception injected after one step."""

    fail_after = ""
    error: BaseException = KeyError("server_names")

    def config_test(self) -> None:
        super().config_test()
        if self.fail_after == "config test":
            raise self.error

    def reload(self) -> None:
        super().reload()
        if self.fail_after == "reload":
            self.fail_after = ""  # the reload of the restored configuration works
            raise self.error


@pytest.mark.parametrize(("step", "error"), [
    ("config test", KeyError("server_names")),
    ("config test", KeyboardInterrupt()),
    ("reload", KeyError("listen")),
    ("reload", KeyboardInterrupt()),
    ("reload", SystemExit(143)),  # SIGTERM, as signals_raise turns it into
])
def test_any_exception_rolls_back_and_reloads_the_old_config(
        tree: NginxTree, tmp_path: Path, step: str, error: BaseException) -> None:
    config = argparse.Namespace(nginx_server_root=str(tree.root), nginx_ctl=NGINX,
                                nginx_reload_cmd=None, nginx_conf=None,
                                http01_port=tree.http_port)
    installer = Buggy(config)
    installer.fail_after, installer.error = step, error
    req = self_signed(tmp_path / "live", "example.org")
    req = DeployRequest(**{**req.__dict__, "https_port": tree.https_port})
    plan = installer.plan_deploy(req)
    assert not plan.empty
    before = tree.snapshot()
    work = tmp_path / "work"
    with pytest.raises(type(error)):
        apply_plan(installer, plan, work_dir=work, say=print,
                   endpoints=installer.endpoints(req),
                   expected_der=expected_certificate(req.cert_path))
    assert tree.snapshot() == before, "the untested change is still on disk"
    assert not serves_tls(tree.https_port), "nginx still runs the new configuration"
    assert checkpoints(work) == []
    assert [t.manifest.state for t in transactions(work)] == ["rolled-back"]
