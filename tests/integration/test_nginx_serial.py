"""§2: renewals through the nginx authenticator take turns per nginx (its configuration),
not per plugin name: two nginx trees renew at the same time, two lineages of one tree
still take turns (each challenge edits and reloads that tree's configuration).

The trees' reload command (``--nginx-reload-cmd``, stored per lineage) goes through a
small script that, during ``renew``, notes when a reload of one tree is in progress
while the other tree's is (``met``), and when two reloads of the same tree overlap
(``clash``)."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.integration.conftest import Cli
from tests.servers.nginx_tree import NGINX, NginxTree
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration

SITE = """\
server {{
    listen ADDRESS:{http};
    server_name NAMES;
    root {www};
}}
"""

RELOAD = """\
conf=$1; tag=$2; dir=$3
if [ -n "$SERIAL_WATCH" ]; then
    mkdir "$dir/inflight-$tag" 2>/dev/null || echo "$tag" >> "$dir/clash"
    i=0
    while [ $i -lt 30 ]; do
        for f in "$dir"/inflight-*; do
            if [ "$f" != "$dir/inflight-$tag" ] && [ -e "$f" ]; then i=met; fi
        done
        [ $i = met ] && { echo "$tag" >> "$dir/met"; break; }
        sleep 0.1; i=$((i+1))
    done
    sleep 0.3
    rmdir "$dir/inflight-$tag" 2>/dev/null
fi
exec NGINX -c "$conf" -s reload
"""


@pytest.fixture
def trees(pebble: Pebble, tmp_path: Path) -> Iterator[list[NginxTree]]:
    require_binary(NGINX)
    made: list[NginxTree] = []
    roots = []
    try:
        for address, names in (("127.0.0.1", "a.serial.example.org c.serial.example.org"),
                               ("127.0.0.2", "b.serial.example.org")):
            root = Path(tempfile.mkdtemp(prefix="certwright-nginx-"))
            root.chmod(0o755)
            roots.append(root)
            tree = NginxTree(root, http_port=pebble.http_port)
            tree.site("serial", SITE.replace("ADDRESS", address).replace("NAMES", names))
            made.append(tree.start())
        pebble.add_a("b.serial.example.org", ["127.0.0.2"])
        yield made
    finally:
        for tree in made:
            tree.stop()
        for root in roots:
            subprocess.run(["rm", "-rf", str(root)], check=False)


def test_two_nginx_trees_renew_at_once_one_tree_takes_turns(
        cli: Cli, trees: list[NginxTree], tmp_path: Path) -> None:
    watch = tmp_path / "watch"
    watch.mkdir()
    script = tmp_path / "reload.sh"
    script.write_text(RELOAD.replace("NGINX", NGINX))
    lineages = {"a.serial.example.org": (trees[0], "A"), "c.serial.example.org": (trees[0], "A"),
                "b.serial.example.org": (trees[1], "B")}
    for name, (tree, tag) in lineages.items():
        cli("certonly", "--nginx", *tree.args(), "--nginx-reload-cmd",
            f"/bin/sh {script} {tree.main} {tag} {watch}", "-d", name)
    cli.extra_env["SERIAL_WATCH"] = "1"
    cli("renew", "--force-renewal", "--jobs", "3", "--no-random-sleep-on-renew",
        timeout=180)
    met = (watch / "met").read_text().split() if (watch / "met").exists() else []
    assert set(met) == {"A", "B"}, "the two trees' challenges ran at the same time"
    assert not (watch / "clash").exists(), \
        "two renewals edited and reloaded one nginx at the same time"
