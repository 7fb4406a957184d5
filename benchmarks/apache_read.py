"""Time reading a large Apache tree: 1,000 vhost files, about 50,000 lines.

    .venv/bin/python benchmarks/apache_read.py [--files 1000] [--runs 5]

The tree is Debian-shaped (``apache2.conf`` including ``sites-enabled/*.conf``, each a
link to ``sites-available``, as ``a2ensite`` makes them), with one name-based vhost per
file padded to about 50 lines. Each run reads the tree from scratch (a new augeas) and
chooses the vhost of one name; the median and the slowest run are printed, with the
time a fresh process takes to do the same (interpreter start and imports included).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from certwright.installers.apache.evaluate import read_config
from certwright.installers.apache.select import choose


def make_tree(root: Path, files: int) -> int:
    """Write the tree; return its number of lines."""
    (root / "sites-available").mkdir(parents=True)
    (root / "sites-enabled").mkdir()
    main = "ServerRoot {root}\nListen 80\nIncludeOptional sites-enabled/*.conf\n"
    (root / "apache2.conf").write_text(main.format(root=root))
    lines = 3
    padding = "".join(f"    # note {j}\n    Header set X-Note-{j} v\n" for j in range(21))
    for i in range(files):
        name = f"site{i:04d}.example.org"
        text = (
            f"<VirtualHost *:80>\n    ServerName {name}\n    ServerAlias www.{name}\n"
            f"    DocumentRoot /var/www/{name}\n    <Directory /var/www/{name}>\n"
            f"        Require all granted\n    </Directory>\n{padding}</VirtualHost>\n"
        )
        (root / "sites-available" / f"{name}.conf").write_text(text)
        (root / "sites-enabled" / f"{name}.conf").symlink_to(f"../sites-available/{name}.conf")
        lines += text.count("\n")
    return lines


def one_run(root: Path, name: str) -> float:
    start = time.perf_counter()
    config = read_config(str(root))
    chosen = choose(config, name)
    elapsed = time.perf_counter() - start
    assert chosen.by_name, name
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="certwright-apache-bench-"))
    try:
        root = base / "apache2"
        lines = make_tree(root, args.files)
        name = f"www.site{args.files // 2:04d}.example.org"
        times = [one_run(root, name) for _ in range(args.runs)]
        code = (
            "import sys; from benchmarks.apache_read import one_run; from pathlib import Path;"
            f" one_run(Path({str(root)!r}), {name!r})"
        )
        cold = []
        for _ in range(max(1, args.runs // 2)):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            cold.append(time.perf_counter() - start)
        print(f"tree: {args.files} files, {lines} lines")
        print(
            f"read + choose, in process: median {statistics.median(times):.2f} s, "
            f"max {max(times):.2f} s over {len(times)} runs"
        )
        print(f"fresh process: median {statistics.median(cold):.2f} s over {len(cold)} runs")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
