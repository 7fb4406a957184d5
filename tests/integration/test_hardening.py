"""What a hostile trial broke, end to end through the CLI: modes under umask 000, planted
transaction journals, rollback counts, one command one checkpoint."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from certwright.core.interfaces import ChangePlan, FileChange
from certwright.core.transaction import Transaction
from tests.integration.conftest import Cli
from tests.integration.test_nginx import PLAIN_SITE, http_get, tree  # noqa: F401 (fixture)
from tests.servers.acme_front import AcmeFront
from tests.servers.nginx import Nginx
from tests.servers.nginx_tree import NginxTree
from tests.servers.pebble import Pebble
from tests.servers.tlsca import TestCA, cert_pem, key_pem

pytestmark = pytest.mark.integration
NOBODY = 65534


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DeepCli(Cli):
    """Config, work and logs dirs whose parents don't exist yet (as on a fresh machine)."""

    @property
    def config_dir(self) -> Path:
        return self.base / "etc" / "certwright"

    def dirs(self) -> list[str]:
        return ["--config-dir", str(self.config_dir),
                "--work-dir", str(self.base / "var" / "lib" / "certwright"),
                "--logs-dir", str(self.base / "var" / "log" / "certwright")]


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)  # inherited by the certwright processes the test starts
    try:
        yield
    finally:
        os.umask(old)


def test_nothing_is_writable_by_others_under_umask_000(
        pebble: Pebble, web: Nginx, www_root: Path, tmp_path: Path, umask_000: None) -> None:
    cli = DeepCli(tmp_path / "base", pebble)
    cli("certonly", "--webroot", "-w", str(www_root), "-d", "example.org")
    cli("certificates", account=False)
    cli("renew", "--no-random-sleep-on-renew", account=False)
    work = tmp_path / "base" / "var" / "lib" / "certwright"
    Transaction(work, "probe").commit()  # what an installer's deploy creates
    open_to_others = []
    for path in [tmp_path / "base", *sorted((tmp_path / "base").rglob("*"))]:
        info = path.lstat()
        if not stat.S_ISLNK(info.st_mode) and info.st_mode & 0o022:
            open_to_others.append(f"{path.relative_to(tmp_path)} {stat.S_IMODE(info.st_mode):o}")
    assert open_to_others == []
    assert stat.S_IMODE((work / "transactions").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "base" / "var" / "log" / "certwright").stat().st_mode) \
        == 0o700


@pytest.mark.parametrize("how", ["planted by another user", "backup outside the journal"])
def test_renew_refuses_a_planted_journal_and_touches_nothing(
        cli: Cli, tmp_path: Path, how: str) -> None:
    victim = tmp_path / "etc-shadow"
    victim.write_bytes(b"root:secret:::\n")
    victim.chmod(0o640)
    evil = tmp_path / "evil"
    evil.write_bytes(b"root::0:0:::\n")
    journal = tmp_path / "work" / "transactions" / "20260101T000000-1-000000001"
    journal.mkdir(parents=True, mode=0o700)
    (journal / "manifest.json").write_text(json.dumps({
        "id": journal.name, "title": "deploy", "state": "open", "temporary": False,
        "created": 0.0, "files": [{"path": str(victim), "sha_before": sha(evil.read_bytes()),
                                   "sha_after": sha(victim.read_bytes()), "backup": str(evil),
                                   "mode": 0o666}]}))
    (journal / "manifest.json").chmod(0o600)
    if how == "planted by another user":
        for path in (journal, journal / "manifest.json"):
            os.chown(path, NOBODY, NOBODY)
    proc = cli("renew", "--no-random-sleep-on-renew", account=False, check=False)
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("Error: refusing the transaction journal " + str(journal)), line
    assert victim.read_bytes() == b"root:secret:::\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o640


def test_rollback_checkpoints_zero_does_nothing_and_negative_is_a_usage_error(
        cli: Cli, tmp_path: Path) -> None:
    conf = tmp_path / "site.conf"
    conf.write_bytes(b"before")
    txn = Transaction(tmp_path / "work", "deploy")
    txn.apply(ChangePlan("deploy", (FileChange(str(conf), b"after", sha(b"before")),)))
    txn.commit()
    proc = cli("rollback", "--checkpoints", "0", account=False)
    assert conf.read_bytes() == b"after", proc.stdout
    proc = cli("rollback", "--checkpoints", "-5", account=False, check=False)
    assert proc.returncode == 2
    assert "--checkpoints -5" in proc.stderr
    assert conf.read_bytes() == b"after"
    cli("rollback", "--checkpoints", "1", account=False)
    assert conf.read_bytes() == b"before"


def test_one_run_is_one_checkpoint(cli: Cli, tree: NginxTree) -> None:  # noqa: F811
    tree.site("example", PLAIN_SITE)
    tree.start()
    before = tree.snapshot()
    cli("run", "--nginx", *tree.args(), "-d", "example.org", "-d", "www.example.org",
        "--redirect", "--hsts")
    assert http_get(tree.http_port, "example.org", "/")[0] == 301
    proc = cli("rollback", "--checkpoints", "1", *tree.args(), account=False)
    assert "Rolling back 1 of 1 checkpoint(s)" in proc.stdout, proc.stdout
    assert tree.snapshot() == before, "every file byte for byte, no directory left"
    assert http_get(tree.http_port, "example.org", "/")[0] == 200


INJECTED = 'x\nserver { listen 127.0.0.1:9; return 200 "injected"; }\n#'


@pytest.mark.parametrize(("args", "said"), [
    (["--cert-name", INJECTED, "-d", "example.org"], "--cert-name"),
    (["--cert-name", "../../etc", "-d", "example.org"], "--cert-name"),
    (["-d", "evil\n.example.org"], "invalid domain"),
])
def test_bad_names_are_refused_before_the_ca_and_any_hook(
        cli: Cli, tmp_path: Path, args: list[str], said: str) -> None:
    mark = tmp_path / "hook-ran"
    proc = cli("certonly", "--manual", "--manual-auth-hook", f"touch {mark}",
               "--pre-hook", f"touch {mark}", *args, check=False)
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("Error: ") and said in line, line
    assert not mark.exists(), "no hook ran"
    assert not (cli.config_dir / "accounts").exists(), "the CA was not contacted"


def test_run_nginx_refuses_a_cert_name_that_would_inject_a_server_block(
        cli: Cli, tree: NginxTree) -> None:  # noqa: F811
    tree.site("example", PLAIN_SITE)
    tree.start()
    before = tree.snapshot()
    proc = cli("run", "--nginx", *tree.args(), "-d", "example.org", "--cert-name", INJECTED,
               check=False)
    assert proc.returncode == 1 and "control characters" in proc.stderr
    assert tree.snapshot() == before


DOCUMENTED_HOOK = ('mkdir -p "$W/.well-known/acme-challenge" && '
                   'echo "$CERTBOT_VALIDATION" > "$W/.well-known/acme-challenge/$CERTBOT_TOKEN"')


def _tamper(what: str) -> Callable[[str, Any], Any]:
    def tamper(path: str, doc: Any) -> Any:
        if not isinstance(doc, dict) or "challenges" not in doc:
            return doc
        for chall in doc["challenges"]:
            if what == "token":
                chall["token"] = "../../../pwned"
            elif what == "token with a newline":
                chall["token"] += "\nX"
            elif what == "challenge url":
                chall["url"] += "\r\nX-Injected: 1"
        if what == "identifier":
            doc["identifier"]["value"] = "evil\n.example.org"
        elif what == "unordered name":
            doc["identifier"]["value"] = "victim.example.net"
        return doc

    return tamper


@pytest.mark.parametrize(("what", "said"), [
    ("token", "-01 token '../../../pwned'"),
    ("token with a newline", "-01 token"),
    ("challenge url", "challenge URL"),
    ("identifier", "DNS identifier"),
    ("unordered name", "'victim.example.net', which was not ordered"),
])
def test_a_hostile_ca_is_refused_before_any_hook(
        pebble: Pebble, tmp_path: Path, what: str, said: str) -> None:
    www = tmp_path / "www"
    www.mkdir()
    calls = tmp_path / "hook-calls"
    with AcmeFront(pebble, tmp_path / "front", tamper=_tamper(what)) as front:
        cli = Cli(tmp_path / "cli", pebble, extra_env={
            "REQUESTS_CA_BUNDLE": str(front.ca_bundle), "SSL_CERT_FILE": str(front.ca_bundle),
            "W": str(www)})
        proc = cli("certonly", "--manual", "--preferred-challenges", "http",
                   "--manual-auth-hook", f"echo \"$CERTBOT_DOMAIN\" >> {calls}; "
                   + DOCUMENTED_HOOK, "-d", "hostile.example.org",
                   "--server", front.directory_url, check=False)
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("Error: refusing the CA's response") and said in line, line
    assert not calls.exists(), "the hook never ran"
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("form", ["separate", "joined"])
def test_secret_options_are_masked_in_the_log(cli: Cli, tmp_path: Path, form: str) -> None:
    secret = "c2VjcmV0LWhtYWMta2V5LXZhbHVlLWZvci10ZXN0"
    opt = ["--eab-hmac-key", secret] if form == "separate" else [f"--eab-hmac-key={secret}"]
    proc = cli("certificates", "--eab-kid", "kid-1", *opt, "-vv", account=False)
    log_text = (tmp_path / "logs" / "certwright.log").read_text()
    assert "--eab-hmac-key" in log_text and "********" in log_text
    assert "kid-1" in log_text, "other values are still logged"
    assert secret not in log_text and secret not in proc.stderr + proc.stdout


def test_nginx_refuses_a_dollar_in_a_certificate_path(
        cli: Cli, tree: NginxTree, tmp_path: Path) -> None:  # noqa: F811
    """nginx expands variables in ssl_certificate: live/a$host/ would pick a directory by
    the client's SNI."""
    tree.site("example", PLAIN_SITE)
    tree.start()
    before = tree.snapshot()
    odd = tmp_path / "a$host"
    odd.mkdir()
    cert, key = TestCA.create().issue_server_cert(names=["example.org"])
    (odd / "cert.pem").write_bytes(cert_pem(cert))
    (odd / "privkey.pem").write_bytes(key_pem(key))
    proc = cli("install", "--nginx", *tree.args(), "-d", "example.org",
               "--cert-path", str(odd / "cert.pem"), "--key-path", str(odd / "privkey.pem"),
               account=False, check=False)
    assert proc.returncode == 1 and "as a variable" in proc.stderr, proc.stderr
    assert tree.snapshot() == before


def test_files_and_directories_run_adds_to_nginx_are_not_writable_by_others(
        cli: Cli, tree: NginxTree, umask_000: None) -> None:  # noqa: F811
    tree.site("example", PLAIN_SITE)
    tree.start()
    before = {p for p in tree.root.rglob("*")}
    cli("run", "--nginx", *tree.args(), "-d", "example.org", "-d", "other.example.org")
    added = sorted(p for p in tree.root.rglob("*") if p not in before
                   and p.relative_to(tree.root).parts[0] not in ("run", "logs", "tmp"))
    assert any(p.is_dir() for p in added), added  # the managed dir for other.example.org
    modes = {str(p.relative_to(tree.root)): stat.S_IMODE(p.lstat().st_mode) for p in added}
    assert {k: oct(v) for k, v in modes.items() if v & 0o022} == {}


def test_two_runs_rolled_back_leave_no_managed_directory(
        cli: Cli, tree: NginxTree) -> None:  # noqa: F811
    tree.site("example", PLAIN_SITE)
    tree.start()
    before = tree.snapshot()
    cli("run", "--nginx", *tree.args(), "-d", "one.example.org")
    cli("run", "--nginx", *tree.args(), "-d", "two.example.org")
    assert any(k.startswith("certwright/") and k.endswith("/") for k in tree.snapshot())
    proc = cli("rollback", "--checkpoints", "2", *tree.args(), account=False)
    assert "Rolling back 2 of 2" in proc.stdout
    assert tree.snapshot() == before, "no file and no directory of ours is left"
