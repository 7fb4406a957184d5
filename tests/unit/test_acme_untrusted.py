"""What the CA sends is checked before it can reach a hook, a file name or a config."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from certwright.authenticators.manual import ManualAuthenticator
from certwright.core.acme.errors import AcmeError
from certwright.core.acme.messages import (
    Authorization,
    Challenge,
    Directory,
    Order,
    UnsafeResponse,
)
from certwright.core.errors import PluginError
from tests.unit.test_auth_manual import dns_task, http_task

GOOD_TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"


def challenge(**fields: Any) -> dict[str, Any]:
    return {"type": "http-01", "url": "https://ca/chall/1", "status": "pending",
            "token": GOOD_TOKEN, **fields}


def test_a_good_challenge_passes() -> None:
    assert Challenge.from_json(challenge()).token == GOOD_TOKEN


@pytest.mark.parametrize("token", [
    "../../../../tmp/x", "abc/def", GOOD_TOKEN + "\n", "a b", "tok=", "$(id)", "", None, 42,
    "tök",
])
def test_a_token_outside_base64url_is_refused(token: object) -> None:
    with pytest.raises(UnsafeResponse, match="token"):
        Challenge.from_json(challenge(token=token))


def test_a_challenge_type_without_a_token_needs_none() -> None:
    chall = Challenge.from_json({"type": "x-future-01", "url": "https://ca/c/2"})
    assert chall.token == ""


@pytest.mark.parametrize("url", ["/relative", "file:///etc/passwd", "https://ca/x\nY",
                                 "https://ca/a b", "javascript:alert(1)", None])
def test_a_resource_url_that_is_no_http_url_is_refused(url: object) -> None:
    with pytest.raises(UnsafeResponse, match="URL"):
        Challenge.from_json(challenge(url=url))
    order = {"status": "pending", "identifiers": [], "authorizations": [url],
             "finalize": "https://ca/f"}
    with pytest.raises(UnsafeResponse, match="URL"):
        Order.from_json("https://ca/o/1", order)


@pytest.mark.parametrize("ident", [
    {"type": "dns", "value": "evil\n.example.org"},
    {"type": "dns", "value": "../../etc"},
    {"type": "dns", "value": "example.org\n"},
    {"type": "dns", "value": "a;b.example.org"},
    {"type": "ip", "value": "127.0.0.1; rm"},
    {"type": "email", "value": "a@example.org"},
    {"value": "example.org"},
    "example.org",
])
def test_an_identifier_that_is_no_name_or_address_is_refused(ident: object) -> None:
    with pytest.raises(UnsafeResponse, match="identifier"):
        Authorization.from_json("https://ca/z/1", {"status": "pending", "identifier": ident,
                                                   "challenges": [challenge()]})


@pytest.mark.parametrize("task", [
    http_task(token="../../../../tmp/x"),
    http_task(domain="evil\n.example.com"),
    dataclasses.replace(dns_task(), validation="x; rm -rf /"),
])
def test_manual_refuses_an_unsafe_task_and_runs_no_hook(tmp_path: Path, task: Any) -> None:
    mark = tmp_path / "ran"
    auth = ManualAuthenticator(argparse.Namespace(
        manual_auth_hook=f"touch {mark}", manual_cleanup_hook=None, noninteractive=True))
    with pytest.raises(PluginError, match="refusing the"):
        auth.present(task)
    assert not mark.exists()


def test_manual_still_runs_its_hook_for_a_good_task(tmp_path: Path) -> None:
    mark = tmp_path / "ran"
    auth = ManualAuthenticator(argparse.Namespace(
        manual_auth_hook=f"touch {mark}", manual_cleanup_hook=None, noninteractive=True))
    auth.present(http_task())
    auth.present(dns_task())
    assert mark.exists()


def test_ca_text_shown_to_the_user_is_one_line_without_escape_sequences() -> None:
    err = AcmeError.from_json({"type": "urn:ietf:params:acme:error:malformed",
                               "detail": "bad\nError: all fine\x1b[2J", "status": "oops",
                               "subproblems": [{"type": "x", "detail": "a\rb",
                                                "identifier": {"value": "n\x07"}}]},
                              status=400)
    text = str(err)
    assert "\n" not in text and "\r" not in text and "\x1b" not in text and "\x07" not in text
    assert "bad Error: all fine\\x1b[2J" in text and err.status == 400
    directory = Directory.from_json("https://ca/dir", {
        "newNonce": "https://ca/n", "newAccount": "https://ca/a", "newOrder": "https://ca/o",
        "meta": {"termsOfService": "https://ca/tos\n\x1b]8;;evil\x07click"}})
    assert directory.terms_of_service is not None
    assert "\n" not in directory.terms_of_service and "\x1b" not in directory.terms_of_service


@pytest.mark.parametrize("value", ["²", "١٢", "3²"])
def test_digits_that_int_or_float_refuse_are_not_taken_for_numbers(value: str) -> None:
    """str.isdigit() is true for '²', which int() and float() refuse: a Retry-After from
    the CA or a port in a config must not end in a traceback."""
    from certwright.core.acme.transport import parse_retry_after
    from certwright.installers.nginx.tree import parse_listen

    assert parse_retry_after(value) is None
    assert parse_listen([f"127.0.0.1:{value}"]).port is None


def test_an_smtp_reply_code_of_unicode_digits_is_no_reply() -> None:
    import socket

    from certwright.core.probe import ProbeError, _Lines, _smtp_reply

    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall("²²² hello\r\n".encode())
        with pytest.raises(ProbeError, match="not an SMTP reply"):
            _smtp_reply(_Lines(ours, 2.0))
