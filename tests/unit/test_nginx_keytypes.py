"""Which key types a deploy's server blocks can serve, from their TLS settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from certwright.installers.nginx.keytypes import deploy_problem
from certwright.installers.nginx.targets import Layout
from certwright.installers.nginx.tree import load_tree
from tests.unit.test_nginx_plan import request

RSA_CIPHERS = "ECDHE-RSA-AES128-GCM-SHA256"


def problems(tmp_path: Path, http_level: str, block: str) -> dict[str, str | None]:
    (tmp_path / "nginx.conf").write_text(
        f"events {{}}\nhttp {{\n{http_level}    server {{\n        listen 80;\n"
        f"        listen 443 ssl;\n        server_name example.org;\n{block}    }}\n}}\n")
    tree = load_tree(str(tmp_path / "nginx.conf"))
    return {t: deploy_problem(tree, request(), Layout(str(tmp_path)), t)
            for t in ("ecdsa", "rsa")}


@pytest.mark.parametrize(("http_level", "block", "ecdsa_ok"), [
    ("", f"        ssl_protocols TLSv1.2;\n        ssl_ciphers {RSA_CIPHERS};\n", False),
    # TLS 1.3 serves any certificate, whatever ssl_ciphers says
    ("", f"        ssl_protocols TLSv1.2 TLSv1.3;\n        ssl_ciphers {RSA_CIPHERS};\n", True),
    # settings of the http block are inherited, the block's own win
    (f"    ssl_protocols TLSv1.2;\n    ssl_ciphers {RSA_CIPHERS};\n", "", False),
    (f"    ssl_protocols TLSv1.2;\n    ssl_ciphers {RSA_CIPHERS};\n",
     "        ssl_ciphers HIGH:!aNULL;\n", True),
    ("", "        ssl_protocols TLSv1.2;\n", True),  # nginx's default cipher list
    ("", "        ssl_protocols TLSv1.2;\n        ssl_ciphers NO-SUCH-CIPHER;\n", True),
])
def test_key_types_a_block_serves(tmp_path: Path, http_level: str, block: str,
                                  ecdsa_ok: bool) -> None:
    found = problems(tmp_path, http_level, block)
    assert (found["ecdsa"] is None) == ecdsa_ok, found
    assert found["rsa"] is None
    if not ecdsa_ok:
        assert "nginx.conf:" in (found["ecdsa"] or "") and "ssl_ciphers" in (found["ecdsa"] or "")


def test_http_settings_from_an_included_file(tmp_path: Path) -> None:
    """Settings a file included at http level gives (Debian's conf.d) count too."""
    (tmp_path / "tls.conf").write_text(f"ssl_protocols TLSv1.2;\nssl_ciphers {RSA_CIPHERS};\n")
    found = problems(tmp_path, f"    include {tmp_path}/tls.conf;\n", "")
    assert found["ecdsa"] is not None and f"{tmp_path}/tls.conf:2" in found["ecdsa"]
    assert found["rsa"] is None
