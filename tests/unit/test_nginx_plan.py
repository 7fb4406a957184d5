"""nginx plans: deploy, enhancements and http-01 as new file text, edited line by line."""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from certwright.core.errors import PluginError
from certwright.core.interfaces import (
    ChallengeTask,
    ChangePlan,
    DeployRequest,
    Endpoint,
    EnhanceRequest,
    Identifier,
)
from certwright.installers.nginx.enhance import plan_enhance
from certwright.installers.nginx.http01 import plan_http01
from certwright.installers.nginx.plan import OPTIONS_TEXT, plan_deploy, plan_forget
from certwright.installers.nginx.planner import (
    CHALLENGE_GUARD,
    HSTS_LINE,
    REDIRECT_LINES,
    UIR_LINE,
)
from certwright.installers.nginx.targets import Layout, deploy_endpoints
from certwright.installers.nginx.tree import NginxTree, load_tree

LIVE = "/etc/certwright/live/example.org"


def request(*domains: str, name: str = "example.org", https: int = 443,
            http: int = 80) -> DeployRequest:
    live = LIVE.replace("example.org", name)
    return DeployRequest(
        cert_name=name, domains=domains or ("example.org",), cert_path=f"{live}/cert.pem",
        key_path=f"{live}/privkey.pem", chain_path=f"{live}/chain.pem",
        fullchain_path=f"{live}/fullchain.pem", https_port=https, http_port=http)


MAIN = """\
# main configuration: kept byte for byte
user www-data;
events {
    worker_connections 64;
}

http {
\tsendfile on;   # a tab-indented line

    include sites/*;
}
"""


class Tree:
    """A config tree on disk: write files, read the tree, plan, apply plans."""

    def __init__(self, root: Path, files: dict[str, str]) -> None:
        self.root = root
        self.layout = Layout(str(root))
        for rel, text in {"nginx.conf": MAIN, **files}.items():
            self.put(rel, text)

    def put(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())

    def text(self, rel: str) -> str:
        return (self.root / rel).read_bytes().decode()

    def load(self) -> NginxTree:
        return load_tree(str(self.root / "nginx.conf"))

    def deploy(self, req: DeployRequest) -> ChangePlan:
        return plan_deploy(self.load(), req, self.layout)

    def apply(self, plan: ChangePlan) -> None:
        for change in plan.changes:
            path = Path(change.path)
            current = path.read_bytes() if path.exists() else None
            expected = hashlib.sha256(current).hexdigest() if current is not None else None
            assert expected == change.expected_sha256, change.path
            if change.new_content is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(change.new_content)


def changed(plan: ChangePlan, path: Path) -> str:
    (change,) = [c for c in plan.changes if c.path == str(path)]
    assert change.new_content is not None
    return change.new_content.decode()


def line_diff(old: str, new: str) -> tuple[list[str], list[str]]:
    """Removed and added lines (with their endings): everything else is unchanged."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    removed: list[str] = []
    added: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op != "equal":
            removed += a[i1:i2]
            added += b[j1:j2]
    return removed, added


def stripped(lines: list[str]) -> list[str]:
    return [line.strip() for line in lines]


# -- deploy ---------------------------------------------------------------------------------
SEVERAL = """\
# three sites in one file
server {
    listen 80;
    server_name example.org;      # the apex
    root /srv/apex;
}

server {
\tlisten 80;
\tserver_name www.example.org;
\troot /srv/www;
}

server {
    listen 80;
    server_name unrelated.test;
}
"""


def test_several_blocks_in_one_file_only_insertions(tmp_path: Path) -> None:
    tree = Tree(tmp_path, {"sites/example": SEVERAL})
    plan = tree.deploy(request("example.org", "www.example.org"))
    new = changed(plan, tmp_path / "sites/example")
    removed, added = line_diff(SEVERAL, new)
    assert removed == []
    include = f"include {tmp_path}/certwright/options-ssl-nginx.conf;"
    block = ["listen 443 ssl;", f"ssl_certificate {LIVE}/fullchain.pem;",
             f"ssl_certificate_key {LIVE}/privkey.pem;", include]
    assert stripped(added) == block + block
    # each group sits after its block's listen, indented like the block (spaces, then tabs)
    assert "    listen 80;\n    listen 443 ssl;\n" in new
    assert "\tlisten 80;\n\tlisten 443 ssl;\n\tssl_certificate " in new
    assert new.endswith("server {\n    listen 80;\n    server_name unrelated.test;\n}\n")
    options = changed(plan, tmp_path / "certwright/options-ssl-nginx.conf")
    assert options == OPTIONS_TEXT
    assert "TLSv1.2 TLSv1.3" in options and "ssl_stapling" not in options
    assert plan.changes[-1].expected_sha256 is None  # created
    assert str(tmp_path / "nginx.conf") not in {c.path for c in plan.changes}


def test_applied_deploy_is_stable(tmp_path: Path) -> None:
    tree = Tree(tmp_path, {"sites/example": SEVERAL})
    tree.apply(tree.deploy(request("example.org", "www.example.org")))
    again = tree.deploy(request("example.org", "www.example.org"))
    assert again.empty, again
    # a renewed lineage at new paths: the certificate lines are replaced, nothing added
    other = DeployRequest("example.org", ("example.org",), "/n/cert.pem", "/n/key.pem",
                          "/n/chain.pem", "/n/fullchain.pem")
    plan = tree.deploy(other)
    removed, added = line_diff(tree.text("sites/example"),
                               changed(plan, tmp_path / "sites/example"))
    assert stripped(removed) == [f"ssl_certificate {LIVE}/fullchain.pem;",
                                 f"ssl_certificate_key {LIVE}/privkey.pem;"]
    assert stripped(added) == ["ssl_certificate /n/fullchain.pem;",
                               "ssl_certificate_key /n/key.pem;"]


def test_ipv6_listens_get_their_https_twins(tmp_path: Path) -> None:
    site = """\
server {
    listen 80;
    listen [::]:80 ipv6only=on;
    server_name example.org;
}
server {
    listen 127.0.0.1:80;
    listen [::]:80;
    server_name www.example.org;
}
"""
    tree = Tree(tmp_path, {"sites/example": site})
    plan = tree.deploy(request("example.org", "www.example.org"))
    _, added = line_diff(site, changed(plan, tmp_path / "sites/example"))
    listens = [line for line in stripped(added) if line.startswith("listen")]
    # ipv6only= is a once-per-address option: only the first block naming [::]:443 has it
    assert listens == ["listen 443 ssl;", "listen [::]:443 ssl ipv6only=on;",
                       "listen 127.0.0.1:443 ssl;", "listen [::]:443 ssl;"]


def test_existing_https_block_is_updated_not_duplicated(tmp_path: Path) -> None:
    site = """\
server {
    listen 80;
    listen 443 ssl http2;
    server_name example.org;
    ssl_certificate     /etc/ssl/old.pem;    # old one
    ssl_certificate_key /etc/ssl/old.key;
    ssl_protocols TLSv1.2;
}
"""
    tree = Tree(tmp_path, {"sites/example": site})
    plan = tree.deploy(request())
    new = changed(plan, tmp_path / "sites/example")
    removed, added = line_diff(site, new)
    assert stripped(removed) == ["ssl_certificate     /etc/ssl/old.pem;    # old one",
                                 "ssl_certificate_key /etc/ssl/old.key;"]
    assert added == [f"    ssl_certificate {LIVE}/fullchain.pem;    # old one\n",
                     f"    ssl_certificate_key {LIVE}/privkey.pem;\n"]
    assert new.count("listen") == 2 and "options-ssl-nginx" not in new
    assert [c.path for c in plan.changes] == [str(tmp_path / "sites/example")]


def test_http_default_server_next_to_https_default_server(tmp_path: Path) -> None:
    site = """\
server {
    listen 80 default_server reuseport backlog=511;
    listen [::]:80 default_server;
    server_name example.org;
    root /srv/site;
}
server {
    listen 443 ssl default_server;
    listen [::]:443 ssl default_server;
    server_name other.test;
    ssl_certificate /etc/ssl/other.pem;
    ssl_certificate_key /etc/ssl/other.key;
}
"""
    tree = Tree(tmp_path, {"sites/example": site})
    plan = tree.deploy(request())
    _, added = line_diff(site, changed(plan, tmp_path / "sites/example"))
    listens = [line for line in stripped(added) if line.startswith("listen")]
    assert listens == ["listen 443 ssl;", "listen [::]:443 ssl;"]  # no default_server etc.


TLS_BLOCK = ("server {\n    listen 443 ssl;\n    server_name example.org;\n"
             "    ssl_certificate /c.pem;\n    ssl_certificate_key /k.pem;\n}\n")
CATCH_ALL = """\
server {
    listen 80 default_server;
    server_name _;
    return 301 https://$host$request_uri;   # every unknown name to https
    root /var/www/html;
\tlocation / {
\t    try_files $uri $uri/ =404;
\t}
}
"""


def test_catch_all_is_copied_not_taken(tmp_path: Path) -> None:
    tree = Tree(tmp_path, {"sites/default": CATCH_ALL})
    plan = tree.deploy(request())
    assert str(tmp_path / "sites/default") not in [c.path for c in plan.changes]
    text = changed(plan, tmp_path / "certwright/servers/example.org.conf")
    body = text[text.index("server {"):]
    assert "default_server" not in body and "server_name _" not in body
    assert "server_name example.org;" in body
    assert "    root /var/www/html;\n" in body
    assert "    location / {\n        try_files $uri $uri/ =404;\n    }\n}\n" in body
    assert "return 301" not in body  # over https that would loop
    assert any("sites/default:1" in note for note in plan.notes)
    tree.apply(plan)
    (ours,) = [b for b in tree.load().servers if "example.org" in b.server_names]
    assert ours.listens_on(443, ssl=True) and not ours.listens_on(80)


def test_second_unmatched_certificate_leaves_the_first_alone(tmp_path: Path) -> None:
    tree = Tree(tmp_path, {"sites/default": CATCH_ALL})
    tree.apply(tree.deploy(request("example.org")))
    plan = tree.deploy(request("other.test", name="other.test"))
    assert [Path(c.path).name for c in plan.changes] == ["other.test.conf"]


def test_redirect_block_stays_a_redirect_and_delete_removes_both(tmp_path: Path) -> None:
    site = CATCH_ALL.replace("    return 301 https://$host$request_uri;   # every unknown "
                             "name to https\n", "")
    tree = Tree(tmp_path, {"sites/default": site})
    tree.apply(tree.deploy(request()))
    tree.apply(enhance(tree, "redirect"))
    servers = tmp_path / "certwright/servers"
    assert sorted(p.name for p in servers.iterdir()) == [
        "example.org.conf", "redirect-example.org.conf"]
    assert tree.deploy(request()).empty  # a renewal's install leaves both as they are
    tree.apply(plan_forget(tree.load(), "example.org", ["example.org"], tree.layout))
    assert list(servers.iterdir()) == []


def test_new_block_listens_where_the_name_is_answered_over_http(tmp_path: Path) -> None:
    site = ("server {\n    listen 80 default_server;\n    listen [::]:80 ipv6only=off;\n"
            "    server_name _;\n}\n"
            "server {\n    listen 443 ssl default_server;\n    ssl_reject_handshake on;\n}\n")
    tree = Tree(tmp_path, {"sites/default": site,
                           "sites/status": "server {\n    listen 127.0.0.1:80;\n"
                                           "    location = /status { stub_status; }\n}\n"})
    text = changed(tree.deploy(request()), tmp_path / "certwright/servers/example.org.conf")
    listens = [line.strip() for line in text.splitlines() if line.strip().startswith("listen")]
    # not 127.0.0.1:443: that would take over https on that address for every name
    assert listens == ["listen 443 ssl;", "listen [::]:443 ssl ipv6only=off;"]


def test_block_that_redirects_everything_gets_no_tls(tmp_path: Path) -> None:
    # TLS in this block would answer https with a redirect to https: a loop
    site = ("server {\n    listen 80;\n    server_name example.org;\n    root /srv/x;\n"
            "    return 301 https://$host$request_uri;\n}\n")
    tree = Tree(tmp_path, {"sites/example": site})
    plan = tree.deploy(request())
    assert str(tmp_path / "sites/example") not in [c.path for c in plan.changes]
    text = changed(plan, tmp_path / "certwright/servers/example.org.conf")
    assert "root /srv/x;" in text and "return 301" not in text


def test_canonical_host_redirect_block_gets_tls(tmp_path: Path) -> None:
    # www -> apex does not loop over https: https://www keeps redirecting to the apex
    site = ("server {\n    listen 80;\n    server_name www.example.org;\n"
            "    return 301 https://example.org$request_uri;\n}\n")
    tree = Tree(tmp_path, {"sites/www": site})
    plan = tree.deploy(request("example.org", "www.example.org"))
    assert "listen 443 ssl;" in changed(plan, tmp_path / "sites/www")


def test_implicit_default_server_is_the_model(tmp_path: Path) -> None:
    site = ("server {\n    listen 80;\n    server_name first.test;\n    root /srv/first;\n}\n"
            "server {\n    listen 80;\n    server_name second.test;\n}\n")
    text = changed(Tree(tmp_path, {"sites/s": site}).deploy(request()),
                   tmp_path / "certwright/servers/example.org.conf")
    assert "root /srv/first;" in text  # nginx answers unknown names from the first block


def test_another_certificates_block_is_kept_unless_fully_covered(tmp_path: Path) -> None:
    tree = Tree(tmp_path, {"sites/default": CATCH_ALL})
    tree.apply(tree.deploy(request("a.test", "b.test", name="one")))
    one = tmp_path / "certwright/servers/one.conf"
    # "two" shares a.test only: one.conf keeps serving it with one's certificate
    plan = tree.deploy(request("a.test", "c.test", name="two"))
    assert str(one) not in [c.path for c in plan.changes]
    assert "server_name c.test;" in changed(plan, tmp_path / "certwright/servers/two.conf")
    assert any(n.startswith("a.test: left with the other certificate") for n in plan.notes)
    # "three" covers all of one.conf's names (a renamed lineage): it takes the block over
    tree.apply(tree.deploy(request("a.test", "b.test", name="three")))
    assert "/live/three/" in one.read_text()
    # deleting "one" leaves the block "three" now serves
    assert plan_forget(tree.load(), "one", ["a.test", "b.test"], tree.layout).empty


def test_a_taken_over_block_does_not_flip_back_on_renewal(tmp_path: Path) -> None:
    tree = Tree(tmp_path, {"sites/default": CATCH_ALL})
    tree.apply(tree.deploy(request("x.test", "z.test", name="b")))
    tree.apply(tree.deploy(request("x.test", "y.test", "z.test", name="a")))
    b_conf = tmp_path / "certwright/servers/b.conf"
    assert "/live/a/" in b_conf.read_text()
    renewal = replace(request("x.test", "z.test", name="b"), takeover=False)
    assert tree.deploy(renewal).empty, "b's renewal leaves its old block to a"
    again = replace(request("x.test", "y.test", "z.test", name="a"), takeover=False)
    assert tree.deploy(again).empty
    forget = plan_forget(tree.load(), "b", ["x.test", "z.test"], tree.layout)
    assert forget.empty, "deleting b keeps the block a serves"


def test_forget_keeps_a_redirect_block_naming_other_names(tmp_path: Path) -> None:
    tree = Tree(tmp_path, {"sites/default": CATCH_ALL.replace(
        "    return 301 https://$host$request_uri;   # every unknown name to https\n", "")})
    tree.apply(tree.deploy(request("a.test", "b.test", name="ab")))
    tree.apply(enhance(tree, "redirect", domains=("a.test", "b.test")))
    assert (tmp_path / "certwright/servers/redirect-a.test.conf").exists()
    plan = plan_forget(tree.load(), "a-only", ["a.test"], tree.layout)
    assert plan.empty


def test_catch_all_certificate_include_is_not_copied(tmp_path: Path) -> None:
    site = ("server {\n    listen 80 default_server;\n    listen 443 ssl default_server;\n"
            "    server_name _;\n    include snippets/snakeoil.conf;\n"
            "    include snippets/plain.conf;\n    ssl_protocols TLSv1.2;\n"
            "    root /var/www/html;\n}\n")
    tree = Tree(tmp_path, {"sites/default": site,
                           "snippets/snakeoil.conf": "ssl_certificate /s.pem;\n"
                                                     "ssl_certificate_key /s.key;\n",
                           "snippets/plain.conf": "index index.html;\n"})
    text = changed(tree.deploy(request()), tmp_path / "certwright/servers/example.org.conf")
    assert "snakeoil" not in text and "ssl_protocols" not in text
    assert "include snippets/plain.conf;" in text and "root /var/www/html;" in text


def test_wildcard_block_notes_a_narrower_certificate(tmp_path: Path) -> None:
    site = "server {\n    listen 80;\n    server_name *.example.org;\n}\n"
    plan = Tree(tmp_path, {"sites/w": site}).deploy(request("x.example.org",
                                                          name="x.example.org"))
    assert any("*.example.org, which the certificate does not cover" in n
               for n in plan.notes), plan.notes


def test_redirect_for_a_name_only_the_catch_all_answers(tmp_path: Path) -> None:
    site = CATCH_ALL.replace("    return 301 https://$host$request_uri;   # every unknown "
                             "name to https\n", "")
    tree = Tree(tmp_path, {"sites/default": site})
    tree.apply(tree.deploy(request()))
    plan = enhance(tree, "redirect")
    assert str(tmp_path / "sites/default") not in [c.path for c in plan.changes]
    text = changed(plan, tmp_path / "certwright/servers/redirect-example.org.conf")
    # the challenge path is still answered from the catch-all's web root
    assert "server_name example.org;" in text and "root /var/www/html;" in text
    assert text.index("$certwright_redirect") < text.index("root /var/www/html;")


def test_no_matching_block_creates_a_managed_server(tmp_path: Path) -> None:
    site = "server {\n    listen 127.0.0.1:80;\n    server_name other.test;\n}\n"
    tree = Tree(tmp_path, {"sites/other": site})
    plan = tree.deploy(request("example.org", "www.example.org"))
    managed = tmp_path / "certwright/servers/example.org.conf"
    text = changed(plan, managed)
    assert "server_name example.org www.example.org;" in text
    assert "listen 127.0.0.1:443 ssl;" in text  # the address the config uses
    assert f"ssl_certificate {LIVE}/fullchain.pem;" in text
    main = changed(plan, tmp_path / "nginx.conf")
    removed, added = line_diff(MAIN, main)
    assert removed == [] and added == [f"    include {tmp_path}/certwright/servers/*.conf;\n"]
    assert main.endswith(added[0] + "}\n")  # inside http, before its closing brace
    assert any("no server block answers" in n for n in plan.notes)
    tree.apply(plan)
    (block,) = [b for b in tree.load().servers if b.file == str(managed)]
    assert block.server_names == ("example.org", "www.example.org")
    assert tree.deploy(request("example.org", "www.example.org")).empty
    # a new name for the lineage: the managed file is rewritten, nothing else
    plan = tree.deploy(request("example.org", "www.example.org", "new.example.org"))
    assert [c.path for c in plan.changes] == [str(managed)]
    assert "server_name example.org www.example.org new.example.org;" in changed(plan, managed)


def test_managed_server_is_retired_once_a_block_of_yours_answers(tmp_path: Path) -> None:
    tree = Tree(tmp_path, {"sites/other": "server { listen 80; server_name other.test; }\n"})
    tree.apply(tree.deploy(request()))
    managed = tmp_path / "certwright/servers/example.org.conf"
    assert managed.exists()
    tree.put("sites/example", "server {\n    listen 80;\n    server_name example.org;\n}\n")
    plan = tree.deploy(request())
    assert {c.path: c.new_content is None for c in plan.changes} == {
        str(tmp_path / "sites/example"): False, str(managed): True}
    tree.apply(plan)
    assert tree.deploy(request()).empty


def test_include_not_added_when_the_directory_is_included(tmp_path: Path) -> None:
    main = MAIN.replace("include sites/*;", "include sites/*;\n    include certwright/*/*.conf;")
    tree = Tree(tmp_path, {"nginx.conf": main})
    plan = tree.deploy(request())
    assert str(tmp_path / "nginx.conf") not in {c.path for c in plan.changes}
    assert str(tmp_path / "certwright/servers/example.org.conf") in {c.path for c in plan.changes}


def test_formatting_elsewhere_is_byte_identical(tmp_path: Path) -> None:
    site = (
        "# odd layout\r\n"
        "server { listen 80; server_name example.org; }   # one line\r\n"
        "\r\n"
        "server {   # comment after the brace\r\n"
        "\t\tlisten\t80 ;\r\n"
        "  server_name   www.example.org\r\n"
        "                 alias.example.org ;\r\n"
        "}\r\n"
    )
    tree = Tree(tmp_path, {"sites/odd": site})
    plan = tree.deploy(request("example.org", "www.example.org"))
    new = changed(plan, tmp_path / "sites/odd")
    removed, added = line_diff(site, new)
    # the one-line block is the only changed line; the other block only gains lines
    assert removed == ["server { listen 80; server_name example.org; }   # one line\r\n"]
    assert added[0] == "server { listen 80;\r\n"
    assert all(line.endswith("\r\n") for line in added)
    assert "\t\tlisten\t80 ;\r\n\t\tlisten 443 ssl;\r\n" in new
    tree.apply(plan)
    blocks = tree.load().servers
    assert all(b.listens_on(443, ssl=True) for b in blocks)
    assert tree.deploy(request("example.org", "www.example.org")).empty


def test_block_without_listen_keeps_port_80(tmp_path: Path) -> None:
    site = "server {\n    server_name example.org;\n}\n"
    tree = Tree(tmp_path, {"sites/example": site})
    _, added = line_diff(site, changed(tree.deploy(request()), tmp_path / "sites/example"))
    assert stripped(added)[:2] == ["listen 80;", "listen 443 ssl;"]


def test_plain_listen_on_the_https_port_gains_ssl(tmp_path: Path) -> None:
    site = "server {\n    listen 80;\n    listen 443;\n    server_name example.org;\n}\n"
    tree = Tree(tmp_path, {"sites/example": site})
    new = changed(tree.deploy(request()), tmp_path / "sites/example")
    assert "    listen 443 ssl;\n" in new and new.count("\n    listen") == 2


def test_certificate_in_a_snippet(tmp_path: Path) -> None:
    snippet = "ssl_certificate /etc/ssl/snake.pem;\nssl_certificate_key /etc/ssl/snake.key;\n"
    site = ("server {\n    listen 443 ssl;\n    server_name example.org;\n"
            "    include snippets/tls.conf;\n}\n")
    tree = Tree(tmp_path, {"sites/example": site, "snippets/tls.conf": snippet})
    plan = tree.deploy(request())
    assert [c.path for c in plan.changes] == [str(tmp_path / "snippets/tls.conf")]
    shared = site.replace("example.org", "other.test")
    tree.put("sites/other", shared)
    plan = tree.deploy(request())  # shared with another name: the block gets its own lines
    assert [c.path for c in plan.changes] == [str(tmp_path / "sites/example")]
    text = changed(plan, tmp_path / "sites/example")
    assert "include snippets/tls.conf" not in text
    assert f"    ssl_certificate {LIVE}/fullchain.pem;\n    ssl_certificate_key " in text


def test_own_tls_settings_keep_the_options_out(tmp_path: Path) -> None:
    site = ("server {\n    listen 80;\n    server_name example.org;\n"
            "    ssl_protocols TLSv1.3;\n}\n")
    tree = Tree(tmp_path, {"sites/example": site})
    plan = tree.deploy(request())
    assert "options-ssl-nginx" not in changed(plan, tmp_path / "sites/example")
    assert any("ssl_protocols" in note for note in plan.notes)


def test_note_for_names_the_certificate_does_not_cover(tmp_path: Path) -> None:
    site = "server {\n    listen 80;\n    server_name example.org extra.example.org;\n}\n"
    plan = Tree(tmp_path, {"sites/example": site}).deploy(request())
    assert any("extra.example.org" in note for note in plan.notes)


def test_wildcard_certificate_goes_to_the_wildcard_block(tmp_path: Path) -> None:
    site = ("server {\n    listen 80;\n    server_name *.example.org;\n}\n"
            "server {\n    listen 80;\n    server_name example.org;\n}\n")
    tree = Tree(tmp_path, {"sites/example": site})
    plan = tree.deploy(request("*.example.org"))
    new = changed(plan, tmp_path / "sites/example")
    assert new.index("listen 443 ssl;") < new.index("server_name example.org;")
    assert new.count("listen 443 ssl;") == 1


def test_endpoints(tmp_path: Path) -> None:
    site = ("server {\n    listen 10.0.0.7:80;\n    server_name example.org;\n}\n"
            "server {\n    listen [::]:443 ssl;\n    server_name www.example.org;\n}\n")
    tree = Tree(tmp_path, {"sites/example": site})
    req = request("example.org", "www.example.org", "new.test")
    found = deploy_endpoints(tree.load(), req, tree.layout)
    # a new block for new.test listens (at least) where the config listens on 443: [::]
    assert [(e.host, e.port, e.server_name) for e in found] == [
        ("::1", 443, "www.example.org"), ("10.0.0.7", 443, "example.org"),
        ("::1", 443, "new.test")]
    tree.put("sites/example", "server { listen 80; server_name example.org; }\n")
    found = deploy_endpoints(tree.load(), request("*.example.org", https=8443), tree.layout)
    assert found == [Endpoint("127.0.0.1", 8443, "certwright-probe.example.org")]


# -- enhancements ---------------------------------------------------------------------------
def enhance(tree: Tree, *what: str, domains: tuple[str, ...] = ("example.org",)) -> ChangePlan:
    return plan_enhance(tree.load(), EnhanceRequest(domains, frozenset(what)), tree.layout)


HTTP_AND_HTTPS = """\
server {
    listen 80;
    server_name example.org;
    root /srv/site;
}
server {
    listen 443 ssl;
    server_name example.org;
    ssl_certificate /c.pem;
    ssl_certificate_key /k.pem;
    root /srv/site;
}
"""


def test_redirect_exempts_the_challenge_path(tmp_path: Path) -> None:
    tree = Tree(tmp_path, {"sites/example": HTTP_AND_HTTPS})
    plan = enhance(tree, "redirect")
    new = changed(plan, tmp_path / "sites/example")
    removed, added = line_diff(HTTP_AND_HTTPS, new)
    assert removed == []
    assert stripped(added) == [line.strip() for line in REDIRECT_LINES]
    assert "acme-challenge" in added[1] and "^http:" in added[1]
    assert new.index("return 301") < new.index("listen 443")  # in the http block
    assert "        return 301 https://$host$request_uri;\n" in new
    tree.apply(plan)
    assert enhance(tree, "redirect").empty  # recognised: no second redirect


def test_redirect_in_a_block_serving_both_ports(tmp_path: Path) -> None:
    site = ("server {\n    listen 80;\n    listen 443 ssl;\n    server_name example.org;\n"
            "    rewrite ^/old$ /new;\n}\n")
    tree = Tree(tmp_path, {"sites/example": site})
    new = changed(enhance(tree, "redirect"), tmp_path / "sites/example")
    # scheme-checked, and placed before the block's own rewrite directives
    assert new.index("set $certwright_redirect") < new.index("rewrite ^/old$")


def test_existing_redirect_is_left_alone(tmp_path: Path) -> None:
    site = ("server {\n    listen 80;\n    server_name example.org;\n"
            "    return 301 https://example.org$request_uri;\n}\n" + TLS_BLOCK)
    plan = enhance(Tree(tmp_path, {"sites/example": site}), "redirect")
    assert plan.empty and any("already redirects" in n for n in plan.notes)


def test_redirect_per_host_counts_only_for_that_host(tmp_path: Path) -> None:
    # the layout Certbot leaves: one "if ($host = …)" per name it redirected
    site = ("server {\n    listen 80;\n    server_name example.org new.example.org;\n"
            "    if ($host = example.org) {\n        return 301 https://$host$request_uri;\n"
            "    }\n    return 404;\n}\n" + TLS_BLOCK.replace("example.org;",
                                                          "example.org new.example.org;"))
    tree = Tree(tmp_path, {"sites/example": site})
    assert enhance(tree, "redirect").empty
    plan = enhance(tree, "redirect", domains=("example.org", "new.example.org"))
    assert "$certwright_redirect" in changed(plan, tmp_path / "sites/example")


def test_redirect_needs_https_first(tmp_path: Path) -> None:
    site = "server {\n    listen 80;\n    server_name example.org;\n}\n"
    with pytest.raises(PluginError, match="install a certificate first"):
        enhance(Tree(tmp_path, {"sites/example": site}), "redirect")


def test_redirect_without_an_http_block_creates_one(tmp_path: Path) -> None:
    site = ("server {\n    listen 443 ssl;\n    server_name example.org;\n"
            "    ssl_certificate /c.pem;\n    ssl_certificate_key /k.pem;\n}\n")
    plan = enhance(Tree(tmp_path, {"sites/example": site}), "redirect")
    text = changed(plan, tmp_path / "certwright/servers/redirect-example.org.conf")
    assert "listen 80;" in text and "server_name example.org;" in text
    assert "return 301 https://$host$request_uri;" in text


def test_hsts_and_uir_once(tmp_path: Path) -> None:
    tree = Tree(tmp_path, {"sites/example": HTTP_AND_HTTPS})
    plan = enhance(tree, "hsts", "uir")
    removed, added = line_diff(HTTP_AND_HTTPS, changed(plan, tmp_path / "sites/example"))
    assert removed == [] and sorted(stripped(added)) == sorted([HSTS_LINE, UIR_LINE])
    tree.apply(plan)
    assert enhance(tree, "hsts", "uir").empty
    text = tree.text("sites/example")
    assert text.index(HSTS_LINE) > text.index("listen 443 ssl;")


def test_hsts_already_set_by_hand(tmp_path: Path) -> None:
    site = HTTP_AND_HTTPS.replace(
        "ssl_certificate /c.pem;",
        "ssl_certificate /c.pem;\n    add_header strict-transport-security max-age=60;\n"
        "    add_header Content-Security-Policy \"default-src 'self'\";")
    tree = Tree(tmp_path, {"sites/example": site})
    assert enhance(tree, "hsts").empty
    _, added = line_diff(site, changed(enhance(tree, "uir"), tmp_path / "sites/example"))
    assert stripped(added) == [UIR_LINE]


def test_headers_need_an_https_block(tmp_path: Path) -> None:
    tree = Tree(tmp_path, {"sites/example": SEVERAL})
    with pytest.raises(PluginError, match="install a certificate first"):
        enhance(tree, "hsts")
    with pytest.raises(PluginError, match="cannot do: staple"):
        enhance(tree, "staple")


# -- http-01 --------------------------------------------------------------------------------
def challenge(domain: str, token: str) -> ChallengeTask:
    ka = f"{token}.thumbprint_-x"
    return ChallengeTask(Identifier("dns", domain), "http-01", token, ka, ka)


def test_http01_in_matching_blocks_and_a_temporary_block(tmp_path: Path) -> None:
    site = """\
server {
    listen 80;
    server_name example.org www.example.org;
}
server {
    listen 80;
    server_name redirected.test;
    return 301 https://$host$request_uri;
}
"""
    tree = Tree(tmp_path, {"sites/example": site})
    tasks = [challenge("example.org", "tokA"), challenge("www.example.org", "tokB"),
             challenge("redirected.test", "tokC"), challenge("new.test", "tokD")]
    plan = plan_http01(tree.load(), tasks, tree.layout, 80)
    removed, added = line_diff(site, changed(plan, tmp_path / "sites/example"))
    assert removed == []
    assert stripped(added) == [
        'location = /.well-known/acme-challenge/tokA { default_type text/plain; '
        'return 200 "tokA.thumbprint_-x"; }',
        'location = /.well-known/acme-challenge/tokB { default_type text/plain; '
        'return 200 "tokB.thumbprint_-x"; }',
        CHALLENGE_GUARD,  # the block redirects at server level: the guard comes first
        'location = /.well-known/acme-challenge/tokC { default_type text/plain; '
        'return 200 "tokC.thumbprint_-x"; }',
    ]
    temp = changed(plan, tmp_path / "certwright/challenges/http01.conf")
    assert "server_name new.test;" in temp and "tokD.thumbprint_-x" in temp
    assert "listen 80;" in temp
    assert changed(plan, tmp_path / "nginx.conf").endswith(
        f"    include {tmp_path}/certwright/challenges/*.conf;\n}}\n")


def test_http01_needs_no_guard_for_the_own_redirect(tmp_path: Path) -> None:
    tree = Tree(tmp_path, {"sites/example": HTTP_AND_HTTPS})
    tree.apply(enhance(tree, "redirect"))
    plan = plan_http01(tree.load(), [challenge("example.org", "tokA")], tree.layout)
    assert CHALLENGE_GUARD not in changed(plan, tmp_path / "sites/example")


def test_http01_refuses_unsafe_values(tmp_path: Path) -> None:
    tree = Tree(tmp_path, {"sites/example": SEVERAL})
    bad = ChallengeTask(Identifier("dns", "example.org"), "http-01", "tok", 'x"; evil', "v")
    with pytest.raises(PluginError, match="key authorization"):
        plan_http01(tree.load(), [bad], tree.layout)
    with pytest.raises(PluginError, match="base64url"):
        plan_http01(tree.load(), [challenge("example.org", "../x")], tree.layout)


def test_temporary_challenge_blocks_name_only_what_each_address_lacks(tmp_path: Path) -> None:
    site = ("server {\n    listen 80;\n    server_name a.test;\n}\n"
            "server {\n    listen [::]:80;\n    server_name b.test;\n}\n")
    tree = Tree(tmp_path, {"sites/s": site})
    plan = plan_http01(tree.load(), [challenge("a.test", "tokA"), challenge("b.test", "tokB")],
                       tree.layout)
    text = changed(plan, tmp_path / "certwright/challenges/http01.conf")
    blocks = sorted(text.split("server {")[1:])
    assert len(blocks) == 2
    assert "listen 80;" in blocks[0] and "server_name b.test;" in blocks[0]
    assert "listen [::]:80;" in blocks[1] and "server_name a.test;" in blocks[1]


def test_certificate_named_with_variables_is_not_replaced(tmp_path: Path) -> None:
    """``ssl_certificate /certs/$ssl_server_name.pem`` serves a file per name: replacing
    it would serve this certificate for every name the block answers."""
    site = ("server {\n    listen 443 ssl;\n    server_name example.org other.test;\n"
            "    ssl_certificate /certs/$ssl_server_name.pem;\n"
            "    ssl_certificate_key /certs/$ssl_server_name.key;\n}\n")
    tree = Tree(tmp_path, {"sites/example": site})
    with pytest.raises(PluginError, match=r"sites/example:4: ssl_certificate names its "
                                          r"file with variables"):
        tree.deploy(request())
    # a block whose every name the certificate covers may take it
    plan = tree.deploy(request("example.org", "other.test"))
    assert f"ssl_certificate {LIVE}/fullchain.pem;" in changed(plan, tmp_path / "sites/example")
