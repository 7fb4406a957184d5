"""Lineages: Certbot's archive/live/renewal layout, versions, crash-safe switching, repair."""

from __future__ import annotations

import datetime
import functools
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from certwright.core.errors import StorageError
from certwright.core.storage import lineage as lineage_module
from certwright.core.storage import livedir
from certwright.core.storage import store as store_module
from certwright.core.storage.lineage import (
    Lineage,
    cert_matches_key,
    delete_lineage,
    list_lineages,
    load_lineage,
    new_lineage,
    repair_store,
)
from certwright.core.storage.renewal_conf import read_renewal_conf, write_renewal_conf
from tests.conftest import skip_or_fail

KINDS = ("cert", "privkey", "chain", "fullchain")
PARAMS: dict[str, object] = {
    "authenticator": "webroot",
    "webroot_path": ["/var/www/html"],
    "webroot_map": {"example.com": "/var/www/html"},
    "server": "https://127.0.0.1:14000/dir",
}


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def self_signed(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, names: list[str], cn: bool = True
) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])] if cn else [])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test issuer")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@functools.cache
def chain_pem() -> bytes:
    return self_signed(ec.generate_private_key(ec.SECP256R1()), ["test issuer"])


def issue(
    names: list[str], key: ec.EllipticCurvePrivateKey | None = None
) -> tuple[bytes, bytes, bytes, bytes]:
    """(cert, chain, fullchain, privkey) for a fresh or given key."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(key, names)
    return cert, chain_pem(), cert + chain_pem(), key_pem(key)


def create(config_dir: Path, name: str = "example.com", names: list[str] | None = None) -> Lineage:
    cert, chain, fullchain, privkey = issue(names or [name, "www." + name])
    return new_lineage(config_dir, name, cert, chain, fullchain, privkey, PARAMS, "0.1.0")


def assert_consistent(lin: Lineage) -> int:
    """Every live link names one version whose files exist and whose cert matches its key."""
    versions = set(lin.link_versions().values())
    assert len(versions) == 1 and None not in versions, lin.link_versions()
    version = versions.pop()
    assert version is not None
    for kind in KINDS:
        assert lin.link(kind).resolve() == lin.archive_path(kind, version)
    assert cert_matches_key(lin.cert_pem(), lin.privkey_pem())
    assert lin.fullchain.read_bytes() == lin.cert_pem() + lin.chain.read_bytes()
    return version


def test_new_lineage_layout(tmp_path: Path) -> None:
    config = tmp_path / "etc"
    cert, chain, fullchain, privkey = issue(["example.com", "www.example.com"])
    lin = new_lineage(config, "example.com", cert, chain, fullchain, privkey, PARAMS, "0.1.0")

    assert lin.name == "example.com"
    for sub in ("archive", "live", "renewal"):
        assert mode_of(config / sub) == 0o700
    archive = config / "archive" / "example.com"
    assert mode_of(archive) == 0o755
    assert sorted(p.name for p in archive.iterdir()) == [
        "cert1.pem", "chain1.pem", "fullchain1.pem", "privkey1.pem"
    ]
    assert mode_of(archive / "privkey1.pem") == 0o600
    assert mode_of(archive / "cert1.pem") == 0o644
    assert (archive / "cert1.pem").read_bytes() == cert
    assert (archive / "fullchain1.pem").read_bytes() == fullchain
    live = config / "live" / "example.com"
    for kind in KINDS:
        assert os.readlink(live / f"{kind}.pem") == f"../../archive/example.com/{kind}1.pem"
    assert (live / "README").read_text().strip()
    assert (config / "live" / "README").read_text().strip()
    assert sorted(p.name for p in (config / "live").iterdir()) == ["README", "example.com"]

    conf = read_renewal_conf(config / "renewal" / "example.com.conf")
    assert conf.version == "0.1.0"
    assert conf.archive_dir == str(archive)
    assert conf.cert == str(live / "cert.pem")
    assert conf.privkey == str(live / "privkey.pem")
    assert conf.params["webroot_path"] == ["/var/www/html"]
    assert conf.params["webroot_map"] == {"example.com": "/var/www/html"}

    assert lin.current_version() == lin.latest_version() == 1
    assert lin.cert_pem() == cert
    assert lin.names == ["example.com", "www.example.com"]
    assert lin.key_type == "ECDSA secp256r1"
    assert lin.serial == x509.load_pem_x509_certificate(cert).serial_number
    assert lin.not_after.tzinfo is not None
    assert lin.not_after - datetime.datetime.now(datetime.UTC) > datetime.timedelta(days=89)


def test_names_put_common_name_first_and_handle_no_cn(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(key, ["b.example", "a.example"], cn=True)
    lin = new_lineage(tmp_path, "x", cert, b"", cert, key_pem(key), {}, "0.1.0")
    assert lin.names == ["b.example", "a.example"]
    cert = self_signed(key, ["b.example", "a.example"], cn=False)
    lin.save_successor(cert, b"", cert, None, {})
    assert lin.names == ["b.example", "a.example"]


def test_rsa_key_type(tmp_path: Path) -> None:
    key = rsa.generate_private_key(65537, 2048)
    cert = self_signed(key, ["rsa.example"])
    lin = new_lineage(tmp_path, "rsa.example", cert, b"", cert, key_pem(key), {}, "0.1.0")
    assert lin.key_type == "RSA 2048"


def test_name_collision_gets_numbered_suffix(tmp_path: Path) -> None:
    names = [create(tmp_path).name for _ in range(3)]
    assert names == ["example.com", "example.com-0001", "example.com-0002"]
    assert [lin.name for lin in list_lineages(tmp_path)] == names
    second = load_lineage(tmp_path, "example.com-0001")
    assert os.readlink(second.cert) == "../../archive/example.com-0001/cert1.pem"
    assert second.conf.archive_dir == str(tmp_path / "archive" / "example.com-0001")


def test_relative_config_dir_is_stored_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    lin = create(Path("rel"))
    assert lin.conf.cert == str(tmp_path / "rel" / "live" / "example.com" / "cert.pem")


def test_invalid_names_are_refused(tmp_path: Path) -> None:
    cert, chain, fullchain, privkey = issue(["example.com"])
    for bad in ("", ".hidden", "a/b", "../x"):
        with pytest.raises(StorageError, match="invalid certificate name"):
            new_lineage(tmp_path, bad, cert, chain, fullchain, privkey, {}, "0.1.0")


def test_save_successor_with_new_key(tmp_path: Path) -> None:
    lin = create(tmp_path)
    (lin.live_dir / "dhparam.pem").write_text("kept by the user")
    first_serial = lin.serial
    cert, chain, fullchain, privkey = issue(["example.com", "www.example.com", "new.example.com"])
    params = dict(PARAMS, authenticator="standalone")
    assert lin.save_successor(cert, chain, fullchain, privkey, params, "0.2.0") == 2

    assert assert_consistent(lin) == 2
    assert lin.current_version() == lin.latest_version() == 2
    assert lin.privkey_pem() == privkey
    assert lin.cert_pem() == cert
    assert lin.serial != first_serial  # the parsed certificate was refreshed
    assert "new.example.com" in lin.names
    assert mode_of(lin.archive_path("privkey", 2)) == 0o600
    assert (lin.live_dir / "dhparam.pem").read_text() == "kept by the user"
    assert (lin.live_dir / "README").exists()
    assert os.readlink(lin.fullchain) == "../../archive/example.com/fullchain2.pem"
    conf = read_renewal_conf(lin.renewal_conf_path)
    assert conf.params["authenticator"] == "standalone"
    assert conf.version == "0.2.0"
    assert sorted(os.listdir(tmp_path / "live")) == ["README", "example.com"]
    assert load_lineage(tmp_path, "example.com").current_version() == 2


def test_save_successor_reusing_the_key(tmp_path: Path) -> None:
    lin = create(tmp_path)
    old_key = lin.privkey_pem()
    key = serialization.load_pem_private_key(old_key, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert, chain, fullchain, _ = issue(["example.com"], key)
    assert lin.save_successor(cert, chain, fullchain, None, PARAMS) == 2
    new_key_file = lin.archive_path("privkey", 2)
    assert not new_key_file.is_symlink()
    assert new_key_file.read_bytes() == old_key
    assert mode_of(new_key_file) == 0o600
    assert_consistent(lin)


def test_new_key_keeps_group_bits_of_previous_key(tmp_path: Path) -> None:
    lin = create(tmp_path)
    os.chmod(lin.archive_path("privkey", 1), 0o640)
    if os.geteuid() == 0:
        os.chown(lin.archive_path("privkey", 1), -1, 4242)
    lin.save_successor(*issue(["example.com"]), PARAMS)
    assert mode_of(lin.archive_path("privkey", 2)) == 0o640
    if os.geteuid() == 0:
        assert os.stat(lin.archive_path("privkey", 2)).st_gid == 4242


def test_partial_versions_are_skipped(tmp_path: Path) -> None:
    lin = create(tmp_path)
    lin.archive_path("cert", 5).write_bytes(b"half-written leftover")
    (lin.archive_dir / ".cert6.pem.0badc0de.tmp").write_bytes(b"temp leftover")
    assert lin.latest_version() == 1
    assert lin.save_successor(*issue(["example.com"]), PARAMS) == 6
    assert lin.latest_version() == 6
    assert not (lin.archive_dir / ".cert6.pem.0badc0de.tmp").exists()


def test_switch_without_renameat2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(livedir, "_libc_renameat2", lambda: None)
    lin = create(tmp_path)
    lin.save_successor(*issue(["example.com"]), PARAMS)
    assert assert_consistent(lin) == 2
    assert sorted(os.listdir(tmp_path / "live")) == ["README", "example.com"]


def test_renameat2_exchange_swaps(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "in-a").touch()
    (tmp_path / "b").mkdir()
    if not lineage_module.exchange_paths(tmp_path / "a", tmp_path / "b"):
        skip_or_fail("renameat2(RENAME_EXCHANGE) is not supported here")
    assert (tmp_path / "b" / "in-a").exists()
    assert not (tmp_path / "a" / "in-a").exists()


def test_links_outside_the_live_dir_are_refused(tmp_path: Path) -> None:
    lin = create(tmp_path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    os.symlink("../archive/example.com/chain1.pem", other / "chain.pem")
    lin.conf.chain = str(other / "chain.pem")
    write_renewal_conf(lin.conf)
    with pytest.raises(StorageError, match=r"chain = .*elsewhere/chain.pem is outside"):
        load_lineage(tmp_path, "example.com")
    [listed] = list_lineages(tmp_path)
    assert listed.error is not None and "outside" in listed.error


def test_repair_repoints_disagreeing_links(tmp_path: Path) -> None:
    lin = create(tmp_path)
    lin.save_successor(*issue(["example.com"]), PARAMS)
    os.unlink(lin.privkey)
    os.symlink("../../archive/example.com/privkey1.pem", lin.privkey)
    assert not lin.is_consistent()
    assert repair_store(tmp_path) == [], "a clean store is not read lineage by lineage"
    messages = repair_store(tmp_path, full=True)
    assert len(messages) == 1
    assert "example.com" in messages[0] and "version 2" in messages[0]
    assert assert_consistent(lin) == 2
    assert repair_store(tmp_path, full=True) == []


def test_repair_skips_a_version_whose_cert_does_not_match_its_key(tmp_path: Path) -> None:
    lin = create(tmp_path)
    lin.save_successor(*issue(["example.com"]), PARAMS)
    cert, chain, fullchain, _ = issue(["example.com"])
    _, _, _, other_key = issue(["example.com"])
    for kind, data in (("cert", cert), ("chain", chain), ("fullchain", fullchain),
                       ("privkey", other_key)):
        lin.archive_path(kind, 3).write_bytes(data)
    os.unlink(lin.cert)  # a dangling or missing link also counts as inconsistent
    messages = repair_store(tmp_path, full=True)
    assert "version 2" in messages[0]
    assert assert_consistent(lin) == 2


def test_repair_finishes_an_interrupted_two_rename_switch(tmp_path: Path) -> None:
    lin = create(tmp_path)
    lin.save_successor(*issue(["example.com"]), PARAMS)
    live = tmp_path / "live"
    # State between the two renames of the fallback: old dir retired, new dir staged.
    os.rename(live / "example.com", live / ".example.com.old")
    shutil.copytree(live / ".example.com.old", live / ".example.com.new", symlinks=True)
    messages = repair_store(tmp_path)
    assert any("interrupted switch" in m for m in messages)
    assert sorted(os.listdir(live)) == ["README", "example.com"]
    assert assert_consistent(lin) == 2


def test_repair_removes_leftovers(tmp_path: Path) -> None:
    lin = create(tmp_path)
    staged = tmp_path / "live" / ".example.com.new"
    staged.mkdir()
    os.symlink("../../archive/example.com/cert9.pem", staged / "cert.pem")
    (tmp_path / "renewal" / ".example.com.conf.12345678.tmp").write_text("half")
    messages = repair_store(tmp_path)
    assert len(messages) == 2
    assert not staged.exists()
    assert sorted(os.listdir(tmp_path / "renewal")) == ["example.com.conf"]
    assert assert_consistent(lin) == 1


def test_list_reports_a_broken_conf_without_stopping(tmp_path: Path) -> None:
    create(tmp_path, "a.example")
    create(tmp_path, "c.example")
    broken = tmp_path / "renewal" / "b.example.conf"
    broken.write_text("version = 1\n[renewalparams\nx = 1\n")
    found = list_lineages(tmp_path)
    assert [lin.name for lin in found] == ["a.example", "b.example", "c.example"]
    assert found[0].error is None and found[2].error is None
    assert found[1].error is not None
    assert str(broken) in found[1].error and "line 2" in found[1].error
    assert found[1].cert == tmp_path / "live" / "b.example" / "cert.pem"
    with pytest.raises(StorageError, match="line 2"):
        load_lineage(tmp_path, "b.example")


def test_load_unknown_lineage_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="there are no certificates"):
        load_lineage(tmp_path, "nope")
    create(tmp_path, "a.example")
    create(tmp_path, "b.example")
    with pytest.raises(StorageError, match=r"known names: a\.example, b\.example"):
        load_lineage(tmp_path, "nope")


def test_current_version_needs_a_link(tmp_path: Path) -> None:
    lin = create(tmp_path)
    os.unlink(lin.cert)
    lin.cert.write_bytes(lin.archive_path("cert", 1).read_bytes())
    with pytest.raises(StorageError, match=r"expected .*cert.pem to be a symlink"):
        lin.current_version()


def test_delete_lineage(tmp_path: Path) -> None:
    create(tmp_path, "a.example")
    create(tmp_path, "b.example")
    delete_lineage(tmp_path, "a.example")
    assert not (tmp_path / "renewal" / "a.example.conf").exists()
    assert not (tmp_path / "live" / "a.example").exists()
    assert not (tmp_path / "archive" / "a.example").exists()
    assert [lin.name for lin in list_lineages(tmp_path)] == ["b.example"]
    assert_consistent(load_lineage(tmp_path, "b.example"))
    with pytest.raises(StorageError, match="no certificate named"):
        delete_lineage(tmp_path, "a.example")


def test_delete_keeps_a_live_dir_holding_user_files(tmp_path: Path) -> None:
    lin = create(tmp_path)
    (lin.live_dir / "notes.txt").write_text("mine")
    delete_lineage(tmp_path, "example.com")
    assert os.listdir(lin.live_dir) == ["notes.txt"]
    assert not lin.archive_dir.exists()


CRASH_CHILD = textwrap.dedent(
    """
    import datetime, sys
    from pathlib import Path
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from certwright.core.storage import lineage as L

    def cert_for(key):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crash.example")])
        now = datetime.datetime.now(datetime.UTC)
        return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))

    if sys.argv[2] == "fallback":
        from certwright.core.storage import livedir
        livedir._libc_renameat2 = lambda: None
    lin = L.load_lineage(Path(sys.argv[1]), "crash.example")
    chain = b"-----BEGIN CERTIFICATE-----\\nchain\\n-----END CERTIFICATE-----\\n"
    print("ready", flush=True)
    for i in range(1, 1000000):
        if i % 3 == 0:  # renew with the same key
            key = serialization.load_pem_private_key(lin.privkey_pem(), None)
            privkey = None
        else:
            key = ec.generate_private_key(ec.SECP256R1())
            privkey = key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
        cert = cert_for(key)
        lin.save_successor(cert, chain, cert + chain, privkey, {"round": str(i)})
    """
)


def crash_rounds(tmp_path: Path, mode: str, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(key, ["crash.example"])
    new_lineage(tmp_path, "crash.example", cert, b"", cert, key_pem(key), {}, "0.1.0")
    seen = set()
    for _ in range(rounds):
        child = subprocess.Popen(
            [sys.executable, "-c", CRASH_CHILD, str(tmp_path), mode],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.0, 0.12))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        lin = load_lineage(tmp_path, "crash.example")
        if mode == "exchange":
            # renameat2 switches atomically: consistent even before any repair
            assert_consistent(lin)
        messages = repair_store(tmp_path)
        if mode == "exchange":
            assert all(m.startswith("removed leftover") for m in messages), messages
        seen.add(assert_consistent(load_lineage(tmp_path, "crash.example")))
        assert sorted(os.listdir(tmp_path / "live")) == ["README", "crash.example"]
    assert max(seen) > rounds, "the child hardly ever got to save a version"


def test_kill_9_during_save_successor_never_breaks_live_links(tmp_path: Path) -> None:
    if not lineage_module.exchange_paths(*_two_dirs(tmp_path / "probe")):
        skip_or_fail("renameat2(RENAME_EXCHANGE) is not supported here")
    crash_rounds(tmp_path / "etc", "exchange", rounds=30, seed=1)


def test_kill_9_with_two_rename_fallback_is_repaired(tmp_path: Path) -> None:
    crash_rounds(tmp_path, "fallback", rounds=12, seed=2)


def _two_dirs(base: Path) -> tuple[Path, Path]:
    (base / "a").mkdir(parents=True)
    (base / "b").mkdir()
    return base / "a", base / "b"


def test_delete_with_a_hand_edited_archive_dir_leaves_that_dir_alone(
    tmp_path: Path,
) -> None:
    lin = create(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir()
    for kind in KINDS:
        os.rename(lin.archive_path(kind, 1), shared / f"{kind}1.pem")
        os.unlink(lin.link(kind))
        os.symlink(f"../../shared/{kind}1.pem", lin.link(kind))
    (shared / "unrelated.txt").write_text("not ours")
    before = sorted(os.listdir(shared))
    lin.conf.archive_dir = str(shared)
    write_renewal_conf(lin.conf)
    delete_lineage(tmp_path, "example.com")
    assert sorted(os.listdir(shared)) == before, "nothing outside archive/ is followed"
    assert not (tmp_path / "renewal" / "example.com.conf").exists()
    assert not (tmp_path / "live" / "example.com").exists()


def test_failed_new_lineage_leaves_no_archive_even_when_live_cannot_be_cleaned(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_remove = store_module._remove_tree

    def install_fails(staged: Path, live_dir: Path) -> None:
        live_dir.mkdir()  # got that far; the read-only live/ keeps it
        raise StorageError(f"cannot rename {staged}: Read-only file system")

    def remove(path: Path) -> None:
        if path.parent.name == "live" and os.path.lexists(path):
            raise StorageError(f"cannot remove {path}: Read-only file system")
        real_remove(path)

    monkeypatch.setattr(store_module, "_install_live_dir", install_fails)
    monkeypatch.setattr(store_module, "_remove_tree", remove)
    with pytest.raises(StorageError, match="cannot rename"):
        create(tmp_path, "o2.example.org")
    assert not (tmp_path / "archive" / "o2.example.org").exists()
    monkeypatch.undo()
    (tmp_path / "live" / "o2.example.org").rmdir()  # the admin makes live/ writable again
    assert create(tmp_path, "o2.example.org").name == "o2.example.org"  # not "-0001"
