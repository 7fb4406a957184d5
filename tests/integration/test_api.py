"""The library entry point against a real Pebble: several certificates in one process,
from several threads, through one transport; outcomes, not printed lines."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest
from cryptography import x509

from certwright.core import api, session
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration


@pytest.fixture
def base(pebble: Pebble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> api.Settings:
    for key, value in pebble.env({}).items():
        monkeypatch.setenv(key, value)
    return api.settings(config_dir=tmp_path / "config", work_dir=tmp_path / "work",
                        server=pebble.directory_url, email="admin@example.org",
                        authenticator="standalone", http01_port=pebble.http_port,
                        http01_address="127.0.0.1")


def test_obtain_many_in_one_process_then_renew_and_fail_cleanly(base: api.Settings) -> None:
    names = [f"api{i}.example.org" for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda n: api.obtain(api.Request([n]), base), names))
    assert [o.status for o in outcomes] == ["issued"] * 4, [o.error for o in outcomes]
    assert len({o.serial for o in outcomes}) == 4
    for name, outcome in zip(names, outcomes, strict=True):
        assert outcome.lineage == name and outcome.domains == (name,)
        assert outcome.fullchain_path is not None and outcome.not_after is not None
        cert = x509.load_pem_x509_certificate(Path(outcome.cert_path or "").read_bytes())
        assert cert.serial_number == outcome.serial
        assert cert.not_valid_after_utc == outcome.not_after
        assert any("Successfully received certificate" in m for m in outcome.messages)
    # one transport for the CA, shared by every order of the process
    assert session.transport(base) is session.transport(base)
    assert len([k for k in session.TRANSPORTS._made if k[0] == base.server]) == 1

    again = api.obtain(api.Request([names[0]]), base)  # not due: nothing asked of the CA
    assert again.status == "kept" and again.serial == outcomes[0].serial

    renewed = api.renew(names[0], base, force=True)
    assert renewed.status == "renewed", renewed.error
    assert renewed.serial != outcomes[0].serial and renewed.lineage == names[0]

    failed = api.obtain(api.Request(["not a name"]), base)
    assert failed.status == "failed" and failed.error and "\n" not in failed.error
    missing = api.renew("nothing-here", base)
    assert missing.status == "failed" and "nothing-here" in (missing.error or "")
