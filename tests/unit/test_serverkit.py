"""The toolkit the server installers share (core/serverkit.py, core/http01.add_probe)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from certwright.core import serverkit
from certwright.core.errors import PluginError
from certwright.core.http01 import Probe, add_probe
from certwright.core.interfaces import ChallengeTask, Identifier
from certwright.core.runner import Completed
from tests.unit.test_nginx_plugin import fake_process


def task(key_authorization: str = "tok.thumb") -> ChallengeTask:
    return ChallengeTask(Identifier("dns", "a.test"), "http-01", "tok", key_authorization,
                         key_authorization)


@pytest.mark.parametrize(("host", "expected"), [
    ("*", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("[::]", "::1"), ("::", "::1"),
    ("[::1]", "::1"), ("192.0.2.7", "192.0.2.7")])
def test_probe_host_turns_wildcards_into_loopback(host: str, expected: str) -> None:
    assert serverkit.probe_host(host) == expected


def test_add_probe_prefers_ipv4_and_adds_once() -> None:
    probes: list[Probe] = []
    add_probe(probes, ["[::1]", "*"], 80, task())
    add_probe(probes, ["*"], 80, task())
    add_probe(probes, [], 80, task())
    assert probes == [Probe("127.0.0.1", 80, "a.test", "/.well-known/acme-challenge/tok",
                            "tok.thumb")]


def test_check_command_is_one_line_with_the_tail_of_the_output() -> None:
    serverkit.check_command(Completed(("x",), 0, "", ""), "Apache", "test")
    done = Completed(("x",), 1, "Syntax OK\n", "a\n\nAH00526: bad line\n")
    with pytest.raises(PluginError) as err:
        serverkit.check_command(done, "Apache", "configuration test")
    assert str(err.value) == "Apache configuration test failed (exit 1): a | AH00526: bad line"


def test_options_added_once_for_two_plugins_of_one_server() -> None:
    parser = argparse.ArgumentParser()
    options: list[serverkit.Option] = [("--x-root", {"default": "/etc/x"})]
    serverkit.add_options(parser.add_argument, options)
    serverkit.add_options(parser.add_argument, options)  # the authenticator asks again
    assert parser.parse_args([]).x_root == "/etc/x"


def test_key_authorization_with_a_quote_or_newline_is_refused() -> None:
    assert serverkit.key_authorization(task()) == "tok.thumb"
    for bad in ('tok"; evil', "tok\nInclude /x"):
        with pytest.raises(PluginError, match=r"a\.test"):
            serverkit.key_authorization(task(bad))


def test_children_and_waiting_through_proc(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    fake_process(proc, 10, 1, "apache2 -k start")
    fake_process(proc, 11, 10, "apache2 -k start")
    fake_process(proc, 20, 1, "other")
    assert serverkit.children(10, str(proc)) == {11: ""}
    assert serverkit.children(10, str(proc), titles=True) == {11: "apache2 -k start"}
    assert serverkit.watchable(10, str(proc)) and not serverkit.watchable(99, str(proc))
    (tmp_path / "pid").write_text("10\n")
    assert serverkit.read_pid(str(tmp_path / "pid")) == 10
    assert serverkit.read_pid(str(tmp_path / "missing")) is None
    assert not serverkit.wait_for(lambda: False, timeout=0.05)
    assert serverkit.wait_for(lambda: True, timeout=0.05)


def test_every_installer_reads_an_on_off_option_alike_and_refuses_garbage() -> None:
    """A renewal conf or cli.ini holds on/off options as text: true/false, yes/no, on/off,
    1/0 all read the same; anything else is an error naming the option, not a silent off."""
    from certwright.installers.apache import ApacheInstaller
    from certwright.installers.dovecot import DovecotInstaller
    from certwright.installers.postfix import PostfixInstaller

    cases = [(PostfixInstaller, "postfix_client_tls", "--postfix-client-tls", "client_tls"),
             (DovecotInstaller, "dovecot_require_tls", "--dovecot-require-tls", "require_tls"),
             (ApacheInstaller, "apache_handle_sites", "--apache-handle-sites", "handle_sites")]
    for cls, dest, flag, attr in cases:
        for text, value in (("True", True), ("on", True), ("0", False), ("no", False),
                            (True, True), (False, False)):
            assert getattr(cls(argparse.Namespace(**{dest: text})), attr) is value, (flag, text)
        with pytest.raises(PluginError, match=f"^{flag} maybe: give true or false$"):
            cls(argparse.Namespace(**{dest: "maybe"}))


def test_an_unset_option_read_back_as_none_is_unset() -> None:
    """``None`` as a renewal conf writes it is no command to run."""
    from certwright.installers.dovecot import DovecotInstaller
    from certwright.installers.haproxy import HaproxyInstaller
    from certwright.installers.nginx import NginxInstaller

    assert NginxInstaller(argparse.Namespace(nginx_reload_cmd="None")).reload_cmd is None
    assert DovecotInstaller(argparse.Namespace(dovecot_reload_cmd="None")).reload_cmd is None
    assert HaproxyInstaller(argparse.Namespace(haproxy_reload_cmd="None")).reload_cmd is None
    nginx = NginxInstaller(argparse.Namespace(nginx_ctl="", nginx_server_root="/srv/ngx"))
    assert (nginx.ctl, nginx.main_conf) == ("nginx", "/srv/ngx/nginx.conf")


def test_a_missing_server_binary_names_the_option(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere" / "haproxy")
    with pytest.raises(PluginError, match=r"^HAProxy is not installed here \('.*' is not "
                       r"found; see --haproxy-bin\)$"):
        serverkit.require_tool(missing, "HAProxy", "--haproxy-bin")
    assert serverkit.require_tool("sh", "a shell", "--sh") == serverkit.find_tool("sh")
    assert serverkit.find_tool(str(tmp_path)) is None  # a directory is no command
