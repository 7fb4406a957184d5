"""The configuration test runs ``haproxy -c`` again only when more than certwright's
certificates changed; a changed certificate is still checked as HAProxy loads it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from certwright.core.errors import PluginError
from certwright.installers.haproxy.checks import ConfigCheck
from tests.servers.tlsca import TestCA, cert_pem, key_pem


def write_pem(path: Path, ca: TestCA, name: str, *, mismatched: bool = False) -> None:
    cert, key = ca.issue_server_cert([name], [])
    if mismatched:
        _, key = ca.issue_server_cert([name], [])
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(cert_pem(cert) + cert_pem(ca.cert) + key_pem(key))
    os.replace(tmp, path)  # a new inode, as an atomic write makes


Tree = tuple[Path, Path, list[Path], TestCA]


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    ca = TestCA.create()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("global\n")
    pems = [tmp_path / f"{n}.pem" for n in ("a", "b")]
    for pem in pems:
        write_pem(pem, ca, pem.stem + ".example.org")
    lst = tmp_path / "crt-list"
    lst.write_text("# managed\n" + "".join(f"{p} {p.stem}.example.org\n" for p in pems))
    return cfg, lst, pems, ca


def make_tester(cfg: Path, lst: Path, runs: list[int]) -> ConfigCheck:
    return ConfigCheck(lambda: runs.append(1), lambda: [str(cfg)], str(lst))


def test_only_changed_certificates_are_checked_after_a_full_test(tree: Tree) -> None:
    cfg, lst, pems, ca = tree
    runs: list[int] = []
    test = make_tester(cfg, lst, runs)
    test()
    write_pem(pems[0], ca, "a.example.org")
    test()
    write_pem(pems[1], ca, "b.example.org")
    test()
    assert len(runs) == 1, "one haproxy -c for three tests of certificate-only changes"
    write_pem(pems[0], ca, "a.example.org", mismatched=True)
    with pytest.raises(PluginError, match=f"{pems[0]}: HAProxy can't load it"):
        test()
    write_pem(pems[0], ca, "a.example.org")
    test()
    assert len(runs) == 2, "after a failure the next test is a full one"


def test_a_changed_config_or_crt_list_runs_the_full_test(tree: Tree) -> None:
    cfg, lst, _pems, _ca = tree
    runs: list[int] = []
    test = make_tester(cfg, lst, runs)
    test()
    cfg.write_text("global\n    maxconn 10\n")
    test()
    lst.write_text(lst.read_text() + "# another line\n")
    test()
    assert len(runs) == 3
