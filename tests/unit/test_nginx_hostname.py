"""Server names as nginx keeps them, with a real nginx: ``server_name $hostname`` is the
machine's host name (nginx runs here in its own UTS namespace with a host name of the
test's choosing), and a regex name keeps its case (``\\D`` is not ``\\d``) and is read
as PCRE reads it (``\\z``)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from certwright.core.interfaces import ChangePlan
from certwright.installers.nginx import NginxInstaller
from certwright.installers.nginx.http01 import plan_http01
from certwright.installers.nginx.plan import plan_deploy
from certwright.installers.nginx.select import select_blocks
from certwright.installers.nginx.tree import load_tree
from tests.servers.ports import free_port
from tests.unit.test_nginx_nginx_t import (  # noqa: F401  (fixtures used below)
    Tree,
    challenge,
    get,
    tls,
    tree,
)

HOST = "box.example.org"
SITES = """\
server {{
    listen 127.0.0.1:{http} default_server;
    server_name _;
    return 403;
}}
server {{
    listen 127.0.0.1:{http};
    server_name $HOSTNAME;
    return 200 "the host's own site";
}}
server {{
    listen 127.0.0.1:{http};
    server_name "~^\\D+\\.regex\\.test$";
    return 200 "letters";
}}
server {{
    listen 127.0.0.1:{http};
    server_name "~^z\\d+\\.pcre\\.test\\z";
    return 200 "pcre";
}}
"""


def in_namespace(*argv: str) -> list[str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare is not installed")
    return [unshare, "--uts", "sh", "-c", f'hostname {HOST} && exec "$@"', "sh", *argv]


@pytest.fixture
def served(tree: Tree, monkeypatch: pytest.MonkeyPatch  # noqa: F811
           ) -> Iterator[tuple[int, Tree]]:
    """nginx in a namespace named HOST, and certwright told the same name."""
    monkeypatch.setattr(socket, "gethostname", lambda: HOST)
    tree.wrap = in_namespace()
    tree.http_port = free_port()
    tree.site("sites", SITES, http=tree.http_port)
    try:
        yield tree.http_port, tree.start()
    finally:
        tree.stop()


def apply_and_reload(tree: Tree, plan: ChangePlan) -> str:  # noqa: F811
    """Apply, test (in the namespace, where nginx warns about a name it ignores) and
    reload; the test's output."""
    tree.apply(plan)
    check = subprocess.run(tree.ctl("-t"), capture_output=True, text=True, timeout=30,
                           check=False)
    assert check.returncode == 0, check.stderr
    NginxInstaller(_ns(tree)).reload()
    return check.stderr


def _ns(tree: Tree) -> object:  # noqa: F811
    import argparse

    return argparse.Namespace(nginx_conf=str(tree.main), nginx_ctl=tree.nginx,
                              nginx_server_root=str(tree.root))


def test_hostname_server_name_is_the_machines_name(
        tree: Tree, served: tuple[int, Tree]) -> None:  # noqa: F811
    http, _ = served
    assert get(http, HOST, "/")[::2] == (200, b"the host's own site")
    config = load_tree(str(tree.main))
    (match,) = select_blocks(config.servers, HOST, http, ssl=False, fallback=False)
    assert match.block.server_names == (HOST,)
    # http-01 goes into the block nginx picks, not into a temporary block whose
    # server_name nginx would ignore as a duplicate (the request then met a 403)
    task = challenge(HOST, "tokH")
    plan = plan_http01(config, [task], tree.layout, http)
    assert not any("challenges" in c.path for c in plan.changes)
    warnings = apply_and_reload(tree, plan)
    assert "conflicting server name" not in warnings
    assert get(http, HOST, "/.well-known/acme-challenge/tokH")[::2] == \
        (200, b"tokH.thumbprint")
    # a deploy gives the host's block TLS instead of making a new block for the name
    deploy = plan_deploy(load_tree(str(tree.main)),
                         tree.request(HOST, https=free_port(), http=http), tree.layout)
    assert [c.path for c in deploy.changes if "certwright/servers" in c.path] == []


def test_regex_server_names_as_pcre_reads_them(
        tree: Tree, served: tuple[int, Tree]) -> None:  # noqa: F811
    http, _ = served
    config = load_tree(str(tree.main))
    for name, status in (("abc.regex.test", 200), ("123.regex.test", 403),
                         ("z1.pcre.test", 200), ("z1.pcre.test.x", 403)):
        assert get(http, name, "/")[0] == status, name  # what nginx does
        found = select_blocks(config.servers, name, http, ssl=False, fallback=False)
        assert bool(found) == (status == 200), name  # and what certwright sees
