"""Shared pytest fixtures: a real Pebble CA on loopback, and a web root servers can read.

Fixtures that need a binary call `require_binary()`: a missing binary skips the test
locally, but fails it under CI=true, so CI never goes green by skipping.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # so `tests.servers` imports from any working directory
    sys.path.insert(0, str(REPO_ROOT))

from certwright.core.interfaces import ChallengeTask, Identifier  # noqa: E402
from tests.servers.fsperm import blocking_ancestor, open_up  # noqa: E402
from tests.servers.pebble import CHALLTESTSRV_BINARY, PEBBLE_BINARY, Pebble  # noqa: E402

PebbleFactory = Callable[..., Pebble]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: needs real servers (Pebble, nginx, ...)")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip locally; under CI=true fail instead, so a green CI never hides a skipped test."""
    if in_ci():
        pytest.fail(f"{reason}; CI=true, so this fails instead of skipping", pytrace=False)
    pytest.skip(reason)


def require_binary(name: str) -> str:
    """Absolute path of `name` on PATH; otherwise skip the test, or fail it when CI=true."""
    path = shutil.which(name)
    if path is not None:
        return path
    skip_or_fail(f"{name} not found on PATH (Debian: `make sysdeps`)")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """One Pebble + challtestsrv for the whole session, default options (no nonce
    rejection, no authz reuse, 90-day certificates, no EAB). Accounts and orders made by
    one test are visible to the next: tests should not depend on a fresh CA."""
    require_binary(PEBBLE_BINARY)
    require_binary(CHALLTESTSRV_BINARY)
    with Pebble(tmp_path_factory.mktemp("pebble")) as ca:
        yield ca


@pytest.fixture
def pebble_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PebbleFactory]:
    """Start extra Pebble instances with other options: `pebble_factory(eab=True)`.
    Each gets its own work dir and ports; all are stopped when the test ends."""
    require_binary(PEBBLE_BINARY)
    require_binary(CHALLTESTSRV_BINARY)
    started: list[Pebble] = []

    def start(**options: Any) -> Pebble:
        ca = Pebble(tmp_path_factory.mktemp("pebble-extra"), **options)
        started.append(ca)
        return ca.start()

    try:
        yield start
    finally:
        for ca in reversed(started):
            ca.stop()


@pytest.fixture
def www_root() -> Iterator[Path]:
    """An empty directory that web server workers (www-data on Debian) can traverse and
    read: mode 0755, created directly under the system temp dir (pytest's own tmp_path
    sits below 0700 directories). Files written into it with the usual umask 022 are
    readable; for nested directories made with 0700 (mkdtemp) call
    `tests.servers.fsperm.open_up(path, www_root)`. Removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="certwright-www-"))
    open_up(root, root)
    blocker = blocking_ancestor(root)  # not ours to chmod: say which one it is
    if blocker is not None:
        shutil.rmtree(root)
        pytest.fail(f"{blocker} is not world-traversable; web server workers cannot reach {root}")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


CERTBOT_VENV = REPO_ROOT / ".bench" / "certbot-venv"
CERTBOT_VERSION = "5.8.0"


@pytest.fixture(scope="session")
def certbot_venv() -> Path:
    """Certbot 5.8.0 in its own virtualenv under .bench/, installed by `make certbot`
    (which `make test` runs first): tests never pip-install in the middle of a run."""
    certbot = CERTBOT_VENV / "bin" / "certbot"
    if not certbot.exists():
        skip_or_fail(f"Certbot {CERTBOT_VERSION} is not installed in {CERTBOT_VENV} "
                     "(run `make certbot`)")
    return CERTBOT_VENV


CERTBOT_DNS_VENV = REPO_ROOT / ".bench" / "certbot-dns-venv"


@pytest.fixture(scope="session")
def certbot_dns_venv() -> Path:
    """Certbot 5.8.0 with certbot-dns-rfc2136, in a virtualenv of its own (`make
    certbot-dns`), so the plain Certbot venv keeps only what the other tests expect."""
    if not (CERTBOT_DNS_VENV / "bin" / "certbot").exists():
        skip_or_fail(f"Certbot {CERTBOT_VERSION} with certbot-dns-rfc2136 is not installed "
                     f"in {CERTBOT_DNS_VENV} (run `make certbot-dns`)")
    return CERTBOT_DNS_VENV


THUMBPRINT = "9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


def http01_task(token: str, domain: str = "example.com", **more: Any) -> ChallengeTask:
    """An http-01 ChallengeTask for ``domain`` whose key authorization is
    ``token.THUMBPRINT``; ``more``: other fields (``all_domains``, ``remaining``)."""
    key_authorization = f"{token}.{THUMBPRINT}"
    return ChallengeTask(identifier=Identifier("dns", domain), challenge_type="http-01",
                         token=token, key_authorization=key_authorization,
                         validation=key_authorization, **more)
