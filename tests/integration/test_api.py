"""The library entry point against a real Pebble: several certificates in one process,
from several threads, through one transport; outcomes, not printed lines."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from certwright.core import api, session
from tests.integration.conftest import nginx_tree
from tests.servers import probe
from tests.servers.nginx_tree import NginxTree
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration


@pytest.fixture
def base(pebble: Pebble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> api.Settings:
    for key, value in pebble.env({}).items():
        monkeypatch.setenv(key, value)
    return api.settings(config_dir=tmp_path / "config", work_dir=tmp_path / "work",
                        server=pebble.directory_url, email="admin@example.org")


def standalone(pebble: Pebble, *names: str) -> api.Request:
    return api.Request(list(names), authenticator="standalone",
                       options={"http01_port": pebble.http_port,
                                "http01_address": "127.0.0.1"})


def test_obtain_many_in_one_process_then_renew_and_fail_cleanly(
        base: api.Settings, pebble: Pebble) -> None:
    names = [f"api{i}.example.org" for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda n: api.obtain(standalone(pebble, n), base), names))
    assert [o.status for o in outcomes] == ["issued"] * 4, [o.error for o in outcomes]
    assert len({o.serial for o in outcomes}) == 4
    for name, outcome in zip(names, outcomes, strict=True):
        assert outcome.lineage == name and outcome.domains == (name,)
        assert outcome.fullchain_path is not None and outcome.not_after is not None
        cert = x509.load_pem_x509_certificate(Path(outcome.cert_path or "").read_bytes())
        assert cert.serial_number == outcome.serial
        assert cert.not_valid_after_utc == outcome.not_after
        assert any("Successfully received certificate" in m for m in outcome.messages)
    # one transport for the CA, shared by every order of the process
    assert session.transport(base) is session.transport(base)
    assert len([k for k in session.TRANSPORTS._made if k[0] == base.server]) == 1

    again = api.obtain(standalone(pebble, names[0]), base)  # not due: nothing asked of the CA
    assert again.status == "kept" and again.serial == outcomes[0].serial

    renewed = api.renew(names[0], base, force=True)
    assert renewed.status == "renewed", renewed.error
    assert renewed.serial != outcomes[0].serial and renewed.lineage == names[0]

    failed = api.obtain(standalone(pebble, "not a name"), base)
    assert failed.status == "failed" and failed.error and "\n" not in failed.error
    missing = api.renew("nothing-here", base)
    assert missing.status == "failed" and "nothing-here" in (missing.error or "")


SITE = """\
server {{
    listen 127.0.0.1:{http};
    server_name lib.example.org;
    root {www};
}}
"""


@pytest.fixture
def tree(pebble: Pebble) -> Iterator[NginxTree]:
    with nginx_tree(pebble, "certwright-api-") as t:
        yield t


def test_deploy_into_nginx_and_renew_redeploys(base: api.Settings, tree: NginxTree) -> None:
    tree.site("lib", SITE)
    tree.start()
    nginx = {"nginx_server_root": str(tree.root), "https_port": tree.https_port,
             "http01_port": tree.http_port}
    issued = api.obtain(api.Request(["lib.example.org"], authenticator="nginx",
                                    options=nginx), base)
    assert issued.status == "issued", issued.error
    before = tree.snapshot()
    planned = api.deploy("lib.example.org", base, installer="nginx",
                         options={**nginx, "dry_run": True})
    assert planned.status == "dry-run" and tree.snapshot() == before
    assert any("ssl_certificate" in m for m in planned.messages)
    deployed = api.deploy("lib.example.org", base, installer="nginx", options=nginx)
    assert deployed.status == "deployed", deployed.error
    served = probe.served_cert(tree.https_port, "lib.example.org")
    assert served.serial_number == deployed.serial == issued.serial
    renewed = api.renew("lib.example.org", base, force=True)  # the stored nginx installs it
    assert renewed.status == "renewed", renewed.error
    assert probe.served_cert(tree.https_port, "lib.example.org").serial_number == \
        renewed.serial != issued.serial
    broken = api.deploy("lib.example.org", base, installer="nginx",
                        options={**nginx, "nginx_server_root": str(tree.root / "nowhere")})
    assert broken.status == "failed" and "nowhere" in (broken.error or "")


def test_a_misspelt_option_is_an_error_naming_it(base: api.Settings, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="'http_01_port'"):
        api.settings(config_dir=tmp_path / "c", work_dir=tmp_path / "w", http_01_port=80)
    with pytest.raises(TypeError, match="'webroot_paths'"):
        api.obtain(api.Request(["x.example.org"], options={"webroot_paths": ["/srv"]}), base)
    # a plugin's options and the core's are known by their dests
    api.settings(config_dir=tmp_path / "c", work_dir=tmp_path / "w", http01_port=80,
                 nginx_server_root="/etc/nginx", webroot_path=["/srv"])
