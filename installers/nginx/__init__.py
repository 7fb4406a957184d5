"""nginx: install certificates into server blocks, and answer http-01 through nginx.

Options (shared by the installer and the authenticator; Certbot's names where they exist):

``--nginx-server-root DIR`` (default ``/etc/nginx``)
    nginx's configuration directory; certwright keeps its own files under
    ``DIR/certwright/`` (TLS options, server blocks it had to create, http-01 answers).
``--nginx-conf FILE`` (default ``DIR/nginx.conf``)
    The main configuration file, when it is not ``nginx.conf`` in the server root.
``--nginx-ctl CMD`` (default ``nginx``)
    The nginx binary: ``CMD -c FILE -t`` tests the configuration.
``--nginx-reload-cmd CMD``
    How to reload (split like a shell would, run without one); default
    ``CMD -c FILE -s reload``.

The modules: :mod:`.tree` reads the configuration (the only user of crossplane),
:mod:`.select` picks server blocks as nginx does, :mod:`.plan` turns requests into
``ChangePlan`` s on :mod:`.planner` (:mod:`.enhance` for enhancements, :mod:`.shared` for
shared includes, :mod:`.keytypes` for the key types a block serves), :mod:`.http01` plans
temporary http-01 answers (served and rolled back by
:mod:`certwright.core.challenge_session`). Every command runs through :func:`run_command`
(``NginxInstaller.runner``), so tests can see each argv.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

from certwright.core import runner
from certwright.core.challenge_session import ServerHttp01Authenticator
from certwright.core.errors import PluginError
from certwright.core.http01 import http01_port
from certwright.core.runner import Completed
from certwright.core.serverkit import add_options, check_command, require_tool, text_option
from certwright.core.settings import Settings
from certwright.installers.nginx import keytypes, process
from certwright.installers.nginx.enhance import plan_enhance
from certwright.installers.nginx.http01 import http01_probes, plan_http01
from certwright.installers.nginx.plan import ENHANCEMENTS, plan_deploy, plan_forget
from certwright.installers.nginx.targets import Layout, deploy_endpoints
from certwright.installers.nginx.tree import NginxTree, ParseCache, load_tree

if TYPE_CHECKING:
    from certwright.core.http01 import Probe
    from certwright.core.interfaces import (
        AddArgument,
        ChallengeTask,
        ChangePlan,
        DeployRequest,
        Endpoint,
        EnhanceRequest,
    )

__all__ = ["NginxAuthenticator", "NginxInstaller", "Runner", "run_command"]

log = logging.getLogger(__name__)

DEFAULT_SERVER_ROOT = "/etc/nginx"
DEFAULT_CTL = "nginx"
COMMAND_TIMEOUT = 60.0

Runner = Callable[[Sequence[str]], Completed]


def run_command(argv: Sequence[str]) -> Completed:
    """Run ``argv`` (no shell) through the core's runner: output captured, and killed with
    every process it started after ``COMMAND_TIMEOUT`` seconds (PluginError)."""
    return runner.run(argv, timeout=COMMAND_TIMEOUT, what="nginx command")


def add_nginx_options(add: AddArgument) -> None:
    """Add the nginx options once, whichever of the two plugins asks first."""
    options: list[tuple[str, dict[str, object]]] = [
        ("--nginx-server-root", {"default": DEFAULT_SERVER_ROOT, "metavar": "DIR",
                                 "help": "nginx configuration directory (default: %(default)s)"}),
        ("--nginx-conf", {"default": None, "metavar": "FILE",
                          "help": "main configuration file (default: nginx.conf in the "
                                  "server root)"}),
        ("--nginx-ctl", {"default": DEFAULT_CTL, "metavar": "CMD",
                         "help": "nginx binary used to test and reload (default: %(default)s)"}),
        ("--nginx-reload-cmd", {"default": None, "metavar": "CMD",
                                "help": "command that reloads nginx (default: "
                                        "NGINX_CTL -c CONF -s reload)"}),
    ]
    add_options(add, options)


class _NginxBase:
    """What the installer and the authenticator share: options, the tree, commands."""

    # Certbot's options with no meaning here: {flag: (takes a value, one-line notice)}
    obsolete_options: ClassVar[Mapping[str, tuple[bool, str]]] = {
        "--nginx-sleep-seconds": (True, "--nginx-sleep-seconds has no effect: certwright "
                                  "checks that nginx serves the new certificate instead "
                                  "of sleeping after a reload"),
    }

    def __init__(self, config: Settings) -> None:
        self.config = config
        self.runner: Runner = run_command
        self.proc_root = "/proc"
        self.reload_timeout = process.RELOAD_TIMEOUT
        self.server_root = os.path.abspath(
            text_option(config, "nginx_server_root", DEFAULT_SERVER_ROOT))
        self.main_conf = os.path.abspath(text_option(config, "nginx_conf", os.path.join(
            self.server_root, "nginx.conf")))
        self.ctl = text_option(config, "nginx_ctl", DEFAULT_CTL)
        self.reload_cmd = text_option(config, "nginx_reload_cmd")
        self.layout = Layout(self.server_root)
        self._parses: ParseCache = {}  # kept between loads: see load_tree

    @classmethod
    def add_arguments(cls, add: AddArgument) -> None:
        add_nginx_options(add)

    def prepare(self) -> None:
        require_tool(self.ctl, "nginx", "--nginx-ctl")
        self.tree()

    def tree(self) -> NginxTree:
        """The parsed config, re-read only when a file in it or a directory holding one
        changed (one command asks several times; parsing 1,000 files is the main cost)."""
        cached = getattr(self, "_tree", None)
        if cached is not None and cached[1] == _fingerprint(cached[0]):
            tree: NginxTree = cached[0]
            return tree
        tree = load_tree(self.main_conf, self._parses)
        self._tree = (tree, _fingerprint(tree))
        return tree

    def _run(self, argv: Sequence[str], what: str) -> None:
        check_command(self.runner(argv), "nginx", what)

    def config_test(self) -> None:
        self._run([self.ctl, "-c", self.main_conf, "-t"], "configuration test")

    def reload(self) -> None:
        """Reload, then wait (bounded) until nginx runs new workers with the new config:
        ``-s reload`` returns before that, and a check made at once sees the old one."""
        argv = shlex.split(self.reload_cmd) if self.reload_cmd else \
            [self.ctl, "-c", self.main_conf, "-s", "reload"]
        before = self._workers()
        try:
            self._run(argv, "reload")
        except PluginError:
            if before is not None or self.reload_cmd or not self._not_running():
                raise
            log.info("nginx is not running; starting it")
            self._run([self.ctl, "-c", self.main_conf], "start")
            return
        if before is not None and not process.wait_for_reload(
                before, self.proc_root, self.reload_timeout):
            raise PluginError(f"nginx started no new worker processes within "
                              f"{self.reload_timeout:.0f} s of the reload; see its error log")

    def _not_running(self) -> bool:
        """No live master behind the pid file (a missing or stale pid file)."""
        cached = getattr(self, "_tree", None)
        pid_file = (cached[0].pid if cached is not None else None) or process.DEFAULT_PID_FILE
        if not os.path.isabs(pid_file):
            return False  # relative to a prefix we do not know: let the reload decide
        try:
            with open(pid_file) as handle:
                os.kill(int(handle.read().strip()), 0)
        except (OSError, ValueError):
            return True
        return False

    def _workers(self) -> process.Workers | None:
        cached = getattr(self, "_tree", None)  # the pid file's path: any recent parse will do
        try:
            pid = cached[0].pid if cached is not None else self.tree().pid
        except PluginError:
            return None
        if pid is not None and not os.path.isabs(pid):
            return None  # relative to a prefix we do not know
        found = process.snapshot(pid or process.DEFAULT_PID_FILE, self.proc_root)
        return found if found is not None and found.pids else None

    def renewal_params(self) -> Mapping[str, object]:
        params: dict[str, object] = {"nginx_server_root": self.server_root,
                                     "nginx_ctl": self.ctl}
        if self.reload_cmd:
            params["nginx_reload_cmd"] = self.reload_cmd
        if getattr(self.config, "nginx_conf", None):
            params["nginx_conf"] = self.main_conf
        return params

    def plan_http01(self, tasks: Sequence[ChallengeTask]) -> ChangePlan:
        return plan_http01(self.tree(), tasks, self.layout, http01_port(self.config))


def _fingerprint(tree: NginxTree) -> tuple[tuple[str, int, int, int], ...]:
    paths = {tree.main} | {f.path for f in tree.files.values()}
    paths |= {os.path.dirname(p) for p in paths}
    paths |= {os.path.dirname(pattern) for pattern in tree.http_includes}
    marks = []
    for path in sorted(paths):
        try:
            st = os.stat(path)
            marks.append((path, st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            marks.append((path, 0, -1, 0))
    return tuple(marks)


class NginxInstaller(_NginxBase):
    """Installer + SupportsEnhancements + SupportsHttp01 + SupportsKeyTypes for nginx."""

    name: ClassVar[str] = "nginx"
    description: ClassVar[str] = "Nginx web server: certificates into server blocks"

    def discover_names(self) -> set[str]:
        """Names in ``server_name`` lines: no regexes, trailing wildcards or placeholders;
        ``.example.org`` gives ``example.org`` and ``*.example.org``."""
        names: set[str] = set()
        for block in self.tree().servers:
            for name in block.server_names:
                if not name or name == "_" or name[0] in "~$" or name.endswith(".*"):
                    continue
                if name.startswith("."):
                    names.update({name[1:], "*" + name})
                elif "*" not in name[1:]:
                    names.add(name)
        return names

    def references(self, prefix: str) -> list[str]:
        found: list[str] = []
        for path, config in self.tree().files.items():
            for number, line in enumerate(config.text.splitlines(), 1):
                if prefix in line and not line.lstrip().startswith("#"):
                    found.append(f"{path}:{number}")
        return found

    def plan_forget(self, cert_name: str, domains: Sequence[str]) -> ChangePlan:
        return plan_forget(self.tree(), cert_name, domains, self.layout)

    def plan_deploy(self, req: DeployRequest) -> ChangePlan:
        for path in (req.fullchain_path, req.key_path, req.cert_path, req.chain_path):
            if "$" in path:  # ssl_certificate takes variables: no quoting stops it
                raise PluginError(f"nginx would read the '$' in {path!r} as a variable; "
                                  "use a certificate name and paths without '$'")
        return plan_deploy(self.tree(), req, self.layout)

    def endpoints(self, req: DeployRequest) -> Sequence[Endpoint]:
        return deploy_endpoints(self.tree(), req, self.layout)

    def key_type_problem(self, req: DeployRequest, key_type: str) -> str | None:
        return keytypes.deploy_problem(self.tree(), req, self.layout, key_type)

    def supported_enhancements(self) -> frozenset[str]:
        return ENHANCEMENTS

    def plan_enhance(self, req: EnhanceRequest) -> ChangePlan:
        return plan_enhance(self.tree(), req, self.layout)


class NginxAuthenticator(ServerHttp01Authenticator, _NginxBase):
    """http-01 through the running nginx: one temporary config change for all tasks.

    The challenge session (apply as a temporary transaction in ``config.work_dir``,
    ``nginx -t``, reload, wait until nginx itself answers every token, always roll back)
    is the core's (:mod:`certwright.core.challenge_session`); this class gives the plan
    (:func:`.http01.plan_http01`) and where to ask (:func:`.http01.http01_probes`).
    """

    name: ClassVar[str] = "nginx"
    description: ClassVar[str] = "Answer http-01 through the running nginx"

    def serial_key(self) -> Hashable:
        """Renewals through one nginx (its main config file, symlinks resolved) take turns
        editing and reloading it; two nginx trees run at the same time."""
        return os.path.realpath(self.main_conf)

    def http01_probes(self, tasks: Sequence[ChallengeTask]) -> Sequence[Probe]:
        return http01_probes(self.tree(), tasks, self.http01_port())
