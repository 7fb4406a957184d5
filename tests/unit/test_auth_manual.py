"""manual authenticator: real shell hooks, their environment, and the interactive path."""

from __future__ import annotations

import argparse
import io
import logging
from pathlib import Path
from typing import Any

import pytest

from certwright.authenticators.manual import ManualAuthenticator
from certwright.core.errors import PluginError
from certwright.core.interfaces import Authenticator, ChallengeTask, Identifier
from tests.conftest import THUMBPRINT, http01_task

ALL = ("example.com", "*.example.com", "www.example.com")


def http_task(domain: str = "www.example.com", token: str = "tok_en-1") -> ChallengeTask:
    return http01_task(token, domain, all_domains=ALL, remaining=2)


def dns_task(domain: str = "*.example.com") -> ChallengeTask:
    return ChallengeTask(
        identifier=Identifier("dns", domain),
        challenge_type="dns-01",
        token="dns-token",
        key_authorization=f"dns-token.{THUMBPRINT}",
        validation="LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0",
        all_domains=ALL,
        remaining=0,
    )


def hook(tmp_path: Path, name: str, body: str) -> str:
    script = tmp_path / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return str(script)


def env_dumper(tmp_path: Path, name: str, out: Path, extra: str = "") -> str:
    """A hook that writes every CERTBOT_* variable it sees to ``out`` (one per line)."""
    return hook(tmp_path, name, f"env | grep '^CERTBOT_' | sort > '{out}'\n{extra}")


def seen(out: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.read_text().splitlines())


def config(**options: Any) -> argparse.Namespace:
    return argparse.Namespace(noninteractive=True, **options)


def test_satisfies_the_protocol() -> None:
    assert isinstance(ManualAuthenticator(argparse.Namespace()), Authenticator)


def test_options_parse_with_certbot_names() -> None:
    parser = argparse.ArgumentParser()
    ManualAuthenticator.add_arguments(parser.add_argument_group("manual").add_argument)
    ns = parser.parse_args(
        ["--manual-auth-hook", "/bin/a", "--manual-cleanup-hook", "/bin/c",
         "--manual-public-ip-logging-ok"]
    )  # fmt: skip
    assert (ns.manual_auth_hook, ns.manual_cleanup_hook) == ("/bin/a", "/bin/c")
    defaults = parser.parse_args([])
    assert (defaults.manual_auth_hook, defaults.manual_cleanup_hook) == (None, None)
    assert "--manual-public-ip-logging-ok" not in parser.format_help()
    assert ManualAuthenticator(ns).renewal_params() == {
        "manual_auth_hook": "/bin/a",
        "manual_cleanup_hook": "/bin/c",
    }
    assert ManualAuthenticator(defaults).renewal_params() == {}


def test_http01_auth_hook_sees_certbots_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTBOT_AUTH_OUTPUT", "stale value from a parent process")
    out = tmp_path / "auth.env"
    auth = ManualAuthenticator(config(manual_auth_hook=env_dumper(tmp_path, "auth", out)))
    auth.prepare()
    t = http_task()
    auth.present(t)
    assert seen(out) == {
        "CERTBOT_ALL_DOMAINS": "example.com,*.example.com,www.example.com",
        "CERTBOT_DOMAIN": "www.example.com",
        "CERTBOT_REMAINING_CHALLENGES": "2",
        "CERTBOT_TOKEN": "tok_en-1",
        "CERTBOT_VALIDATION": t.key_authorization,
    }
    auth.cleanup(t)


def test_dns01_hook_gets_the_base_domain_and_no_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTBOT_TOKEN", "stale")
    out = tmp_path / "auth.env"
    auth = ManualAuthenticator(config(manual_auth_hook=env_dumper(tmp_path, "auth", out)))
    t = dns_task("*.example.com")
    auth.present(t)
    assert seen(out) == {
        "CERTBOT_ALL_DOMAINS": "example.com,*.example.com,www.example.com",
        "CERTBOT_DOMAIN": "example.com",
        "CERTBOT_REMAINING_CHALLENGES": "0",
        "CERTBOT_VALIDATION": "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0",
    }


def test_auth_output_reaches_the_cleanup_hook(tmp_path: Path) -> None:
    auth_out, cleanup_out = tmp_path / "auth.env", tmp_path / "cleanup.env"
    raw = tmp_path / "auth_output"
    auth = ManualAuthenticator(
        config(
            manual_auth_hook=env_dumper(
                tmp_path, "auth", auth_out, 'echo "  id-$CERTBOT_DOMAIN"\necho line2\necho\n'
            ),
            manual_cleanup_hook=env_dumper(
                tmp_path, "cleanup", cleanup_out, f'printf "%s" "$CERTBOT_AUTH_OUTPUT" > {raw}\n'
            ),
        )
    )
    first, second = dns_task("*.example.com"), http_task("example.com", token="other")
    auth.present(first)
    auth.present(second)
    assert "CERTBOT_AUTH_OUTPUT" not in seen(auth_out)
    auth.cleanup(first)
    assert raw.read_text() == "id-example.com\nline2"  # the auth hook's stdout, stripped
    cleanup_env = seen(cleanup_out)
    assert cleanup_env["CERTBOT_VALIDATION"] == first.validation
    assert cleanup_env["CERTBOT_DOMAIN"] == "example.com"
    assert "CERTBOT_TOKEN" not in cleanup_env
    auth.cleanup(second)
    assert seen(cleanup_out)["CERTBOT_TOKEN"] == "other"
    assert raw.read_text() == "id-example.com\nline2"


def test_hook_commands_run_through_the_shell(tmp_path: Path) -> None:
    out = tmp_path / "out"
    auth = ManualAuthenticator(
        config(manual_auth_hook=f'printf "%s|%s" "$CERTBOT_DOMAIN" "$CERTBOT_TOKEN" > {out}')
    )
    auth.present(http_task())
    assert out.read_text() == "www.example.com|tok_en-1"


def test_a_failing_auth_hook_names_hook_status_and_last_stderr_line(tmp_path: Path) -> None:
    script = hook(
        tmp_path, "auth", "echo starting >&2\necho 'API said: zone not found' >&2\nexit 3\n"
    )
    auth = ManualAuthenticator(config(manual_auth_hook=script))
    with pytest.raises(PluginError) as err:
        auth.present(http_task())
    assert str(err.value) == (
        f"--manual-auth-hook '{script}' failed with exit status 3 for www.example.com "
        "(http-01): API said: zone not found"
    )


def test_a_missing_hook_program_is_reported(tmp_path: Path) -> None:
    auth = ManualAuthenticator(config(manual_auth_hook=str(tmp_path / "missing")))
    with pytest.raises(PluginError, match=r"exit status 127 .*missing"):
        auth.present(http_task())


def test_a_failing_cleanup_hook_is_only_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    script = hook(tmp_path, "cleanup", "echo 'could not delete record' >&2\nexit 1\n")
    auth = ManualAuthenticator(config(manual_auth_hook="true", manual_cleanup_hook=script))
    t = dns_task()
    auth.present(t)
    with caplog.at_level(logging.WARNING):
        auth.cleanup(t)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"--manual-cleanup-hook '{script}' failed with exit status 1 for example.com "
        "(dns-01): could not delete record"
    ]


def test_cleanup_runs_even_after_a_failed_auth_hook(tmp_path: Path) -> None:
    out = tmp_path / "cleanup.env"
    auth = ManualAuthenticator(
        config(manual_auth_hook="echo half-done; exit 1",
               manual_cleanup_hook=env_dumper(tmp_path, "cleanup", out))
    )  # fmt: skip
    t = http_task()
    with pytest.raises(PluginError):
        auth.present(t)
    auth.cleanup(t)
    assert seen(out)["CERTBOT_AUTH_OUTPUT"] == ""


def test_non_interactive_without_auth_hook_is_an_error() -> None:
    auth = ManualAuthenticator(config())
    with pytest.raises(PluginError, match="needs --manual-auth-hook in non-interactive mode"):
        auth.prepare()
    with pytest.raises(PluginError, match="needs --manual-auth-hook"):
        auth.present(http_task())


def test_interactive_http01_shows_url_and_content_and_waits(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = io.StringIO("\n")
    monkeypatch.setattr("sys.stdin", stdin)
    auth = ManualAuthenticator(argparse.Namespace(noninteractive=False))
    auth.prepare()
    t = http_task()
    auth.present(t)
    shown = capsys.readouterr().out
    assert "http://www.example.com/.well-known/acme-challenge/tok_en-1" in shown
    assert t.key_authorization in shown
    assert stdin.read() == ""  # the Enter was consumed


def test_interactive_dns01_shows_record_name_and_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    auth = ManualAuthenticator(argparse.Namespace())
    auth.present(dns_task())
    shown = capsys.readouterr().out
    assert "_acme-challenge.example.com." in shown
    assert "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0" in shown


def test_interactive_with_closed_stdin_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(PluginError, match="stdin is closed"):
        ManualAuthenticator(argparse.Namespace()).present(dns_task())


@pytest.mark.parametrize(
    ("pref", "identifier", "expected"),
    [
        (None, Identifier("dns", "example.com"), ["http-01", "dns-01"]),
        (None, Identifier("dns", "*.example.com"), ["dns-01"]),
        (None, Identifier("ip", "192.0.2.1"), ["http-01"]),
        (["dns-01"], Identifier("dns", "example.com"), ["dns-01"]),
        (["dns-01", "http-01"], Identifier("dns", "example.com"), ["dns-01", "http-01"]),
        (["http-01"], Identifier("dns", "*.example.com"), []),
        (["tls-alpn-01", "http"], Identifier("dns", "example.com"), ["http-01"]),
        ("dns,http", Identifier("dns", "example.com"), ["dns-01", "http-01"]),
    ],
)
def test_challenge_types_follow_preferred_challenges(
    pref: object, identifier: Identifier, expected: list[str]
) -> None:
    auth = ManualAuthenticator(argparse.Namespace(pref_challs=pref))
    assert list(auth.challenge_types(identifier)) == expected


def test_unsupported_challenge_type_is_refused() -> None:
    t = ChallengeTask(Identifier("dns", "example.com"), "tls-alpn-01", "tok", "k", "v")
    with pytest.raises(PluginError, match="cannot answer tls-alpn-01"):
        ManualAuthenticator(config(manual_auth_hook="true")).present(t)


def test_present_all_is_the_capability_the_core_uses() -> None:
    from certwright.core.interfaces import SupportsPresentAll

    assert isinstance(ManualAuthenticator(config()), SupportsPresentAll)


def test_interactive_shows_every_record_before_one_enter(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The person publishes every record, waits for propagation once, and presses Enter
    once: with one Enter per record, the CA could check the first before the second is
    published."""
    stdin = io.StringIO("\n")
    monkeypatch.setattr("sys.stdin", stdin)
    auth = ManualAuthenticator(argparse.Namespace(noninteractive=False))
    auth.present_all([dns_task(), dns_task("example.com"), http_task()])
    shown = capsys.readouterr().out
    assert shown.count("Press Enter") == 1
    assert shown.index("_acme-challenge.example.com.") < shown.index("Press Enter")
    assert shown.count("publish a DNS TXT record") == 2
    assert "/.well-known/acme-challenge/tok_en-1" in shown
    assert shown.index("propagation") < shown.index("Press Enter")


def test_present_all_runs_the_auth_hook_for_each_task_in_order(tmp_path: Path) -> None:
    out = tmp_path / "order"
    line = f"echo \"$CERTBOT_DOMAIN $CERTBOT_REMAINING_CHALLENGES\" >> '{out}'\n"
    auth = ManualAuthenticator(config(manual_auth_hook=hook(tmp_path, "auth.sh", line)))
    tasks = [ChallengeTask(Identifier("dns", d), "dns-01", "t", "t.x", "v", ALL, remaining=r)
             for d, r in (("a.example.com", 1), ("b.example.com", 0))]
    auth.present_all(tasks)
    assert out.read_text().splitlines() == ["a.example.com 1", "b.example.com 0"]
