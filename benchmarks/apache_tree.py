"""A generated Apache tree of many name-based vhosts, its own apache2, and what each tool
needs to run on it: for the `apache-install` section.

The tree is Debian's stock one (copied from /etc/apache2, as the tests do) with
``sites-enabled`` holding 1,000 links to 1,000 files in ``sites-available`` (as a2ensite
makes them), one vhost each, padded to 50 lines: 50,000 lines of vhosts. mod_ssl is not
enabled: both tools enable it. Both are pointed at the tree and its running server the
same way (``APACHE_CONFDIR``, which apache2ctl, a2enmod and certwright all follow); Certbot
gets an ``--apache-ctl`` that is apache2ctl on that tree.
"""

from __future__ import annotations

import errno
import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.measure import BenchError, Row, Samples, rows_for, run_once
from benchmarks.nginx_tree import served_certificate
from benchmarks.tools import Tool, ensure_certbot_installer
from tests.servers.apache import APACHE_BINARY, ApacheServer, debian_tree
from tests.servers.ports import free_port

if TYPE_CHECKING:
    from benchmarks.run import Bench

CopyStore = Callable[[Path, Path], Path]
Alternate = Callable[["Bench", int, Callable[[Tool, int], Samples]], dict[str, Samples]]

APACHE_SITES = 1000
APACHE_HTTPS_PORT = 443
"""Certbot's Apache plugin makes its vhost on 443 whatever --https-port says: both tools
install on 443, so the section runs where that port is free (``make bench-apache`` runs
it in a private network namespace)."""
APACHE_TARGET = "site-0500.example.org"
LINES_PER_SITE = 50
SITE = """\
<VirtualHost *:{http_port}>
    ServerName {name}
    ServerAlias www.{name}
    DocumentRoot {www}
    ErrorLog ${{APACHE_LOG_DIR}}/error.log
{padding}</VirtualHost>
"""


def apache_site_name(index: int) -> str:
    return f"site-{index:04d}.example.org"


def write_apache_tree(root: Path, http_port: int, sites: int = APACHE_SITES) -> int:
    """A new Debian-shaped tree at ``root`` with ``sites`` vhost files; its line count."""
    debian_tree(root, sites={}, ports=f"Listen {http_port}\n")
    www = root.parent / "www"
    www.mkdir(exist_ok=True)
    fixed = SITE.count("\n")
    padding = "".join(f"    # note {j}: kept as written\n    SetEnv NOTE_{j} v\n"
                      for j in range((LINES_PER_SITE - fixed) // 2))
    lines = 0
    for index in range(1, sites + 1):
        name = apache_site_name(index)
        text = SITE.format(http_port=http_port, name=name, www=www, padding=padding)
        (root / "sites-available" / f"{name}.conf").write_text(text)
        (root / "sites-enabled" / f"{name}.conf").symlink_to(
            f"../sites-available/{name}.conf")
        lines += text.count("\n")
    return lines


def tree_server(root: Path, work: Path) -> ApacheServer:
    """The tree's apache2 (not started), with ``envvars`` pointing at it."""
    server = ApacheServer(root, work)
    server.write_envvars()
    return server


def apache_ctl(root: Path, dest: Path) -> Path:
    """An apachectl for Certbot: Debian's apache2ctl on this tree."""
    dest.write_text(f'#!/bin/sh\nexport APACHE_CONFDIR="{root}"\n'
                    f'exec /usr/sbin/apache2ctl "$@"\n')
    dest.chmod(0o755)
    return dest


def require_apache() -> None:
    if shutil.which(APACHE_BINARY) is None and not Path(APACHE_BINARY).exists():
        raise BenchError(f"no {APACHE_BINARY}: apt-get install apache2")


def https_port_busy() -> str | None:
    """Why port 443 can't be used here (None: it is free)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", APACHE_HTTPS_PORT))
        except OSError as exc:
            why = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            return (f"port {APACHE_HTTPS_PORT} is {why}: Certbot's Apache plugin always "
                    "installs on it; run `make bench-apache` (a private network namespace)")
    return None


def section_apache_install(bench: Bench, *, copy_store: CopyStore, alternate: Alternate
                           ) -> list[Row]:
    """`install --apache --cert-name site-0500.example.org` into Debian's tree with 1,000
    name-based vhosts in 1,000 files (50,000 lines); each run on a freshly generated tree
    with its own running apache2 and its own copy of the store."""
    require_apache()
    busy = https_port_busy()
    if busy is not None:
        print(f"[apache-install] skipped: {busy}", file=sys.stderr, flush=True)
        return []
    certwright, certbot = bench.tools
    ensure_certbot_installer(certbot, "apache", bench.dirs(bench.base / "certbot-plugins"))
    store, expected = bench.one_lineage(certwright, "apache-lineage", APACHE_TARGET)

    def one_run(tool: Tool, label: str) -> Samples:
        work = bench.base / "apache-install" / f"{tool.name}-{label}"
        http_port, https_port = free_port(), APACHE_HTTPS_PORT
        tree = work / "apache2"
        write_apache_tree(tree, http_port)
        tool_store = copy_store(store, work / "store")
        env = dict(bench.env, APACHE_CONFDIR=str(tree))
        extra = ["--apache-ctl", str(apache_ctl(tree, work / "apachectl"))] \
            if tool is certbot else ["--http-01-port", str(http_port)]
        argv = tool.argv("install", "--apache", "--cert-name", APACHE_TARGET,
                         "--apache-server-root", str(tree), *extra, "--no-redirect",
                         "--https-port", str(https_port), "-n", *bench.dirs(tool_store))
        samples = Samples()
        server = tree_server(tree, work / "run")
        server.start(port=http_port)
        try:
            samples.add(run_once(argv, env))
            if served_certificate(https_port, APACHE_TARGET) != expected:
                raise BenchError(f"{tool.name} install exited 0 but apache2 does not serve "
                                 f"the certificate of {APACHE_TARGET} on port {https_port} "
                                 f"(tree: {tree})")
        finally:
            server.stop()
        return samples

    for tool in bench.tools:
        one_run(tool, "warm")  # unmeasured: page cache, .pyc files
    results = alternate(bench, bench.reps(3, 3), lambda tool, i: one_run(tool, str(i)))
    return rows_for(f"install --apache, 1 name, {APACHE_SITES:,} vhosts in "
                    f"{APACHE_SITES:,} files", results, wall_target=0.2)
