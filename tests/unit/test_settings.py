"""Settings: typed, frozen, each value's source; shortcuts from the entry points; the
renewal-conf option table both ways."""

from __future__ import annotations

import dataclasses
from importlib import metadata
from pathlib import Path

import pytest

from certwright.core import cli_parser, plugins, renewal_options
from certwright.core.errors import UsageError
from certwright.core.options import PluginOption
from certwright.core.settings import Settings, Source


def parse(tmp_path: Path, *args: str) -> Settings:
    return cli_parser.parse([*args, "--config-dir", str(tmp_path)],
                            cli_parser.build_parser(partial=True))


def test_a_value_equal_to_the_default_is_given_all_the_same(tmp_path: Path) -> None:
    given = parse(tmp_path, "renew", "--http-01-port", "80")
    assert given.http01_port == 80 and given.given("http01_port")
    assert given.source("http01_port") is Source.COMMAND_LINE
    default = parse(tmp_path, "renew")
    assert default.http01_port == 80 and not default.given("http01_port")
    assert default.source("http01_port") is Source.DEFAULT


def test_cli_ini_is_a_source_and_the_command_line_wins(tmp_path: Path) -> None:
    (tmp_path / "cli.ini").write_text("rsa-key-size = 4096\nemail = ini@example.org\n")
    config = parse(tmp_path, "renew", "-m", "cli@example.org")
    assert config.rsa_key_size == 4096 and config.source("rsa_key_size") is Source.CLI_INI
    assert config.email == "cli@example.org"
    assert config.source("email") is Source.COMMAND_LINE
    assert config.given("rsa_key_size") and config.given("email")


def test_settings_are_frozen_and_derive_records_the_source(tmp_path: Path) -> None:
    config = parse(tmp_path, "renew", "--http-01-port", "80")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.http01_port = 8080  # type: ignore[misc]
    stored = config.derive(Source.RENEWAL_CONF, https_port=8443, nginx_ctl="/bin/nginx")
    assert (config.https_port, stored.https_port) == (443, 8443)
    assert stored.source("https_port") is Source.RENEWAL_CONF and not stored.given("https_port")
    assert stored.nginx_ctl == "/bin/nginx"  # type: ignore[attr-defined]  # plugin option
    assert stored.option("nginx_ctl") == "/bin/nginx"
    assert not hasattr(config, "nginx_ctl")
    assert stored.given("http01_port")  # what the user gave stays given


def _fake_entries(monkeypatch: pytest.MonkeyPatch, **groups: list[str]) -> None:
    found = {g: {n: metadata.EntryPoint(n, "nowhere.module:Cls", g) for n in names}
             for g, names in groups.items()}
    monkeypatch.setattr(plugins, "_all_entries", lambda: found)


def test_shortcuts_come_from_the_entry_points(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_entries(monkeypatch, **{plugins.AUTHENTICATORS: ["webroot", "lamp"],
                                  plugins.INSTALLERS: ["lamp", "mailer"]})
    parser = cli_parser.build_parser()
    config = cli_parser.parse(["run", "--lamp", "--config-dir", str(tmp_path)], parser)
    assert config.shortcuts == {"lamp"} and config.given("shortcuts")
    assert plugins.chosen(config, None, plugins.AUTHENTICATORS) == "lamp"
    assert plugins.chosen(config, None, plugins.INSTALLERS) == "lamp"
    mailer = cli_parser.parse(["run", "--mailer", "--config-dir", str(tmp_path)], parser)
    assert plugins.chosen(mailer, None, plugins.AUTHENTICATORS) is None  # installer only
    assert plugins.chosen(mailer, None, plugins.INSTALLERS) == "mailer"
    with pytest.raises(UsageError, match="--haproxy"):  # nothing registers it here
        cli_parser.parse(["run", "--haproxy", "--config-dir", str(tmp_path)], parser)


def test_renewal_options_round_trip_under_certbots_names() -> None:
    values = {"deploy_hook": "/bin/true", "http01_port": 8080, "reuse_key": True,
              "pref_challs": ("http-01", "dns-01"), "issuance_timeout": 30.0,
              "key_type": "rsa", "rsa_key_size": 4096, "must_staple": False}
    stored = renewal_options.to_conf(lambda dest: values.get(dest))
    assert stored["renew_hook"] == "/bin/true" and "deploy_hook" not in stored
    assert "must_staple" not in stored  # unset options are not written
    as_written = {k: (v if isinstance(v, list) else str(v)) for k, v in stored.items()}
    back = renewal_options.from_conf(as_written)
    assert {k: back[k] for k in stored if k != "renew_hook"} == \
        {k: values[k] for k in stored if k != "renew_hook"}
    assert back["deploy_hook"] == "/bin/true"


@pytest.mark.parametrize(("key", "value"), [("http01_port", "eighty"),
                                            ("key_type", "dsa"), ("issuance_timeout", "soon")])
def test_a_stored_value_its_option_refuses_is_named(key: str, value: str) -> None:
    with pytest.raises(renewal_options.BadValue, match=f"bad value for {key}"):
        renewal_options.from_conf({key: value})


def test_a_stored_none_means_certbots_default_and_store_dirs_are_never_read() -> None:
    back = renewal_options.from_conf({
        "http01_port": "None", "rsa_key_size": "None", "server": "https://ca.example/dir",
        "config_dir": "/etc/letsencrypt", "work_dir": "/elsewhere", "logs_dir": "/x"})
    assert back == {"http01_port": 80, "rsa_key_size": None,
                    "server": "https://ca.example/dir"}


class _Typed:
    name = "typed"
    description = "a plugin with typed options"
    typed_options = (
        PluginOption("--typed-retries", int, 3),
        PluginOption("--typed-fast", bool, False, switch=True),
        PluginOption("--typed-verify", bool, True),
        PluginOption("--typed-hosts", list),
        PluginOption("--typed-mode", choices=("a", "b")),
    )


def test_typed_plugin_options_parse_as_their_types(tmp_path: Path) -> None:
    parser = cli_parser.build_parser([_Typed], partial=True)
    config = cli_parser.parse(
        ["certonly", "--typed-retries", "5", "--typed-fast", "--typed-verify", "no",
         "--typed-hosts", "a.example,b.example", "--typed-hosts", "c.example",
         "--config-dir", str(tmp_path)], parser)
    assert config.typed_retries == 5  # type: ignore[attr-defined]
    assert config.typed_fast is True and config.typed_verify is False  # type: ignore[attr-defined]
    assert config.typed_hosts == ("a.example", "b.example", "c.example")  # type: ignore[attr-defined]
    assert config.given("typed_retries") and not config.given("typed_mode")
    default = cli_parser.parse(["certonly", "--config-dir", str(tmp_path)], parser)
    assert default.typed_retries == 3 and default.typed_hosts is None  # type: ignore[attr-defined]
    for bad in (["--typed-retries", "many"], ["--typed-verify", "perhaps"],
                ["--typed-mode", "c"]):
        with pytest.raises(UsageError, match=bad[0]):
            cli_parser.parse(["certonly", *bad, "--config-dir", str(tmp_path)], parser)


def test_a_plugin_option_must_be_declared_sensibly() -> None:
    with pytest.raises(ValueError, match="--name"):
        PluginOption("typed-x")
    with pytest.raises(ValueError, match="kind"):
        PluginOption("--typed-x", dict)
    with pytest.raises(ValueError, match="switch"):
        PluginOption("--typed-x", int, switch=True)
    assert PluginOption("--typed-x", bool).convert("True") is True  # as a renewal conf has it
    assert PluginOption("--typed-x", float).convert("2.5") == 2.5


def test_nothing_in_the_settings_can_be_changed_in_place(tmp_path: Path) -> None:
    config = parse(tmp_path, "renew", "-d", "a.example").derive(nginx_ctl="nginx")
    with pytest.raises(TypeError):
        config.plugin_options["nginx_ctl"] = "other"  # type: ignore[index]
    with pytest.raises(TypeError):
        config.sources["http01_port"] = Source.COMMAND_LINE  # type: ignore[index]
    assert isinstance(config.domains, tuple)


def test_core_options_a_renewal_does_not_reuse_are_never_read_from_the_file() -> None:
    back = renewal_options.from_conf({
        "dry_run": "True", "quiet": "True", "force_renewal": "True", "verb": "revoke",
        "server": "https://ca.example/dir", "nginx_server_root": "/etc/nginx"})
    assert back == {"server": "https://ca.example/dir", "nginx_server_root": "/etc/nginx"}
