"""cli.ini lines as ConfigArgParse (Certbot's reader) splits them."""

import pytest

from certwright.core.cli_ini import read_ini, split_line
from certwright.core.cli_parser import build_parser


@pytest.mark.parametrize(("line", "expected"), [
    ("email = a@example.org", ("email", "a@example.org")),
    ("email: a@example.org", ("email", "a@example.org")),
    ("email a@example.org", ("email", "a@example.org")),
    ("--email=a@example.org", ("--email", "a@example.org")),
    ("  agree-tos  ", ("agree-tos", None)),
    ("agree-tos =", ("agree-tos", "")),
    ("key-type = rsa ; why", ("key-type", "rsa")),
    ("key-type = rsa # why", ("key-type", "rsa")),
    ("email = a#b@example.org", ("email", "a#b@example.org")),
    ("deploy-hook = 'systemctl reload nginx'", ("deploy-hook", "systemctl reload nginx")),
    ("# comment", None), ("; comment", None), ("[section]", None), ("---", None), ("", None),
])
def test_line_syntax(line, expected):
    assert split_line(line) == expected


def test_values_become_single_words_and_lists_repeat(tmp_path):
    ini = tmp_path / "cli.ini"
    ini.write_text("pre-hook = -x\ndomains = [a.example.org, b.example.org]\n"
                   "reuse-key = false\nnon-interactive = yes\n")
    found = read_ini(ini, build_parser())
    assert found.argv == ["--pre-hook=-x", "--domains=a.example.org",
                          "--domains=b.example.org", "--non-interactive"]
    assert found.warnings == []


def test_keys_that_would_exit_or_nest_are_skipped(tmp_path):
    ini = tmp_path / "cli.ini"
    ini.write_text("version\nhelp = true\nconfig = other.ini\n")
    found = read_ini(ini, build_parser())
    assert found.argv == []
    assert [w.split(": ", 1)[0] for w in found.warnings] == [f"{ini}:{n}" for n in (1, 2, 3)]
