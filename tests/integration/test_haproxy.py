"""`run -a haproxy -i haproxy`, install, enhance, renew and rollback against a real HAProxy
(master-worker mode, a real backend) with Pebble as the CA."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from cryptography import x509

from tests.integration.conftest import Cli, tree_server
from tests.integration.conftest import live_serial as lineage_serial
from tests.servers import probe
from tests.servers.haproxy import HAPROXY_BINARY, Haproxy
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration
NAMES = ("lb.example.org", "api.example.org")


@pytest.fixture
def lb(pebble: Pebble) -> Iterator[Haproxy]:
    with tree_server(lambda root: Haproxy(root, http_port=pebble.http_port), HAPROXY_BINARY,
                     "certwright-haproxy-") as server:
        server.write()
        yield server


def served(lb: Haproxy, name: str, root_pem: bytes | None = None) -> x509.Certificate:
    return probe.served_cert(lb.https_port, name, cadata=root_pem)


def test_run_end_to_end_two_names_redirect_hsts(cli: Cli, lb: Haproxy, pebble: Pebble) -> None:
    lb.start()
    for name in NAMES:
        cli("run", "-a", "haproxy", "-i", "haproxy", *lb.args(), "-d", name,
            "--redirect", "--hsts")
    root = pebble.root_pem()
    for name in NAMES:
        cert = served(lb, name, root_pem=root)  # the chain verifies against Pebble's root
        assert cert.serial_number == lineage_serial(cli, name)
    answer = probe.http_get(lb.http_port, NAMES[0], "/some/page?x=1")
    assert answer.status == 301 and answer.location == f"https://{NAMES[0]}/some/page?x=1"
    answer = probe.http_get(lb.http_port, NAMES[0], "/.well-known/acme-challenge/nothing")
    assert answer.status != 301, "the challenge path stays on plain http"
    over_tls = probe.http_get(lb.https_port, NAMES[1], "/", tls=True, cadata=root)
    assert over_tls.status == 200 and b"backend says hello" in over_tls.body
    assert "strict-transport-security" in over_tls.head.lower()
    check = subprocess.run([lb.binary, "-c", "-dW", "-f", str(lb.conf)], capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr  # valid, and no warning
    text = lb.conf.read_text()
    assert "# the site: comments and layout must survive" in text
    assert f"bind 127.0.0.1:{lb.http_port}   # plain http" in text
    pem = lb.root / "certwright" / f"{NAMES[0]}.pem"
    assert pem.stat().st_mode & 0o777 == 0o600
    conf = (cli.config_dir / "renewal" / f"{NAMES[0]}.conf").read_text()
    assert "installer = haproxy" in conf and f"haproxy_config = {lb.conf}" in conf


def test_rollback_is_byte_identical_one_checkpoint_at_a_time(cli: Cli, lb: Haproxy) -> None:
    lb.start()
    snapshots = [lb.snapshot()]
    cli("run", "-a", "haproxy", "-i", "haproxy", *lb.args(), "-d", NAMES[0], "--no-redirect")
    snapshots.append(lb.snapshot())
    cli("run", "-a", "haproxy", "-i", "haproxy", *lb.args(), "-d", NAMES[1], "--no-redirect")
    snapshots.append(lb.snapshot())
    cli("enhance", "--cert-name", NAMES[1], "--redirect", "--hsts", account=False)
    snapshots.append(lb.snapshot())
    assert probe.http_get(lb.http_port, NAMES[1], "/").status == 301
    assert len({str(sorted(s.items())) for s in snapshots}) == 4, "each step changed files"
    for expected in reversed(snapshots[:-1]):
        proc = cli("rollback", "--checkpoints", "1", account=False)
        assert "configuration test passed" in proc.stdout, proc.stdout + proc.stderr
        assert lb.snapshot() == expected
        assert lb.running
    assert probe.http_get(lb.http_port, NAMES[1], "/").status == 200, "redirect gone"
    assert not (lb.root / "certwright").exists()


def test_challenges_pass_the_redirect_and_the_route_is_inert_between_runs(
        cli: Cli, lb: Haproxy) -> None:
    lb.start()
    cli("run", "-a", "haproxy", "-i", "haproxy", *lb.args(), "-d", NAMES[0], "--redirect")
    assert probe.http_get(lb.http_port, NAMES[0], "/").status == 301
    text = lb.conf.read_text()
    proc = cli("certonly", "-a", "haproxy", *lb.args(), "-d", NAMES[1], account=False)
    assert "Successfully received certificate" in proc.stdout or \
        (cli.config_dir / "live" / NAMES[1] / "cert.pem").exists(), proc.stdout
    assert lb.conf.read_text() == text, "the route was added once"
    assert text.count("use_backend certwright_acme if certwright_acme") == 1
    answer = probe.http_get(lb.http_port, NAMES[0], "/.well-known/acme-challenge/x")
    assert answer.status == 503, "no responder listens between runs"


def test_install_with_a_mismatched_key_fails_the_config_test_and_changes_nothing(
        cli: Cli, lb: Haproxy, pebble: Pebble) -> None:
    lb.start()
    cli("run", "-a", "haproxy", "-i", "haproxy", *lb.args(), "-d", NAMES[0], "--no-redirect")
    cli("certonly", "-a", "haproxy", *lb.args(), "-d", NAMES[1], account=False)
    before, old = lb.snapshot(), served(lb, NAMES[0]).serial_number
    live0, live1 = cli.config_dir / "live" / NAMES[0], cli.config_dir / "live" / NAMES[1]
    proc = cli("install", "-i", "haproxy", *lb.args(), "-d", NAMES[0],
               "--cert-path", str(live0 / "cert.pem"), "--key-path", str(live1 / "privkey.pem"),
               "--fullchain-path", str(live0 / "fullchain.pem"), "--no-redirect",
               account=False, check=False)
    assert proc.returncode != 0
    assert "config test failed" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert f"{lb.conf}:" in proc.stderr and "inconsistencies between private key" in proc.stderr
    assert "previous configuration was restored" in proc.stdout + proc.stderr
    assert lb.snapshot() == before
    assert served(lb, NAMES[0], root_pem=pebble.root_pem()).serial_number == old


def test_install_of_a_stored_lineage_goes_live_through_the_runtime_api(
        cli: Cli, lb: Haproxy) -> None:
    lb.start()
    cli("run", "-a", "haproxy", "-i", "haproxy", *lb.args(), "-d", NAMES[0], "--no-redirect")
    cli("certonly", "-a", "haproxy", *lb.args(), "-d", NAMES[1], account=False)
    workers = lb.workers()
    proc = cli("install", "-i", "haproxy", *lb.args(), "--cert-name", NAMES[1],
               "--no-redirect", "-v", account=False)
    assert "swapped in through" in proc.stderr, proc.stderr
    assert served(lb, NAMES[1]).serial_number == lineage_serial(cli, NAMES[1])
    assert lb.workers() == workers, "a new certificate on the bind without a reload"


BAD_INPUT = [
    ("tcp-only", "frontend tcp_only\n    mode tcp\n    bind 127.0.0.1:{http}\n"
     "    default_backend app\nbackend app\n    server a 127.0.0.1:{backend}\n", [],
     "no frontend or listen in mode http binds port"),
    ("unknown-socket", None, ["--haproxy-socket", "/nonexistent/haproxy.sock"],
     "--haproxy-socket /nonexistent/haproxy.sock: no such socket"),
    ("operator-socket", None, ["--haproxy-socket", "{root}/run/operator.sock"],
     "the socket is at level 'operator'"),
]


@pytest.mark.parametrize("case, site, extra, message", BAD_INPUT,
                         ids=[c[0] for c in BAD_INPUT])
def test_bad_input_gets_one_clear_line(cli: Cli, lb: Haproxy, case: str, site: str | None,
                                       extra: list[str], message: str) -> None:
    from tests.servers.haproxy import GLOBAL, SITE

    operator = "    stats socket {root}/run/operator.sock mode 600 level operator\n"
    lb.write(GLOBAL.replace("level admin\n", "level admin\n" + operator) + (site or SITE))
    lb.start()
    before = lb.snapshot()
    args = [a.replace("{root}", str(lb.root)) for a in extra]
    proc = cli("run", "-a", "haproxy", "-i", "haproxy", *lb.args(), *args, "-d", NAMES[0],
               check=False)
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stdout + proc.stderr
    assert lb.snapshot() == before
    assert not (cli.config_dir / "live").exists()


def test_without_a_pidfile_the_reload_command_is_asked_for_and_stored(cli: Cli,
                                                                      lb: Haproxy) -> None:
    from tests.servers.haproxy import GLOBAL, SITE

    lb.write(GLOBAL.replace("    pidfile {pidfile}\n", "") + SITE)
    lb.start()
    before = lb.snapshot()
    proc = cli("run", "-a", "haproxy", "-i", "haproxy", *lb.args(), "-d", NAMES[0],
               check=False)
    assert proc.returncode != 0
    assert "there is no 'pidfile' in its global section" in proc.stderr + proc.stdout
    assert "give --haproxy-reload-cmd" in proc.stderr + proc.stdout
    assert lb.snapshot() == before, "the route was rolled back when its reload failed"
    reload_cmd = f"kill -USR2 {lb.master_pid}"
    reloads = lb.reloads()[0]
    cli("run", "-a", "haproxy", "-i", "haproxy", *lb.args(), "-d", NAMES[0],
        "--haproxy-reload-cmd", reload_cmd)
    assert served(lb, NAMES[0]).serial_number == lineage_serial(cli, NAMES[0])
    assert lb.reloads()[0] > reloads
    conf = (cli.config_dir / "renewal" / f"{NAMES[0]}.conf").read_text()
    assert f"haproxy_reload_cmd = {reload_cmd}" in conf


def test_delete_takes_each_certificate_out_and_the_last_one_its_bind(cli: Cli,
                                                                      lb: Haproxy) -> None:
    lb.start()
    cli("certonly", "-a", "haproxy", *lb.args(), "-d", "other.example.org")
    route_only = lb.conf.read_text()  # the challenge route, no certificate installed
    for name in NAMES:
        cli("run", "-a", "haproxy", "-i", "haproxy", *lb.args(), "-d", name, "--no-redirect",
            account=False)
    crt_list = lb.root / "certwright" / "crt-list"
    cli("delete", "--cert-name", NAMES[1], account=False)
    assert NAMES[1] not in crt_list.read_text() and NAMES[0] in crt_list.read_text()
    assert not (lb.root / "certwright" / f"{NAMES[1]}.pem").exists()
    assert served(lb, NAMES[1]).serial_number == lineage_serial(cli, NAMES[0]), \
        "the name is no longer served its own certificate"
    cli("delete", "--cert-name", NAMES[0], account=False)
    assert not crt_list.exists()
    assert lb.conf.read_text() == route_only, "the https frontend certwright made is gone"
    assert probe.http_get(lb.http_port, NAMES[0], "/").status == 200
    assert lb.running


def test_a_dry_run_routes_the_challenge_only_while_it_is_open(cli: Cli, lb: Haproxy) -> None:
    lb.start()
    before = lb.snapshot()
    proc = cli("certonly", "-a", "haproxy", *lb.args(), "-d", NAMES[0], "--dry-run")
    assert "dry run" in (proc.stdout + proc.stderr).lower(), proc.stdout + proc.stderr
    assert lb.snapshot() == before, "the route was taken out again"
    assert not (cli.config_dir / "live" / NAMES[0]).exists()
    assert probe.http_get(lb.http_port, NAMES[0], "/").status == 200


def test_a_conf_dir_is_read_tested_and_edited_in_haproxys_order(cli: Cli,
                                                                 pebble: Pebble) -> None:
    from tests.servers.haproxy import GLOBAL, SITE

    with tree_server(lambda root: Haproxy(root, http_port=pebble.http_port, conf="conf.d"),
                     HAPROXY_BINARY, "certwright-haproxy-") as lb:
        root = lb.root
        lb.write(SITE, "conf.d/20-site.cfg")
        lb.write(GLOBAL, "conf.d/10-global.cfg")
        lb.start()
        cli("run", "-a", "haproxy", "-i", "haproxy", *lb.args(), "-d", NAMES[0])
        assert served(lb, NAMES[0], root_pem=pebble.root_pem()).serial_number == \
            lineage_serial(cli, NAMES[0])
        site = (root / "conf.d" / "20-site.cfg").read_text()
        assert "frontend certwright-https-www" in site and "backend certwright_acme" in site
        assert (root / "conf.d" / "10-global.cfg").read_text() == GLOBAL.format(
            **lb.values())
        assert (root / "certwright" / "crt-list").exists(), "beside the conf dir, not in it"
        assert sorted(p.name for p in (root / "conf.d").iterdir()) == [
            "10-global.cfg", "20-site.cfg"]


def test_a_file_written_but_never_swapped_in_goes_live_at_the_next_install(
        cli: Cli, lb: Haproxy) -> None:
    """A crash after the transaction wrote the new PEM and before the runtime swap leaves
    HAProxy serving the old certificate; the next install (an empty plan) swaps it in."""
    lb.start()
    cli("run", "-a", "haproxy", "-i", "haproxy", *lb.args(), "-d", NAMES[0], "--no-redirect")
    old = served(lb, NAMES[0]).serial_number
    cli("certonly", "-a", "haproxy", *lb.args(), "-d", NAMES[0], "--force-renewal",
        account=False)
    live = cli.config_dir / "live" / NAMES[0]
    pem = lb.root / "certwright" / f"{NAMES[0]}.pem"
    pem.write_bytes((live / "fullchain.pem").read_bytes() + (live / "privkey.pem").read_bytes())
    assert served(lb, NAMES[0]).serial_number == old != lineage_serial(cli, NAMES[0])
    workers = lb.workers()
    proc = cli("install", "-i", "haproxy", *lb.args(), "--cert-name", NAMES[0], "--no-redirect",
               "-v", account=False)
    assert "swapped in through" in proc.stderr, proc.stderr
    assert served(lb, NAMES[0]).serial_number == lineage_serial(cli, NAMES[0])
    assert lb.workers() == workers


def test_several_config_files_are_read_and_tested_in_order_and_stored(cli: Cli,
                                                                      pebble: Pebble) -> None:
    from tests.servers.haproxy import GLOBAL, SITE

    with tree_server(lambda root: Haproxy(root, http_port=pebble.http_port, conf="global.cfg",
                                          more=["site.cfg"]),
                     HAPROXY_BINARY, "certwright-haproxy-") as lb:
        root = lb.root
        lb.write(GLOBAL, "global.cfg")
        lb.write(SITE, "site.cfg")
        lb.start()
        cli("run", "-a", "haproxy", "-i", "haproxy", *lb.args(), "-d", NAMES[0])
        assert served(lb, NAMES[0]).serial_number == lineage_serial(cli, NAMES[0])
        assert "backend certwright_acme" in (root / "site.cfg").read_text(), "the last file"
        conf = (cli.config_dir / "renewal" / f"{NAMES[0]}.conf").read_text()
        assert f"haproxy_config = {root}/global.cfg, {root}/site.cfg" in conf, conf
        old = served(lb, NAMES[0]).serial_number
        cli("renew", "--force-renewal", "--no-random-sleep-on-renew", account=False)
        assert served(lb, NAMES[0]).serial_number == lineage_serial(cli, NAMES[0]) != old


def test_a_users_redirect_that_would_catch_the_challenge_is_named(cli: Cli,
                                                                  lb: Haproxy) -> None:
    from tests.servers.haproxy import GLOBAL, SITE

    site = SITE.replace("    default_backend app\n", "    http-request redirect scheme https "
                        "unless {{ ssl_fc }}\n    default_backend app\n", 1)
    lb.write(GLOBAL + site)
    lb.start()
    before = lb.snapshot()
    proc = cli("certonly", "-a", "haproxy", *lb.args(), "-d", NAMES[0], check=False)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1, proc.stdout + proc.stderr
    line = site.splitlines().index("    http-request redirect scheme https unless {{ ssl_fc }}")
    assert f"{lb.conf}:{GLOBAL.count(chr(10)) + line + 1}: this redirect" in lines[0]
    assert lb.snapshot() == before
    fixed = site.replace("unless {{ ssl_fc }}",
                         "if !{{ ssl_fc }} !{{ path_beg /.well-known/acme-challenge/ }}")
    lb.write(GLOBAL + fixed)
    lb.reload()
    cli("certonly", "-a", "haproxy", *lb.args(), "-d", NAMES[0])
    assert (cli.config_dir / "live" / NAMES[0] / "cert.pem").exists()
