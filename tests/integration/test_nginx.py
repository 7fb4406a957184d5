"""`run --nginx`, install, enhance, rollback and renew against a real nginx."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.integration.conftest import CERTWRIGHT, Cli, nginx_tree
from tests.servers import probe
from tests.servers.nginx_tree import NGINX, NginxTree
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration

PLAIN_SITE = """\
# example site: comments and layout must survive
server {{
    listen 127.0.0.1:{http};
    server_name example.org www.example.org;   # both names
    root {www};

    location /api/ {{
        return 200 "api\\n";
    }}
}}
"""


@pytest.fixture
def tree(pebble: Pebble) -> Iterator[NginxTree]:
    with nginx_tree(pebble) as t:
        yield t


def served(tree: NginxTree, name: str, port: int | None = None,
           root_pem: bytes | None = None) -> x509.Certificate:
    return probe.served_cert(port or tree.https_port, name, cadata=root_pem)


def http_get(port: int, host: str, path: str) -> tuple[int, str]:
    """A raw HTTP/1.0 request: status and Location (no redirects followed)."""
    answer = probe.http_get(port, host, path)
    return answer.status, answer.location


def https_headers(tree: NginxTree, name: str) -> str:
    return probe.http_get(tree.https_port, name, tls=True).head


def test_run_nginx_end_to_end(cli: Cli, tree: NginxTree, pebble: Pebble) -> None:
    site = tree.site("example", PLAIN_SITE)
    tree.start()
    proc = cli("run", "--nginx", *tree.args(), "-d", "example.org", "-d", "www.example.org",
               "--redirect", "--hsts")
    assert "Successfully deployed" in proc.stdout, proc.stdout + proc.stderr
    for name in ("example.org", "www.example.org"):
        cert = served(tree, name, root_pem=pebble.root_pem())  # verifies the chain
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert name in sans.get_values_for_type(x509.DNSName)
    status, location = http_get(tree.http_port, "example.org", "/some/page?x=1")
    assert status == 301 and location == "https://example.org/some/page?x=1"
    status, _ = http_get(tree.http_port, "example.org",
                         "/.well-known/acme-challenge/probe")
    assert status != 301, "the challenge path keeps answering over plain http"
    assert "strict-transport-security" in https_headers(tree, "example.org").lower()
    text = site.read_text()
    assert "# example site: comments and layout must survive" in text
    assert "server_name example.org www.example.org;   # both names" in text
    assert (tree.root / "sites-enabled" / "example").is_symlink(), "the link is kept"
    conf = (cli.config_dir / "renewal" / "example.org.conf").read_text()
    assert "installer = nginx" in conf and "authenticator = nginx" in conf
    # running again changes nothing and adds no duplicate directives
    before = tree.snapshot()
    cli("run", "--nginx", *tree.args(), "-d", "example.org", "-d", "www.example.org",
        "--redirect", "--hsts")
    assert tree.snapshot() == before
    # renewal: nginx serves the new serial without anyone touching it
    old = served(tree, "example.org").serial_number
    cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False)
    assert served(tree, "example.org").serial_number != old


def test_dry_run_prints_the_diff_and_changes_nothing(cli: Cli, tree: NginxTree) -> None:
    tree.site("example", PLAIN_SITE)
    tree.start()
    cli("certonly", "--nginx", *tree.args(), "-d", "example.org")
    before = tree.snapshot()
    proc = cli("install", "--nginx", *tree.args(), "--cert-name", "example.org", "--dry-run",
               account=False)
    assert "+++ " in proc.stdout and "ssl_certificate" in proc.stdout
    assert tree.snapshot() == before


def test_rollback_restores_files_and_served_state(cli: Cli, tree: NginxTree) -> None:
    tree.site("example", PLAIN_SITE)
    tree.start()
    before = tree.snapshot()
    cli("run", "--nginx", *tree.args(), "-d", "example.org", "--no-redirect")
    deployed = tree.snapshot()
    assert deployed != before
    served(tree, "example.org")
    cli("enhance", "--cert-name", "example.org", "--redirect", *tree.args(), account=False)
    assert http_get(tree.http_port, "example.org", "/")[0] == 301
    proc = cli("rollback", "--checkpoints", "1", *tree.args(), account=False)
    assert "Rolled back" in proc.stdout and "redirect" in proc.stdout.lower()
    assert tree.snapshot() == deployed, "only the newest checkpoint was undone"
    assert http_get(tree.http_port, "example.org", "/")[0] == 200
    served(tree, "example.org")
    cli("rollback", "--checkpoints", "5", *tree.args(), account=False)
    assert tree.snapshot() == before
    with pytest.raises(OSError):
        served(tree, "example.org")  # nothing listens on the https port any more
    assert "no configuration changes" in cli("rollback", *tree.args(), account=False).stdout


def test_failing_config_test_rolls_back(cli: Cli, tree: NginxTree, tmp_path: Path) -> None:
    tree.site("example", PLAIN_SITE)
    tree.start()
    cli("certonly", "--nginx", *tree.args(), "-d", "example.org")
    before = tree.snapshot()
    ctl = tmp_path / "nginx-ctl"
    # the test fails only while the site carries certwright's change
    ctl.write_text(f'#!/bin/sh\nfor a in "$@"; do [ "$a" = -t ] && grep -q ssl_certificate '
                   f'{tree.root}/sites-available/example && '
                   f'{{ echo "emerg: injected failure" >&2; exit 1; }}; done\nexec {NGINX} "$@"\n')
    ctl.chmod(0o755)
    proc = cli("install", "--nginx", *tree.args(), "--nginx-ctl", str(ctl),
               "--cert-name", "example.org", account=False, check=False)
    assert proc.returncode != 0
    assert "config test failed" in proc.stderr and "restored" in proc.stderr
    assert "injected failure" in proc.stderr
    assert "without this change" not in proc.stderr
    assert tree.snapshot() == before


def test_config_that_already_fails_its_test_is_named_as_such(cli: Cli, tree: NginxTree) -> None:
    tree.site("example", PLAIN_SITE)
    tree.start()
    cli("certonly", "--nginx", *tree.args(), "-d", "example.org")
    broken = tree.site("broken", "server {{\n    listen 127.0.0.1:{http};\n"
                                 "    server_name broken.test;\n    no_such_directive on;\n}}\n")
    before = tree.snapshot()
    proc = cli("install", "--nginx", *tree.args(), "--cert-name", "example.org",
               account=False, check=False)
    assert proc.returncode != 0
    assert f"{tree.root}/sites-enabled/broken:4" in proc.stderr, proc.stderr
    assert "fails the same test without this change" in proc.stderr
    assert tree.snapshot() == before and broken.exists()


def test_crash_mid_deploy_is_recovered(cli: Cli, tree: NginxTree, tmp_path: Path) -> None:
    tree.site("example", PLAIN_SITE)
    tree.start()
    cli("certonly", "--nginx", *tree.args(), "-d", "example.org")
    before = tree.snapshot()
    ctl = tmp_path / "slow-ctl"
    ctl.write_text(f'#!/bin/sh\nfor a in "$@"; do [ "$a" = -t ] && sleep 30; done\n'
                   f'exec {NGINX} "$@"\n')
    ctl.chmod(0o755)
    argv = [CERTWRIGHT, "install", "--nginx", *tree.args(), "--nginx-ctl", str(ctl),
            "--cert-name", "example.org", *cli.dirs(), "-n"]
    proc = subprocess.Popen(argv, env=cli.ca.env(os.environ), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while tree.snapshot() == before and time.monotonic() < deadline:
        time.sleep(0.02)  # wait until the plan is applied (the config test is then running)
    assert tree.snapshot() != before
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    out = cli("certificates", account=False).stdout
    assert "example.org" in out
    proc2 = cli("install", "--nginx", *tree.args(), "--cert-name", "example.org",
                "--dry-run", account=False)
    assert "Rolled back the unfinished change" in proc2.stdout
    assert tree.snapshot() == before


def test_plugins_lists_nginx(cli: Cli) -> None:
    out = cli("plugins", "--installers", account=False).stdout
    assert "* nginx" in out


def test_sigterm_during_the_challenge_undoes_the_temporary_change(
        cli: Cli, tree: NginxTree, tmp_path: Path) -> None:
    tree.site("example", PLAIN_SITE)
    tree.start()
    before = tree.snapshot()
    ctl = tmp_path / "slow-reload"
    once = tmp_path / "slept"  # only the first reload hangs; the one undoing it does not
    ctl.write_text(f'#!/bin/sh\nfor a in "$@"; do [ "$a" = -s ] && [ ! -e {once} ] && '
                   f'touch {once} && sleep 30; done\nexec {NGINX} "$@"\n')
    ctl.chmod(0o755)
    argv = [CERTWRIGHT, "certonly", "--nginx", *tree.args(), "--nginx-ctl", str(ctl),
            "-d", "example.org", *cli.dirs(), "-n", "--server", cli.ca.directory_url,
            "--agree-tos", "-m", "a@example.org"]
    proc = subprocess.Popen(argv, env=cli.ca.env(os.environ), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not once.exists() and time.monotonic() < deadline:
            time.sleep(0.02)  # the temporary challenge config is in place, reload hanging
        assert once.exists() and tree.snapshot() != before
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the hanging ctl left in its group
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM
    assert tree.snapshot() == before, "the challenge change was rolled back"


def test_install_starts_nginx_when_it_is_not_running(cli: Cli, tree: NginxTree,
                                                     pebble: Pebble) -> None:
    tree.site("example", PLAIN_SITE)
    cli("certonly", "--standalone", "--http-01-port", str(pebble.http_port),
        "--http-01-address", "127.0.0.1", "-d", "example.org")
    pid_file = tree.root / "run" / "nginx.pid"
    assert not pid_file.exists()
    try:
        cli("install", "--nginx", *tree.args(), "--cert-name", "example.org", account=False)
        assert pid_file.exists()
        served(tree, "example.org", root_pem=pebble.root_pem())
    finally:
        if pid_file.exists():  # the nginx certwright started for this test
            os.kill(int(pid_file.read_text().strip()), signal.SIGQUIT)
            deadline = time.monotonic() + 10
            while pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.02)


def test_run_with_webroot_authenticator_and_nginx_installer(cli: Cli, tree: NginxTree,
                                                            pebble: Pebble) -> None:
    tree.site("example", PLAIN_SITE)
    tree.start()
    cli("run", "-a", "webroot", "-w", str(tree.www), "-i", "nginx", *tree.args(),
        "-d", "example.org", "--hsts")
    served(tree, "example.org", root_pem=pebble.root_pem())
    conf = (cli.config_dir / "renewal" / "example.org.conf").read_text()
    assert "authenticator = webroot" in conf and "installer = nginx" in conf
    assert f"nginx_server_root = {tree.root}" in conf
    assert not (tree.www / ".well-known").exists()
    # renewals through webroot keep the installer's settings, so each one redeploys here
    for _ in range(2):
        old = served(tree, "example.org").serial_number
        cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False)
        assert served(tree, "example.org").serial_number != old
    conf = (cli.config_dir / "renewal" / "example.org.conf").read_text()
    assert f"nginx_server_root = {tree.root}" in conf


def test_run_dry_run_prints_the_diff_and_changes_nothing(cli: Cli, tree: NginxTree) -> None:
    tree.site("example", PLAIN_SITE)
    tree.start()
    before = tree.snapshot()
    proc = cli("run", "--nginx", *tree.args(), "-d", "example.org", "--redirect", "--dry-run")
    assert "The dry run was successful." in proc.stdout
    assert "+    listen 127.0.0.1:" in proc.stdout and "ssl_certificate" in proc.stdout
    assert "return 301 https://" in proc.stdout
    assert tree.snapshot() == before
    assert not (cli.config_dir / "live").exists()


def test_parallel_renewals_through_the_nginx_authenticator(cli: Cli, tree: NginxTree) -> None:
    for i in range(4):
        tree.site(f"n{i}", PLAIN_SITE.replace("example.org www.example.org",
                                              f"n{i}.example.org"))
    tree.start()
    for i in range(4):
        cli("run", "--nginx", *tree.args(), "-d", f"n{i}.example.org")
    before = {i: served(tree, f"n{i}.example.org").serial_number for i in range(4)}
    proc = cli("renew", "--force-renewal", "--jobs", "4", "--no-random-sleep-on-renew",
               account=False)
    assert "4 renewed" in proc.stdout, proc.stdout + proc.stderr
    for i in range(4):
        assert served(tree, f"n{i}.example.org").serial_number != before[i]


def test_delete_takes_certwrights_own_block_out_and_warns_about_the_users(
        cli: Cli, tree: NginxTree) -> None:
    site = tree.site("example", PLAIN_SITE)
    tree.start()
    cli("run", "--nginx", *tree.args(), "-d", "example.org")
    cli("run", "--nginx", *tree.args(), "-d", "elsewhere.example.net")  # no block of the user's
    managed = tree.root / "certwright" / "servers" / "elsewhere.example.net.conf"
    assert managed.exists()
    proc = cli("delete", "--cert-name", "elsewhere.example.net", account=False)
    assert not managed.exists() and "Warning" not in proc.stdout, proc.stdout
    assert not (cli.config_dir / "live" / "elsewhere.example.net").exists()
    check = subprocess.run(tree.ctl("-t"), capture_output=True, text=True)
    assert check.returncode == 0, check.stderr  # nothing names the deleted files
    served(tree, "example.org")  # the reload left the other site serving
    proc = cli("delete", "--cert-name", "example.org", account=False)
    line = next(n for n, text in enumerate(site.read_text().splitlines(), 1)
                if "ssl_certificate " in text)
    enabled = tree.root / "sites-enabled" / "example"  # the path nginx includes
    assert f"still uses this certificate at {enabled}:{line}" in proc.stdout, proc.stdout


def counting_reload(tmp_path: Path, tree: NginxTree) -> tuple[Path, Path, Path]:
    """A --nginx-reload-cmd that counts its calls and fails while ``fail`` exists."""
    count, fail = tmp_path / "reloads", tmp_path / "fail"
    script = tmp_path / "reload.sh"
    script.write_text(f'#!/bin/sh\necho x >> {count}\n[ -e {fail} ] && exit 1\n'
                      f'exec {NGINX} -c {tree.main} -s reload\n')
    script.chmod(0o755)
    return script, count, fail


def test_renew_reloads_nginx_once_for_all_renewed_certificates(
        cli: Cli, tree: NginxTree, tmp_path: Path) -> None:
    names = [f"n{i}.example.org" for i in range(4)]
    site = "".join(f"server {{{{ listen 127.0.0.1:{{http}}; server_name {n}; root {{www}}; }}}}\n"
                   for n in names)
    tree.site("many", site)
    tree.start()
    script, count, _ = counting_reload(tmp_path, tree)
    for name in names:
        cli("run", "-a", "webroot", "-w", str(tree.www), "-i", "nginx", *tree.args(),
            "--nginx-reload-cmd", str(script), "-d", name)
    old = {n: served(tree, n).serial_number for n in names}
    count.unlink()
    proc = cli("renew", "--force-renewal", "--no-random-sleep-on-renew", "--jobs", "4",
               account=False)
    assert "4 renewed" in proc.stdout, proc.stdout
    assert count.read_text().count("x") == 1, "one reload for the four certificates"
    for name in names:
        assert served(tree, name).serial_number != old[name]


def test_renewal_nginx_did_not_take_is_installed_by_the_next_renew(
        cli: Cli, tree: NginxTree, tmp_path: Path) -> None:
    tree.site("example", PLAIN_SITE)
    tree.start()
    script, _, fail = counting_reload(tmp_path, tree)
    cli("run", "-a", "webroot", "-w", str(tree.www), "-i", "nginx", *tree.args(),
        "--nginx-reload-cmd", str(script), "-d", "example.org")
    old = served(tree, "example.org").serial_number
    fail.touch()
    proc = cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False,
               check=False)
    assert proc.returncode == 1
    assert "renewed, but installing it failed" in proc.stdout, proc.stdout
    assert served(tree, "example.org").serial_number == old
    live = (cli.config_dir / "live" / "example.org" / "cert.pem").read_bytes()
    new = x509.load_pem_x509_certificate(live).serial_number
    assert new != old
    fail.unlink()
    # nothing is due now, yet the renewed certificate gets served
    proc = cli("renew", "--no-random-sleep-on-renew", account=False)
    assert "1 installed again" in proc.stdout, proc.stdout
    assert served(tree, "example.org").serial_number == new
    proc = cli("renew", "--no-random-sleep-on-renew", account=False)
    assert "installed again" not in proc.stdout and "not due" in proc.stdout


CATCH_ALL_SITE = """\
server {{
    listen 127.0.0.1:{http} default_server;
    server_name _;
    root {www};
}}
"""


def test_catch_all_name_with_redirect_through_renew_install_and_delete(
        cli: Cli, tree: NginxTree, pebble: Pebble) -> None:
    catch_all = tree.site("default", CATCH_ALL_SITE)
    tree.start()
    before = catch_all.read_text()
    cli("run", "--nginx", *tree.args(), "-d", "c1.example.org", "--redirect")
    servers = tree.root / "certwright" / "servers"
    made = sorted(p.name for p in servers.iterdir())
    assert made == ["c1.example.org.conf", "redirect-c1.example.org.conf"]
    old = served(tree, "c1.example.org", root_pem=pebble.root_pem()).serial_number
    cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False)
    assert sorted(p.name for p in servers.iterdir()) == made, "renewal moved nothing"
    assert served(tree, "c1.example.org").serial_number != old
    assert http_get(tree.http_port, "c1.example.org", "/x") == (
        301, "https://c1.example.org/x")
    # no -i and no --nginx-server-root: the stored installer and its settings are used
    proc = cli("install", "--cert-name", "c1.example.org", account=False)
    assert "Successfully deployed" in proc.stdout
    cli("delete", "--cert-name", "c1.example.org", account=False)
    assert list(servers.iterdir()) == []
    assert catch_all.read_text() == before
    check = subprocess.run(tree.ctl("-t"), capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert http_get(tree.http_port, "c1.example.org", "/x")[0] == 404  # the catch-all again


def test_challenge_answered_on_an_address_only_the_catch_all_listens_on(
        cli: Cli, tree: NginxTree) -> None:
    # the site listens on IPv6 only; Pebble validates over 127.0.0.1, where only the
    # catch-all listens: the temporary challenge block must listen there too
    tree.site("default", "server {{\n    listen 127.0.0.1:{http} default_server;\n"
                         "    return 404;\n}}\n")
    tree.site("v6", "server {{\n    listen [::1]:{http};\n    server_name v6.example.org;\n"
                    "    root {www};\n}}\n")
    tree.start()
    before = tree.snapshot()
    cli("certonly", "--nginx", *tree.args(), "-d", "v6.example.org")
    assert tree.snapshot() == before


def test_long_names_get_a_bigger_server_names_hash(cli: Cli, tree: NginxTree) -> None:
    tree.site("default", CATCH_ALL_SITE)
    tree.start()
    name = "l" * 50 + ".example.org"
    cli("run", "--nginx", *tree.args(), "-d", name)
    served(tree, name)
    assert "server_names_hash_bucket_size 128;" in tree.main.read_text()
