"""Dovecot: one certificate for IMAP, POP3, ManageSieve and submission, checked by handshake.

Options (stored in the renewal conf):

``--dovecot-config FILE`` (default ``/etc/dovecot/dovecot.conf``)
    The main configuration file (``doveconf -c FILE``, ``doveadm -c FILE``).
``--doveadm CMD`` (default ``doveadm``)
    The doveadm command; ``doveconf`` is taken from beside it, else from PATH.
``--dovecot-reload-cmd CMD``
    How to reload (split like a shell would, run without one); default
    ``DOVEADM -c FILE reload``.
``--dovecot-require-tls``
    Also write ``ssl = required`` (no plain-text logins).

The admin's files are left as they are: certwright writes one managed file,
``conf.d/99-certwright.conf`` where the main file includes ``conf.d/*.conf``, else
``certwright.conf`` beside the main file with one ``!include_try`` line appended to it.
Dovecot 2.3 (``ssl_cert = </path``) and 2.4 (``ssl_server_cert_file``) are told apart by
``doveconf``. The config test is ``doveconf -n``, a check that the key matches the
certificate and that nothing later overrides the managed file; after the reload the core
polls a handshake on every listener until the new certificate is served.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

from certwright.core.errors import PluginError
from certwright.core.interfaces import ChangePlan, FileChange
from certwright.core.serverkit import add_options, find_tool, on_off, require_tool, text_option
from certwright.installers.dovecot import conf
from certwright.installers.dovecot.plan import (
    ManagedFile,
    listener_endpoints,
    managed_file,
    syntax,
)
from certwright.installers.mailkit import Runner, key_problem, output_line, run_command
from certwright.installers.postfix.plan import server_name

if TYPE_CHECKING:
    from certwright.core.interfaces import AddArgument, DeployRequest, Endpoint

__all__ = ["DovecotInstaller"]

DEFAULT_CONFIG = "/etc/dovecot/dovecot.conf"
DEFAULT_DOVEADM = "doveadm"
MANAGED_CONFD = "99-certwright.conf"
MANAGED_BESIDE = "certwright.conf"
CONFD_INCLUDE = re.compile(r"^\s*!include(_try)?\s+(\S*/)?conf\.d/\*\.conf\s*$", re.MULTILINE)


class DovecotInstaller:
    """Installer for Dovecot's TLS listeners."""

    name: ClassVar[str] = "dovecot"
    description: ClassVar[str] = "Dovecot IMAP/POP3 server: TLS certificate"

    def __init__(self, config: argparse.Namespace) -> None:
        self.config = config
        self.runner: Runner = run_command
        self.conf = os.path.abspath(text_option(config, "dovecot_config", DEFAULT_CONFIG))
        self.doveadm = text_option(config, "dovecot_doveadm", DEFAULT_DOVEADM)
        self.reload_cmd = text_option(config, "dovecot_reload_cmd")
        self.require_tls = on_off(config, "dovecot_require_tls", "--dovecot-require-tls")
        self.doveconf = "doveconf"
        self._expected: tuple[str, str] | None = None

    @classmethod
    def add_arguments(cls, add: AddArgument) -> None:
        options: list[tuple[str, dict[str, object]]] = [
            ("--dovecot-config", {"default": DEFAULT_CONFIG, "metavar": "FILE",
                                  "help": "Dovecot's main configuration file "
                                          "(default: %(default)s)"}),
            ("--doveadm", {"dest": "dovecot_doveadm",  # every option stored as dovecot_*
                           "default": DEFAULT_DOVEADM, "metavar": "CMD",
                           "help": "the doveadm command (default: %(default)s); doveconf "
                                   "is taken from beside it"}),
            ("--dovecot-reload-cmd", {"default": None, "metavar": "CMD",
                                      "help": "command that reloads Dovecot (default: "
                                              "DOVEADM -c CONFIG reload)"}),
            ("--dovecot-require-tls", {"action": "store_true", "default": False,
                                       "help": "also set ssl = required"}),
        ]
        add_options(add, options)

    # -- reading ----------------------------------------------------------------------------
    def prepare(self) -> None:
        doveadm = require_tool(self.doveadm, "Dovecot", "--doveadm")
        doveconf = find_tool("doveconf", beside=doveadm)
        if doveconf is None:
            raise PluginError(f"doveconf is not found (beside {doveadm} or on PATH)")
        self.doveadm, self.doveconf = doveadm, doveconf
        if not os.path.isfile(self.conf):
            raise PluginError(f"{self.conf}: no such Dovecot configuration file (see "
                              "--dovecot-config)")
        self._doveconf("-n")

    def _doveconf(self, *args: str) -> str:
        done = self.runner([self.doveconf, "-c", self.conf, *args])
        if done.returncode != 0:
            raise PluginError(f"Dovecot's configuration {self.conf} does not load: "
                              f"{conf.error_line(done.stderr + chr(10) + done.stdout)}")
        return done.stdout

    def discover_names(self) -> set[str]:
        return set()  # Dovecot has no setting naming the host its certificate is for

    def _managed_path(self) -> str:
        directory = os.path.dirname(self.conf)
        try:
            with open(self.conf, encoding="utf-8", errors="replace") as handle:
                main = handle.read()
        except OSError as exc:
            raise PluginError(f"{self.conf}: can't be read: {exc.strerror or exc}") from None
        if CONFD_INCLUDE.search(main) and os.path.isdir(os.path.join(directory, "conf.d")):
            return os.path.join(directory, "conf.d", MANAGED_CONFD)
        return os.path.join(directory, MANAGED_BESIDE)

    # -- planning ---------------------------------------------------------------------------
    def _managed(self, req: DeployRequest) -> tuple[str, bytes | None, ManagedFile]:
        """The managed file's path, its bytes now (None: not there) and what it should
        hold."""
        for path in (req.key_path, req.fullchain_path):
            if any(c.isspace() or c in "\"'\\$%{}" for c in path):
                raise PluginError(f"Dovecot can't take the path {path!r} in its settings "
                                  "(it holds a space, a quote or one of $%{}\\); use a "
                                  "certificate name without them")
        text = self._doveconf("-n", "-P")
        version = conf.version(text)
        managed = self._managed_path()
        before: bytes | None
        try:
            with open(managed, "rb") as handle:
                before = handle.read()
        except FileNotFoundError:
            before = None
        current = (before or b"").decode("utf-8", errors="replace")
        made = managed_file(conf.parse(text), req, version, self.require_tls, current)
        syn = syntax(version)
        self._expected = None if made.elsewhere else \
            (syn.cert, f"{syn.prefix}{req.fullchain_path}")
        return managed, before, made

    def plan_deploy(self, req: DeployRequest) -> ChangePlan:
        managed, before, made = self._managed(req)
        changes: list[FileChange] = []
        if made.elsewhere:
            return ChangePlan(f"dovecot: install {req.cert_name}", (), tuple(made.notes))
        if made.text.encode() != before:
            changes.append(FileChange(
                managed, made.text.encode(),
                None if before is None else hashlib.sha256(before).hexdigest(), mode=0o644))
        if os.path.dirname(managed) == os.path.dirname(self.conf):
            changes += self._include(managed)
        return ChangePlan(f"dovecot: install {req.cert_name}", tuple(changes),
                          tuple(made.notes))

    def _include(self, managed: str) -> list[FileChange]:
        """The ``!include_try`` line at the end of the main file, when it is not there."""
        with open(self.conf, "rb") as handle:
            data = handle.read()
        line = f"!include_try {managed}".encode()
        if any(existing.strip() == line for existing in data.splitlines()):
            return []
        sep = b"" if not data or data.endswith(b"\n") else b"\n"
        new = data + sep + b"# certwright: the TLS certificate (last, so it wins)\n" + line + b"\n"
        return [FileChange(self.conf, new, hashlib.sha256(data).hexdigest())]

    def endpoints(self, req: DeployRequest) -> Sequence[Endpoint]:
        _, _, made = self._managed(req)
        if made.elsewhere:
            return []
        full = conf.parse(self._doveconf())
        return listener_endpoints(full, made.shadowed, server_name(req))

    # -- deleting a certificate ---------------------------------------------------------------
    def plan_forget(self, cert_name: str, domains: Sequence[str]) -> ChangePlan:
        """Nothing taken out (without the managed file Dovecot may have no certificate at
        all): :meth:`references` warns instead."""
        return ChangePlan(f"dovecot: forget {cert_name}")

    def references(self, prefix: str) -> list[str]:
        """Lines of the managed file naming a path under ``prefix``, and effective
        settings naming one (set in the admin's own files)."""
        managed = self._managed_path()
        found: list[str] = []
        try:
            with open(managed, encoding="utf-8", errors="replace") as handle:
                for number, line in enumerate(handle, 1):
                    if prefix in line and not line.lstrip().startswith("#"):
                        found.append(f"{managed}:{number}")
        except FileNotFoundError:
            pass
        if not found:
            effective = conf.parse(self._doveconf("-n", "-P")).settings
            found = [f"{self.conf} ({name})" for name, value in sorted(effective.items())
                     if prefix in value]
        return found

    # -- running ----------------------------------------------------------------------------
    def config_test(self) -> None:
        self._doveconf("-n")
        settings = conf.parse(self._doveconf("-n", "-P")).settings
        syn = syntax(conf.version(self._doveconf("-n")))
        cert, key = syn.path(settings.get(syn.cert, "")), syn.path(settings.get(syn.key, ""))
        if self._expected is not None and settings.get(self._expected[0]) != self._expected[1]:
            raise PluginError(f"a setting read after the managed file overrides it: "
                              f"{self._expected[0]} = {settings.get(self._expected[0], '')}")
        if cert and key:
            problem = key_problem(key, [cert])
            if problem:
                raise PluginError(f"Dovecot's TLS settings ({self.conf}): {problem}")

    def reload(self) -> None:
        argv = shlex.split(self.reload_cmd) if self.reload_cmd else \
            [self.doveadm, "-c", self.conf, "reload"]
        done = self.runner(argv)
        if done.returncode == 0:
            return
        said = output_line(done, "Fatal")
        if not self.reload_cmd and "is not running" in said:
            self._start()
            return
        raise PluginError(f"Dovecot reload ({shlex.join(argv)}) failed (exit "
                          f"{done.returncode}): {said}")

    def _start(self) -> None:
        """Start Dovecot with the new configuration. Its master keeps the output it was
        given open: a pipe would never close, so it writes to a file read afterwards."""
        dovecot = find_tool("dovecot", beside=self.doveadm) or find_tool("/usr/sbin/dovecot")
        if dovecot is None:
            raise PluginError("Dovecot is not running, and the dovecot binary to start it "
                              "is not found")
        with tempfile.NamedTemporaryFile(prefix="certwright-dovecot-") as out:
            done = self.runner(["/bin/sh", "-c", 'exec "$0" -c "$1" >"$2" 2>&1', dovecot,
                                self.conf, out.name])
            said = out.read().decode("utf-8", errors="replace")
        if done.returncode != 0:
            lines = [line.strip() for line in said.splitlines() if line.strip()]
            raise PluginError(f"Dovecot was not running and did not start (exit "
                              f"{done.returncode}): {lines[-1] if lines else '(no output)'}")

    def renewal_params(self) -> Mapping[str, object]:
        params: dict[str, object] = {"dovecot_config": self.conf, "dovecot_doveadm": self.doveadm}
        if self.reload_cmd:
            params["dovecot_reload_cmd"] = self.reload_cmd
        if self.require_tls:
            params["dovecot_require_tls"] = True
        return params
