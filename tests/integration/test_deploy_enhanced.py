"""`install` and `run` redirect by default: the deploy and its enhancements are tested
one after the other and made live with one reload, against a real nginx. An enhancement
that fails leaves the deploy live; a reload that fails undoes both."""

from __future__ import annotations

import argparse
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from certwright.core.deploy import DeployError, apply_with, expected_certificate
from certwright.core.errors import PluginError
from certwright.core.interfaces import EnhanceRequest
from certwright.core.transaction import transactions
from certwright.installers.nginx import NginxInstaller
from tests.integration.test_deploy_interrupted import (  # the same nginx tree
    self_signed,
    serves_tls,
    tree,  # noqa: F401 (a fixture)
)
from tests.servers.nginx_tree import NGINX, NginxTree

pytestmark = pytest.mark.integration


class Counting(NginxInstaller):
    """The real installer; counts reloads, and can fail its n-th config test."""

    reloads = 0
    fail_test = 0
    tests = 0

    def reload(self) -> None:
        self.reloads += 1
        super().reload()

    def config_test(self) -> None:
        self.tests += 1
        if self.tests == self.fail_test:
            raise PluginError("nginx: [emerg] injected failure")
        super().config_test()


def prepared(nginx: NginxTree, tmp_path: Path) -> tuple[Counting, object]:
    config = argparse.Namespace(nginx_server_root=str(nginx.root), nginx_ctl=NGINX,
                                nginx_reload_cmd=None, nginx_conf=None,
                                http01_port=nginx.http_port)
    installer = Counting(config)
    installer.prepare()
    req = self_signed(tmp_path / "live", "example.org")
    req = type(req)(**{**req.__dict__, "https_port": nginx.https_port})
    return installer, req


def redirect_plan(installer: Counting, nginx: NginxTree):  # type: ignore[no-untyped-def]
    return lambda: installer.plan_enhance(EnhanceRequest(
        domains=("example.org",), enhancements=frozenset({"redirect"}),
        https_port=nginx.https_port, http_port=nginx.http_port))


def redirects(nginx: NginxTree) -> bool:
    class NoFollow(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return None

    request = urllib.request.Request(f"http://127.0.0.1:{nginx.http_port}/",
                                     headers={"Host": "example.org"})
    try:
        urllib.request.build_opener(NoFollow).open(request, timeout=5)
    except urllib.error.HTTPError as exc:
        return exc.code == 301
    return False


def test_deploy_and_redirect_go_live_with_one_reload(tree: NginxTree, tmp_path: Path) -> None:  # noqa: F811
    installer, req = prepared(tree, tmp_path)
    work = tmp_path / "work"
    failed = apply_with(installer, installer.plan_deploy(req), redirect_plan(installer, tree),
                        work_dir=work, say=print, endpoints=installer.endpoints(req),
                        expected_der=expected_certificate(req.cert_path))
    assert failed is None
    assert installer.reloads == 1 and installer.tests == 2
    assert serves_tls(tree.https_port) and redirects(tree)
    assert [t.manifest.state for t in transactions(work)] == ["committed", "committed"]


def test_an_enhancement_that_fails_leaves_the_deploy_live(tree: NginxTree,  # noqa: F811
                                                          tmp_path: Path) -> None:
    installer, req = prepared(tree, tmp_path)
    installer.fail_test = 2  # the redirect's config test
    work = tmp_path / "work"
    failed = apply_with(installer, installer.plan_deploy(req), redirect_plan(installer, tree),
                        work_dir=work, say=print, endpoints=installer.endpoints(req),
                        expected_der=expected_certificate(req.cert_path))
    assert isinstance(failed, DeployError) and "injected failure" in str(failed)
    assert serves_tls(tree.https_port) and not redirects(tree)
    assert [t.manifest.state for t in transactions(work)] == ["committed", "rolled-back"]


def test_a_reload_that_fails_undoes_both(tree: NginxTree, tmp_path: Path) -> None:  # noqa: F811
    installer, req = prepared(tree, tmp_path)
    before = tree.snapshot()

    class FailingReload(Counting):
        def reload(self) -> None:
            self.reloads += 1
            if self.reloads == 1:
                raise PluginError("nginx: reload refused (injected)")
            NginxInstaller.reload(self)

    failing = FailingReload(installer.config)
    failing.prepare()
    work = tmp_path / "work"
    with pytest.raises(DeployError, match=r"reload failed.*previous configuration was restored"):
        apply_with(failing, failing.plan_deploy(req), redirect_plan(failing, tree),
                   work_dir=work, say=print, endpoints=failing.endpoints(req),
                   expected_der=expected_certificate(req.cert_path))
    assert tree.snapshot() == before and not serves_tls(tree.https_port)
    assert [t.manifest.state for t in transactions(work)] == ["rolled-back", "rolled-back"]
