"""Plain vhost files read without augeas give exactly augeas' nodes; anything else is left
to augeas."""

from __future__ import annotations

from pathlib import Path

import pytest

from certwright.installers.apache.plainfile import parse_plain
from certwright.installers.apache.tree import LINE_DIRECTIVES, AugeasReader
from tests.conftest import skip_or_fail

PLAIN = {
    "site": """\
# a site
<VirtualHost *:80 [::1]:80>
    ServerName example.org
    ServerAlias www.example.org *.example.net ?.example.com
\tDocumentRoot /var/www/example
    ErrorLog ${APACHE_LOG_DIR}/error.log

    <Directory /var/www/example>
        Options -Indexes +FollowSymLinks
        AllowOverride All
        Require all granted
    </Directory>
    RewriteEngine on
    RewriteCond %{HTTPS} off
    RewriteRule ^/app/(.*)$ http://127.0.0.1:9/$1 [P,L]
    Redirect permanent /old https://example.org/new
    <Location /private>
        Require valid-user
    </Location>
</VirtualHost>
""",
    "three": "".join(f"<VirtualHost 127.0.0.1:8080>\n  ServerName {n}.test\n</VirtualHost>\n"
                     for n in "abc"),
    "ssl": """\
<VirtualHost *:443>
    ServerName s.test
    SSLEngine on
    SSLCertificateFile /etc/ssl/certs/s.pem
    SSLCertificateKeyFile /etc/ssl/private/s.key
</VirtualHost>""",
    "empty": "\n# nothing here\n",
}
NOT_PLAIN = {
    "quoted": '<VirtualHost *:80>\n    DocumentRoot "/var/www/a b"\n</VirtualHost>\n',
    "trailing comment": "<VirtualHost *:80>\n    ServerAlias a.test # b\n</VirtualHost>\n",
    "crlf": "<VirtualHost *:80>\r\n    ServerName a.test\r\n</VirtualHost>\r\n",
    "continuation": "<VirtualHost *:80>\n    ServerAlias a.test \\\n b.test\n</VirtualHost>\n",
    "condition": "<VirtualHost *:80>\n<IfModule mod_ssl.c>\nSSLEngine on\n</IfModule>\n"
                 "</VirtualHost>\n",
    "include": "<VirtualHost *:80>\n    Include /etc/x.conf\n</VirtualHost>\n",
    "use": "<VirtualHost *:80>\n    Use site a.test\n</VirtualHost>\n",
    "top directive": "Listen 80\n<VirtualHost *:80>\n</VirtualHost>\n",
    "top section": "<Directory /x>\nRequire all granted\n</Directory>\n",
    "nested vhost": "<VirtualHost *:80>\n<VirtualHost *:81>\n</VirtualHost>\n</VirtualHost>\n",
    "unclosed": "<VirtualHost *:80>\n    ServerName a.test\n",
    "mismatched": "<VirtualHost *:80>\n<Directory /x>\n</VirtualHost>\n</Directory>\n",
    "latin-1": "<VirtualHost *:80>\n    ServerName caf\xe9.test\n</VirtualHost>\n",
    "angle in args": "<VirtualHost *:80>\n    Header set X <b>\n</VirtualHost>\n",
    "odd name": "<VirtualHost *:80>\n    1abc x\n</VirtualHost>\n",
    "odd section": "<VirtualHost *:80>\n<-x y>\n</-x>\n</VirtualHost>\n",
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / (name.replace(" ", "-") + ".conf")
    path.write_bytes(text.encode("latin-1"))
    return path


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_files_give_what_augeas_gives(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, PLAIN[name])
    plain = parse_plain(str(path), path.read_bytes(), LINE_DIRECTIVES)
    assert plain is not None
    reader = AugeasReader()
    try:
        reader._plain = lambda file: False  # type: ignore[method-assign]  # augeas only
        assert plain == reader.read(str(path))
    finally:
        reader.close()


@pytest.mark.parametrize("name", sorted(NOT_PLAIN))
def test_other_files_are_left_to_augeas(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, NOT_PLAIN[name])
    assert parse_plain(str(path), path.read_bytes(), LINE_DIRECTIVES) is None


def test_the_stock_tree_reads_the_same_either_way() -> None:
    stock = Path("/etc/apache2")
    if not stock.is_dir():
        skip_or_fail("no /etc/apache2 here (Debian: `make sysdeps` installs apache2)")
    files = sorted(p for p in stock.rglob("*.conf") if p.is_file())
    with AugeasReader() as fast, AugeasReader() as slow:
        slow._plain = lambda file: False  # type: ignore[method-assign]
        for path in files:
            assert fast.read(str(path)) == slow.read(str(path)), path
