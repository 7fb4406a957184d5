"""A value given on the command line wins over the lineage's stored one, even when it
equals the default (the settings record where each value came from)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.conftest import Cli
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration

# a loopback address of its own: port 80 there is ours, whatever else listens on 127.0.0.1
ADDRESS = "127.0.0.80"


def test_renew_with_http01_port_80_overrides_a_stored_8080(
        pebble_factory, tmp_path: Path) -> None:
    ca: Pebble = pebble_factory(http_port=80)  # Pebble validates http-01 on port 80
    name = "port80.example.org"
    ca.add_a(name, [ADDRESS])
    cli = Cli(tmp_path, ca)
    cli("certonly", "--standalone", "--http-01-address", ADDRESS, "--http-01-port", "80",
        "-d", name)
    conf = cli.config_dir / "renewal" / f"{name}.conf"
    text = conf.read_text()
    assert re.search(r"^http01_port = 80$", text, re.M), text
    # as if issued earlier through a port 8080 (behind a proxy): stored 8080
    conf.write_text(re.sub(r"^http01_port = 80$", "http01_port = 8080", text, flags=re.M))
    # without it the stored 8080 is used: nothing answers Pebble on port 80
    proc = cli("renew", "--force-renewal", "--no-random-sleep-on-renew", check=False,
               account=False)
    assert proc.returncode == 1 and "1 failed" in proc.stdout, proc.stdout + proc.stderr
    # given, 80 is used although it is the default, and stored for the next renewals
    proc = cli("renew", "--force-renewal", "--no-random-sleep-on-renew",
               "--http-01-port", "80", check=False, account=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 renewed" in proc.stdout
    assert re.search(r"^http01_port = 80$", conf.read_text(), re.M)


def test_a_renewal_conf_naming_another_store_renews_in_this_one(
        cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    """Certbot may write ``config_dir``/``work_dir`` into a renewal conf; a store copied
    from elsewhere keeps naming the old place. The lineage renews where it was found, also
    when the store's directories are the defaults (not given: the file's would win)."""
    from certwright.core.settings import Settings
    from certwright.core.storage.lineage import load_lineage
    from certwright.core.verbs.renew import lineage_config

    name = "moved.example.org"
    cli("certonly", "--standalone", "--http-01-address", "127.0.0.1", "--http-01-port",
        str(pebble.http_port), "-d", name)
    conf = cli.config_dir / "renewal" / f"{name}.conf"
    elsewhere = tmp_path / "old-store"
    conf.write_text(conf.read_text().replace(
        "[renewalparams]\n", f"[renewalparams]\nconfig_dir = {elsewhere}/config\n"
                             f"work_dir = {elsewhere}/work\nlogs_dir = {elsewhere}/logs\n"))
    here = Settings(config_dir=str(cli.config_dir), work_dir=str(tmp_path / "work"))
    assert not here.given("config_dir")  # as with the built-in default
    renewing = lineage_config(here, load_lineage(cli.config_dir, name))
    assert (renewing.config_dir, renewing.work_dir) == (here.config_dir, here.work_dir)
    assert renewing.authenticator == "standalone" and renewing.certname == name
    proc = cli("renew", "--force-renewal", "--no-random-sleep-on-renew", check=False,
               account=False)
    assert proc.returncode == 0 and "1 renewed" in proc.stdout, proc.stdout + proc.stderr
    assert not elsewhere.exists(), "nothing written to the store the file names"


def test_a_plugins_stored_options_are_read_back_as_it_declares_them(
        cli: Cli, pebble: Pebble) -> None:
    """Values in a renewal conf are strings; a plugin's typed options come back typed (the
    manual authenticator's switch is a bool), and one that isn't its type is refused,
    naming the file."""
    from certwright.core.errors import ConfigError
    from certwright.core.settings import Settings
    from certwright.core.storage.lineage import load_lineage
    from certwright.core.verbs.renew import lineage_config

    name = "typed.example.org"
    cli("certonly", "--standalone", "--http-01-address", "127.0.0.1", "--http-01-port",
        str(pebble.http_port), "-d", name)
    conf = cli.config_dir / "renewal" / f"{name}.conf"
    text = conf.read_text().replace("authenticator = standalone", "authenticator = manual")
    conf.write_text(text.replace("[renewalparams]\n", "[renewalparams]\n"
                                 "manual_public_ip_logging_ok = True\n"))
    here = Settings(config_dir=str(cli.config_dir), work_dir=str(cli.base / "work"))
    renewing = lineage_config(here, load_lineage(cli.config_dir, name))
    assert renewing.manual_public_ip_logging_ok is True  # type: ignore[attr-defined]
    conf.write_text(conf.read_text().replace("logging_ok = True", "logging_ok = perhaps"))
    with pytest.raises(ConfigError, match=f"{conf}: bad value for manual_public_ip_logging_ok"):
        lineage_config(here, load_lineage(cli.config_dir, name))


@pytest.mark.parametrize(("given", "dest", "stored", "expected"), [
    (["--https-port", "443"], "https_port", "8443", 443),
    (["--issuance-timeout", "90"], "issuance_timeout", "30.0", 90.0),
    (["--http-01-address", ""], "http01_address", "127.0.0.1", ""),
])
def test_given_values_equal_to_their_defaults_override_stored_ones(
        cli: Cli, pebble: Pebble, given: list[str], dest: str, stored: str,
        expected: object) -> None:
    """The same for every stored option with a default (renew and install alike)."""
    from certwright.core import cli_parser
    from certwright.core.storage.lineage import load_lineage
    from certwright.core.verbs.install import _stored_installer
    from certwright.core.verbs.renew import lineage_config

    name = "defaults.example.org"
    cli("certonly", "--standalone", "--http-01-address", "127.0.0.1", "--http-01-port",
        str(pebble.http_port), "-d", name)
    conf = cli.config_dir / "renewal" / f"{name}.conf"
    text = re.sub(rf"^{dest} = .*\n", "", conf.read_text(), flags=re.M)
    conf.write_text(text.replace("[renewalparams]\n",
                                 f"[renewalparams]\n{dest} = {stored}\ninstaller = nginx\n"))
    lin = load_lineage(cli.config_dir, name)
    for verb in ("renew", "install"):
        config = cli_parser.parse([verb, *given, *cli.dirs()], cli_parser.build_parser())
        assert config.given(dest)
        found = lineage_config(config, lin) if verb == "renew" else \
            _stored_installer(config, lin)
        assert found.option(dest) == expected, (verb, found.option(dest))
        assert found.installer == "nginx"


def test_a_planted_core_option_in_a_renewal_conf_is_not_applied(
        cli: Cli, pebble: Pebble) -> None:
    """``dry_run = True`` written into a renewal conf (by hand, or planted) does not turn
    every renewal of the lineage into a test that saves nothing."""
    name = "planted.example.org"
    cli("certonly", "--standalone", "--http-01-address", "127.0.0.1", "--http-01-port",
        str(pebble.http_port), "-d", name)
    conf = cli.config_dir / "renewal" / f"{name}.conf"
    conf.write_text(conf.read_text().replace(
        "[renewalparams]\n", "[renewalparams]\ndry_run = True\nquiet = True\n"))
    proc = cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False)
    assert "1 renewed" in proc.stdout, proc.stdout
    assert (cli.config_dir / "archive" / name / "cert2.pem").exists()
