"""A throwaway apache2 run from a temp tree: env vars, start, graceful reload, stop, -S, -t.

Debian's ``apache2.conf`` needs the ``APACHE_*`` variables of ``envvars`` in the
environment; here they point into ``workdir`` (run, lock and log dirs), so nothing is
written under the system paths. The server runs in the foreground as a child process and
is stopped by its pid. Trees and work dirs must be world-traversable (workers run as
www-data): :func:`make_base` gives a 0755 base directory outside pytest's 0700 tmp dirs.

:func:`parse_vhost_dump` reads ``apache2 -S`` output — Apache's own vhost map, the ground
truth vhost selection is compared against.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from tests.servers.fsperm import open_up
from tests.servers.ports import wait_for_port, wait_until
from tests.servers.process import ManagedProcess

APACHE_BINARY = "/usr/sbin/apache2"
SYSTEM_TREE = Path("/etc/apache2")
TIMEOUT = 30.0


def make_base(prefix: str = "certwright-apache-") -> Path:
    """A fresh 0755 directory under the system temp dir (remove it with shutil.rmtree)."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    open_up(base, base)
    return base


def debian_tree(dest: Path, *, sites: dict[str, str], ports: str = "Listen 80\n") -> Path:
    """Debian's stock tree copied from /etc/apache2, with ``sites-enabled`` holding only
    ``sites`` (file name → text) and ``ports.conf`` replaced."""
    shutil.copytree(SYSTEM_TREE, dest, symlinks=True)
    enabled = dest / "sites-enabled"
    for entry in enabled.iterdir():
        entry.unlink()
    for name, text in sites.items():
        (enabled / name).write_text(text)
    (dest / "ports.conf").write_text(ports)
    return dest


class ApacheServer:
    """``ApacheServer(tree, workdir)``: apache2 with ``-d tree -f tree/main_file``."""

    def __init__(
        self,
        tree: Path,
        workdir: Path,
        *,
        main_file: str = "apache2.conf",
        binary: str = APACHE_BINARY,
        defines: tuple[str, ...] = (),
    ) -> None:
        self.tree = tree.resolve()
        self.workdir = workdir.resolve()
        self.main_file = main_file
        self.binary = shutil.which(binary) or binary
        self.defines = defines
        run, lock, log = (self.workdir / d for d in ("run", "lock", "log"))
        self.error_log = log / "error.log"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LANG": "C",
            "APACHE_RUN_USER": "www-data",
            "APACHE_RUN_GROUP": "www-data",
            "APACHE_RUN_DIR": str(run),
            "APACHE_PID_FILE": str(run / "apache2.pid"),
            "APACHE_LOCK_DIR": str(lock),
            "APACHE_LOG_DIR": str(log),
        }
        self._proc = ManagedProcess(
            self.argv("-DFOREGROUND"), log_path=self.workdir / "apache2.out", env=self.env
        )

    def write_envvars(self) -> Path:
        """Make the tree's ``envvars`` hold this server's ``APACHE_*`` values, so a tool
        that runs the binary on the tree (as ``apache2ctl`` does) reaches this server."""
        path = self.tree / "envvars"
        path.write_text("".join(f"export {key}={value}\n" for key, value in self.env.items()
                                if key.startswith("APACHE_")))
        return path

    def argv(self, *extra: str) -> list[str]:
        defines = [f"-D{d}" for d in self.defines]
        main = str(self.tree / self.main_file)
        return [self.binary, "-d", str(self.tree), "-f", main, *defines, *extra]

    def _dirs(self) -> None:
        for name in ("run", "lock", "log"):
            (self.workdir / name).mkdir(parents=True, exist_ok=True)
        shutil.chown(self.workdir / "lock", "www-data", "www-data")

    def run(self, *extra: str) -> subprocess.CompletedProcess[str]:
        self._dirs()
        return subprocess.run(
            self.argv(*extra), env=self.env, capture_output=True, text=True, timeout=TIMEOUT
        )

    def config_test(self) -> subprocess.CompletedProcess[str]:
        return self.run("-t")

    def dump_vhosts(self) -> str:
        """``apache2 -S``; raises with Apache's message when the config doesn't load."""
        done = self.run("-S")
        if done.returncode != 0:
            raise AssertionError(f"apache2 -S failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def start(self, host: str = "127.0.0.1", port: int = 80, *, timeout: float = TIMEOUT) -> Self:
        """Start in the foreground; return once ``host:port`` answers and the error log
        (``ErrorLog ${APACHE_LOG_DIR}/error.log`` in Debian's tree) says it runs. If it
        doesn't come up, it is stopped before the error is raised: nothing is left running."""
        self._dirs()
        proc = self._proc.start()
        try:
            wait_for_port(
                host, port, timeout=timeout, proc=proc, log=self.error_log, what="apache2"
            )
            # the port is bound before the signal handlers are in place: a SIGUSR1 sent
            # now would kill it; ready means the first generation says it is running
            wait_until(
                lambda: self.generations() >= 1,
                what="apache2 start",
                timeout=timeout,
                proc=proc,
                log=self.error_log,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def generations(self) -> int:
        """How many times the server has come up (start + each graceful reload)."""
        if not self.error_log.exists():
            return 0
        return self.error_log.read_text(errors="replace").count("resuming normal operations")

    def graceful(self) -> None:
        """Graceful reload (SIGUSR1 to the parent), waiting until the new generation runs."""
        if self.pid is None or not self._proc.running:
            raise RuntimeError("apache2 is not running")
        before = self.generations()
        os.kill(self.pid, signal.SIGUSR1)
        wait_until(
            lambda: self.generations() > before,
            what="apache2 graceful reload",
            timeout=TIMEOUT,
            proc=self._proc.proc,
            log=self.error_log,
        )

    def stop(self) -> None:
        self._proc.stop(timeout=10.0)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class DumpedVhost:
    name: str
    file: str
    line: int


_GROUP = re.compile(r"^(\S+)\s+is a NameVirtualHost$")
_SINGLE = re.compile(r"^(\S+)\s+(\S+) \((.+):(\d+)\)$")
_MEMBER = re.compile(r"^\s+port \S+ namevhost (\S+) \((.+):(\d+)\)$")


def _address(text: str) -> str:
    return text.replace("_default_", "*")


def parse_vhost_dump(text: str) -> dict[str, list[DumpedVhost]]:
    """``apache2 -S`` → address → vhosts in Apache's order (the first is the default)."""
    groups: dict[str, list[DumpedVhost]] = {}
    current: list[DumpedVhost] | None = None
    for line in text.splitlines():
        if line.startswith("VirtualHost configuration:"):
            continue
        if not line.startswith(" "):
            current = None
            if m := _GROUP.match(line):
                current = groups.setdefault(_address(m.group(1)), [])
            elif m := _SINGLE.match(line):
                vhost = DumpedVhost(m.group(2), m.group(3), int(m.group(4)))
                groups.setdefault(_address(m.group(1)), []).append(vhost)
            continue
        if current is not None and (m := _MEMBER.match(line)):
            current.append(DumpedVhost(m.group(1), m.group(2), int(m.group(3))))
    return groups


RHEL_MODULES = ("authz_core", "mime", "dir", "alias", "mpm_event")
DEBIAN_MODULE_DIR = "/usr/lib/apache2/modules"


def rhel_tree(tree: Path, base: Path, http: int, *, pid_file: str = "logs/httpd.pid") -> Path:
    """A RHEL-shaped tree (``conf/httpd.conf``, ``conf.modules.d``, ``conf.d``) that
    Debian's apache2 runs: logs and run files under ``base/work`` (as :class:`ApacheServer`
    expects), the few modules it needs loaded from Debian's module directory."""
    for sub in ("conf", "conf.d", "conf.modules.d", "logs"):
        (tree / sub).mkdir(parents=True, exist_ok=True)
    (tree / "conf" / "httpd.conf").write_text(
        f'ServerRoot "{tree}"\nListen {http}\nInclude conf.modules.d/*.conf\n'
        "User www-data\nGroup www-data\nServerName main.example\n"
        f'PidFile {pid_file}\nErrorLog "{base}/work/log/error.log"\n'
        f'DefaultRuntimeDir "{base}/work/run"\nTypesConfig /etc/mime.types\n'
        "IncludeOptional conf.d/*.conf\n")
    (tree / "conf.modules.d" / "00-base.conf").write_text("".join(
        f"LoadModule {m}_module {DEBIAN_MODULE_DIR}/mod_{m}.so\n" for m in RHEL_MODULES))
    return tree
