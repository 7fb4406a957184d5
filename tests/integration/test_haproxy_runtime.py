"""The runtime API swap against a real HAProxy: a refused commit is aborted with nothing
half-live; a stale transaction (HAProxy 2.6 keeps one per process and silently mixes a
second ``set`` into it) is aborted first; a new certificate is added to the crt-list."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography import x509

from certwright.installers.haproxy import runtime
from tests.integration.conftest import tree_server
from tests.servers import probe
from tests.servers.haproxy import GLOBAL, HAPROXY_BINARY, Haproxy
from tests.servers.tlsca import TestCA, cert_pem, key_pem

pytestmark = pytest.mark.integration

SITE = """
frontend www
    bind 127.0.0.1:{http}
    bind 127.0.0.1:{https} ssl crt-list {root}/certs/list alpn h2,http/1.1
    default_backend app

backend app
    server app1 127.0.0.1:{backend}
"""


@pytest.fixture
def ca() -> TestCA:
    return TestCA.create()


def pem_for(ca: TestCA, name: str) -> tuple[str, int]:
    cert, key = ca.issue_server_cert([name], [])
    return (cert_pem(cert) + cert_pem(ca.cert) + key_pem(key)).decode(), cert.serial_number


@pytest.fixture
def lb(ca: TestCA) -> Iterator[Haproxy]:
    with tree_server(Haproxy, HAPROXY_BINARY, "certwright-haproxy-") as server:
        certs = server.root / "certs"
        certs.mkdir()
        for name in ("a", "b"):
            (certs / f"{name}.pem").write_text(pem_for(ca, f"{name}.test")[0])
        (certs / "list").write_text(f"{certs}/a.pem a.test\n{certs}/b.pem b.test\n")
        (certs / "empty").write_text("")
        server.write(GLOBAL + SITE)
        yield server.start()


def serial(lb: Haproxy, name: str) -> int:
    return probe.served_cert(lb.https_port, name).serial_number


def test_a_refused_commit_is_aborted_and_nothing_goes_live(lb: Haproxy, ca: TestCA) -> None:
    api = runtime.check_socket(str(lb.admin))
    path = str(lb.root / "certs" / "a.pem")
    good, _ = pem_for(ca, "a.test")
    other, other_serial = pem_for(ca, "a.test")
    mismatched = good.split("-----BEGIN PRIVATE KEY-----")[0] + \
        "-----BEGIN PRIVATE KEY-----" + other.split("-----BEGIN PRIVATE KEY-----")[1]
    staged = x509.load_pem_x509_certificate(mismatched.encode()).serial_number
    before = serial(lb, "a.test")
    with pytest.raises(runtime.RuntimeApiError, match="commit ssl cert"):
        runtime.swap(api, path, mismatched, staged)
    assert api.certificates()[1] == set(), "the transaction was aborted"
    assert serial(lb, "a.test") == before
    assert other_serial != staged


def test_a_stale_transaction_is_aborted_before_the_swap(lb: Haproxy, ca: TestCA) -> None:
    api = runtime.check_socket(str(lb.admin))
    a, b = str(lb.root / "certs" / "a.pem"), str(lb.root / "certs" / "b.pem")
    stale, _ = pem_for(ca, "a.test")
    assert "Transaction created" in api.command(f"set ssl cert {a}", stale)
    new_b, new_serial = pem_for(ca, "b.test")
    before_a = serial(lb, "a.test")
    runtime.swap(api, b, new_b, new_serial)
    assert serial(lb, "b.test") == new_serial
    assert serial(lb, "a.test") == before_a, "the stale transaction was not committed"
    assert api.certificates()[1] == set()


def test_a_wrong_serial_in_the_transaction_is_refused(lb: Haproxy, ca: TestCA) -> None:
    api = runtime.check_socket(str(lb.admin))
    b = str(lb.root / "certs" / "b.pem")
    pem, real = pem_for(ca, "b.test")
    before = serial(lb, "b.test")
    with pytest.raises(runtime.RuntimeApiError, match="holds serial"):
        runtime.swap(api, b, pem, real + 1)
    assert serial(lb, "b.test") == before and api.certificates()[1] == set()


def test_a_new_certificate_is_added_to_the_crt_list(lb: Haproxy, ca: TestCA) -> None:
    api = runtime.check_socket(str(lb.admin))
    lst = str(lb.root / "certs" / "list")
    path = str(lb.root / "certs" / "c.pem")
    pem, new_serial = pem_for(ca, "c.test")
    runtime.swap_all(api, str(lb.root / "run" / "swap.lock"), [(path, pem, new_serial)], lst,
                     {path: f"{path} c.test"})
    assert serial(lb, "c.test") == new_serial
    assert f"{path} c.test" in api.command(f"show ssl crt-list {lst}")
