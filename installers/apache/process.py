"""Config test, graceful reload and start of Apache, through :mod:`certwright.core.runner`.

Without ``--apache-ctl`` the binary is run on the tree itself (``apache2 -d ROOT -f MAIN``)
with the environment ``apache2ctl`` would give it (Debian's ``envvars`` of that tree), so a
tree other than ``/etc/apache2`` never reaches the system paths. With ``--apache-ctl CMD``:
``CMD configtest``, ``CMD graceful``, ``CMD start``.

A graceful reload returns before the new generation runs: the parent re-reads the
configuration and replaces its children. The reload has taken effect once a child started
after the signal runs (:func:`wait_for_generation`, bounded, :mod:`certwright.core.poll`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from certwright.core import runner
from certwright.core.errors import PluginError
from certwright.core.poll import poll_until
from certwright.core.runner import Completed
from certwright.core.serverkit import check_command, children, read_pid, wait_for, watchable
from certwright.installers.apache.layouts import Layout, read_envvars

COMMAND_TIMEOUT = 60.0
RELOAD_TIMEOUT = 15.0

Runner = Callable[[Sequence[str], Mapping[str, str]], Completed]


def run_command(argv: Sequence[str], env: Mapping[str, str]) -> Completed:
    return runner.run(argv, timeout=COMMAND_TIMEOUT, env=env, what="apache command")


@dataclass
class ApacheControl:
    server_root: str
    layout: Layout
    binary: str
    ctl: str | None = None
    runner: Runner = run_command
    proc_root: str = "/proc"
    reload_timeout: float = RELOAD_TIMEOUT

    @property
    def main_file(self) -> str:
        return os.path.join(self.server_root, self.layout.main_file)

    def env(self) -> dict[str, str]:
        base = dict(os.environ)
        if self.layout.envvars:
            path = os.path.join(self.server_root, self.layout.envvars)
            apache = {k: v for k, v in base.items() if k.startswith("APACHE_")}
            base.update(read_envvars(path, apache))
        if self.ctl is None:
            base.setdefault("APACHE_CONFDIR", self.server_root)
        return base

    def argv(self, action: str) -> list[str]:
        if self.ctl is not None:
            return [self.ctl, {"test": "configtest"}.get(action, action)]
        tail = {"test": ["-t"], "graceful": ["-k", "graceful"], "start": ["-k", "start"]}
        return [self.binary, "-d", self.server_root, "-f", self.main_file, *tail[action]]

    def _run(self, action: str, what: str) -> Completed:
        done = self.runner(self.argv(action), self.env())
        check_command(done, "Apache", what)
        return done

    def config_test(self) -> None:
        self._run("test", "configuration test")

    def pid_file(self) -> str | None:
        env = self.env()
        path = env.get("APACHE_PID_FILE")
        if path:
            return path
        for candidate in ("/run/httpd/httpd.pid", "/var/run/httpd/httpd.pid",
                          os.path.join(self.server_root, "logs", "httpd.pid")):
            if os.path.exists(candidate):
                return candidate
        return None

    def parent(self) -> int | None:
        """The running parent process, or None (no pid file, or a stale one)."""
        path = self.pid_file()
        if path is None:
            return None
        pid = read_pid(path)
        if pid is None:
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid

    def reload(self) -> None:
        """Graceful reload and wait until a new generation runs; start Apache when it is
        not running."""
        parent = self.parent()
        if parent is None:
            self._run("start", "start")
            if poll_until(lambda: self.parent(), timeout=self.reload_timeout) is None:
                raise PluginError(f"Apache did not come up within {self.reload_timeout:.0f} s "
                                  "of its start; see its error log")
            return
        before = frozenset(children(parent, self.proc_root))
        self._run("graceful", "graceful reload")
        if not wait_for_generation(parent, before, self.proc_root, self.reload_timeout):
            raise PluginError(f"Apache started no new child processes within "
                              f"{self.reload_timeout:.0f} s of the graceful reload; see its "
                              "error log")


def wait_for_generation(parent: int, before: frozenset[int], proc_root: str = "/proc",
                        timeout: float = RELOAD_TIMEOUT) -> bool:
    """Poll (bounded backoff) until a child not there before runs; False on timeout, True
    at once when ``/proc`` cannot be watched."""
    if not watchable(parent, proc_root):
        return True
    return wait_for(lambda: bool(set(children(parent, proc_root)) - before), timeout)
