"""Certbot 5.8.0 reads what certwright writes, and certwright reads what Certbot writes.

Certbot runs from its own virtualenv under ``.bench/certbot-venv`` (created on first use).
"""

from __future__ import annotations

import datetime
import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from josepy.jwk import JWKEC, JWKRSA

from certwright.core.storage.accounts import (
    Account,
    account_id_for_key,
    list_accounts,
    save_account,
)
from certwright.core.storage.lineage import (
    cert_matches_key,
    list_lineages,
    load_lineage,
    new_lineage,
    repair_store,
)

pytestmark = pytest.mark.integration

PEBBLE = "https://127.0.0.1:14000/dir"


def certbot_python(venv: Path, script: str, *args: str) -> str:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", textwrap.dedent(script), *args],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def certbot_certificates(venv: Path, base: Path) -> str:
    done = subprocess.run(
        [str(venv / "bin" / "certbot"), "certificates", "--non-interactive",
         "--config-dir", str(base / "etc"), "--work-dir", str(base / "work"),
         "--logs-dir", str(base / "logs")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "invalid" not in output.lower(), output
    return output


CA_KEY = ec.generate_private_key(ec.SECP256R1())
CA_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certwright test CA")])


def _build(subject: x509.Name, public_key: object, names: list[str]) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(CA_NAME)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=90))
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    return builder.sign(CA_KEY, hashes.SHA256())


# Certbot checks the certificate's signature against the first certificate of chain.pem.
CHAIN = _build(CA_NAME, CA_KEY.public_key(), []).public_bytes(serialization.Encoding.PEM)


def issue(names: list[str], key: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    """A certificate for ``names`` issued by the test CA, and ``key`` in PEM."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = _build(subject, key.public_key(), names)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), pem


def test_certbot_lists_certwright_lineages(certbot_venv: Path, tmp_path: Path) -> None:
    config = tmp_path / "etc"
    params: dict[str, object] = {
        "authenticator": "webroot",
        "account": "0123456789abcdef0123456789abcdef",
        "server": PEBBLE,
        "key_type": "ecdsa",
        "webroot_path": ["/var/www/html"],
        "pref_challs": ["http-01"],
        "renew_hook": 'systemctl reload nginx, "quoted" # not a comment',
        "webroot_map": {"example.com": "/var/www/html", "www.example.com": "/var/www/html"},
    }
    key = ec.generate_private_key(ec.SECP256R1())
    cert, privkey = issue(["example.com", "www.example.com"], key)
    lin = new_lineage(config, "example.com", cert, CHAIN, cert + CHAIN, privkey, params, "0.1.0")
    cert, _ = issue(["example.com", "www.example.com"], key)
    assert lin.save_successor(cert, CHAIN, cert + CHAIN, None, params) == 2
    other = ec.generate_private_key(ec.SECP384R1())
    cert, privkey = issue(["other.example"], other)
    new_lineage(config, "other.example", cert, CHAIN, cert + CHAIN, privkey, {"server": PEBBLE},
                "0.1.0")

    output = certbot_certificates(certbot_venv, tmp_path)
    assert "Certificate Name: example.com\n" in output
    assert "Identifiers: example.com www.example.com\n" in output
    assert f"Certificate Path: {config}/live/example.com/fullchain.pem" in output
    assert f"Private Key Path: {config}/live/example.com/privkey.pem" in output
    assert "Certificate Name: other.example\n" in output
    assert "Identifiers: other.example\n" in output

    seen = certbot_python(certbot_venv, """
        import argparse, json, sys
        from certbot import configuration
        from certbot._internal import storage
        ns = argparse.Namespace(config_dir=sys.argv[1], work_dir=sys.argv[2],
                                logs_dir=sys.argv[2], server=sys.argv[3],
                                http01_port=80, https_port=443)
        lin = storage.RenewableCert(sys.argv[1] + "/renewal/example.com.conf",
                                    configuration.NamespaceConfig(ns))
        params = lin.configuration["renewalparams"]
        print(json.dumps([lin.latest_common_version(), lin.current_version("privkey"),
                          lin.has_pending_deployment(), lin._consistent(),
                          params["webroot_path"], params["webroot_map"],
                          params["deploy_hook"]]))  # Certbot loads renew_hook as deploy_hook
    """, str(config), str(tmp_path / "work"), PEBBLE)
    assert json.loads(seen) == [
        2, 2, False, True, ["/var/www/html"],
        {"example.com": "/var/www/html", "www.example.com": "/var/www/html"},
        'systemctl reload nginx, "quoted" # not a comment',
    ]


CERTBOT_LINEAGE = """
    import sys
    from certbot._internal import cli, storage
    from certbot._internal.plugins import disco
    config_dir, work, server = sys.argv[1:4]
    args = ["certonly", "--webroot", "-w", sys.argv[8], "-d", "legacy.example",
            "--config-dir", config_dir, "--work-dir", work, "--logs-dir", work,
            "--server", server, "--reuse-key", "--key-type", "ecdsa"]
    config = cli.prepare_and_parse_args(disco.PluginsRegistry.find_all(), args)
    read = lambda p: open(p, "rb").read()
    chain = read(sys.argv[7])
    lin = storage.RenewableCert.new_lineage("legacy.example", read(sys.argv[4]),
                                            read(sys.argv[5]), chain, config)
    # a renewal that reuses the key: Certbot links privkey2.pem to privkey1.pem
    lin.save_successor(1, read(sys.argv[6]), None, chain, config)
    lin.update_all_links_to(2)
"""


def test_certwright_continues_a_certbot_lineage(certbot_venv: Path, tmp_path: Path) -> None:
    config = tmp_path / "etc"
    webroot = tmp_path / "www"
    webroot.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    cert1, privkey = issue(["legacy.example"], key)
    cert2, _ = issue(["legacy.example"], key)
    for name, data in (("cert1", cert1), ("key", privkey), ("cert2", cert2), ("chain", CHAIN)):
        (tmp_path / name).write_bytes(data)
    certbot_python(certbot_venv, CERTBOT_LINEAGE, str(config), str(tmp_path / "work"), PEBBLE,
                   str(tmp_path / "cert1"), str(tmp_path / "key"), str(tmp_path / "cert2"),
                   str(tmp_path / "chain"), str(webroot))
    assert (config / "archive" / "legacy.example" / "privkey2.pem").is_symlink()

    assert repair_store(config) == []
    [lin] = list_lineages(config)
    assert lin.error is None
    assert lin.conf.version == "5.8.0"
    assert lin.conf.params["webroot_map"] == {}  # Certbot fills the map in during auth
    assert lin.conf.params["webroot_path"] == [str(webroot)]
    assert lin.current_version() == lin.latest_version() == 2
    assert lin.names == ["legacy.example"]
    assert cert_matches_key(lin.cert_pem(), lin.privkey_pem())

    cert3, privkey3 = issue(["legacy.example", "www.legacy.example"], ec.generate_private_key(
        ec.SECP256R1()))
    assert lin.save_successor(cert3, CHAIN, cert3 + CHAIN, privkey3, lin.params) == 3
    lin = load_lineage(config, "legacy.example")
    assert lin.conf.version == "5.8.0"  # kept unless a version is given
    output = certbot_certificates(certbot_venv, tmp_path)
    assert "Certificate Name: legacy.example\n" in output
    assert "Identifiers: legacy.example www.legacy.example\n" in output


def test_certbot_loads_certwright_accounts(certbot_venv: Path, tmp_path: Path) -> None:
    config = tmp_path / "etc"
    ours = []
    for jwk in (JWKEC(key=ec.generate_private_key(ec.SECP256R1())),
                JWKRSA(key=rsa.generate_private_key(65537, 2048))):
        account = Account(
            id=account_id_for_key(jwk), key=jwk,
            uri=f"https://127.0.0.1:14000/my-account/{len(ours) + 1}",
            body={"status": "valid", "contact": ["mailto:admin@example.com"],
                  "key": jwk.public_key().to_partial_json(),
                  "orders": "https://127.0.0.1:14000/list-orderz/1",
                  "createdAt": "2026-01-01T00:00:00Z"},
        )
        save_account(config, PEBBLE, account)
        ours.append(account)

    found = certbot_python(certbot_venv, """
        import argparse, json, sys
        from certbot import configuration
        from certbot._internal import account
        ns = argparse.Namespace(config_dir=sys.argv[1], work_dir=sys.argv[2],
                                logs_dir=sys.argv[2], server=sys.argv[3],
                                strict_permissions=True, http01_port=80, https_port=443)
        storage = account.AccountFileStorage(configuration.NamespaceConfig(ns))
        accounts = storage.find_all()
        for a in accounts:
            assert storage.load(a.id).key == a.key
        print(json.dumps(sorted([a.id, a.regr.uri, list(a.regr.body.contact)]
                                for a in accounts)))
    """, str(config), str(tmp_path / "work"), PEBBLE)
    assert json.loads(found) == sorted(
        [a.id, a.uri, ["mailto:admin@example.com"]] for a in ours
    )


def test_certwright_loads_certbot_accounts(certbot_venv: Path, tmp_path: Path) -> None:
    config = tmp_path / "etc"
    made = certbot_python(certbot_venv, """
        import argparse, json, sys
        import josepy
        from cryptography.hazmat.primitives.asymmetric import ec
        from acme import messages
        from certbot import configuration
        from certbot._internal import account
        ns = argparse.Namespace(config_dir=sys.argv[1], work_dir=sys.argv[2],
                                logs_dir=sys.argv[2], server=sys.argv[3],
                                strict_permissions=False, http01_port=80, https_port=443)
        key = josepy.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
        regr = messages.RegistrationResource(uri="https://127.0.0.1:14000/my-account/7",
                                             body=messages.Registration())
        acc = account.Account(regr, key)
        account.AccountFileStorage(configuration.NamespaceConfig(ns)).save(acc, None)
        print(json.dumps([acc.id, key.json_dumps()]))
    """, str(config), str(tmp_path / "work"), PEBBLE)
    account_id, key_json = json.loads(made)
    [account] = list_accounts(config, PEBBLE)
    assert account.id == account_id == account_id_for_key(account.key)
    assert account.uri == "https://127.0.0.1:14000/my-account/7"
    assert account.key.json_dumps() == key_json
    assert account.meta["creation_host"]
