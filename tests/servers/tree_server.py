"""One base for a server run from its own temp config tree on loopback.

A subclass says how its server starts (a foreground ``command()``, or ``launch()`` for a
daemon), which ports it must open before it counts as started, how it reloads, which paths
under the tree are its scratch (pid, logs, spool: left out of snapshots), and the certwright
options that point at it (``args()``). The base does the rest the same way for every server:
writing templates (``{root}`` and the server's ``values()`` filled in), start and wait until
the ports accept connections (naming the log on failure), reload, stop (safe twice),
restart, a snapshot of the tree for byte-identical checks, and a copy of it.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from tests.servers.ports import wait_for_port
from tests.servers.process import ManagedProcess


def new_root(prefix: str) -> Path:
    """A fresh 0755 directory under the system temp dir: a server that drops privileges
    must traverse it (pytest's tmp_path is 0700)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root


class TreeServer:
    name: ClassVar[str] = "server"
    host: str = "127.0.0.1"
    scratch: tuple[str, ...] = ()
    """Paths under the tree (relative) the server itself writes; not part of snapshots."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._proc: ManagedProcess | None = None

    # -- what a subclass gives -------------------------------------------------------------
    def values(self) -> dict[str, object]:
        """Names templates may use besides ``{root}`` (ports, paths)."""
        return {}

    def command(self) -> list[str]:
        """The server in the foreground (for servers that ``launch`` as a child)."""
        raise NotImplementedError(f"{type(self).__name__} gives neither command() nor launch()")

    def ports(self) -> Sequence[int]:
        """Ports open once the server is up."""
        return ()

    @property
    def log(self) -> Path:
        """Where the server says why it did not start."""
        return self.root / "server.out"

    def args(self) -> list[str]:
        """certwright options that point its plugin at this tree."""
        return []

    def launch(self) -> None:
        """Start the server (default: ``command()`` as a child writing to ``server.out``)."""
        self._proc = ManagedProcess(self.command(), log_path=self.root / "server.out")
        self._proc.start()

    def halt(self) -> None:
        """Stop the server (default: the child process)."""
        if self._proc is not None:
            self._proc.stop()

    def reload(self) -> None:
        """Make the server reread its config (default: SIGHUP to the child)."""
        if self._proc is None or self._proc.proc is None:
            raise RuntimeError(f"{self.name} is not running")
        self._proc.proc.send_signal(signal.SIGHUP)

    # -- the same for every server ---------------------------------------------------------
    def template(self, rel: str, text: str, **values: object) -> Path:
        """Write ``text`` with ``{root}``, ``values()`` and ``values`` filled in."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(root=self.root, **{**self.values(), **values}))
        return path

    def start(self) -> Self:
        self.launch()
        proc = self._proc.proc if self._proc is not None else None
        for port in self.ports():
            wait_for_port(self.host, port, proc=proc, log=self.log,
                          what=f"{self.name} on {port}")
        return self

    def stop(self) -> None:
        self.halt()

    def restart(self) -> Self:
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.running

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _is_scratch(self, rel: Path) -> bool:
        return any(rel == Path(s) or Path(s) in rel.parents for s in self.scratch)

    def snapshot(self) -> dict[str, str]:
        """sha256 of every config file (not scratch), link targets and directories, to
        check that a rollback left the tree byte for byte as it was."""
        out = {}
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root)
            if self._is_scratch(rel):
                continue
            if path.is_dir() and not path.is_symlink():
                out[str(rel) + "/"] = "dir"  # a directory left behind counts too
                continue
            try:
                if path.is_symlink():
                    out[str(rel)] = "-> " + str(path.readlink())
                else:
                    out[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
            except FileNotFoundError:  # a temp file renamed away while we looked
                continue
        return out

    def copy_to(self, dest: Path) -> None:
        shutil.copytree(self.root, dest, symlinks=True)
