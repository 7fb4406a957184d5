"""Renewal confs: Certbot's ConfigObj format, read fast and exactly, written by ConfigObj."""

from __future__ import annotations

import io
import os
import random
import stat
import time
from pathlib import Path
from typing import Any

import configobj
import pytest

from certwright.core.errors import StorageError
from certwright.core.storage import renewal_conf
from certwright.core.storage.renewal_conf import (
    RenewalConf,
    parse_text,
    read_renewal_conf,
    write_renewal_conf,
)

# Written by Certbot 5.8.0 (storage.make_renewal_configobj) for
# `certonly --webroot -w /var/www/html -d example.com -d www.example.com --reuse-key ...`
CERTBOT_CONF = """\
version = 5.8.0
archive_dir = /etc/letsencrypt/archive/example.com
cert = /etc/letsencrypt/live/example.com/cert.pem
privkey = /etc/letsencrypt/live/example.com/privkey.pem
chain = /etc/letsencrypt/live/example.com/chain.pem
fullchain = /etc/letsencrypt/live/example.com/fullchain.pem
[renewalparams]
reuse_key = True
account = 0123456789abcdef0123456789abcdef
rsa_key_size = 4096
key_type = ecdsa
pref_challs = http-01, dns-01
server = https://acme-v02.api.letsencrypt.org/directory
authenticator = webroot
webroot_path = /var/www/html,
renew_hook = systemctl reload nginx
[[webroot_map]]
example.com = /var/www/html
www.example.com = /var/www/html
"""

# The shape older Certbot versions wrote: comments, blank lines, a hint at the top.
OLD_CERTBOT_CONF = """\
# renew_before_expiry = 30 days
version = 0.31.0
archive_dir = /etc/letsencrypt/archive/old.example
cert = /etc/letsencrypt/live/old.example/cert.pem
privkey = /etc/letsencrypt/live/old.example/privkey.pem
chain = /etc/letsencrypt/live/old.example/chain.pem
fullchain = /etc/letsencrypt/live/old.example/fullchain.pem

# Options used in the renewal process
[renewalparams]
authenticator = nginx
installer = nginx
account = ffffffffffffffffffffffffffffffff
server = https://acme-v02.api.letsencrypt.org/directory
"""


def write(tmp_path: Path, text: str, name: str = "example.com") -> Path:
    path = tmp_path / "renewal" / f"{name}.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def configobj_dict(text: str) -> Any:
    """What Certbot's ConfigObj call makes of ``text`` (a file is read with readlines())."""
    lines = io.BytesIO(text.encode()).readlines()
    parsed = configobj.ConfigObj(lines, encoding="utf-8", default_encoding="utf-8")
    return renewal_conf._plain_dict(parsed)


def test_reads_a_certbot_conf(tmp_path: Path) -> None:
    conf = read_renewal_conf(write(tmp_path, CERTBOT_CONF))
    assert conf.name == "example.com"
    assert conf.version == "5.8.0"
    assert conf.archive_dir == "/etc/letsencrypt/archive/example.com"
    assert conf.cert == "/etc/letsencrypt/live/example.com/cert.pem"
    assert conf.fullchain == "/etc/letsencrypt/live/example.com/fullchain.pem"
    assert conf.params["webroot_path"] == ["/var/www/html"]
    assert conf.params["pref_challs"] == ["http-01", "dns-01"]
    assert conf.params["reuse_key"] == "True"
    assert conf.params["webroot_map"] == {
        "example.com": "/var/www/html",
        "www.example.com": "/var/www/html",
    }
    assert conf.extra == {}


def test_certbot_conf_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(path: Path) -> None:
        raise AssertionError("fell back to ConfigObj")

    monkeypatch.setattr(renewal_conf, "_parse_with_configobj", fail)
    for text in (CERTBOT_CONF, OLD_CERTBOT_CONF):
        assert parse_text(text, Path("x.conf")) == configobj_dict(text)


def test_reads_an_old_certbot_conf_with_comments(tmp_path: Path) -> None:
    conf = read_renewal_conf(write(tmp_path, OLD_CERTBOT_CONF, "old.example"))
    assert conf.version == "0.31.0"
    assert conf.params["installer"] == "nginx"
    assert "renew_before_expiry" not in conf.extra  # commented out


def test_quoted_values_and_extra_sections_go_through_configobj(tmp_path: Path) -> None:
    text = CERTBOT_CONF.replace(
        "renew_hook = systemctl reload nginx",
        "renew_hook = 'echo \"a, b\" # not a comment'\npre_hook = '''it's \"quoted\"'''",
    ) + "[acme_renewal_info]\nari_retry_after = 2026-01-01T00:00:00\n"
    text = "renew_before_expiry = 10 days  # inline comment\n" + text
    conf = read_renewal_conf(write(tmp_path, text))
    assert conf.params["renew_hook"] == 'echo "a, b" # not a comment'
    assert conf.params["pre_hook"] == "it's \"quoted\""
    assert conf.extra == {
        "renew_before_expiry": "10 days",
        "acme_renewal_info": {"ari_retry_after": "2026-01-01T00:00:00"},
    }


def test_parse_error_names_file_and_line(tmp_path: Path) -> None:
    lines = CERTBOT_CONF.splitlines()
    lines.insert(8, "this line has no equals sign")
    path = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(StorageError) as caught:
        read_renewal_conf(path)
    assert str(path) in str(caught.value)
    assert "line 9" in str(caught.value)


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, CERTBOT_CONF + "[[webroot_map]]\nx = y\n")
    with pytest.raises(StorageError, match="line 20"):
        read_renewal_conf(path)


def test_missing_cert_path_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, CERTBOT_CONF.replace("cert = ", "kert = "))
    with pytest.raises(StorageError, match=r"'cert'"):
        read_renewal_conf(path)


def test_not_utf8_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, CERTBOT_CONF)
    path.write_bytes(path.read_bytes() + b"x = \xff\xfe\n")
    with pytest.raises(StorageError, match="UTF-8"):
        read_renewal_conf(path)


def sample_conf(path: Path) -> RenewalConf:
    live = "/etc/letsencrypt/live/example.com"
    return RenewalConf(
        name="example.com",
        path=path,
        version="0.1.0",
        archive_dir="/etc/letsencrypt/archive/example.com",
        cert=f"{live}/cert.pem",
        privkey=f"{live}/privkey.pem",
        chain=f"{live}/chain.pem",
        fullchain=f"{live}/fullchain.pem",
        params={
            "authenticator": "webroot",
            "webroot_path": ["/var/www/html"],
            "pref_challs": ["http-01", "dns-01"],
            "empty_list": [],
            "reuse_key": True,
            "rsa_key_size": 2048,
            "renew_hook": 'echo "done, really" # ok',
            "webroot_map": {"example.com": "/var/www/html", "www.example.com": "/srv/www"},
        },
    )


def test_write_matches_certbot_layout(tmp_path: Path) -> None:
    path = tmp_path / "example.com.conf"
    write_renewal_conf(sample_conf(path))
    assert path.read_text() == (
        "version = 0.1.0\n"
        "archive_dir = /etc/letsencrypt/archive/example.com\n"
        "cert = /etc/letsencrypt/live/example.com/cert.pem\n"
        "privkey = /etc/letsencrypt/live/example.com/privkey.pem\n"
        "chain = /etc/letsencrypt/live/example.com/chain.pem\n"
        "fullchain = /etc/letsencrypt/live/example.com/fullchain.pem\n"
        "[renewalparams]\n"
        "authenticator = webroot\n"
        "webroot_path = /var/www/html,\n"
        "pref_challs = http-01, dns-01\n"
        "empty_list = ,\n"
        "reuse_key = True\n"
        "rsa_key_size = 2048\n"
        "renew_hook = 'echo \"done, really\" # ok'\n"
        "[[webroot_map]]\n"
        "example.com = /var/www/html\n"
        "www.example.com = /srv/www\n"
    )
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "renewal" / "example.com.conf"
    path.parent.mkdir()
    conf = sample_conf(path)
    conf.extra = {"renew_before_expiry": "30 days", "acme_renewal_info": {"a": "b"}}
    write_renewal_conf(conf)
    back = read_renewal_conf(path)
    assert back.params == {
        "authenticator": "webroot",
        "webroot_path": ["/var/www/html"],
        "pref_challs": ["http-01", "dns-01"],
        "empty_list": [],
        "reuse_key": "True",
        "rsa_key_size": "2048",
        "renew_hook": 'echo "done, really" # ok',
        "webroot_map": {"example.com": "/var/www/html", "www.example.com": "/srv/www"},
    }
    assert back.extra == conf.extra
    assert back.version == conf.version
    assert (back.cert, back.archive_dir) == (conf.cert, conf.archive_dir)


def test_rewrite_keeps_comments_and_mode(tmp_path: Path) -> None:
    path = write(tmp_path, OLD_CERTBOT_CONF, "old.example")
    os.chmod(path, 0o600)
    conf = read_renewal_conf(path)
    conf.params["authenticator"] = "webroot"
    del conf.params["installer"]
    write_renewal_conf(conf)
    text = path.read_text()
    assert text.startswith("# renew_before_expiry = 30 days\n")
    assert "# Options used in the renewal process\n[renewalparams]" in text
    assert "installer" not in text
    assert read_renewal_conf(path).params["authenticator"] == "webroot"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_unwritable_value_is_a_storage_error(tmp_path: Path) -> None:
    conf = sample_conf(tmp_path / "x.conf")
    conf.params["hook"] = "has ''' and \"\"\" both"
    with pytest.raises(StorageError, match=r"x\.conf"):
        write_renewal_conf(conf)
    assert not (tmp_path / "x.conf").exists()


FUZZ_PIECES = [
    "a", "b c", " ", "  ", ",", ", ", "=", "#", "'", '"', "'''", '"""', "[", "]", "[[", "]]",
    "\t", "/var/www", "x=y", "é", "\r", "-", "0",
]


def random_line(rng: random.Random) -> str:
    shape = rng.random()
    value = "".join(rng.choice(FUZZ_PIECES) for _ in range(rng.randint(0, 5)))
    if shape < 0.15:
        return value
    if shape < 0.3:
        return rng.choice(["[", "[[", " [", "[ "]) + value + rng.choice(["]", "]]", " ]", "] "])
    key = rng.choice(["k", "key", " k", "k ", "a b", "k1", "k2", "k]", "a[b", "k#", "'k'", "\"k\""])
    return f"{key}{rng.choice(['=', ' = ', ' =', '= '])}{value}"


def test_fast_reader_agrees_with_configobj() -> None:
    """On random input, the fast reader returns what ConfigObj returns or defers to it."""
    rng = random.Random(4242)
    deferred = 0
    for _ in range(20000):
        text = "\n".join(random_line(rng) for _ in range(rng.randint(1, 4))) + "\n"
        try:
            fast = renewal_conf.parse_plain(text)
        except renewal_conf._NotPlain:
            deferred += 1
            continue
        try:
            expected = configobj_dict(text)
        except configobj.ConfigObjError:
            pytest.fail(f"fast reader accepted what ConfigObj rejects: {text!r} -> {fast!r}")
        assert fast == expected, text
    assert 1000 < deferred < 19000  # both paths were exercised


def test_reading_many_confs_is_fast(tmp_path: Path) -> None:
    paths = [write(tmp_path, CERTBOT_CONF, f"d{i}.example") for i in range(2000)]
    started = time.perf_counter()
    for path in paths:
        read_renewal_conf(path)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"2,000 confs took {elapsed:.3f} s"
