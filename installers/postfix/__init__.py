"""Postfix: certificates for smtpd, through ``postconf``, checked by handshake on every listener.

Options (stored in the renewal conf):

``--postfix-config-dir DIR`` (default ``/etc/postfix``)
    The instance's configuration directory (``postconf -c DIR``, ``postfix -c DIR``).
``--postfix-ctl CMD`` (default ``postfix``)
    The ``postfix`` command; ``postconf`` is taken from beside it, else from PATH.
``--postfix-client-tls``
    Also set the client side (``smtp_tls_security_level = may``) unless it is set.
``--postfix-files-only``
    Leave main.cf and master.cf to the admin: only reload, then check the listeners.

Settings are read with ``postconf`` only (:mod:`.postconf`); :mod:`.plan` turns a request
into ``postconf -e``/``-X``/``-P`` edits. Those run on a copy of main.cf and master.cf, and
what they wrote becomes the plan's file changes: the transaction backs both files up and
writes them atomically, so a rollback gives them back byte for byte. The config test is
``postfix check`` plus a check that the configured key matches its certificate (``postfix
check`` opens neither); after ``postfix reload`` the core polls a handshake on each smtpd
listener until the new certificate is served.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

from certwright.core.errors import PluginError
from certwright.core.interfaces import ChangePlan, FileChange
from certwright.core.serverkit import add_options, find_tool, on_off, require_tool, text_option
from certwright.installers.mailkit import Runner, key_problem, log_tail, output_line, run_command
from certwright.installers.postfix.plan import (
    CHAIN,
    Edit,
    files_named,
    host_names,
    listener_endpoints,
    plan_edits,
    server_name,
)
from certwright.installers.postfix.postconf import Postconf, Settings, is_config_dir

if TYPE_CHECKING:
    from certwright.core.interfaces import AddArgument, DeployRequest, Endpoint

__all__ = ["PostfixInstaller"]

DEFAULT_CONFIG_DIR = "/etc/postfix"
DEFAULT_CTL = "postfix"


class PostfixInstaller:
    """Installer for Postfix's smtpd (STARTTLS and implicit-TLS listeners)."""

    name: ClassVar[str] = "postfix"
    description: ClassVar[str] = "Postfix mail server: smtpd TLS certificate"

    def __init__(self, config: argparse.Namespace) -> None:
        self.config = config
        self.runner: Runner = run_command
        self.config_dir = os.path.abspath(
            text_option(config, "postfix_config_dir", DEFAULT_CONFIG_DIR))
        self.ctl = text_option(config, "postfix_ctl", DEFAULT_CTL)
        self.client_tls = on_off(config, "postfix_client_tls", "--postfix-client-tls")
        self.files_only = on_off(config, "postfix_files_only", "--postfix-files-only")
        self._postconf: Postconf | None = None

    @classmethod
    def add_arguments(cls, add: AddArgument) -> None:
        options: list[tuple[str, dict[str, object]]] = [
            ("--postfix-config-dir", {"default": DEFAULT_CONFIG_DIR, "metavar": "DIR",
                                      "help": "Postfix configuration directory "
                                              "(default: %(default)s)"}),
            ("--postfix-ctl", {"default": DEFAULT_CTL, "metavar": "CMD",
                               "help": "the postfix command (default: %(default)s); "
                                       "postconf is taken from beside it"}),
            ("--postfix-client-tls", {"action": "store_true", "default": False,
                                      "help": "also let Postfix's SMTP client use TLS "
                                              "(smtp_tls_security_level = may)"}),
            ("--postfix-files-only", {"action": "store_true", "default": False,
                                      "help": "leave main.cf to the admin: only reload "
                                              "and check the listeners"}),
        ]
        add_options(add, options)

    # -- reading ----------------------------------------------------------------------------
    def prepare(self) -> None:
        ctl = require_tool(self.ctl, "Postfix", "--postfix-ctl")
        postconf = find_tool("postconf", beside=ctl)
        if postconf is None:
            raise PluginError(f"postconf is not found (beside {ctl} or on PATH); Postfix "
                              "settings are read only through it")
        if not is_config_dir(self.config_dir):
            raise PluginError(f"{self.config_dir} is not a Postfix configuration directory "
                              "(no main.cf in it; see --postfix-config-dir)")
        self.ctl = ctl
        self._postconf = Postconf(postconf, self.config_dir, self.runner)
        self.settings()

    @property
    def postconf(self) -> Postconf:
        if self._postconf is None:
            self.prepare()
        assert self._postconf is not None
        return self._postconf

    def settings(self) -> Settings:
        return self.postconf.read()

    def discover_names(self) -> set[str]:
        """``myhostname``, and ``mydomain`` where Postfix takes its mail (see
        :func:`.plan.host_names`)."""
        return host_names(*(self.postconf.get(n, expand=True)
                            for n in ("myhostname", "mydomain", "mydestination")))

    # -- planning ---------------------------------------------------------------------------
    def plan_deploy(self, req: DeployRequest) -> ChangePlan:
        for path in (req.key_path, req.fullchain_path):
            if any(c.isspace() or c in ",$" for c in path):
                raise PluginError(f"Postfix can't take the path {path!r} in a list setting "
                                  "(it holds a space, ',' or '$'); use a certificate name "
                                  "without them")
        settings = self.settings()
        found = plan_edits(settings, req, self.client_tls, self.files_only)
        changes = self._stage(found.edits)
        title = f"postfix: install {req.cert_name}"
        return ChangePlan(title, tuple(changes), tuple(found.notes))

    def _stage(self, edits: list[Edit]) -> list[FileChange]:
        """Run ``edits`` through postconf on a copy of main.cf and master.cf; the files
        it rewrote, as changes of the real ones."""
        if not edits:
            return []
        names = ("main.cf", "master.cf")
        scratch = tempfile.mkdtemp(prefix="certwright-postfix-")
        try:
            before: dict[str, bytes] = {}
            for name in names:
                path = os.path.join(self.config_dir, name)
                if os.path.exists(path):
                    with open(path, "rb") as handle:
                        before[name] = handle.read()
                    with open(os.path.join(scratch, name), "wb") as handle:
                        handle.write(before[name])
            copy = Postconf(self.postconf.binary, scratch, self.runner)
            for group in _batches(edits):
                copy._out(*group)
            changes = []
            for name, old in before.items():
                with open(os.path.join(scratch, name), "rb") as handle:
                    new = handle.read()
                if new != old:
                    changes.append(FileChange(os.path.join(self.config_dir, name), new,
                                              hashlib.sha256(old).hexdigest()))
            return changes
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def endpoints(self, req: DeployRequest) -> Sequence[Endpoint]:
        settings = self.settings()
        found = plan_edits(settings, req, self.client_tls, self.files_only)
        if found.elsewhere:
            return []
        return listener_endpoints(settings, found.edits, found.shadowed, server_name(req))

    # -- deleting a certificate ---------------------------------------------------------------
    def plan_forget(self, cert_name: str, domains: Sequence[str]) -> ChangePlan:
        """Nothing to take out: main.cf is the admin's, and which certificate Postfix
        should serve instead is theirs to say (:meth:`references` warns)."""
        return ChangePlan(f"postfix: forget {cert_name}")

    def references(self, prefix: str) -> list[str]:
        """The main.cf settings and master.cf overrides naming a path under ``prefix``."""
        settings = self.settings()
        found = [f"{self.config_dir}/main.cf ({name})"
                 for name, value in sorted(settings.explicit.items()) if prefix in value]
        found += [f"{self.config_dir}/master.cf ({service.key}: {name})"
                  for service in settings.services
                  for name, value in sorted(service.overrides.items()) if prefix in value]
        return found

    # -- running ----------------------------------------------------------------------------
    def _ctl(self, *args: str) -> tuple[int, str]:
        done = self.runner([self.ctl, "-c", self.config_dir, *args])
        if done.returncode == 0:
            return 0, ""
        said = output_line(done, "fatal") if (done.stdout or done.stderr).strip() else ""
        log = log_tail(self._maillog())
        return done.returncode, " | ".join(p for p in (said, log) if p) or "(no output)"

    def _maillog(self) -> str | None:
        try:
            return self.postconf.get("maillog_file", expand=True) or None
        except PluginError:
            return None

    def config_test(self) -> None:
        code, why = self._ctl("check")
        if code:
            raise PluginError(f"postfix -c {self.config_dir} check failed (exit {code}): {why}")
        problem = self._tls_files_problem()
        if problem:
            raise PluginError(f"Postfix's TLS settings in {self.config_dir}/main.cf: {problem}")

    def _tls_files_problem(self) -> str | None:
        chain = self.postconf.get(CHAIN, expand=True)
        files = files_named(chain)
        if files:
            return key_problem(files[0], files)
        cert = self.postconf.get("smtpd_tls_cert_file", expand=True)
        key = self.postconf.get("smtpd_tls_key_file", expand=True) or cert
        return key_problem(key, [cert]) if cert else None

    def reload(self) -> None:
        code, why = self._ctl("reload")
        if not code:
            return
        if self.runner([self.ctl, "-c", self.config_dir, "status"]).returncode != 0:
            code, why = self._ctl("start")  # not running: start it with the new config
            if not code:
                return
        raise PluginError(f"postfix -c {self.config_dir} reload failed (exit {code}): {why}")

    def renewal_params(self) -> Mapping[str, object]:
        params: dict[str, object] = {"postfix_config_dir": self.config_dir,
                                     "postfix_ctl": self.ctl}
        if self.client_tls:
            params["postfix_client_tls"] = True
        if self.files_only:
            params["postfix_files_only"] = True
        return params


def _batches(edits: list[Edit]) -> list[list[str]]:
    """postconf takes one kind of edit per run (``-e``, ``-X``, ``-P``, ``-PX``), many
    settings each."""
    groups: dict[str, list[str]] = {}
    for edit in edits:
        mode, arg = edit.argv()
        groups.setdefault(mode, []).append(arg)
    return [[mode, *args] for mode, args in groups.items()]
