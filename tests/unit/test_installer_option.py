"""``-i`` given more than once: one certificate into several servers."""

from __future__ import annotations

from pathlib import Path

from certwright.core.cli_parser import build_parser, parse
from certwright.core.verbs.install import split_names


def _installer(tmp_path: Path, *args: str) -> str:
    parser = build_parser()
    ns = parse(["install", *args, "--config-dir", str(tmp_path), "--work-dir",
                str(tmp_path / "w"), "--logs-dir", str(tmp_path / "l")], parser)
    return str(ns.installer)


def test_repeated_installers_are_kept_in_order_once_each(tmp_path: Path) -> None:
    assert _installer(tmp_path, "-i", "postfix") == "postfix"
    assert _installer(tmp_path, "-i", "postfix", "-i", "dovecot", "--installer=postfix") == \
        "postfix,dovecot"
    assert split_names("postfix,dovecot") == ["postfix", "dovecot"]
    assert split_names(None) == split_names("None") == []


def test_an_installer_on_the_command_line_replaces_the_one_in_cli_ini(tmp_path: Path) -> None:
    (tmp_path / "cli.ini").write_text("installer = nginx\n")
    assert _installer(tmp_path) == "nginx"
    assert _installer(tmp_path, "-i", "postfix", "-i", "dovecot") == "postfix,dovecot"


def test_comma_joined_installers_each_add_their_options() -> None:
    from certwright.core.cli import _named_plugins

    names = {cls.name for cls in _named_plugins(["install", "-i", "postfix,dovecot"])}
    assert names == {"postfix", "dovecot"}


def test_a_renewal_keeps_the_stored_options_of_every_installer() -> None:
    from certwright.core.verbs.issue import keep_installer_params

    old = {"installer": "postfix,dovecot", "postfix_config_dir": "/srv/postfix",
           "dovecot_config": "/srv/dovecot.conf", "nginx_server_root": "/old", "x": "y"}
    kept = keep_installer_params(old, {"installer": "postfix,dovecot"})
    assert kept == {"installer": "postfix,dovecot", "postfix_config_dir": "/srv/postfix",
                    "dovecot_config": "/srv/dovecot.conf"}
