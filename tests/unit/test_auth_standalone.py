"""standalone authenticator: a real HTTP server on loopback."""

from __future__ import annotations

import argparse
import logging
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from certwright.authenticators.standalone import StandaloneAuthenticator
from certwright.core.errors import PluginError
from certwright.core.interfaces import Authenticator, ChallengeTask, Identifier
from tests.conftest import http01_task

# no proxies from the environment: these requests must reach 127.0.0.1 directly
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def task(token: str, domain: str = "example.com") -> ChallengeTask:
    return http01_task(token, domain)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(port: int, path: str) -> tuple[int, str, bytes]:
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with _opener.open(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not a listener
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
        return True


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def auth(port: int) -> Iterator[StandaloneAuthenticator]:
    a = StandaloneAuthenticator(argparse.Namespace(http01_address="127.0.0.1", http01_port=port))
    yield a
    a._stop()  # a failing test must not leave the server running


def test_satisfies_the_protocol(auth: StandaloneAuthenticator) -> None:
    assert isinstance(auth, Authenticator)
    assert auth.renewal_params() == {}


def test_defaults_when_the_namespace_lacks_the_options() -> None:
    a = StandaloneAuthenticator(argparse.Namespace())
    assert (a.address, a.port) == ("", 80)


def test_serves_the_key_authorization_over_http(
    auth: StandaloneAuthenticator, port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    t = task("tok-en_1")
    auth.present(t)
    status, content_type, body = fetch(port, "/.well-known/acme-challenge/tok-en_1")
    assert status == 200
    assert content_type == "text/plain"
    assert body == t.key_authorization.encode()
    assert capsys.readouterr().err == ""  # requests are logged at debug level only
    auth.cleanup(t)


def test_unknown_token_and_other_paths_are_404(auth: StandaloneAuthenticator, port: int) -> None:
    auth.present(task("known"))
    assert fetch(port, "/.well-known/acme-challenge/unknown")[0] == 404
    assert fetch(port, "/.well-known/acme-challenge/")[0] == 404
    assert fetch(port, "/known")[0] == 404
    assert fetch(port, "/")[0] == 404
    auth.cleanup(task("known"))


def test_requests_are_logged_at_debug_level(
    auth: StandaloneAuthenticator, port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="certwright.authenticators.standalone")
    auth.present(task("tok"))
    fetch(port, "/.well-known/acme-challenge/tok")
    auth.cleanup(task("tok"))
    request_logs = [r for r in caplog.records if "acme-challenge/tok" in r.getMessage()]
    assert request_logs and all(r.levelno == logging.DEBUG for r in request_logs)


def test_server_stays_up_until_the_last_token_is_cleaned_up(
    auth: StandaloneAuthenticator, port: int
) -> None:
    first, second = task("first"), task("second", domain="www.example.com")
    auth.present(first)
    auth.present(second)
    auth.cleanup(first)
    assert fetch(port, "/.well-known/acme-challenge/first")[0] == 404
    assert fetch(port, "/.well-known/acme-challenge/second")[2] == second.key_authorization.encode()
    assert not port_is_free(port)
    auth.cleanup(second)
    assert port_is_free(port)
    assert not any(t.name.startswith("certwright-http01") for t in threading.enumerate())


def test_port_in_use_is_a_clear_error(auth: StandaloneAuthenticator, port: int) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        t = task("tok")
        with pytest.raises(PluginError) as err:
            auth.present(t)
        auth.cleanup(t)  # cleanup after a failed present is fine
    assert str(err.value) == (
        f"could not bind 127.0.0.1:{port} for http-01: Address already in use "
        "(is a web server running? try --webroot or --http-01-port)"
    )


def test_the_port_can_be_used_again_after_cleanup(port: int) -> None:
    config = argparse.Namespace(http01_address="127.0.0.1", http01_port=port)
    for round_ in range(2):
        a = StandaloneAuthenticator(config)
        t = task(f"round{round_}")
        a.present(t)
        assert fetch(port, f"/.well-known/acme-challenge/round{round_}")[0] == 200
        a.cleanup(t)
        assert port_is_free(port)


def test_all_addresses_when_the_address_is_empty(port: int) -> None:
    a = StandaloneAuthenticator(argparse.Namespace(http01_address="", http01_port=port))
    t = task("everywhere")
    a.present(t)
    try:
        assert fetch(port, "/.well-known/acme-challenge/everywhere")[0] == 200
    finally:
        a.cleanup(t)
    assert port_is_free(port)


def test_challenge_types_and_wrong_types() -> None:
    a = StandaloneAuthenticator(argparse.Namespace())
    assert list(a.challenge_types(Identifier("dns", "example.com"))) == ["http-01"]
    assert list(a.challenge_types(Identifier("ip", "192.0.2.1"))) == ["http-01"]
    assert list(a.challenge_types(Identifier("dns", "*.example.com"))) == []
    alpn = StandaloneAuthenticator(argparse.Namespace(pref_challs=["tls-alpn-01"]))
    assert list(alpn.challenge_types(Identifier("dns", "example.com"))) == [
        "http-01", "tls-alpn-01"]
    assert list(alpn.challenge_types(Identifier("dns", "*.example.com"))) == []
    dns = ChallengeTask(Identifier("dns", "example.com"), "dns-01", "tok", "k", "v")
    with pytest.raises(PluginError, match="only does http-01"):
        a.present(dns)


def test_prepare_rejects_a_port_out_of_range() -> None:
    with pytest.raises(PluginError, match="70000"):
        StandaloneAuthenticator(argparse.Namespace(http01_port=70000)).prepare()


def test_one_server_per_address_and_port_is_shared() -> None:
    """Parallel renewals through one address and port share one instance (a second server
    could not bind); another port or address is another instance."""
    from certwright.core.interfaces import SupportsShare, share_key

    def key(**options: object) -> object:
        return share_key(StandaloneAuthenticator(argparse.Namespace(**options)))

    assert isinstance(StandaloneAuthenticator(argparse.Namespace()), SupportsShare)
    assert key(http01_port=8080, http01_address="") == key(http01_port=8080)
    assert key(http01_port=8080) != key(http01_port=8081)
    assert key(http01_port=8080, http01_address="127.0.0.1") != key(http01_port=8080)
    assert key(http01_port=8080, http01_address="[::1]") == \
        key(http01_port=8080, http01_address="::1")
