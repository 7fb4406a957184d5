"""The nginx installer and authenticator objects: options, commands, challenge life cycle."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import certwright.installers.nginx as nginx_plugin
from certwright.core.challenge_session import ChallengeSession
from certwright.core.errors import PluginError
from certwright.core.http01 import Probe, wait_until_served
from certwright.core.interfaces import (
    Authenticator,
    ChallengeTask,
    ChangePlan,
    DeployRequest,
    FileChange,
    Identifier,
    Installer,
    SupportsEnhancements,
    SupportsHttp01,
)
from certwright.core.runner import Completed
from certwright.installers.nginx import NginxAuthenticator, NginxInstaller, process
from certwright.installers.nginx.http01 import http01_probes
from certwright.installers.nginx.tree import load_tree

SITE = """\
server {
    listen 80;
    server_name example.org www.example.org .wild.test ~^re www.example.* _ "";
}
"""


class FakeRunner:
    """Records every argv; answers with the queued results (success by default)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.results: list[Completed] = []

    def __call__(self, argv: Sequence[str]) -> Completed:
        self.calls.append(list(argv))
        if self.results:
            return self.results.pop(0)
        return Completed(tuple(argv), 0, "", "")


def config(root: Path, **options: Any) -> argparse.Namespace:
    (root / "nginx.conf").write_text("events {}\nhttp {\n    include sites/*;\n}\n")
    (root / "sites").mkdir(exist_ok=True)
    (root / "sites/example").write_text(SITE)
    values: dict[str, Any] = {"nginx_server_root": str(root), "nginx_ctl": "nginx",
                              "nginx_reload_cmd": None, "nginx_conf": None,
                              "http01_port": 80, "work_dir": str(root / "work")}
    values.update(options)
    return argparse.Namespace(**values)


def installer(root: Path, **options: Any) -> tuple[NginxInstaller, FakeRunner]:
    inst = NginxInstaller(config(root, **options))
    runner = FakeRunner()
    inst.runner = runner
    inst.proc_root = str(root / "no-proc")  # never watch a real nginx
    return inst, runner


def test_protocols() -> None:
    inst = NginxInstaller(argparse.Namespace())
    assert isinstance(inst, Installer)
    assert isinstance(inst, SupportsEnhancements) and isinstance(inst, SupportsHttp01)
    assert isinstance(NginxAuthenticator(argparse.Namespace()), Authenticator)
    assert inst.supported_enhancements() == frozenset({"redirect", "hsts", "uir"})


def test_both_plugins_share_the_options_in_one_parser() -> None:
    parser = argparse.ArgumentParser()
    NginxAuthenticator.add_arguments(parser.add_argument_group("a").add_argument)
    NginxInstaller.add_arguments(parser.add_argument_group("i").add_argument)
    ns = parser.parse_args(["--nginx-server-root", "/srv/nginx", "--nginx-reload-cmd",
                            "systemctl reload nginx"])
    assert ns.nginx_server_root == "/srv/nginx" and ns.nginx_ctl == "nginx"
    assert ns.nginx_reload_cmd == "systemctl reload nginx" and ns.nginx_conf is None


def test_config_test_and_reload_argv(tmp_path: Path) -> None:
    inst, runner = installer(tmp_path)
    inst.config_test()
    inst.reload()
    main = str(tmp_path / "nginx.conf")
    assert runner.calls == [["nginx", "-c", main, "-t"], ["nginx", "-c", main, "-s", "reload"]]
    inst, runner = installer(tmp_path, nginx_reload_cmd="systemctl reload 'nginx.service'",
                             nginx_ctl="/opt/nginx/sbin/nginx",
                             nginx_conf=str(tmp_path / "other.conf"))
    inst.config_test()
    inst.reload()
    assert runner.calls == [["/opt/nginx/sbin/nginx", "-c", str(tmp_path / "other.conf"), "-t"],
                            ["systemctl", "reload", "nginx.service"]]


def test_config_test_failure_carries_the_last_stderr_lines(tmp_path: Path) -> None:
    inst, runner = installer(tmp_path)
    stderr = "".join(f"line {i}\n" for i in range(10)) + (
        'nginx: [emerg] unknown directive "lissen" in /etc/nginx/x:3\n'
        "nginx: configuration file /etc/nginx/nginx.conf test failed\n")
    runner.results.append(Completed((), 1, "", stderr))
    with pytest.raises(PluginError) as caught:
        inst.config_test()
    message = str(caught.value)
    assert "configuration test failed (exit 1)" in message
    assert 'unknown directive "lissen"' in message and "test failed" in message
    assert "line 5" not in message


def test_renewal_params(tmp_path: Path) -> None:
    inst, _ = installer(tmp_path)
    assert inst.renewal_params() == {"nginx_server_root": str(tmp_path), "nginx_ctl": "nginx"}
    inst, _ = installer(tmp_path, nginx_reload_cmd="rc-service nginx reload")
    assert inst.renewal_params()["nginx_reload_cmd"] == "rc-service nginx reload"


def test_prepare_checks_the_binary_and_the_tree(tmp_path: Path) -> None:
    inst, _ = installer(tmp_path, nginx_ctl=str(tmp_path / "no-such-nginx"))
    with pytest.raises(PluginError, match="not installed"):
        inst.prepare()
    inst, _ = installer(tmp_path, nginx_ctl="true")
    (tmp_path / "sites/broken").write_text("server {\n")
    with pytest.raises(PluginError, match=r"sites/broken:1: "):
        inst.prepare()


def test_discover_names(tmp_path: Path) -> None:
    inst, _ = installer(tmp_path)
    assert inst.discover_names() == {"example.org", "www.example.org", "wild.test",
                                     "*.wild.test"}


def test_plan_and_endpoints_through_the_installer(tmp_path: Path) -> None:
    inst, runner = installer(tmp_path)
    req = DeployRequest("example.org", ("example.org",), "/c", "/k", "/ch", "/f",
                        https_port=8443)
    plan = inst.plan_deploy(req)
    assert str(tmp_path / "sites/example") in {c.path for c in plan.changes}
    assert [(e.host, e.port) for e in inst.endpoints(req)] == [("127.0.0.1", 8443)]
    assert runner.calls == []  # planning runs nothing


# -- authenticator --------------------------------------------------------------------------
def task(domain: str, token: str) -> ChallengeTask:
    return ChallengeTask(Identifier("dns", domain), "http-01", token, f"{token}.tp",
                         f"{token}.tp")


def authenticator(root: Path) -> tuple[NginxAuthenticator, FakeRunner]:
    """The authenticator with the core's own temporary transactions (in ``root/work``)
    and a stand-in nginx: commands are recorded, every answer is served at once."""
    auth = NginxAuthenticator(config(root))
    runner = FakeRunner()
    auth.runner = runner
    auth.proc_root = str(root / "no-proc")
    auth.fetch = lambda probe: (200, probe.body.encode() + b"\n")  # served at once
    return auth, runner


def journals(root: Path) -> list[str]:
    """The open temporary transactions (one while a challenge change is applied)."""
    where = root / "work" / "transactions"
    return sorted(os.listdir(where)) if where.exists() else []


def test_challenge_types() -> None:
    auth = NginxAuthenticator(argparse.Namespace())
    assert auth.challenge_types(Identifier("dns", "example.org")) == ["http-01"]
    assert auth.challenge_types(Identifier("dns", "*.example.org")) == []


def test_present_all_once_then_cleanup_undoes_with_the_last_task(tmp_path: Path) -> None:
    auth, runner = authenticator(tmp_path)
    site = tmp_path / "sites/example"
    tasks = [task("example.org", "tokA"), task("www.example.org", "tokB")]
    auth.present_all(tasks)
    text = site.read_text()
    assert "tokA.tp" in text and "tokB.tp" in text
    assert len(journals(tmp_path)) == 1  # one change for both
    main = str(tmp_path / "nginx.conf")
    assert runner.calls == [["nginx", "-c", main, "-t"], ["nginx", "-c", main, "-s", "reload"]]
    auth.cleanup(tasks[0])
    assert "tokB.tp" in site.read_text()  # the other task still needs its answer
    auth.cleanup(tasks[1])
    assert site.read_text() == SITE and journals(tmp_path) == []
    assert runner.calls[-1][-2:] == ["-s", "reload"]
    calls = len(runner.calls)
    auth.cleanup(tasks[1])  # again: harmless
    assert site.read_text() == SITE and len(runner.calls) == calls


def test_present_one_by_one_keeps_earlier_answers(tmp_path: Path) -> None:
    auth, _ = authenticator(tmp_path)
    auth.present(task("example.org", "tokA"))
    first = journals(tmp_path)
    auth.present(task("www.example.org", "tokB"))
    # the first change was swapped for one with both answers
    assert len(first) == 1 and len(journals(tmp_path)) == 1
    text = (tmp_path / "sites/example").read_text()
    assert "tokA.tp" in text and "tokB.tp" in text


def test_present_waits_until_nginx_answers(tmp_path: Path) -> None:
    auth, _ = authenticator(tmp_path)
    asked: list[Probe] = []

    def fetch(probe: Probe) -> tuple[int, bytes]:
        asked.append(probe)
        return (200, probe.body.encode()) if len(asked) > 2 else (404, b"old workers")

    auth.fetch = fetch
    auth.present_all([task("example.org", "tokA")])
    assert len(asked) == 3
    assert asked[0] == Probe("127.0.0.1", 80, "example.org",
                             "/.well-known/acme-challenge/tokA", "tokA.tp")


def test_wait_until_served_is_bounded() -> None:
    probe = Probe("127.0.0.1", 80, "a.test", "/p", "body")

    def refused(_: Probe) -> tuple[int, bytes]:
        raise ConnectionRefusedError

    assert wait_until_served([probe], fetch=refused, timeout=0.05) == [probe]
    assert wait_until_served([probe], fetch=lambda _: (200, b"body\r\n")) == []


def test_http01_probes(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text(
        "events {}\nhttp {\n"
        "  server { listen [::1]:8080; listen 10.1.1.1:8080; server_name a.test; }\n"
        "  server { listen 8080 proxy_protocol; server_name b.test; }\n"
        "  server { listen [::]:8080; server_name c.test; }\n}\n")
    tree = load_tree(str(tmp_path / "nginx.conf"))
    tasks = [task(d, f"t{i}") for i, d in enumerate(("a.test", "b.test", "c.test", "d.test"))]
    # each name is also asked where only a default server would answer it (the temporary
    # block listens there); never through the proxy_protocol listen
    assert [(p.host, p.domain) for p in http01_probes(tree, tasks, 8080)] == [
        ("10.1.1.1", "a.test"), ("::1", "a.test"), ("10.1.1.1", "b.test"),
        ("::1", "c.test"), ("10.1.1.1", "c.test"), ("10.1.1.1", "d.test")]


def test_failed_config_test_undoes_at_once_and_cleanup_still_works(tmp_path: Path) -> None:
    auth, runner = authenticator(tmp_path)
    runner.results.append(Completed((), 1, "", "nginx: [emerg] broken\n"))
    one = task("example.org", "tokA")
    with pytest.raises(PluginError, match="broken"):
        auth.present_all([one])
    assert (tmp_path / "sites/example").read_text() == SITE and journals(tmp_path) == []
    assert [c[-1] for c in runner.calls] == ["-t"]  # never reloaded the broken config
    auth.cleanup(one)
    assert (tmp_path / "sites/example").read_text() == SITE
    assert [c[-1] for c in runner.calls] == ["-t"]


def test_session_reloads_after_undo_when_reload_failed() -> None:
    events: list[str] = []

    def reload() -> None:
        events.append("reload")
        if events.count("reload") == 1:
            raise PluginError("reload failed")

    session = ChallengeSession(lambda plan: (lambda: events.append("undo")),
                               lambda: events.append("test"), reload)
    with pytest.raises(PluginError):
        session.replace(ChangePlan("t", (FileChange("/x", b"x", None),)))
    assert events == ["test", "reload", "undo", "reload"]
    assert not session.active



# -- waiting for a reload -------------------------------------------------------------------
def fake_process(proc: Path, pid: int, parent: int, title: str) -> None:
    (proc / str(pid)).mkdir(parents=True, exist_ok=True)
    (proc / str(pid) / "stat").write_text(f"{pid} (nginx: a b) S {parent} 1 1 0 -1\n")
    (proc / str(pid) / "cmdline").write_bytes(title.encode() + b"\0")


def test_reload_waits_for_new_workers(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    fake_process(proc, 100, 1, "nginx: master process /usr/sbin/nginx")
    fake_process(proc, 101, 100, "nginx: worker process")
    fake_process(proc, 102, 100, "nginx: cache manager process")
    fake_process(proc, 200, 1, "nginx: worker process")  # another master's
    (tmp_path / "nginx.pid").write_text("100\n")
    before = process.snapshot(str(tmp_path / "nginx.pid"), str(proc))
    assert before == process.Workers(100, frozenset({101}))
    assert not process.reloaded(before, str(proc))
    fake_process(proc, 103, 100, "nginx: worker process")
    assert not process.reloaded(before, str(proc))  # 101 still accepts connections
    fake_process(proc, 101, 100, "nginx: worker process is shutting down")
    assert process.reloaded(before, str(proc))
    assert process.snapshot(str(tmp_path / "missing.pid"), str(proc)) is None


def test_installer_reload_fails_when_nginx_never_reloads(tmp_path: Path) -> None:
    inst, runner = installer(tmp_path)
    proc = tmp_path / "proc"
    fake_process(proc, 100, 1, "nginx: master process")
    fake_process(proc, 101, 100, "nginx: worker process")
    (tmp_path / "nginx.pid").write_text("100")
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{\n    include sites/*;\n}}\n")
    inst.proc_root, inst.reload_timeout = str(proc), 0.05
    with pytest.raises(PluginError, match="no new worker processes"):
        inst.reload()
    assert runner.calls[-1][-2:] == ["-s", "reload"]

    def reloading_runner(argv: Sequence[str]) -> Completed:
        fake_process(proc, 102, 100, "nginx: worker process")
        fake_process(proc, 101, 100, "nginx: worker process is shutting down")
        return Completed(tuple(argv), 0, "", "")

    inst.runner = reloading_runner
    inst.reload()  # returns: a new worker runs and the old one is shutting down


def test_a_hung_nginx_command_is_killed_with_what_it_started(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrapper that never answers costs the command timeout, not the run, and leaves
    nothing behind: the core's runner kills the whole process group, the child it
    started too."""
    child = tmp_path / "child.pid"
    ctl = tmp_path / "hung-nginx"
    ctl.write_text(f"#!/bin/sh\nsleep 30 &\necho $! > {child}\nsleep 30\n")
    ctl.chmod(0o755)
    monkeypatch.setattr(nginx_plugin, "COMMAND_TIMEOUT", 0.5)
    installer = NginxInstaller(config(tmp_path, nginx_ctl=str(ctl)))
    started = time.monotonic()
    with pytest.raises(PluginError, match=r"did not finish within 0\.5 s"):
        installer.config_test()
    assert time.monotonic() - started < 10
    stat = Path(f"/proc/{int(child.read_text())}/stat")
    deadline = time.monotonic() + 5
    while stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the command's child outlived it"
        time.sleep(0.05)
