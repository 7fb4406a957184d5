"""Transport behaviour against a scripted session (no network)."""

import json
import re

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from certwright.core.acme import jws
from certwright.core.acme.errors import AcmeError, TransportError
from certwright.core.acme.transport import Transport
from certwright.core.settings import Settings

DIRECTORY = {"newNonce": "https://ca/nonce", "newAccount": "https://ca/acct",
             "newOrder": "https://ca/order", "revokeCert": "r", "keyChange": "k"}


class FakeSession(requests.Session):
    def __init__(self, script):
        super().__init__()
        self.script = list(script)
        self.seen = []

    def request(self, method, url, **kwargs):
        self.seen.append((method, url, kwargs.get("data")))
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        status, headers, body = item
        resp = requests.Response()
        resp.status_code = status
        resp.headers.update(headers)
        resp._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        resp.url = url
        return resp


def _problem(code):
    return (400, {"Content-Type": "application/problem+json", "Replay-Nonce": f"after-{code}"},
            {"type": f"urn:ietf:params:acme:error:{code}", "detail": code})


def _key():
    return jws.jwk_of(ec.generate_private_key(ec.SECP256R1()))


def test_bad_nonce_is_retried_with_the_nonce_that_came_with_the_error():
    session = FakeSession([
        (200, {"Content-Type": "application/json"}, DIRECTORY),
        (200, {"Replay-Nonce": "first"}, b""),
        _problem("badNonce"),
        _problem("badNonce"),
        (201, {"Replay-Nonce": "n4", "Location": "https://ca/acct/1",
               "Content-Type": "application/json"}, {"status": "valid"}),
    ])
    t = Transport("https://ca/dir", session=session)
    resp = t.post("https://ca/acct", {"x": 1}, _key(), None)
    assert resp.status == 201
    posts = [json.loads(d) for m, _, d in session.seen if m == "POST"]
    nonces = [json.loads(jws.jose_b64.b64decode(p["protected"]))["nonce"] for p in posts]
    assert nonces == ["first", "after-badNonce", "after-badNonce"]


def test_bad_nonce_gives_up_after_the_limit():
    script = [(200, {"Content-Type": "application/json"}, DIRECTORY),
              (200, {"Replay-Nonce": "first"}, b"")] + [_problem("badNonce")] * 4
    t = Transport("https://ca/dir", session=FakeSession(script), bad_nonce_retries=3)
    with pytest.raises(AcmeError) as info:
        t.post("https://ca/acct", {}, _key(), None)
    assert info.value.code == "badNonce"


def test_html_error_page_is_a_clear_transport_error():
    session = FakeSession([(502, {"Content-Type": "text/html"}, b"<html>bad gateway</html>")])
    t = Transport("https://ca/dir", session=session)
    with pytest.raises(TransportError, match="HTTP 502 with a non-ACME response"):
        _ = t.directory


def test_non_acme_json_directory_is_rejected():
    session = FakeSession([(200, {"Content-Type": "application/json"}, {"hello": "world"})])
    t = Transport("https://ca/dir", session=session)
    with pytest.raises(TransportError, match="not an ACME directory"):
        _ = t.directory


def test_rate_limit_carries_retry_after():
    session = FakeSession([
        (200, {"Content-Type": "application/json"}, DIRECTORY),
        (200, {"Replay-Nonce": "first"}, b""),
        (429, {"Content-Type": "application/problem+json", "Retry-After": "120"},
         {"type": "urn:ietf:params:acme:error:rateLimited", "detail": "slow down"}),
    ])
    t = Transport("https://ca/dir", session=session)
    with pytest.raises(AcmeError) as info:
        t.post("https://ca/order", {}, _key(), "https://ca/acct/1")
    assert info.value.retry_after == 120.0 and "retry after 120 s" in str(info.value)


def test_unreachable_server_names_the_url():
    t = Transport("https://127.0.0.1:1/dir", timeout=2)
    with pytest.raises(TransportError, match=r"could not reach https://127.0.0.1:1/dir"):
        _ = t.directory


def test_a_poll_the_server_leaves_unanswered_is_asked_again():
    import time

    from certwright.core.acme.client import AcmeClient

    order = {"status": "valid", "identifiers": [], "authorizations": [], "finalize": "https://ca/f",
             "certificate": "https://ca/cert/1"}
    session = FakeSession([
        (200, {"Content-Type": "application/json"}, DIRECTORY),
        (200, {"Replay-Nonce": "first"}, b""),
        requests.exceptions.ReadTimeout("read timed out"),
        (200, {"Replay-Nonce": "n2"}, b""),
        (200, {"Content-Type": "application/json", "Replay-Nonce": "n3"}, order),
    ])
    client = AcmeClient(Transport("https://ca/dir", session=session), _key(), kid="k")
    got = client.poll_order("https://ca/order/1", time.monotonic() + 30)
    assert got.status == "valid"
    assert [m for m, _, _ in session.seen].count("POST") == 2


def _rate_limited(seconds: str):
    return (429, {"Content-Type": "application/problem+json", "Retry-After": seconds,
                  "Replay-Nonce": f"after-limit-{seconds}"},
            {"type": "urn:ietf:params:acme:error:rateLimited", "detail": "too many orders"})


def test_a_short_rate_limit_is_waited_out_and_the_request_sent_again():
    session = FakeSession([
        (200, {"Content-Type": "application/json"}, DIRECTORY),
        (200, {"Replay-Nonce": "first"}, b""),
        _rate_limited("2"),
        _rate_limited("5"),
        (201, {"Replay-Nonce": "n4", "Location": "https://ca/order/1",
               "Content-Type": "application/json"}, {"status": "pending"}),
    ])
    waits: list[float] = []
    t = Transport("https://ca/dir", session=session, sleep=waits.append)
    assert t.post("https://ca/order", {}, _key(), "https://ca/acct/1").status == 201
    assert waits == [2.0, 5.0]


def test_a_long_rate_limit_is_an_error_naming_when_to_try_again():
    session = FakeSession([
        (200, {"Content-Type": "application/json"}, DIRECTORY),
        (200, {"Replay-Nonce": "first"}, b""),
        _rate_limited("3600"),
    ])
    waits: list[float] = []
    t = Transport("https://ca/dir", session=session, sleep=waits.append)
    with pytest.raises(AcmeError) as info:
        t.post("https://ca/order", {}, _key(), "https://ca/acct/1")
    assert waits == []
    assert re.search(r"retry after 3600 s, at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", str(info.value))


def test_a_short_rate_limit_holds_back_every_request_sharing_the_transport():
    """renew --jobs shares one transport: a request started by another thread during the
    Retry-After window waits for the rest of it instead of hitting the CA again."""
    session = FakeSession([
        (200, {"Content-Type": "application/json"}, DIRECTORY),
        (200, {"Replay-Nonce": "first"}, b""),
        _rate_limited("2"),
        (201, {"Replay-Nonce": "n2", "Location": "https://ca/order/1",
               "Content-Type": "application/json"}, {"status": "pending"}),
        (201, {"Replay-Nonce": "n3", "Location": "https://ca/order/2",
               "Content-Type": "application/json"}, {"status": "pending"}),
    ])
    waits: list[float] = []  # a recorded sleep: the clock does not move
    t = Transport("https://ca/dir", session=session, sleep=waits.append)
    t.post("https://ca/order", {}, _key(), "https://ca/acct/1")
    t.post("https://ca/order", {}, _key(), "https://ca/acct/1")  # "another thread"
    assert waits[0] == 2.0 and len(waits) == 2 and 1.5 < waits[1] <= 2.0


def test_short_rate_limits_are_waited_out_a_bounded_number_of_times():
    script = [(200, {"Content-Type": "application/json"}, DIRECTORY),
              (200, {"Replay-Nonce": "first"}, b"")] + [_rate_limited("1")] * 10
    waits: list[float] = []
    t = Transport("https://ca/dir", session=FakeSession(script), sleep=waits.append)
    with pytest.raises(AcmeError, match="rateLimited"):
        t.post("https://ca/order", {}, _key(), "https://ca/acct/1")
    assert waits == [1.0, 1.0, 1.0]
class RecordingAdapter(requests.adapters.HTTPAdapter):
    """What requests hands the connection layer, after merging the environment in."""

    def __init__(self):
        super().__init__()
        self.sent = []

    def send(self, request, **kwargs):
        self.sent.append(kwargs)
        resp = requests.Response()
        resp.status_code = 200
        resp.headers["Content-Type"] = "application/json"
        resp._content = json.dumps(DIRECTORY).encode()
        resp.url = request.url
        resp.request = request
        return resp


def test_verify_false_wins_over_the_environment_and_proxies_still_apply(monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/some-bundle.pem")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    adapter = RecordingAdapter()
    session = requests.Session()
    session.mount("https://", adapter)
    Transport("https://ca/dir", session=session, verify=False).get("https://ca/dir")
    assert adapter.sent[0]["verify"] is False
    assert adapter.sent[0]["proxies"].get("https") == "http://proxy.invalid:3128"
    # the old way, for contrast: the environment's bundle overrides session.verify
    session.verify = False
    Transport("https://ca/dir", session=session).get("https://ca/dir")
    assert adapter.sent[1]["verify"] == "/etc/some-bundle.pem"


def test_its_own_session_reads_the_environment_once_per_host_and_never_netrc(
        monkeypatch, tmp_path):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/some-bundle.pem")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "direct.example")
    monkeypatch.delenv("no_proxy", raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine ca login user password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    reads = []
    real = requests.Session.merge_environment_settings

    def counting(self, url, *args):
        if self.trust_env:  # (requests calls it for every request; it reads only then)
            reads.append(url)
        return real(self, url, *args)

    monkeypatch.setattr(requests.Session, "merge_environment_settings", counting)
    t = Transport("https://ca/dir")
    adapter = RecordingAdapter()
    t.session.mount("https://", adapter)
    seen = []
    real_send = adapter.send
    adapter.send = lambda request, **kw: (seen.append(request), real_send(request, **kw))[1]
    for _ in range(3):
        t.get("https://ca/dir")
    t.get("https://direct.example/dir")
    assert [r.split("/")[2] for r in reads] == ["ca", "direct.example"]  # once per host
    assert [a["proxies"].get("https") for a in adapter.sent] == \
        ["http://proxy.invalid:3128"] * 3 + [None]  # NO_PROXY honoured per host
    assert {a["verify"] for a in adapter.sent} == {"/etc/some-bundle.pem"}
    assert all("Authorization" not in r.headers for r in seen)  # no ~/.netrc password


def test_threads_sharing_a_transport_fetch_the_directory_once():
    import threading
    import time

    class SlowSession(FakeSession):
        def request(self, method, url, **kwargs):
            time.sleep(0.05)  # long enough for every thread to ask while it is fetched
            return super().request(method, url, **kwargs)

    session = SlowSession([(200, {"Content-Type": "application/json"}, DIRECTORY)] * 8)
    t = Transport("https://ca/dir", session=session)
    start = threading.Barrier(8)
    found = []

    def ask():
        start.wait()
        found.append(t.directory.new_nonce)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == ["https://ca/nonce"] * 8
    assert [m for m, _, _ in session.seen] == ["GET"]


def test_one_transport_per_ca_in_a_process():

    from certwright.core import session

    config = Settings(server="https://ca.invalid/dir", staging=False, dry_run=False,
                                no_verify_ssl=False, user_agent=None)
    first = session.transport(config)
    assert session.transport(config) is first
    assert session.transport(config, "https://other.invalid/dir") is not first
