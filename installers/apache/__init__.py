"""Apache httpd: install certificates into virtual hosts.

Reading (:mod:`.tree` through augeas, :mod:`.evaluate`, :mod:`.reading`) and choosing the
virtual hosts that answer a name as Apache does (:mod:`.select`); the deploy planner
(:mod:`.plan`, :mod:`.vhosttext`) turns a request into a ``ChangePlan``; :mod:`.process`
tests the configuration, reloads gracefully and waits for the new generation.

Options (Certbot's names and meaning):

``--apache-server-root DIR``  default ``/etc/apache2``, or ``/etc/httpd`` where that exists.
``--apache-vhost-root DIR``  where new SSL vhost files go (default: beside the http one;
    ``sites-available`` on Debian's layout, enabled by a symlink in ``sites-enabled``).
``--apache-ctl CMD``  ``CMD configtest`` / ``CMD graceful`` / ``CMD start`` instead of
    running the binary on the tree.
``--apache-bin BIN``  the httpd binary (default per layout: ``apache2`` / ``httpd``).
``--apache-le-vhost-ext EXT``  suffix of new SSL vhost files (default ``-le-ssl.conf``).
``--apache-logs-root DIR``  Apache's log directory (kept for compatibility; no log is
    written by certwright).
``--apache-enmod``/``--apache-dismod``  accepted for compatibility: certwright enables
    modules itself as symlinks or ``LoadModule`` lines inside its transaction, so they are
    undone on rollback and never touch the system tree when another tree is given.
``--apache-handle-modules``/``--apache-handle-sites``  (true/false) whether certwright may
    enable modules / sites.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

from certwright.core.challenge_session import ServerHttp01Authenticator
from certwright.core.errors import PluginError
from certwright.core.serverkit import add_options, on_off
from certwright.core.settings import Settings
from certwright.installers.apache import process
from certwright.installers.apache.binary import DEFAULT_BINARY, BinaryInfo, probe_binary
from certwright.installers.apache.enhance import ENHANCEMENTS, plan_enhance
from certwright.installers.apache.http01 import check_location, http01_probes, plan_http01
from certwright.installers.apache.layouts import Layout, detect_layout
from certwright.installers.apache.options import ApacheOptions
from certwright.installers.apache.plan import DeployPlan, plan_deploy
from certwright.installers.apache.reading import ApacheReading, read_apache, woken_by
from certwright.installers.apache.select import match_vhost

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

__all__ = ["ApacheAuthenticator", "ApacheInstaller"]

DEFAULT_ROOTS = ("/etc/apache2", "/etc/httpd")


def default_server_root() -> str:
    for root in DEFAULT_ROOTS:
        if os.path.isdir(root):
            return root
    return DEFAULT_ROOTS[0]


def add_apache_options(add: AddArgument) -> None:
    options: list[tuple[str, dict[str, object]]] = [
        ("--apache-server-root", {"default": None, "metavar": "DIR",
                                  "help": "Apache configuration directory (default: "
                                          "/etc/apache2, or /etc/httpd where that exists)"}),
        ("--apache-vhost-root", {"default": None, "metavar": "DIR",
                                 "help": "where new SSL vhost files are written"}),
        ("--apache-ctl", {"default": None, "metavar": "CMD",
                          "help": "apachectl-style command: CMD configtest / graceful / start"}),
        ("--apache-bin", {"default": None, "metavar": "BIN",
                          "help": "the Apache binary (default: apache2 or httpd)"}),
        ("--apache-le-vhost-ext", {"default": "-le-ssl.conf", "metavar": "EXT",
                                   "help": "suffix of new SSL vhost files (default: "
                                           "%(default)s)"}),
        ("--apache-logs-root", {"default": None, "metavar": "DIR",
                                "help": "Apache's log directory"}),
        ("--apache-enmod", {"default": None, "metavar": "CMD",
                            "help": "accepted for compatibility; modules are enabled by "
                                    "certwright's own reversible changes"}),
        ("--apache-dismod", {"default": None, "metavar": "CMD",
                             "help": "accepted for compatibility (see --apache-enmod)"}),
        ("--apache-handle-modules", {"default": None, "metavar": "BOOL",
                                     "help": "let certwright enable modules (default: true)"}),
        ("--apache-handle-sites", {"default": None, "metavar": "BOOL",
                                   "help": "let certwright enable sites (default: true)"}),
        ("--apache-challenge-location", {"default": None, "metavar": "DIR",
                                         "help": "where -a apache puts http-01 answers "
                                                 "(default: SERVER_ROOT/certwright/http01)"}),
    ]
    add_options(add, options)


class _ApacheBase:
    """What the installer and the authenticator share: options, the tree, commands."""

    name: ClassVar[str] = "apache"

    def __init__(self, config: Settings) -> None:
        self.config = config
        root = getattr(config, "apache_server_root", None) or default_server_root()
        self.server_root = os.path.abspath(str(root))
        self.vhost_root = getattr(config, "apache_vhost_root", None) or None
        self.ctl: str | None = getattr(config, "apache_ctl", None) or None
        self.bin: str | None = getattr(config, "apache_bin", None) or None
        self.le_vhost_ext = str(getattr(config, "apache_le_vhost_ext", None) or "-le-ssl.conf")
        self.logs_root = getattr(config, "apache_logs_root", None) or None
        self.handle_modules = on_off(config, "apache_handle_modules",
                                     "--apache-handle-modules", default=True)
        self.handle_sites = on_off(config, "apache_handle_sites", "--apache-handle-sites",
                                   default=True)
        challenges = getattr(config, "apache_challenge_location", None)
        self.challenge_location = os.path.abspath(str(challenges)) if challenges else \
            os.path.join(self.server_root, "certwright", "http01")
        self._layout: Layout | None = None
        self._binary: BinaryInfo | None = None
        self._reading: ApacheReading | None = None
        self._plans: dict[DeployRequest, DeployPlan] = {}
        self.control_runner: process.Runner = process.run_command

    @classmethod
    def add_arguments(cls, add: AddArgument) -> None:
        add_apache_options(add)

    # -- what the tree and the binary are ---------------------------------------------
    @property
    def layout(self) -> Layout:
        if self._layout is None:
            self._layout = detect_layout(self.server_root)
        return self._layout

    def binary_path(self) -> str:
        name = self.bin or self.layout.binary
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
        if found is None:
            option = "--apache-bin" if self.bin else "--apache-bin (not given)"
            raise PluginError(f"{option}: Apache binary {name!r} is not found")
        return found

    def control(self) -> process.ApacheControl:
        return process.ApacheControl(self.server_root, self.layout, self.binary_path(),
                                     self.ctl, self.control_runner)

    def reading(self) -> ApacheReading:
        if self._reading is None:
            if self._binary is None:
                try:
                    self._binary = probe_binary(self.binary_path())
                except PluginError:
                    self._binary = DEFAULT_BINARY
            env = self.control().env()
            self._reading = read_apache(self.server_root, binary=self._binary, env=env,
                                        layout=self.layout)
        return self._reading

    def options(self) -> ApacheOptions:
        return ApacheOptions(self.server_root, self.layout, self.vhost_root,
                             self.le_vhost_ext, self.handle_modules, self.handle_sites)

    # -- the Installer contract -------------------------------------------------------
    def prepare(self) -> None:
        self.layout  # noqa: B018 - a clear error for a root that is not an Apache tree
        if self.ctl is not None and shutil.which(self.ctl.split()[0]) is None:
            raise PluginError(f"--apache-ctl {self.ctl}: not found")
        self.binary_path()
        self.reading()

    def config_test(self) -> None:
        self._reading = None  # the tree changes around a test: read it again next time
        self._plans.clear()
        self.control().config_test()

    def reload(self) -> None:
        self.control().reload()

    def renewal_params(self) -> Mapping[str, object]:
        params: dict[str, object] = {"apache_server_root": self.server_root,
                                     "apache_le_vhost_ext": self.le_vhost_ext,
                                     "apache_handle_modules": self.handle_modules,
                                     "apache_handle_sites": self.handle_sites}
        for key, value in (("apache_vhost_root", self.vhost_root), ("apache_ctl", self.ctl),
                           ("apache_bin", self.bin), ("apache_logs_root", self.logs_root),
                           ("apache_challenge_location",
                            getattr(self.config, "apache_challenge_location", None))):
            if value:
                params[key] = value
        return params


class ApacheInstaller(_ApacheBase):
    """Installer + SupportsEnhancements for Apache httpd 2.4."""

    description: ClassVar[str] = "Apache Web Server: certificates into virtual hosts"

    def discover_names(self) -> set[str]:
        names: set[str] = set()
        for vhost in self.reading().config.vhosts:
            for name in (vhost.server_name, *vhost.exact_aliases):
                if name and "*" not in name and "?" not in name and "." in name:
                    names.add(name.lower())
        return names

    def _deploy(self, req: DeployRequest) -> DeployPlan:
        found = self._plans.get(req)
        if found is None:
            found = plan_deploy(self.reading(), req, self.options())
            self._plans[req] = found
        return found

    def plan_deploy(self, req: DeployRequest) -> ChangePlan:
        for path in (req.fullchain_path, req.key_path):
            if '"' in path or "\n" in path:
                raise PluginError(f"Apache can't read the path {path!r} in a directive")
        return self._deploy(req).plan

    def endpoints(self, req: DeployRequest) -> Sequence[Endpoint]:
        return self._deploy(req).endpoints

    def supported_enhancements(self) -> frozenset[str]:
        return ENHANCEMENTS

    def plan_enhance(self, req: EnhanceRequest) -> ChangePlan:
        self._reading = None  # planned on the files a deploy just changed
        config = self.reading().config
        plan = plan_enhance(config, req, self.options())
        wanted = {"rewrite_module"} if "redirect" in req.enhancements else set()
        if req.enhancements & {"hsts", "uir"}:
            wanted.add("headers_module")
        loading = sorted(wanted - config.modules)
        if plan.empty or not loading:
            return plan
        woken = woken_by(self.server_root, loading, config, binary=self._binary or
                         DEFAULT_BINARY, env=self.control().env(), layout=self.layout)
        if not woken:
            return plan
        more = f" (and {len(woken) - 5} more)" if len(woken) > 5 else ""
        note = (f"enabling {', '.join(loading)} activates what was dormant inside "
                f"<IfModule>: {'; '.join(woken[:5])}{more}")
        return dataclasses.replace(plan, notes=(*plan.notes, note))

    def vhosts_for(self, name: str) -> list[str]:
        """Where the active vhosts that carry ``name`` are (for messages and tests)."""
        return [v.where for v in self.reading().config.vhosts if match_vhost(v, name)]


class ApacheAuthenticator(ServerHttp01Authenticator, _ApacheBase):
    """http-01 through the running Apache: one temporary change for all tasks (the
    answers as files, a rewrite and an ``Alias`` to them in each vhost answering the name;
    :mod:`.http01`), applied, config-tested, reloaded, waited for and always rolled back
    by the core's challenge session."""

    description: ClassVar[str] = "Answer http-01 through the running Apache"

    def serial_key(self) -> Hashable:
        """Renewals through one Apache tree take turns editing and reloading it."""
        return os.path.realpath(self.server_root)

    def prepare(self) -> None:
        check_location(self.challenge_location)  # before an order is made
        super().prepare()

    def plan_http01(self, tasks: Sequence[ChallengeTask]) -> ChangePlan:
        return plan_http01(self.reading().config, tasks, self.options(),
                           self.challenge_location, self.http01_port())

    def http01_probes(self, tasks: Sequence[ChallengeTask]) -> Sequence[Probe]:
        return http01_probes(self.reading().config, tasks, self.http01_port())
