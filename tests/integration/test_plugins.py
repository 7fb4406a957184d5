"""Plugin discovery: third-party entry points, broken plugins, unknown names."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import CERTWRIGHT

pytestmark = pytest.mark.integration


def fake_distribution(site: Path) -> None:
    """A third-party package registering one good and one broken authenticator."""
    dist = site / "thirdparty_auth-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-auth\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[certwright.authenticators]\n"
        "thirdparty = thirdparty_auth:Good\n"
        "broken = thirdparty_broken:Nope\n"
        "needsextra = thirdparty_extra:Plugin [fancy]\n")
    (site / "thirdparty_auth.py").write_text(
        "class Good:\n"
        "    name = 'thirdparty'\n"
        "    description = 'A plugin from another package'\n"
        "    @classmethod\n"
        "    def add_arguments(cls, add):\n"
        "        add('--thirdparty-token', default=None)\n")
    (site / "thirdparty_broken.py").write_text("raise ImportError('needs libfoo')\n")
    (site / "thirdparty_extra.py").write_text("import certwright_no_such_library\n")


def run(site: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(site))
    return subprocess.run([CERTWRIGHT, *args, "--config-dir", str(tmp_path / "c"),
                           "--work-dir", str(tmp_path / "w"), "--logs-dir", str(tmp_path / "l")],
                          env=env, capture_output=True, text=True, timeout=60)


def test_third_party_and_broken_plugins(tmp_path: Path) -> None:
    site = tmp_path / "site"
    fake_distribution(site)
    proc = run(site, tmp_path, "plugins", "--authenticators")
    assert proc.returncode == 0, proc.stderr
    assert "* thirdparty\n  A plugin from another package" in proc.stdout
    assert "* broken" in proc.stdout and "Unavailable: failed to load: ImportError: needs libfoo" \
        in proc.stdout
    assert "* webroot" in proc.stdout, "built-ins register the same way"
    assert ("No module named 'certwright_no_such_library'; install it with: "
            "pip install 'thirdparty-auth[fancy]'") in proc.stdout
    helped = run(site, tmp_path, "--help", "thirdparty")
    assert "--thirdparty-token" in helped.stdout
    bad = run(site, tmp_path, "certonly", "-a", "nosuch", "-d", "x.example.org", "-n")
    assert bad.returncode != 0
    assert "unknown authenticator 'nosuch'; installed:" in bad.stderr and "webroot" in bad.stderr
    broken = run(site, tmp_path, "certonly", "-a", "broken", "-d", "x.example.org", "-n")
    assert "the authenticator 'broken' can't be used: failed to load" in broken.stderr


def test_builtin_plugins_name_extras_that_exist() -> None:
    """An extra named by a built-in plugin's entry point (what a failed import tells the user
    to install) is one the distribution really provides."""
    from importlib import metadata

    dist = metadata.distribution("certwright")
    provided = set(dist.metadata.get_all("Provides-Extra") or [])
    for ep in dist.entry_points:
        assert set(ep.extras) <= provided, (ep.group, ep.name, ep.extras, provided)


def test_options_of_a_plugin_whose_library_is_missing_say_what_to_install(
        tmp_path: Path) -> None:
    site = tmp_path / "site"
    fake_distribution(site)
    why = ("--needsextra-token is an option of the needsextra plugin, which can't be used "
           "here: failed to load: ModuleNotFoundError: No module named "
           "'certwright_no_such_library'; install it with: pip install 'thirdparty-auth[fancy]'")
    proc = run(site, tmp_path, "certonly", "--needsextra-token", "t", "-d", "x.example.org",
               "-n")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"Error: {why}"
    proc = run(site, tmp_path, "certonly", "--needsextra-token=t", "-d", "x.example.org", "-n")
    assert proc.stderr.strip() == f"Error: {why}", "the --opt=value spelling too"
    helped = run(site, tmp_path, "--help", "needsextra")
    assert "The needsextra plugin can't be used here: failed to load: " in helped.stdout
    assert "pip install 'thirdparty-auth[fancy]'" in helped.stdout
    plain = run(site, tmp_path, "certonly", "--no-such-option", "-n")
    assert plain.stderr.strip() == "Error: unrecognized arguments: --no-such-option"
    (tmp_path / "c").mkdir()
    ini = tmp_path / "c" / "cli.ini"
    ini.write_text("needsextra-token = t\n")
    listed = run(site, tmp_path, "certificates")
    assert listed.returncode == 0
    assert f"Warning: {ini}:1: {why} (line ignored)" in listed.stderr, listed.stderr


def test_the_shortcut_of_a_plugin_whose_library_is_missing_says_what_to_install(
        tmp_path: Path) -> None:
    """``--NAME`` exists for every registered plugin (from the entry points, not a list in
    the code): choosing one that can't load names the extra; a name nothing registers is
    an unknown option."""
    site = tmp_path / "site"
    fake_distribution(site)
    proc = run(site, tmp_path, "certonly", "--needsextra", "-d", "x.example.org", "-n")
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1
    assert "needsextra" in proc.stderr and "can't be used" in proc.stderr
    assert "pip install 'thirdparty-auth[fancy]'" in proc.stderr, proc.stderr
    works = run(site, tmp_path, "certonly", "--thirdparty", "--dry-run", "-d", "x.example.org",
                "-n", "--server", "https://127.0.0.1:9/dir")
    assert "unrecognized arguments" not in works.stderr, works.stderr
    unknown = run(site, tmp_path, "certonly", "--nosuchplugin", "-d", "x.example.org", "-n")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "Error: unrecognized arguments: --nosuchplugin"
