"""The http-01 responder a plugin puts behind its own server (core.responder)."""

from __future__ import annotations

import socket
import threading

import pytest

from certwright.core.errors import PluginError
from certwright.core.http01 import CHALLENGE_PATH, Probe, http_get
from certwright.core.responder import Responder
from tests.servers.ports import free_port, port_accepts


def test_answers_while_a_token_is_open_then_stops_listening() -> None:
    port = free_port()
    responder = Responder("127.0.0.1", port)
    responder.add("tok-1", "tok-1.key")
    responder.add("tok-2", "tok-2.key")
    assert http_get(Probe("127.0.0.1", port, "a.example.org", CHALLENGE_PATH + "tok-1",
                          "")) == (200, b"tok-1.key")
    assert http_get(Probe("127.0.0.1", port, "a.example.org", "/other", ""))[0] == 404
    responder.remove("tok-1")
    assert http_get(Probe("127.0.0.1", port, "a", CHALLENGE_PATH + "tok-1", ""))[0] == 404
    responder.remove("tok-2")
    assert not responder.listening and not port_accepts("127.0.0.1", port)


def test_a_busy_port_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PluginError, match=f"could not bind 127.0.0.1:{port} for http-01: "
                           ".*something else listens there"):
            Responder("127.0.0.1", port).add("t", "t.k")


def test_threads_adding_at_once_start_one_server() -> None:
    port = free_port()
    responder = Responder("127.0.0.1", port)
    threads = [threading.Thread(target=responder.add, args=(f"t{i}", f"t{i}.k"))
               for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(8):
        assert http_get(Probe("127.0.0.1", port, "a", CHALLENGE_PATH + f"t{i}", ""))[0] == 200
        responder.remove(f"t{i}")
    assert not responder.listening


def test_an_empty_address_answers_on_ipv6_and_ipv4() -> None:
    """Every address, dual-stack: the standalone authenticator's default."""
    port = free_port()
    responder = Responder("", port)
    responder.add("tok", "tok.key")
    try:
        assert responder.bound_port == port
        for host in ("127.0.0.1", "::1"):
            assert http_get(Probe(host, port, "a", CHALLENGE_PATH + "tok", "")) == \
                (200, b"tok.key"), host
    finally:
        responder.remove("tok")
    assert not port_accepts("127.0.0.1", port) and responder.bound_port is None
