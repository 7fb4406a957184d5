"""HAProxy: certificates into ``haproxy.cfg`` (a managed crt-list on the https bind), swapped
live through the runtime API; and http-01 answered through the running HAProxy.

Options (shared by the installer and the authenticator, stored in the renewal conf):

``--haproxy-config PATH`` (default ``/etc/haproxy/haproxy.cfg``)
    The configuration HAProxy is started with: a file, or a directory of ``*.cfg`` files
    (read, tested and edited in HAProxy's order).
``--haproxy-bin BIN`` (default ``haproxy``)
    The binary: ``BIN -c -f PATH`` tests the configuration.
``--haproxy-socket PATH``
    The admin-level runtime API (default: the ``stats socket … level admin`` in ``global``).
    Without one, a renewed certificate goes live through a reload.
``--haproxy-reload-cmd CMD``
    How to reload (split like a shell would, run without one); default: the systemd unit's
    reload when it runs this HAProxy, else SIGUSR2 to the master (``pidfile`` in ``global``).
``--haproxy-cert-dir DIR`` (default ``certwright/`` beside the configuration)
    Where the combined PEMs (0600) and the managed ``crt-list`` go.

Modules: :mod:`.config` reads the configuration, :mod:`.plan` plans (certificates,
``--redirect``/``--hsts``, the challenge route), :mod:`.runtime` speaks the runtime API,
:mod:`.process` tests and reloads.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import socket
import threading
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from certwright.core.challenge_session import (
    ChallengeSession,
    temporary_applier,
    work_dir_of,
)
from certwright.core.errors import PluginError
from certwright.core.http01 import (
    CHALLENGE_PATH,
    Probe,
    http01_port,
    http01_token,
    http01_types,
    wait_until_served,
)
from certwright.core.responder import Responder
from certwright.core.serverkit import add_options, require_tool, text_option
from certwright.core.storage.files import ensure_dir
from certwright.core.textedit import ENCODING, ERRORS
from certwright.installers.haproxy import checks, process, runtime
from certwright.installers.haproxy import plan as planner
from certwright.installers.haproxy.config import HaproxyConfig, config_files, load

if TYPE_CHECKING:
    from certwright.core.interfaces import (
        AddArgument,
        ChallengeTask,
        ChangePlan,
        DeployRequest,
        Endpoint,
        EnhanceRequest,
        Identifier,
        Installer,
    )

__all__ = ["HaproxyAuthenticator", "HaproxyInstaller"]

log = logging.getLogger(__name__)
DEFAULT_CONFIG = "/etc/haproxy/haproxy.cfg"
DEFAULT_BIN = "haproxy"

OPTIONS: tuple[tuple[str, dict[str, object]], ...] = (
    ("--haproxy-config", {"default": None, "metavar": "PATH", "action": "append",
                          "help": f"HAProxy configuration file or directory; repeat it as "
                                  f"HAProxy's -f (default: {DEFAULT_CONFIG})"}),
    ("--haproxy-bin", {"default": None, "metavar": "BIN",
                       "help": f"haproxy binary used for the configuration test (default: "
                               f"{DEFAULT_BIN})"}),
    ("--haproxy-socket", {"default": None, "metavar": "PATH",
                          "help": "admin-level runtime API socket (default: the 'stats "
                                  "socket ... level admin' in global)"}),
    ("--haproxy-reload-cmd", {"default": None, "metavar": "CMD",
                              "help": "command that reloads HAProxy (default: the systemd "
                                      "unit's reload, else SIGUSR2 to the master)"}),
    ("--haproxy-cert-dir", {"default": None, "metavar": "DIR",
                            "help": "where certificates and the crt-list go (default: "
                                    "certwright/ beside the configuration)"}),
)


def _paths(value: object) -> list[str]:
    """``--haproxy-config`` as given (repeated: a list) or stored (a string or a list)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    paths = [os.path.abspath(str(v)) for v in values if v not in (None, "", "None")]
    return paths or [DEFAULT_CONFIG]


class _HaproxyBase:
    """What the installer and the authenticator share: options, reading, test, reload."""

    def __init__(self, config: argparse.Namespace) -> None:
        self.config = config
        self.runner: process.Runner = process.run_command
        self.config_paths = _paths(getattr(config, "haproxy_config", None))
        self.config_path = self.config_paths[0]
        self.bin = text_option(config, "haproxy_bin", DEFAULT_BIN)
        self.socket_option = text_option(config, "haproxy_socket")
        self.reload_cmd = text_option(config, "haproxy_reload_cmd")
        # beside the file, or beside a conf dir (never in it: HAProxy reads what is there)
        self.cert_dir = os.path.abspath(text_option(config, "haproxy_cert_dir") or os.path.join(
            os.path.dirname(self.config_path.rstrip("/")) or "/", "certwright"))
        self.layout = planner.Layout(self.cert_dir)
        self.api: runtime.RuntimeApi | None = None

    @classmethod
    def add_arguments(cls, add: AddArgument) -> None:
        add_options(add, OPTIONS)

    def prepare(self) -> None:
        require_tool(self.bin, "HAProxy", "--haproxy-bin")
        self.read()
        if self.socket_option:
            self.api = runtime.check_socket(self.socket_option)
        else:
            path = self.admin_socket()
            self.api = runtime.RuntimeApi(path) if path else None

    def read(self) -> HaproxyConfig:
        """The parsed configuration, parsed again only when one of its files changed
        (size, mtime, inode) or a conf dir holds other files: one command asks many times,
        and a configuration of 1,000 proxies takes tens of milliseconds to read."""
        files = [f for p in self.config_paths for f in config_files(p)]
        marks = tuple((f, checks.mark(f)) for f in files)
        cached: tuple[object, HaproxyConfig] | None = getattr(self, "_parsed", None)
        if cached is not None and cached[0] == marks:
            return cached[1]
        cfg = load(self.config_paths)
        self._parsed = (marks, cfg)
        return cfg

    def admin_socket(self) -> str | None:
        """The first unix ``stats socket`` in ``global`` at ``level admin``."""
        for stmt in self.read().global_statements("stats"):
            words = stmt.words
            if len(words) > 2 and words[1] == "socket" and "level" in words[3:]:
                level = words[words.index("level", 3) + 1:][:1]
                path = words[2].removeprefix("unix@")
                if level == ("admin",) and path.startswith("/"):
                    return path
        return None

    def pidfile(self) -> str | None:
        found = self.read().global_statements("pidfile")
        return found[-1].words[1] if found and len(found[-1].words) > 1 else None

    def config_test(self) -> None:
        """``haproxy -c``; again only for what changed since the last pass (:mod:`.checks`)."""
        tester = getattr(self, "_tester", None)
        if tester is None:
            tester = self._tester = checks.ConfigCheck(
                lambda: process.config_test(self.bin, self.config_paths, self.runner),
                lambda: [f for p in self.config_paths for f in config_files(p)],
                self.layout.crt_list)
        tester()

    def reload(self) -> None:
        process.reload(self.pidfile(), self.reload_cmd, self.runner)

    def renewal_params(self) -> Mapping[str, object]:
        several = len(self.config_paths) > 1
        params: dict[str, object] = {"haproxy_config": self.config_paths if several
                                     else self.config_path,
                                     "haproxy_bin": self.bin,
                                     "haproxy_cert_dir": self.cert_dir}
        if self.socket_option:
            params["haproxy_socket"] = self.socket_option
        if self.reload_cmd:
            params["haproxy_reload_cmd"] = self.reload_cmd
        return params


class HaproxyInstaller(_HaproxyBase):
    """Installer + SupportsEnhancements + SupportsActivate + SupportsDelete for HAProxy."""

    name: ClassVar[str] = "haproxy"
    description: ClassVar[str] = "HAProxy: certificates in a crt-list, swapped live"

    def discover_names(self) -> set[str]:
        try:
            text = Path(self.layout.crt_list).read_text(ENCODING, ERRORS)
        except OSError:
            return set()
        return {word for _, line in planner.crt_list_entries(text)
                for word in line.split()[1:] if not word.startswith(("[", "!"))}

    def plan_deploy(self, req: DeployRequest) -> ChangePlan:
        return planner.plan_deploy(self.read(), req, self.layout)

    def endpoints(self, req: DeployRequest) -> Sequence[Endpoint]:
        return planner.endpoints(self.read(), req)

    def plan_forget(self, cert_name: str, domains: Sequence[str]) -> ChangePlan:
        return planner.plan_forget(self.read(), cert_name, self.layout)

    def references(self, prefix: str) -> list[str]:
        """``file:line`` of each configuration statement naming a path under ``prefix``
        (certwright's own PEMs are copies, so these are the user's own lines)."""
        cfg = self.read()
        return [s.where for sec in cfg.sections for s in [sec.head, *sec.body]
                if any(prefix in w for w in s.words)]

    def supported_enhancements(self) -> frozenset[str]:
        return planner.ENHANCEMENTS

    def plan_enhance(self, req: EnhanceRequest) -> ChangePlan:
        return planner.plan_enhance(self.read(), req)

    def activate(self, plan: ChangePlan) -> None:
        """Swap the plan's certificates in through the runtime API, one transaction at a
        time. A plan that changes the configuration itself is loaded by a reload; without an
        admin-level socket this raises, and the core reloads once for every plan."""
        own = {self.layout.crt_list}
        pems = [c for c in plan.changes if c.path.startswith(self.cert_dir + os.sep)
                and c.path.endswith(".pem") and c.new_content is not None]
        others = [c for c in plan.changes if c not in pems and c.path not in own]
        if self.api is None:
            raise PluginError("no admin-level runtime API socket (add 'stats socket PATH "
                              "level admin' to global, or give --haproxy-socket); a reload "
                              "loads the new files")
        lines = None if others else self._new_lines(plan)
        if lines is None:
            log.info("haproxy: the configuration itself changed; reloading")
            self.reload()
            return
        items = [(c.path, (c.new_content or b"").decode(), _serial(c.new_content or b""))
                 for c in pems]
        if not plan.changes:  # files written earlier, maybe never made live (a crash)
            items, lines = self._stale(self.api)
        runtime.swap_all(self.api, self._lock_path(), items, self.layout.crt_list, lines)
        log.info("haproxy: %d certificate(s) swapped in through %s", len(items),
                 self.api.socket_path)

    def _stale(self, api: runtime.RuntimeApi) -> tuple[list[tuple[str, str, int]],
                                                       dict[str, str]]:
        """Certificates of the crt-list whose file HAProxy does not serve (by serial), and
        the list lines of those it does not hold at all."""
        try:
            text = Path(self.layout.crt_list).read_text(ENCODING, ERRORS)
        except OSError:
            return [], {}
        items, lines = [], {}
        for path, line in planner.crt_list_entries(text):
            try:
                data = Path(path).read_bytes()
                serial = _serial(data)
            except (OSError, PluginError):
                continue
            held = api.serial(path)
            if held is None:
                lines[path] = line
            if held is None or int(held, 16) != serial:
                items.append((path, data.decode(), serial))
        return items, lines

    def _lock_path(self) -> str:
        """Swaps through one socket take turns across processes: a lock file in the work
        directory (never in the cert dir, whose contents a rollback restores)."""
        work_dir = getattr(self.config, "work_dir", None)
        base = str(work_dir) if work_dir else self.cert_dir
        digest = hashlib.sha256((self.api.socket_path if self.api else "").encode())
        ensure_dir(Path(base), 0o700)
        return os.path.join(base, f"haproxy-runtime-{digest.hexdigest()[:16]}.lock")

    def _new_lines(self, plan: ChangePlan) -> dict[str, str] | None:
        """crt-list lines, by path, of the plan's new entries; None when the plan changes
        or drops an entry HAProxy holds, or HAProxy does not use the list (a reload)."""
        change = next((c for c in plan.changes if c.path == self.layout.crt_list), None)
        if change is None:
            return {}
        if self.api is None:
            return None
        after = dict(planner.crt_list_entries(
            (change.new_content or b"").decode(ENCODING, ERRORS)))
        try:
            reply = self.api.command(f"show ssl crt-list {self.layout.crt_list}")
        except PluginError:
            return None
        if not reply.startswith(f"# {self.layout.crt_list}"):
            return None
        held = dict(planner.crt_list_entries(reply))
        if any(p not in after or held[p].split() != after[p].split() for p in held):
            return None
        return {p: line for p, line in after.items() if p not in held}


def _serial(pem: bytes) -> int:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(pem).serial_number
    except ValueError as exc:
        raise PluginError(f"can't read the certificate to swap in: {exc}") from None


class HaproxyAuthenticator(_HaproxyBase):
    """http-01 through the running HAProxy: an ACL in each http frontend sends the
    challenge path to a managed backend, where certwright's responder listens on loopback
    only while challenges are open (added once; inert between runs; rolled back like any
    other change). A ``--dry-run`` adds the route only for as long as its challenges are
    open (a temporary transaction, undone with the last one)."""

    name: ClassVar[str] = "haproxy"
    description: ClassVar[str] = "Answer http-01 through the running HAProxy"

    def __init__(self, config: argparse.Namespace) -> None:
        super().__init__(config)
        self.port: int | None = None
        self._responder: Responder | None = None
        self._open: set[str] = set()
        self._session: ChallengeSession | None = None
        self._lock = threading.Lock()  # parallel renewals share this instance

    def challenge_types(self, identifier: Identifier) -> Sequence[str]:
        return http01_types(identifier)

    def share_key(self) -> Hashable:
        """One responder per HAProxy serves every lineage renewing through it."""
        return ("haproxy", os.path.realpath(self.config_path))

    def http01_port(self) -> int:
        return http01_port(self.config)

    def prepare(self) -> None:
        super().prepare()
        from certwright.core.deploy import apply_plan

        cfg = self.read()
        for stmt in planner.redirects_challenges(cfg, self.http01_port())[:1]:
            raise PluginError(f"{stmt.where}: this redirect to https would send the http-01 "
                              "challenges away; make its condition 'if !{ ssl_fc } !{ path_beg "
                              f"{planner.CHALLENGE_PREFIX} }}', or remove it and use --redirect")
        port = planner.responder_port(cfg) or _free_port()
        route = planner.plan_route(cfg, self.http01_port(), port)
        if not route.empty:
            work_dir = work_dir_of(self.config)
            if getattr(self.config, "dry_run", False):
                self._session = ChallengeSession(temporary_applier(work_dir, self.name),
                                                 self.config_test, self.reload, self.name)
                self._session.replace(route)
            else:
                apply_plan(cast("Installer", self), route, work_dir=work_dir, say=log.info)
        self.port = port

    def _responder_now(self) -> Responder:
        if self._responder is None:
            self._responder = Responder("127.0.0.1", self.port or 0)
        return self._responder

    def present(self, task: ChallengeTask) -> None:
        self.present_all([task])

    def present_all(self, tasks: Sequence[ChallengeTask]) -> None:
        with self._lock:
            responder = self._responder_now()
            for task in tasks:
                responder.add(http01_token(task, self.name), task.key_authorization)
                self._open.add(task.token)
        probes = [Probe(host, self.http01_port(), task.domain, CHALLENGE_PATH + task.token,
                        task.key_authorization)
                  for task in tasks for host in self._http_hosts()]
        for probe in wait_until_served(probes):
            log.warning("haproxy does not answer http://%s%s at %s:%d yet; asking the CA "
                        "anyway", probe.domain, probe.path, probe.host, probe.port)

    def _http_hosts(self) -> list[str]:
        hosts = [b.addresses for s in self.read().http_frontends(self.http01_port())
                 for b in s.binds if not b.ssl]
        found = {a.host or "127.0.0.1" for group in hosts for a in group
                 if a.port == self.http01_port()}
        return sorted(found)

    def cleanup(self, task: ChallengeTask) -> None:
        with self._lock:
            if self._responder is not None:
                self._responder.remove(task.token)
            self._open.discard(task.token)
            if not self._open and self._session is not None:
                session, self._session = self._session, None
                session.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
