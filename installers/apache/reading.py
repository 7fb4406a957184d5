"""One call for what a deploy needs to know before touching an Apache tree."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from certwright.installers.apache.binary import DEFAULT_BINARY, BinaryInfo
from certwright.installers.apache.evaluate import Evaluator
from certwright.installers.apache.layouts import Layout
from certwright.installers.apache.model import ApacheConfig, Node, VirtualHost
from certwright.installers.apache.select import WakeRisk, wake_risks

SSL_MODULES = ("ssl_module", "socache_shmcb_module")


@dataclass(frozen=True)
class ApacheReading:
    config: ApacheConfig
    ssl_wakes: tuple[WakeRisk, ...]
    """What enabling mod_ssl would activate, judged for port 443; empty when it is loaded
    already. A deploy on another https port judges :attr:`woken` for its own port."""
    with_ssl: ApacheConfig | None = None
    woken: tuple[VirtualHost, ...] = ()
    """The vhosts loading mod_ssl would activate (judge them for a port with
    :func:`.select.wake_risks`)."""
    """The configuration as it reads once mod_ssl is loaded; None when it is already."""

    @property
    def ssl_config(self) -> ApacheConfig:
        """What Apache reads after a deploy enabled mod_ssl (``Listen 443`` woken, …)."""
        return self.with_ssl or self.config


def read_apache(
    server_root: str,
    *,
    binary: BinaryInfo = DEFAULT_BINARY,
    env: Mapping[str, str] | None = None,
    defines: Iterable[str] = (),
    layout: Layout | None = None,
) -> ApacheReading:
    """Read the tree, and if mod_ssl is not loaded, what loading it would wake."""
    evaluator = Evaluator(server_root, layout=layout, binary=binary, env=env, defines=defines)
    try:
        config = evaluator.evaluate()
        if "ssl_module" in config.modules:
            return ApacheReading(config, ())
        with_ssl = evaluator.evaluate(SSL_MODULES)
        active = {(v.file, v.line) for v in config.vhosts}
        woken = [v for v in with_ssl.vhosts if (v.file, v.line) not in active]
        return ApacheReading(config, wake_risks(woken), with_ssl, tuple(woken))
    finally:
        evaluator.close()


def woken_by(
    server_root: str,
    modules: Iterable[str],
    base: ApacheConfig,
    *,
    binary: BinaryInfo = DEFAULT_BINARY,
    env: Mapping[str, str] | None = None,
    layout: Layout | None = None,
) -> list[str]:
    """What loading ``modules`` would activate that ``base`` leaves dormant: whole vhosts,
    and directives inside ``<IfModule>`` of active vhosts (an old rewrite, say)."""
    evaluator = Evaluator(server_root, layout=layout, binary=binary, env=env)
    try:
        woken = evaluator.evaluate(modules)
    finally:
        evaluator.close()
    before = {(v.file, v.line): v for v in base.vhosts}
    found: list[str] = []
    for vhost in woken.vhosts:
        old = before.get((vhost.file, vhost.line))
        if old is None:
            found.append(f"the vhost at {vhost.where}")
            continue
        known = {(d.name.lower(), d.args) for d in _flat(old.directives)}
        found.extend(f"{d.name} at {d.where}" for d in _flat(vhost.directives)
                     if (d.name.lower(), d.args) not in known)
    return found


def _flat(nodes: Iterable[Node]) -> Iterable[Node]:
    for node in nodes:
        yield node
        if node.children:
            yield from _flat(node.children)
