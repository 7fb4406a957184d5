"""Certificate lines in an include file that several server blocks share, with a real
nginx: the certificate reaches every target block, the other blocks keep what the file
gives them, and no target block keeps serving the included certificate to any client
(nginx serves every key type a block names: an RSA snakeoil next to an ECDSA certificate
would still answer RSA-only clients)."""

from __future__ import annotations

import datetime
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from certwright.installers.nginx.plan import plan_deploy
from certwright.installers.nginx.tree import load_tree
from tests.servers.ports import free_port
from tests.unit.test_nginx_nginx_t import (  # noqa: F401  (fixtures used below)
    Tree,
    https_get,
    restart,
    running,
    tls,
    tree,
)

SITES = """\
server {{
    listen 127.0.0.1:{https} ssl;
    server_name example.org;
    include {snippet};
    return 200 "apex";
}}
server {{
    listen 127.0.0.1:{https} ssl;
    server_name www.example.org;
    include {snippet};
    return 200 "www";
}}
{other}"""
OTHER = """\
server {{
    listen 127.0.0.1:{https} ssl;
    server_name other.test;
    include {snippet};
    return 200 "other";
}}
"""


def snakeoil(directory: Path) -> tuple[Path, Path]:
    """A self-signed RSA certificate, as distributions ship for a start."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "snakeoil")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    pem, kpem = directory / "snakeoil.pem", directory / "snakeoil.key"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kpem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return pem, kpem


def rsa_only_subject(port: int, name: str) -> str | None:
    """The subject an RSA-only TLS 1.2 client gets (None: no RSA certificate served)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, \
                ctx.wrap_socket(sock, server_hostname=name) as conn:
            der = conn.getpeercert(binary_form=True)
    except ssl.SSLError:
        return None
    assert der is not None
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


def setup(tree: Tree, extra: str, other: bool) -> tuple[int, Path]:  # noqa: F811
    https = free_port()
    pem, key = snakeoil(tree.root)
    snippet = tree.root / "snippets" / "tls.conf"
    snippet.parent.mkdir()
    snippet.write_text(f"# shared TLS lines\nssl_certificate {pem};\n"
                       f"ssl_certificate_key {key};\n{extra}")
    tree.site("sites", SITES, https=https, snippet=snippet,
              other=OTHER.format(https=https, snippet=snippet) if other else "")
    return https, snippet


def ours(tree: Tree) -> int:  # noqa: F811
    return x509.load_pem_x509_certificate(tree.tls.cert.read_bytes()).serial_number


@pytest.mark.parametrize("extra", ["", "add_header X-Shared yes always;\n"])
def test_shared_with_a_block_of_another_name(
        tree: Tree, running: Tree, extra: str) -> None:  # noqa: F811
    https, snippet = setup(tree, extra, other=True)
    before = snippet.read_text()
    tree.deploy(tree.request("example.org", "www.example.org", https=https, http=free_port()))
    assert snippet.read_text() == before  # other.test still reads it
    restart(tree, running, https)
    for name in ("example.org", "www.example.org"):
        cert, head = https_get(https, name, "/")
        assert cert.serial_number == ours(tree), name
        assert rsa_only_subject(https, name) is None, name  # the snakeoil is gone there
        assert ("x-shared: yes" in head.lower()) == bool(extra), name
    cert, head = https_get(https, "other.test", "/")
    assert cert.subject.rfc4514_string() == "CN=snakeoil"
    assert ("x-shared: yes" in head.lower()) == bool(extra)


def test_shared_only_by_target_blocks_is_updated_in_place(
        tree: Tree, running: Tree) -> None:  # noqa: F811
    https, snippet = setup(tree, "", other=False)
    site = (tree.root / "sites" / "sites").read_text()
    tree.deploy(tree.request("example.org", "www.example.org", https=https, http=free_port()))
    assert (tree.root / "sites" / "sites").read_text() == site
    assert f"ssl_certificate {tree.tls.fullchain};" in snippet.read_text()
    restart(tree, running, https)
    for name in ("example.org", "www.example.org"):
        assert https_get(https, name, "/")[0].serial_number == ours(tree)


def test_a_shared_file_fails_no_name(tree: Tree) -> None:  # noqa: F811
    """One name in a block reading a shared file, one in a plain block: both are
    installed (the shared file once stopped the whole install)."""
    https, snippet = setup(tree, "", other=True)
    (tree.root / "sites" / "plain").write_text(
        "server {\n    listen 127.0.0.1:8080;\n    server_name plain.test;\n}\n")
    plan = plan_deploy(load_tree(str(tree.main)),
                       tree.request("plain.test", "example.org", https=https, http=8080),
                       tree.layout)
    paths = [c.path for c in plan.changes]
    assert str(snippet) not in paths
    assert any(p.endswith("sites/plain") for p in paths)
    assert any(p.endswith("sites/sites") for p in paths)


DUAL = """\
server {{
    listen 127.0.0.1:{https} ssl;
    server_name example.org;
    ssl_certificate {rsa};
    ssl_certificate_key {rsakey};
    ssl_certificate {ec};
    ssl_certificate_key {eckey};
    return 200 "apex";
}}
"""


def test_a_block_with_one_certificate_per_key_type(
        tree: Tree, running: Tree, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
        ) -> None:
    """RSA and ECDSA pairs in one block: the pair of the new certificate's key type is
    replaced (replacing the first would leave the old ECDSA one served: of two of a type,
    nginx serves the later), the other stays for the clients that need it."""
    from tests.servers.tlsca import make_tls_files

    https = free_port()
    rsa_pem, rsa_key = snakeoil(tree.root)
    old = make_tls_files(tmp_path_factory.mktemp("old"), names=("example.org",))
    tree.site("sites", DUAL, https=https, rsa=rsa_pem, rsakey=rsa_key, ec=old.fullchain,
              eckey=old.key)
    tree.deploy(tree.request("example.org", https=https, http=free_port()))
    restart(tree, running, https)
    assert https_get(https, "example.org", "/")[0].serial_number == ours(tree)
    assert rsa_only_subject(https, "example.org") == "CN=snakeoil"


def test_a_listen_in_a_file_all_targets_share_gains_tls_once(
        tree: Tree, running: Tree) -> None:  # noqa: F811
    """apex and www read their listens from one file: it gains " ssl" once (each block
    added its own: ``listen … ssl ssl;``)."""
    https, http = free_port(), free_port()
    listens = tree.root / "snippets" / "listen.conf"
    listens.parent.mkdir()
    listens.write_text(f"listen 127.0.0.1:{http};\nlisten 127.0.0.1:{https};\n")
    (tree.root / "sites" / "sites").write_text("".join(
        f"server {{\n    include {listens};\n    server_name {name};\n"
        f"    return 200 \"{name}\";\n}}\n" for name in ("example.org", "www.example.org")))
    tree.deploy(tree.request("example.org", "www.example.org", https=https, http=http))
    assert listens.read_text() == (f"listen 127.0.0.1:{http};\n"
                                   f"listen 127.0.0.1:{https} ssl;\n")
    restart(tree, running, http)
    for name in ("example.org", "www.example.org"):
        assert https_get(https, name, "/")[0].serial_number == ours(tree)


def test_a_shared_file_reached_through_a_site_snippet(
        tree: Tree, running: Tree) -> None:  # noqa: F811
    """The site's own snippet includes the shared file: the snippet (read by this
    certificate's blocks only) is changed, the shared file is not."""
    https = free_port()
    pem, key = snakeoil(tree.root)
    snippets = tree.root / "snippets"
    snippets.mkdir()
    (snippets / "tls.conf").write_text(f"ssl_certificate {pem};\nssl_certificate_key {key};\n")
    (snippets / "site.conf").write_text(f"include {snippets}/tls.conf;\nadd_header X-Site 1;\n")
    tree.site("sites", SITES.replace("include {snippet};", "include {site};", 2),
              https=https, snippet=snippets / "tls.conf", site=snippets / "site.conf",
              other=OTHER.format(https=https, snippet=snippets / "tls.conf"))
    tree.deploy(tree.request("example.org", "www.example.org", https=https, http=free_port()))
    assert (snippets / "tls.conf").read_text().startswith(f"ssl_certificate {pem};")
    assert "include" not in (snippets / "site.conf").read_text()
    restart(tree, running, https)
    for name in ("example.org", "www.example.org"):
        assert https_get(https, name, "/")[0].serial_number == ours(tree), name
        assert rsa_only_subject(https, name) is None, name
    assert https_get(https, "other.test", "/")[0].subject.rfc4514_string() == "CN=snakeoil"


def test_what_nginx_does_with_two_certificate_lines(
        tree: Tree, running: Tree, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
        ) -> None:
    """The facts the detaching rests on (nginx 1.22): a block's own certificate lines do
    not replace included ones; there is no "duplicate" error; of two ECDSA certificates
    the later line is served, and an RSA one stays served to RSA-only clients."""
    from tests.servers.tlsca import make_tls_files

    https = free_port()
    pem, key = snakeoil(tree.root)
    old = make_tls_files(tmp_path_factory.mktemp("old"), names=("example.org",))
    (tree.root / "rsa.conf").write_text(f"ssl_certificate {pem};\nssl_certificate_key {key};\n")
    (tree.root / "ec.conf").write_text(f"ssl_certificate {old.fullchain};\n"
                                       f"ssl_certificate_key {old.key};\n")
    ours_lines = (f"ssl_certificate {tree.tls.fullchain}; "
                  f"ssl_certificate_key {tree.tls.key};")
    (tree.root / "sites" / "two").write_text(
        f"server {{ listen 127.0.0.1:{https} ssl; server_name rsa.test; "
        f"include {tree.root}/rsa.conf; {ours_lines} }}\n"
        f"server {{ listen 127.0.0.1:{https} ssl; server_name ec-first.test; "
        f"include {tree.root}/ec.conf; {ours_lines} }}\n"
        f"server {{ listen 127.0.0.1:{https} ssl; server_name ec-last.test; "
        f"{ours_lines} include {tree.root}/ec.conf; }}\n")
    tree.check()
    restart(tree, running, https)
    old_serial = x509.load_pem_x509_certificate(old.cert.read_bytes()).serial_number
    assert https_get(https, "rsa.test", "/")[0].serial_number == ours(tree)
    assert rsa_only_subject(https, "rsa.test") == "CN=snakeoil"
    assert https_get(https, "ec-first.test", "/")[0].serial_number == ours(tree)
    assert https_get(https, "ec-last.test", "/")[0].serial_number == old_serial
