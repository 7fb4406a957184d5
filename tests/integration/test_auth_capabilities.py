"""Authenticator capabilities (``core/interfaces.py``) through a third-party plugin: a
dns-01 authenticator from a fake distribution that publishes TXT records in Pebble's
challtestsrv. Its records become visible only some time after ``present_all`` (a
propagation delay); ``wait_ready`` waits for that."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from certwright.core.acme import jws
from certwright.core.acme.client import AcmeClient
from certwright.core.acme.messages import Authorization, Challenge
from certwright.core.acme.transport import Transport
from certwright.core.flow import Options, obtain
from certwright.core.interfaces import ChallengeTask, Identifier
from certwright.core.keys import make_csr
from tests.integration.conftest import Cli
from tests.servers.pebble import Pebble

pytestmark = pytest.mark.integration

PLUGIN = '''
import json, os, threading, time, urllib.request

from certwright.core.errors import PluginError


def _log(event, auth, **more):
    with open(os.environ["FAKEDNS_LOG"], "a") as out:
        out.write(json.dumps(dict(event=event, instance=id(auth), account=auth.account,
                                  at=time.monotonic(), **more)) + "\\n")


class FakeDns:
    name = "fakedns"
    description = "dns-01 through pebble-challtestsrv (test plugin)"
    shareable = True  # the attribute the core used to probe for: shared per http-01 address

    def __init__(self, config):
        self.config = config
        self.api = config.fakedns_api
        self.account = config.fakedns_account
        self.delay = float(config.fakedns_delay or 0)
        self._visible = {}
        self._lock = threading.Lock()

    @classmethod
    def add_arguments(cls, add):
        add("--fakedns-api", default=None)
        add("--fakedns-account", default=None)
        add("--fakedns-delay", default=None)

    def prepare(self):
        _log("prepare", self)

    def challenge_types(self, identifier):
        return ["dns-01"]

    def share_key(self):
        return (self.api, self.account)

    def present(self, task):
        _log("present", self, names=[task.domain])
        self.present_all([task])

    def present_all(self, tasks):
        _log("present_all", self, names=sorted(t.domain for t in tasks))
        for task in tasks:
            done = threading.Event()
            with self._lock:
                self._visible[task] = done

            def publish(task=task, done=done):  # the provider's servers pick it up later
                self._post("/set-txt", {"host": task.validation_name + ".",
                                        "value": task.validation})
                done.set()

            if not self.delay:
                publish()
                continue
            timer = threading.Timer(self.delay, publish)
            timer.daemon = True
            timer.start()

    def wait_ready(self, tasks, deadline):
        _log("wait_ready", self, names=sorted(t.domain for t in tasks),
             budget=deadline - time.monotonic())
        for task in tasks:
            if not self._visible[task].wait(max(0.0, deadline - time.monotonic())):
                raise PluginError(f"{task.validation_name} not visible in time")
        _log("ready", self)

    def cleanup(self, task):
        _log("cleanup", self, names=[task.domain])
        with self._lock:
            self._visible.pop(task, None)
        self._post("/clear-txt", {"host": task.validation_name + "."})

    def renewal_params(self):
        return {"fakedns_api": self.api, "fakedns_account": self.account,
                "fakedns_delay": str(self.delay)}

    def _post(self, path, body):
        request = urllib.request.Request(self.api + path, data=json.dumps(body).encode(),
                                         method="POST")
        urllib.request.urlopen(request, timeout=5).read()
'''


def fake_distribution(site: Path) -> None:
    dist = site / "fakedns-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakedns\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[certwright.authenticators]\n"
                                           "fakedns = fakedns_auth:FakeDns\n")
    (site / "fakedns_auth.py").write_text(PLUGIN)


@pytest.fixture
def dns_cli(cli: Cli, tmp_path: Path) -> Cli:
    site = tmp_path / "site"
    fake_distribution(site)
    cli.extra_env.update(PYTHONPATH=str(site), FAKEDNS_LOG=str(tmp_path / "events"))
    return cli


def events(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "events"
    found = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    path.unlink(missing_ok=True)
    return found


def dns_args(pebble: Pebble, account: str, delay: float = 0) -> list[str]:
    return ["-a", "fakedns", "--fakedns-api", pebble.challtestsrv.management_url,
            "--fakedns-account", account, "--fakedns-delay", str(delay)]


def test_every_challenge_is_presented_at_once_then_waited_for_then_answered(
        dns_cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    """One present_all with every name of the order, one wait_ready for them, then the
    answers: the CA validates records published 1.5 s after present_all returned (an
    answer before wait_ready returned would fail: challtestsrv has no record yet)."""
    names = ["a.caps.example.org", "b.caps.example.org", "c.caps.example.org"]
    dns_cli("certonly", *dns_args(pebble, "acct-1", delay=1.5),
            *[arg for n in names for arg in ("-d", n)])
    seen = events(tmp_path)
    kinds = [e["event"] for e in seen]
    assert kinds == ["prepare", "present_all", "wait_ready", "ready", "cleanup", "cleanup",
                     "cleanup"], kinds
    assert seen[1]["names"] == sorted(names)
    assert seen[2]["names"] == sorted(names)
    assert 590 < float(seen[2]["budget"]) <= 600, "its own timeout, not the issuance one's"


def test_a_slow_wait_ready_does_not_eat_the_issuance_timeout(
        dns_cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    """Propagation takes 4 s, the issuance timeout is 3 s: the issuance deadline does not
    run while wait_ready waits, so issuance succeeds."""
    proc = dns_cli("certonly", *dns_args(pebble, "acct-1", delay=4),
                   "--issuance-timeout", "3", "-d", "slow.caps.example.org", check=False)
    assert proc.returncode == 0, proc.stderr
    seen = {e["event"]: e for e in events(tmp_path)}
    assert float(seen["ready"]["at"]) - float(seen["wait_ready"]["at"]) >= 3.5
    assert (dns_cli.config_dir / "live" / "slow.caps.example.org" / "cert.pem").exists()


def test_lineages_with_different_share_keys_get_separate_instances_under_renew_jobs(
        dns_cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    accounts = {"one.share.example.org": "acct-a", "two.share.example.org": "acct-a",
                "three.share.example.org": "acct-b"}
    for name, account in accounts.items():
        dns_cli("certonly", *dns_args(pebble, account), "-d", name)
    events(tmp_path)
    dns_cli("renew", "--force-renewal", "--jobs", "3", "--no-random-sleep-on-renew")
    seen = events(tmp_path)
    prepared = {e["instance"]: e["account"] for e in seen if e["event"] == "prepare"}
    assert sorted(prepared.values()) == ["acct-a", "acct-b"], \
        "one prepared instance per share key"
    served = {n: e for e in seen if e["event"] == "present_all" for n in e["names"]}
    assert sorted(served) == sorted(accounts)
    for name, account in accounts.items():
        event = served[name]
        assert event["account"] == account, (name, event)
        assert prepared[event["instance"]] == account
    assert served["one.share.example.org"]["instance"] == \
        served["two.share.example.org"]["instance"]


def test_the_fake_plugin_is_a_plain_distribution(tmp_path: Path) -> None:
    """The plugin above is found through its entry point, like any third-party one."""
    site = tmp_path / "site"
    fake_distribution(site)
    from tests.integration.conftest import CERTWRIGHT

    proc = subprocess.run([CERTWRIGHT, "plugins", "--authenticators", "--config-dir",
                           str(tmp_path / "c"), "--work-dir", str(tmp_path / "w"),
                           "--logs-dir", str(tmp_path / "l")],
                          env=dict(os.environ, PYTHONPATH=str(site)), capture_output=True,
                          text=True, timeout=60)
    assert "* fakedns" in proc.stdout, proc.stdout + proc.stderr


# -- in process: what the core hands the CA, seen on a real client ---------------------------
class SpyClient(AcmeClient):
    """A real client to Pebble that notes when challenges are answered and how much of
    the issuance deadline is left when it starts polling an authorization."""

    def __init__(self, *args: Any, log: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log = log
        self.budgets: list[float] = []

    def answer(self, chall: Challenge) -> Any:
        self.log.append("answer")
        return super().answer(chall)

    def poll_authorization(self, url: str, deadline: float, *,
                           initial: float = 0.0) -> Authorization:
        self.budgets.append(deadline - time.monotonic())
        return super().poll_authorization(url, deadline, initial=initial)


class SlowDns:
    """present_all publishes at once; wait_ready takes ``wait`` seconds (propagation)."""

    name = "slow-dns"
    description = "test"

    def __init__(self, ca: Pebble, log: list[str], wait: float) -> None:
        self.ca, self.log, self.wait = ca, log, wait
        self.deadlines: list[float] = []

    def challenge_types(self, identifier: Identifier) -> Sequence[str]:
        return ("dns-01",)

    def present(self, task: ChallengeTask) -> None:
        raise AssertionError("present_all is used")

    def present_all(self, tasks: Sequence[ChallengeTask]) -> None:
        self.log.append(f"present_all {len(tasks)}")
        for task in tasks:
            self.ca.set_txt(task.validation_name, task.validation)

    def wait_ready(self, tasks: Sequence[ChallengeTask], deadline: float) -> None:
        self.log.append("wait_ready")
        self.deadlines.append(deadline - time.monotonic())
        time.sleep(self.wait)

    def cleanup(self, task: ChallengeTask) -> None:
        self.log.append("cleanup")
        self.ca.clear_txt(task.validation_name)


def test_the_issuance_deadline_stands_still_while_wait_ready_waits(pebble: Pebble) -> None:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(pebble.ca_bundle)
    log: list[str] = []
    client = SpyClient(Transport(pebble.directory_url, session=session),
                       jws.jwk_of(ec.generate_private_key(ec.SECP256R1())), log=log)
    client.register(["mailto:admin@example.org"])
    idents = [Identifier("dns", f"{n}.deadline.example.org") for n in ("a", "b")]
    auth = SlowDns(pebble, log, wait=2.5)
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), idents)
    obtain(client, auth, idents, csr, Options(timeout=2.0, ready_timeout=30.0))
    assert log[:4] == ["present_all 2", "wait_ready", "answer", "answer"], log
    assert 29 < auth.deadlines[0] <= 30, "wait_ready's deadline comes from its own timeout"
    assert client.budgets and min(client.budgets) > 1.0, \
        f"the 2 s issuance timeout was spent while waiting: {client.budgets}"


class SlowHook(SlowDns):
    """Like a manual auth hook that sleeps for propagation: present_all itself is slow."""

    def present_all(self, tasks: Sequence[ChallengeTask]) -> None:
        super().present_all(tasks)
        time.sleep(self.wait)

    wait_ready = None  # type: ignore[assignment]


def test_a_slow_present_does_not_eat_the_issuance_timeout_either(pebble: Pebble) -> None:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(pebble.ca_bundle)
    log: list[str] = []
    client = SpyClient(Transport(pebble.directory_url, session=session),
                       jws.jwk_of(ec.generate_private_key(ec.SECP256R1())), log=log)
    client.register(["mailto:admin@example.org"])
    idents = [Identifier("dns", "hook.deadline.example.org")]
    auth = SlowHook(pebble, log, wait=2.5)
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), idents)
    obtain(client, auth, idents, csr, Options(timeout=2.0))
    assert client.budgets and min(client.budgets) > 1.0, client.budgets
