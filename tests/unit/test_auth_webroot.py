"""webroot authenticator: token files, modes, cleanup, and Certbot's -w / -d ordering."""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from certwright.authenticators.webroot import (
    WebrootAuthenticator,
    assign_webroot,
)
from certwright.core.errors import PluginError
from certwright.core.interfaces import Authenticator, ChallengeTask, Identifier
from tests.conftest import http01_task

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"


def task(domain: str = "example.com", token: str = TOKEN) -> ChallengeTask:
    return http01_task(token, domain, all_domains=(domain,))


def config(**options: Any) -> argparse.Namespace:
    return argparse.Namespace(noninteractive=True, **options)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class DomainsAction(argparse.Action):
    """What the core's -d does: append the comma-separated names, then assign_webroot."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        assert isinstance(values, str)
        new = [d.strip() for d in values.split(",") if d.strip()]  # case kept, as the core does
        domains = list(getattr(namespace, "domains", None) or [])
        domains.extend(d for d in new if d not in domains)
        namespace.domains = domains
        assign_webroot(namespace, new)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(exit_on_error=False)
    p.add_argument("-d", "--domains", "--domain", dest="domains", action=DomainsAction)
    WebrootAuthenticator.add_arguments(p.add_argument_group("webroot").add_argument)
    return p


@pytest.fixture
def webroot(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    return root


def test_satisfies_the_protocol(webroot: Path) -> None:
    auth = WebrootAuthenticator(config(webroot_path=[str(webroot)]))
    assert isinstance(auth, Authenticator)
    assert WebrootAuthenticator.name == "webroot"


def test_present_writes_the_key_authorization_with_readable_modes(webroot: Path) -> None:
    auth = WebrootAuthenticator(config(webroot_path=[str(webroot)], domains=["example.com"]))
    auth.prepare()
    t = task()
    old_umask = os.umask(0o077)  # a strict umask must not make the files unreadable
    try:
        auth.present(t)
    finally:
        os.umask(old_umask)
    well_known = webroot / ".well-known"
    challenge_dir = well_known / "acme-challenge"
    token_file = challenge_dir / TOKEN
    assert token_file.read_bytes() == t.key_authorization.encode()
    assert mode(token_file) == 0o644
    assert mode(well_known) == 0o755
    assert mode(challenge_dir) == 0o755
    assert sorted(os.listdir(challenge_dir)) == [TOKEN]  # no temporary file left behind

    auth.cleanup(t)
    assert not well_known.exists()
    assert webroot.is_dir()


def test_cleanup_keeps_directories_it_did_not_create(webroot: Path) -> None:
    well_known = webroot / ".well-known"
    well_known.mkdir()
    (well_known / "security.txt").write_text("Contact: mailto:security@example.com\n")
    auth = WebrootAuthenticator(config(webroot_path=[str(webroot)]))
    t = task()
    auth.present(t)
    assert (well_known / "acme-challenge" / TOKEN).is_file()
    auth.cleanup(t)
    assert not (well_known / "acme-challenge").exists()
    assert (well_known / "security.txt").is_file()


def test_cleanup_keeps_an_existing_empty_challenge_directory(webroot: Path) -> None:
    challenge_dir = webroot / ".well-known" / "acme-challenge"
    challenge_dir.mkdir(parents=True)
    auth = WebrootAuthenticator(config(webroot_path=[str(webroot)]))
    t = task()
    auth.present(t)
    auth.cleanup(t)
    assert challenge_dir.is_dir()
    assert os.listdir(challenge_dir) == []


def test_directories_go_only_after_the_last_token(webroot: Path) -> None:
    auth = WebrootAuthenticator(config(webroot_path=[str(webroot)]))
    first, second = task("example.com"), task("www.example.com", token="second-token_x")
    auth.present(first)
    auth.present(second)
    challenge_dir = webroot / ".well-known" / "acme-challenge"
    assert sorted(os.listdir(challenge_dir)) == sorted([TOKEN, "second-token_x"])
    auth.cleanup(first)
    assert os.listdir(challenge_dir) == ["second-token_x"]
    auth.cleanup(second)
    assert not (webroot / ".well-known").exists()


def test_instances_sharing_a_root_the_last_one_removes_what_was_created(
        webroot: Path) -> None:
    """Parallel renewals: two instances on one web root; the first to finish leaves the
    directories (the other's token is in them), the last one removes them."""
    first = WebrootAuthenticator(config(webroot_path=[str(webroot)]))
    second = WebrootAuthenticator(config(webroot_path=[str(webroot)]))
    a, b = task("a.example.com"), task("b.example.com", token="second-token_x")
    first.present(a)
    second.present(b)
    first.cleanup(a)
    challenge_dir = webroot / ".well-known" / "acme-challenge"
    assert os.listdir(challenge_dir) == ["second-token_x"]
    second.cleanup(b)
    assert not (webroot / ".well-known").exists()


def test_what_an_earlier_run_created_is_not_removed_by_a_later_one(webroot: Path) -> None:
    """Created directories are remembered only while instances use the root: once the
    run that made them is over, directories at those paths are the user's."""
    import gc

    earlier = WebrootAuthenticator(config(webroot_path=[str(webroot)]))
    t = task()
    earlier.present(t)
    well_known = webroot / ".well-known"
    (well_known / "acme-challenge" / "user-file").write_text("mine")
    earlier.cleanup(t)  # the user's file keeps the directories
    del earlier
    gc.collect()
    shutil.rmtree(well_known)  # the user replaces them with their own
    (well_known / "acme-challenge").mkdir(parents=True)
    later = WebrootAuthenticator(config(webroot_path=[str(webroot)]))
    later.present(t)
    later.cleanup(t)
    assert (well_known / "acme-challenge").is_dir(), "the user's directories are kept"


def test_cleanup_without_present_and_after_a_failed_present(webroot: Path) -> None:
    auth = WebrootAuthenticator(config(webroot_path=[str(webroot)]))
    auth.cleanup(task())  # never presented: nothing to do, no error
    (webroot / ".well-known").write_text("not a directory")
    t = task()
    with pytest.raises(PluginError, match=r"\.well-known exists and is not a directory"):
        auth.present(t)
    auth.cleanup(t)
    assert (webroot / ".well-known").read_text() == "not a directory"


def test_prepare_rejects_a_missing_webroot(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    auth = WebrootAuthenticator(config(webroot_path=[str(missing)], domains=["example.com"]))
    with pytest.raises(PluginError) as err:
        auth.prepare()
    assert str(err.value) == f"webroot {missing} does not exist or is not a directory"


def test_prepare_rejects_a_webroot_that_is_a_file(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    auth = WebrootAuthenticator(config(webroot_map={"example.com": str(a_file)}))
    with pytest.raises(PluginError, match=f"webroot {a_file} does not exist"):
        auth.prepare()


def test_prepare_names_a_domain_without_webroot_when_non_interactive() -> None:
    auth = WebrootAuthenticator(config(domains=["example.org"]))
    with pytest.raises(PluginError) as err:
        auth.prepare()
    assert str(err.value) == "no webroot for example.org: give -w before -d or use --webroot-map"


def test_prepare_asks_for_a_webroot_when_interactive(
    webroot: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", _Lines(f"{webroot}\n"))
    auth = WebrootAuthenticator(argparse.Namespace(domains=["example.org"], noninteractive=False))
    auth.prepare()
    assert "example.org" in capsys.readouterr().out
    assert auth.renewal_params() == {"webroot_map": {"example.org": str(webroot)}}


def test_interactive_without_an_answer_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", _Lines(""))
    auth = WebrootAuthenticator(argparse.Namespace(domains=["example.org"]))
    with pytest.raises(PluginError, match=r"no webroot for example\.org"):
        auth.prepare()


class _Lines:
    def __init__(self, text: str) -> None:
        self._lines: Iterator[str] = iter(text.splitlines(keepends=True))

    def readline(self) -> str:
        return next(self._lines, "")


def test_a_webroot_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        root = tmp_path / "ro"
        root.mkdir()
        root.chmod(0o555)
        auth = WebrootAuthenticator(config(webroot_path=[str(root)]))
        with pytest.raises(PluginError) as err:
            auth.present(task())
        message = str(err.value)
    else:  # root may write anywhere: try it as an unprivileged user in a world-readable tree
        message = _present_as_nobody()
    assert "Permission denied" in message
    assert "webroot" in message and "/ro" in message


def _present_as_nobody() -> str:
    """Fork, drop to uid/gid 65534 and return the PluginError present() raises there."""
    base = tempfile.mkdtemp(prefix="certwright-webroot-")
    try:
        os.chmod(base, 0o755)
        root = os.path.join(base, "ro")
        os.mkdir(root, 0o755)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never returns into pytest
            message = "no error"
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                WebrootAuthenticator(argparse.Namespace(webroot_path=[root])).present(task())
            except PluginError as exc:
                message = str(exc)
            except BaseException as exc:
                message = f"unexpected {exc!r}"
            finally:
                os.write(write_end, message.encode())
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            message = pipe.read().decode()
        os.waitpid(pid, 0)
        assert not os.path.exists(os.path.join(root, ".well-known"))
        return message
    finally:
        shutil.rmtree(base)


def test_refuses_a_token_that_could_leave_the_directory(webroot: Path) -> None:
    auth = WebrootAuthenticator(config(webroot_path=[str(webroot)]))
    with pytest.raises(PluginError, match="not base64url"):
        auth.present(task(token="../../etc/passwd"))
    assert not (webroot / ".well-known").exists()


def test_challenge_types_never_offer_http01_for_a_wildcard() -> None:
    auth = WebrootAuthenticator(argparse.Namespace())
    assert list(auth.challenge_types(Identifier("dns", "example.com"))) == ["http-01"]
    assert list(auth.challenge_types(Identifier("dns", "*.example.com"))) == []


# -- command line ------------------------------------------------------------------------


def test_each_w_applies_to_the_domains_that_follow_it(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    ns = parser().parse_args(
        ["-w", str(a), "-d", "a.example,www.a.example", "-d", "x.example", "-w", str(b),
         "-d", "b.example"]
    )  # fmt: skip
    assert ns.webroot_path == [str(a), str(b)]
    assert ns.webroot_map == {
        "a.example": str(a),
        "www.a.example": str(a),
        "x.example": str(a),
        "b.example": str(b),
    }
    assert ns.domains == ["a.example", "www.a.example", "x.example", "b.example"]


def test_mixed_case_domains_are_matched_case_insensitively(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    ns = parser().parse_args(
        ["-w", str(a), "-d", "WWW.Example.com", "-w", str(b), "-d", "b.example"]
    )
    auth = WebrootAuthenticator(ns)
    auth.prepare()
    t = task("www.example.com")
    auth.present(t)
    assert (a / ".well-known" / "acme-challenge" / TOKEN).is_file()
    auth.cleanup(t)
    assert auth.renewal_params()["webroot_map"] == {
        "www.example.com": str(a),
        "b.example": str(b),
    }


def test_domains_before_a_single_w_take_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    ns = parser().parse_args(["-d", "example.com", "-w", str(root)])
    auth = WebrootAuthenticator(ns)
    auth.prepare()
    assert auth.renewal_params() == {
        "webroot_path": [str(root)],
        "webroot_map": {"example.com": str(root)},
    }


def test_a_domain_before_the_first_of_several_w_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"a\.example is given before the first -w"):
        parser().parse_args(["-d", "a.example", "-w", "/a", "-d", "b.example", "-w", "/b"])


def test_w_paths_are_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ns = parser().parse_args(["-w", "site", "-d", "example.com"])
    assert ns.webroot_path == [str(tmp_path / "site")]
    assert ns.webroot_map == {"example.com": str(tmp_path / "site")}


def test_webroot_map_with_comma_separated_keys_merges_and_implies_d(tmp_path: Path) -> None:
    ns = parser().parse_args(
        [
            "-w", "/srv/default", "-d", "example.com",
            "--webroot-map", '{"example.org,www.example.org": "/var/www/org"}',
            "--webroot-map", '{"www.example.org": "/var/www/www", "Example.NET": "/var/www/net"}',
            "-d", "example.org",
        ]
    )  # fmt: skip
    assert ns.webroot_map == {
        "example.com": "/srv/default",
        "example.org": "/var/www/org",
        "www.example.org": "/var/www/www",
        "example.net": "/var/www/net",
    }
    assert ns.domains == ["example.com", "example.org", "www.example.org", "example.net"]


def test_webroot_map_must_be_a_json_object() -> None:
    with pytest.raises(PluginError, match="not valid JSON"):
        parser().parse_args(["--webroot-map", "{example.com: /var/www}"])
    with pytest.raises(PluginError, match="expected a JSON object"):
        parser().parse_args(["--webroot-map", '["/var/www"]'])


def test_parsing_twice_does_not_share_state(tmp_path: Path) -> None:
    p = parser()
    first = p.parse_args(["-w", "/one", "-d", "one.example"])
    second = p.parse_args(["-d", "two.example"])
    assert first.webroot_map == {"one.example": "/one"}
    assert second.webroot_path is None and second.webroot_map is None


def test_options_round_trip_through_renewal_params(webroot: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    ns = parser().parse_args(["-w", str(webroot), "-d", "example.com", "-w", str(other),
                              "-d", "other.example"])  # fmt: skip
    params = WebrootAuthenticator(ns).renewal_params()
    assert params == {
        "webroot_path": [str(webroot), str(other)],
        "webroot_map": {"example.com": str(webroot), "other.example": str(other)},
    }
    # a renewal builds the namespace from the stored values (a lone path may come back as str)
    renewed = WebrootAuthenticator(
        config(webroot_path=str(other), webroot_map=params["webroot_map"],
               domains=["example.com", "other.example"])
    )  # fmt: skip
    renewed.prepare()
    t = task("example.com")
    renewed.present(t)
    assert (webroot / ".well-known" / "acme-challenge" / TOKEN).is_file()
    renewed.cleanup(t)
    assert not (webroot / ".well-known").exists()


def test_wrong_challenge_type_is_refused(webroot: Path) -> None:
    auth = WebrootAuthenticator(config(webroot_path=[str(webroot)]))
    t = ChallengeTask(Identifier("dns", "example.com"), "dns-01", TOKEN, "k", "v")
    with pytest.raises(PluginError, match="only does http-01"):
        auth.present(t)
