"""``certwright fleet sync`` for domains served through a certwright installer: real slapd
(the inventory, ``certwrightInstaller``), a real nginx whose configuration certwright edits,
Pebble behind the ACME front."""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.conftest import require_binary
from tests.integration.fleet_env import CERTWRIGHT, FleetEnv, slapd
from tests.servers import probe
from tests.servers.acme_front import AcmeFront
from tests.servers.apache import APACHE_BINARY, ApacheServer, debian_tree, make_base
from tests.servers.fsperm import open_up
from tests.servers.nginx_tree import NGINX, NginxTree
from tests.servers.pebble import Pebble
from tests.servers.ports import free_port
from tests.servers.slapd import Slapd
from tests.servers.tree_server import new_root

pytestmark = pytest.mark.integration
__all__ = ["slapd"]  # fixture

SITE = """\
server {{
    listen 127.0.0.1:{http};
    server_name {name} www.{name};
    root {www}/{name};
}}
"""


class Managed:
    """A fleet whose sites are server blocks of one nginx that certwright installs into;
    its reloads are counted (``--nginx-reload-cmd`` through a script)."""

    def __init__(self, env: FleetEnv, tree: NginxTree, base: Path) -> None:
        self.env = env
        self.tree = tree
        self.count = base / "reloads"
        script = base / "reload.sh"
        script.write_text(f"#!/bin/sh\necho x >> {self.count}\n"
                          f"exec {NGINX} -c {tree.main} -s reload\n")
        script.chmod(0o755)
        self.tests = base / "config-tests"
        ctl = base / "nginx-ctl.sh"
        ctl.write_text(f'#!/bin/sh\ncase " $* " in *" -t "*) echo x >> {self.tests};; esac\n'
                       f'exec {NGINX} "$@"\n')
        ctl.chmod(0o755)
        env.extra += ["--nginx-server-root", str(tree.root), "--nginx-ctl", str(ctl),
                      "--nginx-reload-cmd", str(script),
                      "--precheck-https-port", str(tree.https_port)]

    def reloads(self) -> int:
        return self.count.read_text().count("x") if self.count.exists() else 0

    def config_tests(self) -> int:
        return self.tests.read_text().count("x") if self.tests.exists() else 0

    def add(self, name: str, *, webroot: bool = True, text: str = SITE) -> None:
        site = self.tree.www / name
        site.mkdir(mode=0o755, exist_ok=True)
        site.chmod(0o755)
        (site / "index.html").write_text(f"{name}\n")
        self.tree.site(name, text.replace("{name}", name))
        add_entry(self.env, name, "nginx", site if webroot else None)


def add_entry(env: FleetEnv, name: str, installer: str, webroot: Path | None) -> None:
    """The domain's LDAP entry: served through ``installer``, with or without a web root."""
    attrs: dict[str, Any] = {"associatedDomain": [name, f"www.{name}"],
                             "letsencrypt": True, "mail": "admin@c00.example.org",
                             "o": "c00", "certwrightInstaller": installer}
    if webroot is not None:
        attrs["certwrightWebroot"] = str(webroot)
    conn: Any = env.ldap.connection()
    assert conn.add(env.dn(name), ["device", "domainRelatedObject", "extensibleObject",
                                   "certwrightDomain"], attrs), conn.result
    conn.unbind()


def _fleet_env(slapd: Slapd, pebble: Pebble, front: AcmeFront, base: Path) -> FleetEnv:
    ou = f"ou=f{secrets.token_hex(3)},{slapd.suffix}"
    conn: Any = slapd.connection()
    assert conn.add(ou, ["organizationalUnit"]), conn.result
    return FleetEnv(base, slapd, pebble, front, None, ou)  # type: ignore[arg-type]


@pytest.fixture
def managed(slapd: Slapd, pebble: Pebble, tmp_path: Path) -> Iterator[Managed]:
    require_binary(NGINX)
    root = new_root("certwright-fleet-nginx-")
    tree = NginxTree(root, http_port=pebble.http_port)
    try:
        with AcmeFront(pebble, tmp_path / "front") as front:
            yield Managed(_fleet_env(slapd, pebble, front, tmp_path), tree, tmp_path)
    finally:
        tree.stop()
        shutil.rmtree(root, ignore_errors=True)


def _served(managed: Managed, name: str, root_pem: bytes) -> x509.Certificate:
    """The certificate nginx serves for ``name`` by SNI, its chain verified against
    Pebble's root."""
    cert = probe.served_cert(managed.tree.https_port, name, cadata=root_pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert name in sans.get_values_for_type(x509.DNSName)
    return cert


def test_sync_installs_every_domain_with_one_reload(managed: Managed, pebble: Pebble
                                                    ) -> None:
    names = [f"s{i}.c00.example.org" for i in range(6)]
    for name in names:
        managed.add(name)
    managed.tree.start()
    code, out = managed.env.sync_json("--jobs", "3")
    assert code == 0, out
    assert out["summary"]["new"] == 6, out
    assert managed.reloads() == 1, "one reload for the six certificates"
    assert managed.config_tests() == 1, "one configuration test for the six changes"
    root_pem = pebble.root_pem()
    for name in names:
        stored = x509.load_pem_x509_certificate(
            (managed.env.config_dir / "live" / name / "cert.pem").read_bytes())
        for host in (name, f"www.{name}"):
            assert _served(managed, host, root_pem).serial_number == stored.serial_number
        entry = managed.env.entry(name)
        assert entry["certwrightRedirect"] == ["TRUE"]
        assert entry["certwrightStatus"] == ["valid"]
        conf = (managed.env.config_dir / "renewal" / f"{name}.conf").read_text()
        assert "installer = nginx" in conf
        assert f"nginx_server_root = {managed.tree.root}" in conf
    # nothing to do: no reload, no write
    code, again = managed.env.sync_json()
    assert code == 0 and again["summary"]["keep"] == 6, again
    assert again["summary"]["ldap_writes"] == 0 and managed.reloads() == 1
    # plain `renew` redeploys through the stored installer
    old = _served(managed, names[0], root_pem).serial_number
    proc = subprocess.run(
        [CERTWRIGHT, "renew", "--config-dir", str(managed.env.config_dir),
         "--work-dir", str(managed.env.base / "work"), "--logs-dir",
         str(managed.env.base / "logs"), "--cert-name", names[0], "--force-renewal",
         "--no-random-sleep-on-renew", "--non-interactive"],
        env=managed.env.env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _served(managed, names[0], root_pem).serial_number != old


LOCKED = """\
server {{
    listen 127.0.0.1:{http};
    server_name {name} www.{name};
    root {www}/{name};
    auth_basic "customers only";
    auth_basic_user_file {root}/htpasswd;
}}
"""
HIDDEN = """\
server {{
    listen 127.0.0.1:{http};
    server_name {name} www.{name};
    root {www}/{name};
    location ~ /\\. {{ deny all; }}
}}
"""


def test_sites_the_precheck_refuses_are_answered_through_the_managed_nginx(
        managed: Managed, pebble: Pebble) -> None:
    """Basic auth (a web root given: the pre-check sees 401) and a hidden-dir ban (no web
    root: the installer answers from the start) get their certificates through nginx's
    own http-01 answers instead of being refused at the pre-check."""
    (managed.tree.root / "htpasswd").write_text("user:{PLAIN}secret\n")
    managed.add("locked.c00.example.org", text=LOCKED)
    managed.add("hidden.c00.example.org", webroot=False, text=HIDDEN)
    managed.tree.start()
    code, out = managed.env.sync_json()
    assert code == 0, out
    rows = {d["name"]: d for d in out["domains"]}
    root_pem = pebble.root_pem()
    for name in ("locked.c00.example.org", "hidden.c00.example.org"):
        assert rows[name]["state"] == "valid" and rows[name]["action"] == "new", rows
        _served(managed, name, root_pem)
        conf = (managed.env.config_dir / "renewal" / f"{name}.conf").read_text()
        assert "authenticator = nginx" in conf and "installer = nginx" in conf
        assert managed.env.entry(name)["certwrightRedirect"] == ["TRUE"]
    # the temporary challenge change is gone: the site is locked again
    assert probe.http_get(managed.tree.http_port, "locked.c00.example.org", "/").status == 401
    leftovers = [p for p in (managed.tree.root / "sites-available").iterdir()
                 if "acme-challenge" in p.read_text()]
    assert not leftovers


def test_a_failed_reload_keeps_the_old_config_and_the_next_sync_installs(
        managed: Managed, pebble: Pebble) -> None:
    """The reload fails: nginx keeps serving what it served (the change is rolled back),
    the run exits 1 naming the domain, and the next sync installs the certificate it
    already has (no new order) with one reload."""
    name = "late.c00.example.org"
    managed.add(name)
    site = managed.tree.root / "sites-available" / name
    before = site.read_text()
    managed.tree.start()
    fail = managed.count.parent / "fail"
    script = managed.count.parent / "reload.sh"
    script.write_text(script.read_text().replace("exec ", f"[ -e {fail} ] && exit 1\nexec "))
    fail.touch()
    code, out = managed.env.sync_json(check=False)
    assert code == 1, out
    (row,) = out["domains"]
    assert row["action"] == "failed" and "installing it failed" in row["error"], row
    assert site.read_text() == before, "the staged change is rolled back"
    assert "certwrightRedirect" not in managed.env.entry(name)
    fail.unlink()
    orders = len(managed.env.front.orders)
    reloads = managed.reloads()
    code, out = managed.env.sync_json()
    assert code == 0, out
    (row,) = out["domains"]
    assert row["action"] == "installed" and row["error"] is None, row
    assert len(managed.env.front.orders) == orders, "nothing ordered again"
    assert managed.reloads() == reloads + 1
    stored = x509.load_pem_x509_certificate(
        (managed.env.config_dir / "live" / name / "cert.pem").read_bytes())
    assert _served(managed, name, pebble.root_pem()).serial_number == stored.serial_number
    assert managed.env.entry(name)["certwrightRedirect"] == ["TRUE"]


def test_a_removed_domain_nginx_still_serves_keeps_its_lineage(
        managed: Managed, pebble: Pebble) -> None:
    """The customer's own server block names the certificate: deleting the lineage would
    make nginx fail its next reload, so it is kept (exit 1, the file named) and neither
    revoked nor deleted until the block is gone."""
    name = "leaving.c00.example.org"
    managed.add(name)
    managed.tree.start()
    managed.env.sync_json()
    serial = _served(managed, name, pebble.root_pem()).serial_number
    managed.env.modify(name, {"letsencrypt": [("MODIFY_DELETE", [])]})
    code, out = managed.env.sync_json("--revoke-removed", "--allow-empty-inventory",
                                      check=False)
    assert code == 1, out
    (row,) = out["domains"]
    assert "still uses the certificate at" in row["error"] and name in row["error"], row
    assert (managed.env.config_dir / "live" / name / "cert.pem").exists()
    assert pebble.cert_status(serial)["Status"] == "Valid"
    check = subprocess.run(managed.tree.ctl("-t"), capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    # the hoster takes the site away: the next sync revokes and deletes, and forgets what
    # the work dir kept for the lineage (an install, hooks still owed)
    (managed.tree.root / "sites-enabled" / name).unlink()
    owed = [managed.env.base / "work" / d / name for d in ("deploy-pending", "hooks-pending")]
    for path in owed:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.write_text("")
    code, out = managed.env.sync_json("--revoke-removed", "--allow-empty-inventory")
    assert code == 0, out
    assert not [p for p in owed if p.exists()]
    assert not (managed.env.config_dir / "live" / name).exists()
    assert pebble.cert_status(serial)["Status"] == "Revoked"


APACHE_SITE = """\
<Directory {www}/{name}>
    Require all granted
</Directory>
<VirtualHost *:{http}>
    ServerName {name}
    ServerAlias www.{name}
    DocumentRoot {www}/{name}
{body}</VirtualHost>
"""
APACHE_AUTH = """\
    <Location />
        AuthType Basic
        AuthName "members"
        AuthUserFile {www}/../htpasswd
        Require valid-user
    </Location>
"""


@contextlib.contextmanager
def _running(server: ApacheServer, pebble: Pebble) -> Iterator[ApacheServer]:
    server.start(port=pebble.http_port)
    try:
        yield server
    finally:
        server.stop()


def test_apache_sites_installed_with_one_graceful_and_basic_auth_answered(
        slapd: Slapd, pebble: Pebble, tmp_path: Path) -> None:
    """Three plain sites (web roots) and one behind basic auth (no web root: Apache
    answers) on one real Apache: every name served by SNI; one graceful reload installs
    all four, the basic-auth site's challenge costs two more (its temporary change and
    taking it away)."""
    require_binary(APACHE_BINARY)
    base = make_base()
    try:
        www = base / "www"
        names = [f"a{i}.c00.example.org" for i in range(3)]
        locked = "locked.c00.example.org"
        sites = {}
        for name in [*names, locked]:
            (www / name).mkdir(mode=0o755, parents=True)
            (www / name).chmod(0o755)
            (www / name / "index.html").write_text(f"{name}\n")
            body = APACHE_AUTH if name == locked else ""
            sites[f"{name}.conf"] = APACHE_SITE.format(
                www=www, name=name, http=pebble.http_port, body=body.format(www=www))
        (base / "htpasswd").write_text("member:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n")
        open_up(base, base)
        tree = debian_tree(base / "tree", sites=sites, ports=f"Listen {pebble.http_port}\n")
        server = ApacheServer(tree, base / "work")
        server.write_envvars()
        https_port = free_port("127.0.0.1")
        with AcmeFront(pebble, tmp_path / "front") as front, _running(server, pebble):
            env = _fleet_env(slapd, pebble, front, tmp_path)
            env.extra += ["--apache-server-root", str(tree),
                          "--precheck-https-port", str(https_port)]
            for name in names:
                add_entry(env, name, "apache", www / name)
            add_entry(env, locked, "apache", None)
            generations = server.generations()
            code, out = env.sync_json()
            assert code == 0, out
            assert out["summary"]["new"] == 4, out
            assert server.generations() == generations + 3
            root_pem = pebble.root_pem()
            for name in [*names, locked]:
                stored = x509.load_pem_x509_certificate(
                    (env.config_dir / "live" / name / "cert.pem").read_bytes())
                for host in (name, f"www.{name}"):
                    cert = probe.served_cert(https_port, host, cadata=root_pem)
                    assert cert.serial_number == stored.serial_number
                assert env.entry(name)["certwrightRedirect"] == ["TRUE"]
            assert probe.http_get(pebble.http_port, locked, "/").status == 401
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_toml_inventory_with_installer_options_and_fleet_ini(
        managed: Managed, pebble: Pebble, tmp_path: Path) -> None:
    """The TOML names the installer and its server root per domain, ``fleet.ini`` the
    reload command for the run; ``--dry-run`` says the basic-auth site will be answered
    through nginx, the sync installs both with one reload for the deploy."""
    (managed.tree.root / "htpasswd").write_text("user:{PLAIN}secret\n")
    plain, locked = "t1.c00.example.org", "t2.c00.example.org"
    for name, text in ((plain, SITE), (locked, LOCKED)):
        (managed.tree.www / name).mkdir(mode=0o755)
        managed.tree.site(name, text.replace("{name}", name))
    inventory = tmp_path / "domains.toml"
    inventory.write_text(
        f'[[domain]]\nnames = ["{plain}", "www.{plain}"]\n'
        f'webroot = "{managed.tree.www / plain}"\ninstaller = "nginx"\n'
        f'[domain.installer-options]\nnginx-server-root = "{managed.tree.root}"\n\n'
        f'[[domain]]\nnames = ["{locked}", "www.{locked}"]\n'
        f'webroot = "{managed.tree.www / locked}"\ninstaller = "nginx"\n'
        f'[domain.installer-options]\nnginx-server-root = "{managed.tree.root}"\n')
    reload_cmd = managed.env.extra[managed.env.extra.index("--nginx-reload-cmd") + 1]
    ini = tmp_path / "fleet.ini"
    ini.write_text(f"nginx-reload-cmd = {reload_cmd}\nnginx-ctl = {NGINX}\n"
                   f"precheck-https-port = {managed.tree.https_port}\n")
    managed.tree.start()
    env = managed.env
    args = ["--json", "--fleet-config", str(ini), "--inventory", str(inventory),
            "--server", env.front.directory_url, "--agree-tos", "-m", "hostmaster@example.org",
            "--precheck-dns", f"127.0.0.1:{env.ca.dns_port}",
            "--precheck-http-port", str(env.ca.http_port), "--fleet-address", "127.0.0.1"]

    def sync(*extra: str) -> dict[str, Any]:
        proc = subprocess.run(env.argv("sync", *args, *extra), env=env.env(), text=True,
                              capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return {d["name"]: d for d in json.loads(proc.stdout)["domains"]}

    dry = sync("--dry-run")
    assert "answered through nginx" in dry[locked]["error"] + "", dry
    assert managed.reloads() == 0 and not (env.config_dir / "live").exists()
    done = sync()
    assert {n: d["state"] for n, d in done.items()} == {plain: "valid", locked: "valid"}
    assert managed.reloads() == 1 + 2  # the deploy; the locked site's challenge and undo
    root_pem = pebble.root_pem()
    for name in (plain, locked):
        _served(managed, name, root_pem)
        conf = (env.config_dir / "renewal" / f"{name}.conf").read_text()
        assert f"nginx_reload_cmd = {reload_cmd}" in conf


@pytest.mark.parametrize("webroot", [False, True])
def test_kill_9_during_a_challenge_through_nginx_is_rolled_back_by_the_next_sync(
        managed: Managed, pebble: Pebble, webroot: bool) -> None:
    """kill -9 while nginx serves the temporary challenge change of a basic-auth site: the
    next sync rolls the change back before anything else, then resumes the order, its
    challenges answered through nginx again (not through the web root the pre-check
    refused)."""
    (managed.tree.root / "htpasswd").write_text("user:{PLAIN}secret\n")
    name = "crash.c00.example.org"
    managed.add(name, webroot=webroot, text=LOCKED)
    site = managed.tree.root / "sites-available" / name
    before = {p: p.read_bytes() for p in managed.tree.root.rglob("*.conf")}
    before[site] = site.read_bytes()
    managed.tree.start()
    script = managed.count.parent / "reload.sh"
    hang = managed.count.parent / "hang"
    script.write_text(script.read_text().replace(
        "exec ", f"[ -e {hang} ] && {{ touch {hang}.reached; sleep 60; }}\nexec "))
    hang.touch()
    proc = managed.env.popen_sync("--json")
    try:
        deadline = time.monotonic() + 30
        while not Path(f"{hang}.reached").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        changed = {p for p in managed.tree.root.rglob("*.conf")
                   if before.get(p) != p.read_bytes()} | (
            {site} if site.read_bytes() != before[site] else set())
        assert changed, "the challenge change is in place"
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    hang.unlink()
    code, out = managed.env.sync_json()
    assert code == 0, out
    assert site.read_bytes() == before[site] or b"ssl_certificate" in site.read_bytes()
    assert b"acme-challenge" not in site.read_bytes()
    assert not [p for p in managed.tree.root.rglob("*.conf")
                if p not in before and b"acme-challenge" in p.read_bytes()]
    _served(managed, name, pebble.root_pem())
    assert probe.http_get(managed.tree.http_port, name, "/").status == 401


def test_installer_added_to_a_domain_with_a_certificate_installs_it(
        managed: Managed, pebble: Pebble) -> None:
    """The hoster adds certwrightInstaller to a domain certwright already issued for: the
    next sync installs the certificate it has (no order, one reload) and records the
    installer for `renew`; the sync after that does nothing."""
    name = "later.c00.example.org"
    managed.add(name)
    managed.env.modify(name, {"certwrightInstaller": [("MODIFY_DELETE", [])]})
    managed.tree.start()
    code, out = managed.env.sync_json()
    assert code == 0 and out["summary"]["new"] == 1, out
    conf = managed.env.config_dir / "renewal" / f"{name}.conf"
    assert "installer =" not in conf.read_text() and managed.reloads() == 0
    orders = len(managed.env.front.orders)
    managed.env.modify(name, {"certwrightInstaller": [("MODIFY_ADD", ["nginx"])]})
    code, out = managed.env.sync_json()
    assert code == 0, out
    (row,) = out["domains"]
    assert row["action"] == "installed", row
    assert len(managed.env.front.orders) == orders and managed.reloads() == 1
    assert "installer = nginx" in conf.read_text()
    _served(managed, name, pebble.root_pem())
    assert managed.env.entry(name)["certwrightRedirect"] == ["TRUE"]
    code, out = managed.env.sync_json()
    assert code == 0 and out["summary"]["keep"] == 1, out
    assert out["summary"]["ldap_writes"] == 0 and managed.reloads() == 1


def test_one_broken_change_is_left_out_and_the_others_installed(
        managed: Managed, pebble: Pebble) -> None:
    """The changes of one server are config-tested once together; when that fails, each
    is tested on its own: the one nginx refuses (a key it can't load) is rolled back and
    reported, the others are installed with the one reload."""
    names = [f"b{i}.c00.example.org" for i in range(3)]
    for name in names:
        managed.add(name)
        managed.env.modify(name, {"certwrightInstaller": [("MODIFY_DELETE", [])]})
    managed.tree.start()
    code, out = managed.env.sync_json()
    assert code == 0, out
    broken = names[1]
    key = (managed.env.config_dir / "live" / broken / "privkey.pem").resolve()
    key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    site = managed.tree.root / "sites-available" / broken
    before = site.read_text()
    for name in names:
        managed.env.modify(name, {"certwrightInstaller": [("MODIFY_ADD", ["nginx"])]})
    code, out = managed.env.sync_json(check=False)
    assert code == 1, out
    rows = {d["name"]: d for d in out["domains"]}
    assert rows[broken]["action"] == "failed" and "config test" in rows[broken]["error"]
    assert site.read_text() == before
    assert managed.reloads() == 1
    root_pem = pebble.root_pem()
    for name in (names[0], names[2]):
        assert rows[name]["action"] == "installed", rows
        _served(managed, name, root_pem)


def test_removing_a_domain_nginx_serves_from_certwrights_own_block(
        managed: Managed, pebble: Pebble) -> None:
    """A domain with no server block of the hoster's: nginx answers its challenge and
    certwright serves it from a block of its own; once the domain is removed, that block
    goes (config test, reload), then the certificate is revoked and the lineage deleted,
    and nginx still passes its configuration test."""
    managed.add("anchor.c00.example.org")  # the hoster's one site
    name = "own.c00.example.org"
    add_entry(managed.env, name, "nginx", None)
    managed.tree.start()
    code, out = managed.env.sync_json()
    assert code == 0, out
    own = managed.tree.root / "certwright" / "servers" / f"{name}.conf"
    assert own.exists()
    serial = _served(managed, name, pebble.root_pem()).serial_number
    managed.env.modify(name, {"letsencrypt": [("MODIFY_DELETE", [])]})
    code, out = managed.env.sync_json("--revoke-removed")
    assert code == 0, out
    assert not own.exists() and not (managed.env.config_dir / "live" / name).exists()
    assert pebble.cert_status(serial)["Status"] == "Revoked"
    check = subprocess.run(managed.tree.ctl("-t"), capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    _served(managed, "anchor.c00.example.org", pebble.root_pem())


def test_renewals_in_a_sync_are_served_with_one_reload(managed: Managed,
                                                       pebble: Pebble) -> None:
    names = [f"r{i}.c00.example.org" for i in range(3)]
    for name in names:
        managed.add(name)
    managed.tree.start()
    managed.env.sync_json()
    root_pem = pebble.root_pem()
    old = {n: _served(managed, n, root_pem).serial_number for n in names}
    reloads = managed.reloads()
    managed.env.clock_offset = 70 * 86400.0  # past two thirds of the 90 days
    code, out = managed.env.sync_json()
    assert code == 0 and out["summary"]["renew"] == 3, out
    assert managed.reloads() == reloads + 1
    for name in names:
        assert _served(managed, name, root_pem).serial_number != old[name]
