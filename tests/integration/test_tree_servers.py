"""The shared server layer itself: one base (template, start, reload, stop, snapshot) for
nginx and the mail servers, and the probe module that asks them what they serve."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.conftest import require_binary, skip_or_fail
from tests.integration.test_probe import NAME, Certs
from tests.servers import probe
from tests.servers.mail import Postfix
from tests.servers.nginx_tree import NGINX, NginxTree
from tests.servers.ports import wait_until
from tests.servers.tree_server import new_root

pytestmark = pytest.mark.integration

SITE = """\
server {{
    listen 127.0.0.1:{http};
    server_name {name};
    return 200 "{answer}";
}}
"""


@pytest.fixture
def tree() -> Iterator[NginxTree]:
    require_binary(NGINX)
    root = new_root("certwright-tree-")
    t = NginxTree(root)
    try:
        yield t
    finally:
        t.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_nginx_tree_reload_snapshot_and_stop(tree: NginxTree) -> None:
    tree.site("a", SITE.replace("{name}", "a.test").replace("{answer}", "first"))
    assert str(tree.root) in " ".join(tree.args()) and str(tree.http_port) in tree.args()
    before = tree.snapshot()
    tree.start()
    assert probe.http_get(tree.http_port, "a.test").body == b"first"
    assert tree.snapshot() == before  # pid, logs and temp files are the server's scratch
    site = tree.root / "sites-available" / "a"
    original = site.read_bytes()
    site.write_bytes(original.replace(b"first", b"second"))
    changed = tree.snapshot()
    assert changed != before and changed["sites-available/a"] != before["sites-available/a"]
    tree.reload()
    wait_until(lambda: probe.http_get(tree.http_port, "a.test").body == b"second",
               timeout=5, what="nginx serving the reloaded site")
    (tree.root / "conf.d" / "left-behind").mkdir()
    site.write_bytes(original)
    assert tree.snapshot() != before  # a directory left behind counts
    (tree.root / "conf.d" / "left-behind").rmdir()
    assert tree.snapshot() == before
    tree.stop()
    tree.stop()  # twice: harmless
    assert not tree.running


def test_postfix_on_the_same_base() -> None:
    if os.geteuid() != 0:
        skip_or_fail("the mail servers need root")
    require_binary("postfix")
    root = new_root("certwright-mail-")
    try:
        certs = Certs(root)
        expected = certs.install()
        with Postfix(root, certs.key, certs.fullchain) as postfix:
            before = postfix.snapshot()
            for port, protocol in ((postfix.smtp, "smtp-starttls"), (postfix.smtps, "smtps")):
                served = probe.served_cert(port, NAME, protocol)
                assert served.public_bytes(Encoding.DER) == expected, protocol
            postfix.reload()
            assert postfix.snapshot() == before  # spool and maillog are scratch
    finally:
        shutil.rmtree(root, ignore_errors=True)

