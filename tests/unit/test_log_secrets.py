"""Secrets given as options never reach a log in clear."""

from __future__ import annotations

import logging

import pytest

from certwright.core import cli
from certwright.core.settings import Settings


def test_masked_command_lines() -> None:
    assert cli.masked(["certonly", "--eab-kid", "k", "--eab-hmac-key", "S3CRET", "-d", "x"]) \
        == ["certonly", "--eab-kid", "k", "--eab-hmac-key", cli.MASK, "-d", "x"]
    assert cli.masked(["--eab-hmac-key=S3CRET"]) == [f"--eab-hmac-key={cli.MASK}"]
    assert cli.masked(["--dns-acme-api-token", "T0KEN"]) == ["--dns-acme-api-token", cli.MASK]
    assert cli.masked(["--key-path", "/k.pem"]) == ["--key-path", "/k.pem"]


def test_a_secret_that_reaches_any_record_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    config = Settings(eab_hmac_key="S3CRET-VALUE", eab_kid="kid", domains=("x",))
    redact = cli._Redact(cli._secret_values(config))
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "sent %s to %s",
                               ("S3CRET-VALUE", "kid"), None)
    assert redact.filter(record)
    assert record.getMessage() == f"sent {cli.MASK} to kid"
