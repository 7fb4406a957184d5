"""Apache vhost reading and selection compared with Apache's own map (``apache2 -S``).

Each tree is read by certwright (augeas, Include graph, conditions) and grouped the way
:mod:`certwright.installers.apache.select` groups vhosts; the groups, their order (the
first is the address's default) and the names must equal what a real apache2 run from
the same temp tree prints with ``-S``.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from certwright.installers.apache.binary import probe_binary
from certwright.installers.apache.evaluate import Evaluator, read_config
from certwright.installers.apache.model import ApacheConfig, VirtualHost
from certwright.installers.apache.select import (
    answer,
    choose,
    group_for,
    vhost_groups,
    wake_risks,
)
from certwright.installers.apache.tree import ApacheParseError
from tests.conftest import require_binary
from tests.servers.apache import (
    APACHE_BINARY,
    ApacheServer,
    DumpedVhost,
    debian_tree,
    make_base,
    parse_vhost_dump,
)
from tests.servers.fsperm import open_up
from tests.servers.ports import ServerStartError, free_port

pytestmark = pytest.mark.integration

MODULES = "/usr/lib/apache2/modules"
PORTS_SSL = "Listen 80\n<IfModule ssl_module>\nListen 443\n</IfModule>\n"


@pytest.fixture
def base() -> Iterator[Path]:
    require_binary(APACHE_BINARY)
    path = make_base()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def ours(config: ApacheConfig) -> dict[str, list[DumpedVhost]]:
    return {
        str(group.address): [DumpedVhost(v.name or "?", v.file, v.line) for v in group.vhosts]
        for group in vhost_groups(config.vhosts)
    }


def assert_same_map(
    server: ApacheServer, config: ApacheConfig, *, macros: int = 0
) -> dict[str, list[DumpedVhost]]:
    """Compare with ``apache2 -S``; ``macros`` vhosts made by ``Use`` lines are set aside
    (certwright does not expand macros, and leaves their names alone)."""
    truth = parse_vhost_dump(server.dump_vhosts())
    made = [v for vs in truth.values() for v in vs if v.file.startswith("macro '")]
    assert len(made) == macros, made
    truth = {
        address: kept
        for address, vs in truth.items()
        if (kept := [v for v in vs if not v.file.startswith("macro '")])
    }
    mine = ours(config)
    assert sorted(mine) == sorted(truth), (mine, truth)
    for address, vhosts in truth.items():
        got = mine[address]
        assert [(v.file, v.line) for v in got] == [(v.file, v.line) for v in vhosts], address
        for g, t in zip(got, vhosts, strict=True):
            if g.name != "?":  # unnamed: Apache prints its own guess of the host name
                assert g.name == t.name, (address, g, t)
    return truth


def read(server: ApacheServer) -> ApacheConfig:
    return read_config(str(server.tree), binary=probe_binary(APACHE_BINARY), env=server.env)


def debian(base: Path, sites: dict[str, str], ports: str = "Listen 80\n") -> ApacheServer:
    tree = debian_tree(base / "tree", sites=sites, ports=ports)
    return ApacheServer(tree, base / "work")


def enable_ssl(tree: Path) -> None:
    for name in ("ssl.load", "ssl.conf", "socache_shmcb.load"):
        (tree / "mods-enabled" / name).symlink_to(f"../mods-available/{name}")


def test_debian_stock_one_site(base: Path) -> None:
    stock = Path("/etc/apache2/sites-available/000-default.conf").read_text()
    server = debian(base, {"000-default.conf": stock})
    config = read(server)
    truth = assert_same_map(server, config)
    assert list(truth) == ["*:80"]
    assert config.files[0] == str(server.tree / "apache2.conf")
    assert "${APACHE_LOG_DIR}" not in str(config.vhosts[0].directives)
    assert choose(config, "example.org").needs_own_vhost


THREE = """\
<VirtualHost *:80>
    ServerName a.example
    ServerAlias www.a.example
</VirtualHost>
<VirtualHost *:80>
    ServerName b.example
</VirtualHost>

<VirtualHost *:80>
    ServerName c.example
    ServerAlias www.c.example
</VirtualHost>
"""


def test_three_name_based_vhosts_in_one_file(base: Path) -> None:
    server = debian(base, {"multi.conf": THREE})
    config = read(server)
    truth = assert_same_map(server, config)
    assert [v.line for v in truth["*:80"]] == [1, 5, 9]
    for name, line in (("www.c.example", 9), ("b.example", 5), ("a.example", 1)):
        choice = choose(config, name)
        assert [a.vhost.line for a in choice.by_name] == [line]
        assert not choice.needs_own_vhost
    other = choose(config, "nope.example")
    assert other.needs_own_vhost and other.answers[0].vhost.line == 1


def test_existing_443_vhost(base: Path) -> None:
    site = THREE.split("<VirtualHost *:80>\n    ServerName b")[0] + (
        "<IfModule mod_ssl.c>\n<VirtualHost *:443>\n    ServerName a.example\n"
        "    SSLEngine on\n</VirtualHost>\n</IfModule>\n"
    )
    server = debian(base, {"a.conf": site}, ports=PORTS_SSL)
    enable_ssl(server.tree)
    config = read(server)
    truth = assert_same_map(server, config)
    assert set(truth) == {"*:80", "*:443"}
    tls = choose(config, "a.example", 443)
    assert [a.vhost.ssl_engine for a in tls.by_name] == [True]
    assert [p.port for p in config.listens] == [80, 443]


def test_ipv6_and_ip_specific_beat_wildcard(base: Path) -> None:
    site = (
        "<VirtualHost *:80>\n    ServerName a.example\n</VirtualHost>\n"
        "<VirtualHost [::1]:80>\n    ServerName a.example\n</VirtualHost>\n"
        "<VirtualHost 127.0.0.1:80>\n    ServerName b.example\n</VirtualHost>\n"
        "<VirtualHost 127.0.0.1:80>\n    ServerName c.example\n</VirtualHost>\n"
    )
    server = debian(base, {"ip.conf": site})
    config = read(server)
    truth = assert_same_map(server, config)
    assert set(truth) == {"*:80", "[::1]:80", "127.0.0.1:80"}
    answers = {str(a.group.address): a for a in choose(config, "a.example").answers}
    assert answers["[::1]:80"].by_name and answers["*:80"].by_name
    # on 127.0.0.1 the `*` vhost named a.example is never consulted: b.example is default
    assert not answers["127.0.0.1:80"].by_name
    assert answers["127.0.0.1:80"].vhost.name == "b.example"


GLOBS = """\
<VirtualHost *:80>
    ServerName first.example
    ServerAlias *.example.net ?.example.org
</VirtualHost>
<VirtualHost *:80>
    ServerName a.example.net
</VirtualHost>
"""


def test_serveralias_globs(base: Path) -> None:
    server = debian(base, {"globs.conf": GLOBS})
    config = read(server)
    assert_same_map(server, config)
    hit = choose(config, "x.example.org").by_name
    assert [(a.vhost.line, a.pattern) for a in hit] == [(1, "?.example.org")]
    assert not choose(config, "xy.example.org").by_name
    # Apache takes the first vhost that matches at all: the glob before the exact name
    assert [a.vhost.line for a in choose(config, "a.example.net").by_name] == [1]


def test_defines_variables_and_include_order(base: Path) -> None:
    server = debian(
        base,
        {
            "10-b.conf": "Define SITE b.example\n<IfDefine SITE>\n<VirtualHost *:80>\n"
            "    ServerName ${SITE}\n</VirtualHost>\n</IfDefine>\n",
            "2-a.conf": "<IfDefine !SITE>\n<VirtualHost *:80>\n    ServerName a.example\n"
            "</VirtualHost>\n</IfDefine>\n<IfVersion >= 2.4>\n<VirtualHost *:80>\n"
            "    ServerName ${SITE}2\n</VirtualHost>\n</IfVersion>\n"
            "<IfVersion < 2.2>\n<VirtualHost *:80>\n    ServerName old.example\n"
            "</VirtualHost>\n</IfVersion>\n",
        },
    )
    config = read(server)
    truth = assert_same_map(server, config)
    # byte order: 10-b.conf is read before 2-a.conf, so SITE is defined there
    assert [v.name for v in truth["*:80"]] == ["b.example", "b.example2"]
    assert [v.name for v, _ in config.dormant] == ["a.example", "old.example"]


def test_rhel_tree_on_debian_binary(base: Path) -> None:
    tree = base / "httpd"
    for sub in ("conf", "conf.d", "conf.modules.d", "logs", "run"):
        (tree / sub).mkdir(parents=True)
    (tree / "conf" / "httpd.conf").write_text(
        f'ServerRoot "{tree}"\nListen 80\nInclude conf.modules.d/*.conf\n'
        "User www-data\nGroup www-data\nServerName main.example\n"
        f'PidFile "{base}/work/run/httpd.pid"\nErrorLog "{base}/work/log/error.log"\n'
        f'DefaultRuntimeDir "{base}/work/run"\n'
        "IncludeOptional conf.d/*.conf\n"
    )
    # log_config is built into Debian's binary: RHEL's LoadModule line for it can't stay
    (tree / "conf.modules.d" / "00-base.conf").write_text(
        "".join(
            f"LoadModule {m}_module {MODULES}/mod_{m}.so\n"
            for m in ("authz_core", "mime", "dir", "alias")
        )
    )
    (tree / "conf.modules.d" / "00-mpm.conf").write_text(
        f"LoadModule mpm_event_module {MODULES}/mod_mpm_event.so\n"
    )
    (tree / "conf.d" / "sites.conf").write_text(
        "<VirtualHost *:80>\n    ServerName r.example\n</VirtualHost>\n"
        "<VirtualHost *:80>\n    ServerAlias *.r.example\n</VirtualHost>\n"
        "<IfModule mod_ssl.c>\n<VirtualHost _default_:443>\n</VirtualHost>\n</IfModule>\n"
    )
    server = ApacheServer(tree, base / "work", main_file="conf/httpd.conf")
    config = read(server)
    assert config.layout == "rhel"
    truth = assert_same_map(server, config)
    assert [v.name for v in truth["*:80"]] == ["r.example", "main.example"]
    # the second vhost has no ServerName: it inherits the main server's, yet it is a
    # catch-all, not a vhost chosen for that name
    main = choose(config, "main.example")
    assert main.needs_own_vhost and main.answers[0].vhost.line == 4
    assert [a.vhost.line for a in choose(config, "x.r.example").by_name] == [4]


def test_hestia_style_tree(base: Path) -> None:
    server = debian(base, {"000-default.conf": "<VirtualHost *:80>\n</VirtualHost>\n"})
    main = server.tree / "apache2.conf"
    main.write_text(
        main.read_text().replace(
            "IncludeOptional sites-enabled/*.conf",
            "IncludeOptional conf.d/*.conf\nIncludeOptional conf.d/domains/*.conf",
        )
    )
    home = base / "home" / "user" / "conf" / "web" / "example.org"
    home.mkdir(parents=True)
    (home / "apache2.conf").write_text(
        "<VirtualHost 127.0.0.1:8080>\n    ServerName example.org\n"
        "    ServerAlias www.example.org\n</VirtualHost>\n"
    )
    (server.tree / "conf.d" / "domains").mkdir(parents=True)
    (server.tree / "conf.d" / "domains" / "example.org.conf").symlink_to(home / "apache2.conf")
    config = read(server)
    truth = assert_same_map(server, config)
    assert list(truth) == ["127.0.0.1:8080"]
    assert config.not_loaded == (str(server.tree / "sites-enabled" / "000-default.conf"),)
    assert choose(config, "www.example.org", 8080).by_name[0].vhost.file == str(
        server.tree / "conf.d" / "domains" / "example.org.conf"
    )


DORMANT = """\
<VirtualHost *:80>
    ServerName a.example
</VirtualHost>
<IfModule mod_ssl.c>
<VirtualHost _default_:443>
    ServerName a.example
    DocumentRoot /var/www/html
</VirtualHost>
</IfModule>
"""


def test_dormant_vhost_wakes_with_mod_ssl(base: Path) -> None:
    server = debian(
        base,
        {"a.conf": DORMANT},
        ports="Listen 80\n<IfModule ssl_module>\nListen 443\n</IfModule>\n",
    )
    evaluator = Evaluator(str(server.tree), binary=probe_binary(APACHE_BINARY), env=server.env)
    try:
        config = evaluator.evaluate()
        assert_same_map(server, config)
        assert [v.addresses[0].port for v in config.vhosts] == [80]
        choice = choose(config, "a.example", 443)
        assert not choice.answers and [v.line for v, _ in choice.dormant] == [5]
        woken = evaluator.waking(config, ["ssl_module"])
    finally:
        evaluator.close()
    risks = wake_risks(woken)
    assert len(risks) == 1 and "AH01916" in risks[0].reason
    # and Apache agrees about what wakes once mod_ssl is really enabled
    enable_ssl(server.tree)
    awake = read(server)
    truth = assert_same_map(server, awake)
    assert [(v.file, v.line) for v in truth["*:443"]] == [(w.file, w.line) for w in woken]


def test_macro_and_mdomain_left_alone(base: Path) -> None:
    (base / "tree").mkdir()
    site = (
        "<Macro Site $name>\n<VirtualHost *:80>\n    ServerName $name\n</VirtualHost>\n"
        "</Macro>\nUse Site m.example\n<VirtualHost *:80>\n    ServerName plain.example\n"
        "</VirtualHost>\nMDomain md.example\n"
    )
    server = debian(base / "t", {"m.conf": site})
    for name in ("macro.load", "md.load"):
        (server.tree / "mods-enabled" / name).symlink_to(f"../mods-available/{name}")
    config = read(server)
    assert_same_map(server, config, macros=1)
    macro = choose(config, "m.example")
    assert macro.left_alone and "Use Site m.example" in macro.left_alone
    assert not macro.needs_own_vhost
    md = choose(config, "md.example")
    assert md.left_alone and "mod_md" in md.left_alone
    assert not choose(config, "plain.example").left_alone


def test_unparsable_file_names_file_and_line(base: Path) -> None:
    server = debian(base, {"bad.conf": "<VirtualHost *:80>\n  ServerName a\n</VirtualHostt>\n"})
    with pytest.raises(ApacheParseError) as info:
        read(server)
    message = str(info.value)
    assert message.startswith(f"{server.tree / 'sites-enabled' / 'bad.conf'}:1: ")
    assert "VirtualHostt" in message and "\n" not in message
    assert server.config_test().returncode != 0  # Apache refuses it too


def http_body(host: str, port: int, name: str) -> str:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect((host, port))
        sock.sendall(f"GET / HTTP/1.0\r\nHost: {name}\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[1].decode().strip()


def test_choice_matches_what_a_running_apache_serves(base: Path) -> None:
    port = free_port()
    docroots = base / "www"
    vhosts = [  # (address, any port?, ServerName, ServerAlias)
        ("*", True, "star.example", "first.example"),  # shadowed by the `*:port` ones
        ("127.0.0.1", True, "lo.example", "ip.example"),  # shadowed by 127.0.0.1:port
        ("*", False, "first.example", "*.example.net ?.example.org"),
        ("*", False, "a.example.net", "b.example"),
        ("127.0.0.1", False, "ip.example", ""),
        ("[::1]", False, "six.example", ""),
        ("*", False, "", "c.example"),
    ]
    site = f"<Directory {docroots}>\n    Require all granted\n</Directory>\n"
    for index, (addr, any_port, name, aliases) in enumerate(vhosts):
        root = docroots / f"v{index}"
        root.mkdir(parents=True)
        (root / "index.html").write_text(f"v{index}\n")
        where = addr if any_port else f"{addr}:{port}"
        site += f"<VirtualHost {where}>\n    DocumentRoot {root}\n"
        site += f"    ServerName {name}\n" if name else ""
        site += f"    ServerAlias {aliases}\n" if aliases else ""
        site += "</VirtualHost>\n"
    open_up(docroots, base)
    server = debian(
        base,
        {"sites.conf": site},
        ports=f"Listen 127.0.0.1:{port}\nListen 127.0.0.2:{port}\nListen [::1]:{port}\n",
    )
    config = read(server)
    assert_same_map(server, config)
    groups = vhost_groups(config.vhosts)
    names = [
        "first.example",
        "x.example.net",
        "a.example.net",
        "b.example",
        "q.example.org",
        "qq.example.org",
        "ip.example",
        "six.example",
        "c.example",
        "none.example",
        "star.example",
        "lo.example",
    ]
    server.start(port=port)
    pid = server.pid
    try:
        server.graceful()  # a reload keeps serving the same map
        # 127.0.0.2 has no IP-specific vhost: the `*` ones answer there
        for host in ("127.0.0.1", "127.0.0.2", "::1"):
            group = group_for(groups, host, port)
            assert group is not None
            for name in names:
                served = http_body(host, port, name)
                chosen = answer(group, name).vhost
                assert served == Path(_docroot(chosen)).name, (host, name)
        workers = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert workers
    finally:
        server.stop()
    assert server.generations() == 2
    # stopped by its pid, and its workers with it
    assert not [p for p in [str(pid), *workers] if Path(f"/proc/{p}").exists()]


def _docroot(vhost: VirtualHost) -> str:
    return next(d.args[0] for d in vhost.directives if d.name == "DocumentRoot")


def test_builtin_module_loaded_by_a_foreign_tree_is_flagged(base: Path) -> None:
    """RHEL's ``LoadModule log_config_module`` is fatal on Debian's binary, where that
    module is compiled in: the reading says so instead of pretending all is well."""
    server = debian(base, {"a.conf": THREE})
    (server.tree / "mods-enabled" / "log_config.load").write_text(
        f"LoadModule log_config_module {MODULES}/mod_log_config.so\n"
    )
    config = read(server)
    assert any(
        "log_config_module is built-in" in w and "log_config.load:1" in w for w in config.warnings
    )
    test = server.config_test()
    assert test.returncode != 0 and "built-in" in test.stderr


def test_stock_default_ssl_site_sleeps_until_mod_ssl(base: Path) -> None:
    """Debian's ``default-ssl.conf`` as Debian 11 and older ship it (inside
    ``<IfModule mod_ssl.c>``), enabled without mod_ssl: dormant, and reported as what
    enabling mod_ssl would wake (it has ``SSLEngine on``: no AH01916 risk)."""
    stock = Path("/etc/apache2/sites-available")
    wrapped = f"<IfModule mod_ssl.c>\n{(stock / 'default-ssl.conf').read_text()}</IfModule>\n"
    server = debian(
        base,
        {"000-default.conf": (stock / "000-default.conf").read_text(), "default-ssl.conf": wrapped},
        ports=(Path("/etc/apache2/ports.conf")).read_text(),
    )
    evaluator = Evaluator(str(server.tree), binary=probe_binary(APACHE_BINARY), env=server.env)
    try:
        config = evaluator.evaluate()
        truth = assert_same_map(server, config)
        woken = evaluator.waking(config, ["ssl_module"])
    finally:
        evaluator.close()
    assert list(truth) == ["*:80"]
    ssl_site = str(server.tree / "sites-enabled" / "default-ssl.conf")
    assert [(v.file, cond) for v, cond in config.dormant] == [(ssl_site, "IfModule mod_ssl.c")]
    assert [v.file for v in woken] == [ssl_site] and woken[0].ssl_engine
    assert "AH01916" not in wake_risks(woken)[0].reason
    enable_ssl(server.tree)
    awake = assert_same_map(server, read(server))
    assert [v.file for v in awake["*:443"]] == [ssl_site]


def test_directive_of_a_module_not_loaded_is_flagged(base: Path) -> None:
    """Debian 12's ``default-ssl.conf`` has no ``<IfModule>`` around it: enabled without
    mod_ssl, Apache refuses the whole configuration, and the reading says where."""
    stock = Path("/etc/apache2/sites-available/default-ssl.conf").read_text()
    server = debian(base, {"default-ssl.conf": stock})
    config = read(server)
    where = f"{server.tree / 'sites-enabled' / 'default-ssl.conf'}:"
    flagged = [w for w in config.warnings if "SSLEngine needs ssl_module" in w]
    assert len(flagged) == 1 and flagged[0].startswith(where)
    test = server.config_test()
    assert test.returncode != 0 and "SSLEngine" in test.stderr
    enable_ssl(server.tree)
    assert not [w for w in read(server).warnings if "needs" in w]


def test_host_name_and_repeated_addresses(base: Path) -> None:
    """``<VirtualHost localhost:80>`` is resolved as Apache resolves it; an address
    listed twice puts the vhost twice in its group, as ``apache2 -S`` shows."""
    server = debian(
        base,
        {
            "h.conf": "<VirtualHost localhost:80>\n    ServerName h.example\n</VirtualHost>\n"
            "<VirtualHost 127.0.0.1:80 127.0.0.1:80>\n    ServerName d.example\n"
            "</VirtualHost>\n"
        },
    )
    config = read(server)
    truth = assert_same_map(server, config)
    assert "127.0.0.1:80" in truth
    assert [a.vhost.name for a in choose(config, "d.example").by_name] == ["d.example"]


def test_test_server_that_does_not_come_up_is_stopped(base: Path) -> None:
    port, other = free_port(), free_port()
    server = debian(base, {"a.conf": THREE}, ports=f"Listen 127.0.0.1:{port}\n")
    with pytest.raises(ServerStartError, match="not ready"):
        server.start(port=other, timeout=1.0)
    assert server.pid is None
    assert not [cmd for cmd in _command_lines() if str(server.tree) in cmd]


def _command_lines() -> list[str]:
    lines = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            lines.append(Path(f"/proc/{pid}/cmdline").read_text(errors="replace"))
        except OSError:  # gone meanwhile
            continue
    return lines
