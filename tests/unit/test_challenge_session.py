"""The core's challenge session, driven through the Http01Server contract by a server that
is not nginx: apply → config test → reload → wait until served → always roll back."""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from certwright.core.challenge_session import ServerHttp01Authenticator
from certwright.core.checkpoint import signals_raise
from certwright.core.errors import PluginError
from certwright.core.http01 import CHALLENGE_PATH, Probe
from certwright.core.interfaces import (
    ChallengeTask,
    ChangePlan,
    FileChange,
    Http01Server,
    Identifier,
)
from certwright.installers.nginx import NginxAuthenticator

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "frontend http\n    bind :80\n"


class TextServer(ServerHttp01Authenticator):
    """A server whose config is one text file; each answer is one line in it. What it
    "serves" is what its last reload saw."""

    name: ClassVar[str] = "textserver"

    def __init__(self, config: argparse.Namespace, conf: Path) -> None:
        self.config, self.conf = config, conf
        self.events: list[str] = []
        self.live = conf.read_text()
        self.fetch = self._fetch
        self.ready_hook: object = None

    def plan_http01(self, tasks: Sequence[ChallengeTask]) -> ChangePlan:
        old = self.conf.read_bytes()
        new = old + b"".join(f"    answer {t.token} {t.key_authorization}\n".encode()
                             for t in tasks)
        return ChangePlan("textserver: http-01", (FileChange(
            str(self.conf), new, hashlib.sha256(old).hexdigest()),))

    def http01_probes(self, tasks: Sequence[ChallengeTask]) -> Sequence[Probe]:
        return [Probe("127.0.0.1", 80, t.domain, CHALLENGE_PATH + t.token, t.key_authorization)
                for t in tasks]

    def config_test(self) -> None:
        self.events.append("test")
        if "BROKEN" in self.conf.read_text():
            raise PluginError(f"{self.conf}: line 3: broken")

    def reload(self) -> None:
        self.events.append("reload")
        self.live = self.conf.read_text()

    def _fetch(self, probe: Probe) -> tuple[int, bytes]:
        self.events.append("fetch")
        if callable(self.ready_hook):
            self.ready_hook()
        token = probe.path.rsplit("/", 1)[1]
        found = [line.split()[2] for line in self.live.splitlines()
                 if line.split()[:2] == ["answer", token]]
        return (200, found[0].encode()) if found else (404, b"")


def task(domain: str, token: str) -> ChallengeTask:
    return ChallengeTask(Identifier("dns", domain), "http-01", token, f"{token}.kt",
                         f"{token}.kt")


@pytest.fixture
def server(tmp_path: Path) -> TextServer:
    conf = tmp_path / "server.cfg"
    conf.write_text(CONFIG)
    return TextServer(argparse.Namespace(work_dir=str(tmp_path / "work")), conf)


def test_the_contract_is_what_nginx_implements(server: TextServer) -> None:
    assert isinstance(server, Http01Server)
    assert isinstance(NginxAuthenticator(argparse.Namespace()), Http01Server)


def test_present_serves_and_cleanup_puts_everything_back(server: TextServer,
                                                         tmp_path: Path) -> None:
    one = task("a.test", "tokA")
    server.present_all([one])
    assert server.events[:3] == ["test", "reload", "fetch"]
    assert "answer tokA tokA.kt" in server.live
    assert len(os.listdir(tmp_path / "work" / "transactions")) == 1  # journalled there
    server.cleanup(one)
    assert server.conf.read_text() == CONFIG and server.live == CONFIG
    assert not os.path.lexists(tmp_path / "work" / "transactions")  # the root it made, gone


def test_a_failed_config_test_rolls_back_without_reloading(server: TextServer) -> None:
    server.conf.write_text(CONFIG + "BROKEN\n")
    with pytest.raises(PluginError, match="line 3"):
        server.present_all([task("a.test", "tokA")])
    assert server.conf.read_text() == CONFIG + "BROKEN\n"
    assert server.events == ["test"]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, "SIGTERM"])
def test_an_interrupt_while_waiting_rolls_back_and_reloads(
    server: TextServer, interrupt: object
) -> None:
    def stop() -> None:
        if interrupt == "SIGTERM":
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            raise KeyboardInterrupt

    server.ready_hook = stop
    with signals_raise(), pytest.raises((KeyboardInterrupt, SystemExit)):
        server.present_all([task("a.test", "tokA")])
    assert server.conf.read_text() == CONFIG and server.live == CONFIG
    assert server.events[-1] == "reload"


def test_the_work_dir_comes_from_the_settings(tmp_path: Path) -> None:
    conf = tmp_path / "server.cfg"
    conf.write_text(CONFIG)
    nowhere = TextServer(argparse.Namespace(), conf)
    with pytest.raises(PluginError, match="--work-dir"):
        nowhere.present_all([task("a.test", "tokA")])
    assert conf.read_text() == CONFIG


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_installers_use_the_public_toolkit_only() -> None:
    """No installer reaches into the transaction machinery, another plugin's private
    helpers, or a hard-coded work directory."""
    for path in sorted((ROOT / "installers").rglob("*.py")):
        imports = _imports(path)
        assert "certwright.core.transaction" not in imports, path
        assert not any(m.startswith("certwright.authenticators") for m in imports), path
        assert "/var/lib/certwright" not in path.read_text(), path
