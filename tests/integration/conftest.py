"""Fixtures for end-to-end runs of the certwright CLI against the real Pebble."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from tests.conftest import require_binary
from tests.servers.nginx import NGINX_BINARY, Nginx
from tests.servers.nginx_tree import NginxTree
from tests.servers.pebble import Pebble
from tests.servers.tree_server import TreeServer, new_root

S = TypeVar("S", bound=TreeServer)
CERTWRIGHT = str(Path(sys.executable).parent / "certwright")
CLOCKED_CLI = Path(__file__).resolve().parents[1] / "servers" / "clocked_cli.py"


@dataclass
class Cli:
    """Runs ``certwright`` against one Pebble with its own config/work/logs dirs."""

    base: Path
    ca: Pebble
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def config_dir(self) -> Path:
        return self.base / "config"

    def dirs(self) -> list[str]:
        return ["--config-dir", str(self.config_dir), "--work-dir", str(self.base / "work"),
                "--logs-dir", str(self.base / "logs")]

    def __call__(self, *args: str, check: bool = True, account: bool = True,
                 timeout: float = 120, max_file_size: int | None = None,
                 cwd: Path | None = None, clock_offset: float | None = None,
                 ) -> subprocess.CompletedProcess[str]:
        """``max_file_size``: RLIMIT_FSIZE for the run, so writing a bigger file fails
        for real (EFBIG; Python ignores SIGXFSZ), the way a full disk fails a write.
        ``clock_offset``: seconds certwright's clock runs ahead for this run (its "is it
        due" decisions; the CA keeps real time), instead of sleeping."""
        command = [CERTWRIGHT] if clock_offset is None else \
            [sys.executable, str(CLOCKED_CLI), str(clock_offset)]
        argv = [*command, *args, *self.dirs(), "-n"]
        if "--server" not in args:
            argv += ["--server", self.ca.directory_url]
        if account:
            argv += ["--agree-tos", "-m", "admin@example.org"]
        env = self.ca.env(os.environ)
        env.update(self.extra_env)
        if max_file_size is not None:  # coverage could not write its data under the limit
            env.pop("COVERAGE_PROCESS_CONFIG", None)

        def limit() -> None:
            if max_file_size is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_size, max_file_size))

        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, preexec_fn=limit, cwd=cwd)
        if check and proc.returncode != 0:
            raise AssertionError(f"certwright {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def snapshot(self) -> dict[str, bytes | str]:
        """Every file and link under the config dir, to check a failure changed nothing."""
        out: dict[str, bytes | str] = {}
        if not self.config_dir.exists():
            return out
        for path in sorted(self.config_dir.rglob("*")):
            rel = str(path.relative_to(self.config_dir))
            if rel.endswith(".lock"):
                continue
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                out[rel] = path.read_bytes()
        return out


@pytest.fixture
def cli(pebble: Pebble, tmp_path: Path) -> Cli:
    return Cli(tmp_path, pebble)


@pytest.fixture
def web(pebble: Pebble, www_root: Path, tmp_path: Path) -> Iterator[Nginx]:
    """Real nginx serving ``www_root`` on the port where Pebble validates http-01."""
    require_binary(NGINX_BINARY)
    with Nginx(tmp_path / "nginx", www_root, http_port=pebble.http_port) as server:
        yield server


def standalone(ca: Pebble, *more: str) -> list[str]:
    """The standalone authenticator on the loopback port ``ca`` validates http-01 on."""
    return ["--standalone", "--http-01-port", str(ca.http_port), "--http-01-address",
            "127.0.0.1", *more]


def live_version(cli: Cli, name: str) -> int:
    """N of the ``archive/<name>/certN.pem`` that ``live/<name>/cert.pem`` points at."""
    target = os.readlink(cli.config_dir / "live" / name / "cert.pem")
    return int(target.rsplit("cert", 1)[1].removesuffix(".pem"))


def live_serial(cli: Cli, name: str) -> int:
    """The serial number of the certificate ``live/<name>/`` serves."""
    from cryptography import x509

    pem = (cli.config_dir / "live" / name / "cert.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).serial_number


@contextlib.contextmanager
def tree_server(make: Callable[[Path], S], binary: str, prefix: str) -> Iterator[S]:
    """``make(root)``: a server over a fresh world-traversable root (``new_root``), when
    its ``binary`` is installed; stopped and its tree removed afterwards."""
    require_binary(binary)
    root = new_root(prefix)
    server = make(root)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def nginx_tree(pebble: Pebble,
               prefix: str = "certwright-nginx-") -> contextlib.AbstractContextManager[NginxTree]:
    """An nginx tree (not started) whose http port is the one Pebble validates on."""
    return tree_server(lambda root: NginxTree(root, http_port=pebble.http_port),
                       NGINX_BINARY, prefix)
