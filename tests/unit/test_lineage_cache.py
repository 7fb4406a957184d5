"""The lineage cache never answers for a certificate other than the one served now: it keys
on the files themselves, and a damaged, planted or foreign cache file is never trusted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from certwright.core.lineage_cache import CACHE_FILE, LineageCache
from certwright.core.storage.lineage import (
    Lineage,
    delete_lineage,
    list_lineages,
    load_lineage,
    new_lineage,
)
from tests.unit.test_storage_lineage import PARAMS, issue, self_signed

NAME = "cache.example"


def fresh(config: Path, name: str = NAME) -> Lineage:
    cert, chain, fullchain, privkey = issue([name])
    return new_lineage(config, name, cert, chain, fullchain, privkey, PARAMS, "0.1.0")


def summary_serial(work: Path, config: Path, name: str = NAME) -> str:
    cache = LineageCache(work)
    found = cache.summary(load_lineage(config, name))
    cache.save()
    return found.serial


def serial_of(lin: Lineage) -> str:
    return f"{lin.serial:x}"


def test_delete_and_reissue_under_the_same_name(tmp_path: Path) -> None:
    config, work = tmp_path / "etc", tmp_path / "work"
    first = fresh(config)
    assert summary_serial(work, config) == serial_of(first)
    delete_lineage(config, NAME)
    second = fresh(config)  # the same name, the same link text: ../../archive/<name>/cert1.pem
    assert os.readlink(second.cert) == os.readlink(first.cert)
    assert summary_serial(work, config) == serial_of(second)


def same_size_cert(like: bytes) -> bytes:
    while True:  # ECDSA signatures vary in length: draw until the size matches
        key = ec.generate_private_key(ec.SECP256R1())
        other = self_signed(key, [NAME])
        if len(other) == len(like):
            return other


def test_file_replaced_with_the_same_size_and_mtime(tmp_path: Path) -> None:
    config, work = tmp_path / "etc", tmp_path / "work"
    lin = fresh(config)
    assert summary_serial(work, config) == serial_of(lin)
    target = lin.cert.resolve()
    before = os.stat(target)
    other = same_size_cert(lin.cert_pem())
    # rewritten in place (same inode), then its mtime put back
    with open(target, "r+b") as handle:
        handle.write(other)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(target).st_size == before.st_size
    assert os.stat(target).st_mtime_ns == before.st_mtime_ns
    assert summary_serial(work, config) == serial_of(load_lineage(config, NAME))
    # replaced by a new file (new inode), mtime copied over
    third = same_size_cert(other)
    staged = target.with_name("staged.pem")
    staged.write_bytes(third)
    os.utime(staged, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(staged, target)
    assert summary_serial(work, config) == serial_of(load_lineage(config, NAME))


def test_link_retargeted_by_hand(tmp_path: Path) -> None:
    config, work = tmp_path / "etc", tmp_path / "work"
    lin = fresh(config)
    assert summary_serial(work, config) == serial_of(lin)
    cert, chain, fullchain, privkey = issue([NAME])
    version = lin.save_successor(cert, chain, fullchain, privkey, PARAMS)
    assert summary_serial(work, config) == serial_of(load_lineage(config, NAME))
    # back to version 1 by hand (as a user undoing a renewal would)
    live = lin.live_dir
    for kind in ("cert", "privkey", "chain", "fullchain"):
        os.remove(live / f"{kind}.pem")
        os.symlink(f"../../archive/{NAME}/{kind}1.pem", live / f"{kind}.pem")
    assert version == 2
    assert summary_serial(work, config) == serial_of(lin)  # lin parsed version 1 earlier


def test_corrupt_cache_files_are_ignored(tmp_path: Path) -> None:
    config, work = tmp_path / "etc", tmp_path / "work"
    lin = fresh(config)
    work.mkdir()
    path = work / CACHE_FILE
    target = os.readlink(lin.cert)
    for content in (b"\x00garbage", b"[1, 2]", b'"text"', b"{}",
                    json.dumps({NAME: "x", str(lin.cert): [1], "_directories": []}).encode(),
                    json.dumps({NAME: [target, 0, 0, [], "0", "k"]}).encode(),
                    json.dumps({str(lin.cert): {"key": [], "summary": [0, 0, 5, 6, 7]},
                                "_directories": {"x": 1}}).encode()):
        path.write_bytes(content)
        path.chmod(0o600)
        cache = LineageCache(work)
        assert cache.summary(lin).serial == serial_of(lin), content
        assert isinstance(cache.data.get("_directories", {}), dict), content
        cache.save()
        assert json.loads(path.read_bytes()), "rewritten whole"


def test_a_cache_that_others_can_write_is_not_trusted(tmp_path: Path) -> None:
    config, work = tmp_path / "etc", tmp_path / "work"
    lin = fresh(config)
    assert summary_serial(work, config) == serial_of(lin)
    path = work / CACHE_FILE
    data = json.loads(path.read_bytes())
    # a planted answer for the right key: someone else's file must not be believed
    planted = json.dumps(data).replace(serial_of(lin), "abcdef").encode()
    for mode, owner in ((0o666, None), (0o620, None), (0o600, 65534)):
        path.write_bytes(planted)
        path.chmod(mode)
        if owner is not None:
            if os.geteuid() != 0:
                continue
            os.chown(path, owner, owner)
        assert LineageCache(work).summary(lin).serial == serial_of(lin), (oct(mode), owner)
    # and our own private file is believed (the planted entry proves the cache is read)
    path.unlink()
    path.write_bytes(planted)
    path.chmod(0o600)
    assert LineageCache(work).summary(lin).serial == "abcdef"


def test_two_stores_sharing_one_work_dir(tmp_path: Path) -> None:
    work = tmp_path / "work"
    one = fresh(tmp_path / "one")
    two = fresh(tmp_path / "two")
    assert os.readlink(one.cert) == os.readlink(two.cert)
    assert summary_serial(work, tmp_path / "one") == serial_of(one)
    assert summary_serial(work, tmp_path / "two") == serial_of(two)
    # a copied store (same paths inside, mtimes kept) keeps nothing of the original's entry
    shutil.rmtree(tmp_path / "one")
    shutil.copytree(tmp_path / "two", tmp_path / "one", symlinks=True)
    conf = tmp_path / "one" / "renewal" / f"{NAME}.conf"  # moved, and its paths fixed
    conf.write_text(conf.read_text().replace(str(tmp_path / "two"), str(tmp_path / "one")))
    copied = load_lineage(tmp_path / "one", NAME)
    assert summary_serial(work, tmp_path / "one") == serial_of(copied) == serial_of(two)


def test_unchanged_lineage_is_answered_without_parsing(tmp_path: Path, monkeypatch) -> None:
    config, work = tmp_path / "etc", tmp_path / "work"
    lin = fresh(config)
    assert summary_serial(work, config) == serial_of(lin)

    def no_parse(self: Lineage) -> bytes:
        raise AssertionError("parsed although nothing changed")

    monkeypatch.setattr(Lineage, "cert_pem", no_parse)
    assert LineageCache(work).summary(load_lineage(config, NAME)).serial == serial_of(lin)



def test_a_malformed_ari_directory_entry_is_asked_again(tmp_path: Path) -> None:
    import argparse

    from certwright.core.ari_check import AriCheck

    work = tmp_path / "work"
    work.mkdir()
    server = "https://127.0.0.1:9/dir"  # nothing listens: "no ARI" for this run only
    (work / CACHE_FILE).write_text(json.dumps(
        {"format": 2, "lineages": {}, "_directories": {server: ["yesterday", True]}}))
    (work / CACHE_FILE).chmod(0o600)
    cache = LineageCache(work)
    config = argparse.Namespace(user_agent=None, no_verify_ssl=False, server=server)
    assert AriCheck(config, cache).offers_ari(server, 1e9) is False  # the entry not trusted
    assert cache.data["_directories"][server] != [1e9, False]  # a failure is not remembered


def cached_paths(work: Path) -> set[str]:
    return set(json.loads((work / CACHE_FILE).read_text())["lineages"])


def test_entries_of_lineages_gone_are_pruned_when_the_store_is_listed(tmp_path: Path) -> None:
    """A lineage removed behind the cache's back (by hand, by Certbot, by a crash between
    the delete and the cache update) leaves no entry once the store is listed again;
    another store's entries in the same work dir stay."""
    config, other, work = tmp_path / "etc", tmp_path / "other", tmp_path / "work"
    kept, dropped, foreign = fresh(config, "kept.example"), fresh(config, "gone.example"), \
        fresh(other, "foreign.example")
    cache = LineageCache(work)
    for lin in (kept, dropped, foreign):
        cache.summary(lin)
    cache.save()
    assert cached_paths(work) == {kept.conf.cert, dropped.conf.cert, foreign.conf.cert}
    delete_lineage(config, "gone.example")  # the store alone: the cache is not told

    cache = LineageCache(work)
    cache.prune(config, list_lineages(config))
    cache.save()
    assert cached_paths(work) == {kept.conf.cert, foreign.conf.cert}

    fresh(config, "gone2.example")
    summary_serial(work, config, "gone2.example")
    delete_lineage(config, "gone2.example")
    certwright = str(Path(sys.executable).parent / "certwright")
    done = subprocess.run([certwright, "certificates", "--cert-name", "kept.example",
                           "--config-dir", str(config), "--work-dir", str(work),
                           "--logs-dir", str(tmp_path / "logs")],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert cached_paths(work) == {kept.conf.cert, foreign.conf.cert}
