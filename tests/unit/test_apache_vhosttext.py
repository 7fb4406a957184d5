"""The text side of an Apache deploy: certificate lines replaced in place, https twins."""

from __future__ import annotations

import pytest

from certwright.core.errors import PluginError
from certwright.installers.apache.vhosttext import find_vhost, ssl_twin, update_in_place

HTTP = (
    "# before\r\n"
    "<VirtualHost *:80>\r\n"
    "\tServerName a.test\r\n"
    "\tRewriteEngine on\r\n"
    "\tRewriteCond %{HTTPS} off\r\n"
    "\tRewriteRule ^ https://%{SERVER_NAME}%{REQUEST_URI} [R=301,L]\r\n"
    "\tRewriteRule ^/old$ /new [L]\r\n"
    "\tRedirect permanent /x https://a.test/y\r\n"
    "</VirtualHost>\r\n"
    "# after\r\n"
)


def test_twin_leaves_out_the_https_redirect_and_keeps_the_rest() -> None:
    twin = ssl_twin(find_vhost("f", HTTP, 2), ["*:443", "[::1]:443"], "/l/fc.pem",
                    "/l/k.pem", "/o.conf")
    assert twin.startswith("<VirtualHost *:443 [::1]:443>\r\n\tSSLEngine on\r\n")
    assert "https://" not in twin and "RewriteCond" not in twin
    assert "\tRewriteRule ^/old$ /new [L]\r\n" in twin  # not a redirect to https
    assert '\tSSLCertificateFile "/l/fc.pem"\r\n' in twin
    assert twin.endswith("</VirtualHost>\r\n") and "# before" not in twin


def test_in_place_replaces_cert_lines_once_and_keeps_bytes_around() -> None:
    text = ("<VirtualHost *:443>\n    SSLEngine on\n  SSLCertificateFile /old.pem\n"
            "  SSLCertificateChainFile /chain.pem\n  SSLCertificateKeyFile /old.key\n"
            "</VirtualHost>\n# tail\n")
    out = update_in_place(find_vhost("f", text, 1), "/l/fc.pem", "/l/k.pem")
    assert out == ("<VirtualHost *:443>\n    SSLEngine on\n"
                   '  SSLCertificateFile "/l/fc.pem"\n  SSLCertificateKeyFile "/l/k.pem"\n'
                   "</VirtualHost>\n# tail\n")
    again = update_in_place(find_vhost("f", out, 1), "/l/fc.pem", "/l/k.pem")
    assert again == out


def test_a_vhost_gone_from_its_line_is_a_clear_error() -> None:
    with pytest.raises(PluginError, match=r"f:1: no <VirtualHost> there"):
        find_vhost("f", HTTP, 1)
