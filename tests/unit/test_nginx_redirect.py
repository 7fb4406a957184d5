"""The redirect to https after internal redirects, with a real nginx: a missing file under
``/.well-known/acme-challenge/`` answers 404 over plain http, not 301, on blocks whose
``error_page``/``try_files`` send it elsewhere inside nginx; installs made with the
earlier form are upgraded by the next deploy or redirect."""

from __future__ import annotations

from pathlib import Path

import pytest

from certwright.core.interfaces import EnhanceRequest
from certwright.installers.nginx.enhance import plan_enhance
from certwright.installers.nginx.plan import plan_deploy
from certwright.installers.nginx.tree import load_tree
from tests.servers.ports import free_port
from tests.unit.test_nginx_nginx_t import (  # noqa: F401  (fixtures used below)
    Tree,
    get,
    restart,
    running,
    tls,
    tree,
)

SITES = """\
server {{
    listen 127.0.0.1:{http};
    server_name example.org;
    root {www};
    error_page 404 /404.html;
}}
server {{
    listen 127.0.0.1:{http};
    server_name www.example.org;
    root {www};
    location / {{
        try_files $uri $uri/ /index.php?$args;
    }}
    location ~ \\.php$ {{
        return 404;
    }}
}}
"""
NAMES = ("example.org", "www.example.org")
CHALLENGE = "/.well-known/acme-challenge/missing"
OLD_FORM = '    set $certwright_redirect "$scheme:$uri";\n'


def check_served(tree: Tree, proc: Tree, http: int) -> None:  # noqa: F811
    restart(tree, proc, http)
    for name in NAMES:
        assert get(http, name, "/page?x=1")[:2] == (301, f"https://{name}/page?x=1"), name
        assert get(http, name, CHALLENGE)[0] == 404, name  # was 301 to https
        assert get(http, name, "/.well-known/acme-challenge/file")[::2] == \
            (200, b"from the webroot")


@pytest.fixture
def sites(tree: Tree, www_root: Path) -> int:  # noqa: F811
    (www_root / ".well-known/acme-challenge").mkdir(parents=True)
    (www_root / ".well-known/acme-challenge/file").write_text("from the webroot")
    http = free_port()
    tree.site("site", SITES, http=http, www=www_root)
    return http


def test_missing_challenge_file_is_404_after_internal_redirects(
        tree: Tree, running: Tree, sites: int) -> None:  # noqa: F811
    https = free_port()
    tree.deploy(tree.request(*NAMES, https=https, http=sites))
    tree.enhance(NAMES, "redirect", https=https, http=sites)
    check_served(tree, running, sites)


def test_the_earlier_form_is_upgraded_by_the_next_deploy(
        tree: Tree, running: Tree, sites: int) -> None:  # noqa: F811
    https = free_port()
    tree.deploy(tree.request(*NAMES, https=https, http=sites))
    tree.enhance(NAMES, "redirect", https=https, http=sites)
    site = tree.root / "sites" / "site"
    text = site.read_text()
    current = '    set $certwright_redirect "$scheme:$request_uri";\n'
    assert text.count(current) == 2
    site.write_text(text.replace(current, OLD_FORM))  # as an earlier version wrote it
    restart(tree, running, sites)
    assert get(sites, "example.org", CHALLENGE)[0] == 301  # what the earlier form did
    # a deploy (a renewal's install) upgrades it; so does asking for the redirect again
    tree.deploy(tree.request(*NAMES, https=https, http=sites))
    assert site.read_text() == text
    check_served(tree, running, sites)
    site.write_text(text.replace(current, OLD_FORM))
    req = EnhanceRequest(NAMES, frozenset({"redirect"}), https_port=https, http_port=sites)
    plan = plan_enhance(load_tree(str(tree.main)), req, tree.layout)
    assert [c.new_content for c in plan.changes] == [text.encode()]
    assert plan_deploy(load_tree(str(tree.main)), tree.request(*NAMES, https=https, http=sites),
                       tree.layout).changes[0].new_content == text.encode()
