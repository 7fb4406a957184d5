"""Deploy a certificate into Apache: a pure planner returning a ``ChangePlan``.

For each name, in this order:

1. A vhost on the https port that has the name (``ServerName``/``ServerAlias``, as Apache
   chooses: :func:`.select.choose`) and ``SSLEngine on`` is updated in place: its
   certificate lines are replaced, never duplicated.
2. Otherwise every http vhost that has the name gets an https twin in a managed file
   (``<file stem><--apache-le-vhost-ext>``): the same contents, listening on every address
   the http vhost listens on (IPv4 and IPv6) with the https port. Several vhosts of one
   file give one file of twins. On Debian's layout the file goes to ``sites-available``
   and is enabled by a symlink in ``sites-enabled``; elsewhere it goes next to the file it
   was made from, where the including configuration reads it (``conf.d/domains/`` of a
   control panel, ``conf.d``).
3. A name only a catch-all answers gets a vhost of its own, never the catch-all's
   certificate.

mod_ssl (and socache_shmcb) are enabled inside the same plan when the tree does not load
them (symlinks in ``mods-enabled``, else ``LoadModule`` lines in a managed file), but only
after checking what loading them would wake: a dormant ``_default_:443`` vhost without
``SSLEngine on`` would serve plain http on 443 (AH01916), so the plan is refused, naming it.
``Listen 443`` is added only where no ``Listen`` (as read with mod_ssl on) has the port.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from certwright.core.errors import PluginError
from certwright.core.interfaces import ChangePlan, DeployRequest, Endpoint, FileChange
from certwright.core.textedit import ENCODING, ERRORS, managed_change, read_file
from certwright.installers.apache import modules, vhosttext
from certwright.installers.apache.model import Address, ApacheConfig, VirtualHost
from certwright.installers.apache.options import ApacheOptions
from certwright.installers.apache.reading import ApacheReading
from certwright.installers.apache.select import choose, wake_risks

HEADER = ("Made by certwright.",)
CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
           "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
           "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305")
OPTIONS_TEXT = """\
# Made by certwright: TLS settings its vhosts include; it replaces this file whole.
SSLProtocol all -SSLv3 -TLSv1 -TLSv1.1
SSLCipherSuite """ + ":".join(CIPHERS) + """
SSLHonorCipherOrder off
SSLSessionTickets off
"""
LISTEN_NAME = "certwright-listen-{port}.conf"
MODULE_FILE = "00-certwright-ssl.conf"
SSL_MODULES = (("socache_shmcb_module", "socache_shmcb"), ("ssl_module", "ssl"))


@dataclass
class DeployPlan:
    plan: ChangePlan
    endpoints: tuple[Endpoint, ...]


@dataclass
class _Builder:
    opts: ApacheOptions
    req: DeployRequest
    config: ApacheConfig
    changes: dict[str, FileChange] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)

    def put(self, change: FileChange | None) -> None:
        if change is not None:
            self.changes[change.path] = change

    def endpoint(self, addresses: Sequence[Address], name: str) -> None:
        for address in addresses:
            host = "127.0.0.1" if address.wildcard else address.host
            ep = Endpoint(host, self.req.https_port, name)
            if ep not in self.endpoints:
                self.endpoints.append(ep)


def plan_deploy(reading: ApacheReading, req: DeployRequest, opts: ApacheOptions) -> DeployPlan:
    config = reading.config
    b = _Builder(opts, req, config)
    in_place: dict[tuple[str, int], VirtualHost] = {}
    twins: dict[str, dict[int, VirtualHost]] = {}
    own: list[tuple[str, VirtualHost]] = []
    for name in req.domains:
        if name.startswith("*."):
            b.notes.append(f"{name}: a wildcard name is served by the vhosts of its "
                           "subdomains; none is made for the wildcard itself")
            continue
        https = choose(config, name, req.https_port)
        if https.left_alone:
            raise PluginError(f"{name}: {https.left_alone}")
        found = [a.vhost for a in https.by_name if a.vhost.ssl_engine]
        if found:
            for vhost in found:
                in_place[(vhost.file, vhost.line)] = vhost
                b.endpoint(vhost.addresses, name)
            continue
        http = choose(config, name, req.http_port)
        if http.left_alone:
            raise PluginError(f"{name}: {http.left_alone}")
        for ans in http.by_name:
            twins.setdefault(ans.vhost.file, {})[ans.vhost.line] = ans.vhost
            b.endpoint(_https(ans.vhost.addresses, req.https_port), name)
        if http.needs_own_vhost:  # also where a listen address reaches no vhost
            own.append((name, http.answers[0].vhost if http.answers else _none()))
            b.endpoint((Address("*", req.https_port),), name)
    # last vhost of a file first: an edit changes the line count below it, never above
    for _, vhost in sorted(in_place.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        _update(b, vhost)
    new_vhosts = bool(twins or own)
    for file, by_line in twins.items():
        _twins(b, file, [by_line[line] for line in sorted(by_line)])
    for name, catch_all in own:
        _own(b, name, catch_all)
    if new_vhosts:
        b.put(managed_change(opts.options_file, OPTIONS_TEXT))
        _modules(b, reading)
        _listen(b, reading.ssl_config)
    title = f"Install certificate {req.cert_name} into Apache"
    plan = ChangePlan(title, tuple(b.changes.values()), tuple(b.notes))
    return DeployPlan(plan, tuple(b.endpoints))


def _none() -> VirtualHost:
    return VirtualHost("", 0, (), None, None, (), (), False)


def _https(addresses: Sequence[Address], port: int) -> tuple[Address, ...]:
    out: list[Address] = []
    for address in addresses:
        moved = Address(address.host, port)
        if moved not in out:
            out.append(moved)
    return tuple(out)


def _text(path: str) -> tuple[str, bytes]:
    data = read_file(path)
    if data is None:
        raise PluginError(f"{path}: gone since it was read; run again")
    return data.decode(ENCODING, ERRORS), data


def _change(path: str, old: bytes, text: str) -> FileChange | None:
    import hashlib

    new = text.encode(ENCODING, ERRORS)
    if new == old:
        return None
    return FileChange(path, new, hashlib.sha256(old).hexdigest())


def _update(b: _Builder, vhost: VirtualHost) -> None:
    current = b.changes.get(vhost.file)
    text, data = _text(vhost.file)
    if current is not None and current.new_content is not None:
        text = current.new_content.decode(ENCODING, ERRORS)
    span = vhosttext.find_vhost(vhost.file, text, vhost.line)
    new = vhosttext.update_in_place(span, b.req.fullchain_path, b.req.key_path)
    b.put(_change(vhost.file, data, new))


def _new_file_place(opts: ApacheOptions, config: ApacheConfig, source: str,
                    stem: str) -> tuple[str, str | None]:
    """Where a new vhost file goes, and the symlink that enables it (or None): only where
    a server-level ``Include`` of the tree reads it."""
    name = stem + opts.le_vhost_ext
    layout = opts.layout
    enabled = opts.path(layout.sites_enabled)
    available = opts.path(layout.sites_available)
    debian = (enabled is not None and available is not None and os.path.isdir(available)
              and os.path.dirname(os.path.abspath(source)) == enabled)
    candidates: list[tuple[str, str | None]] = []
    if opts.vhost_root:
        link = os.path.join(enabled, name) if debian and opts.handle_sites and enabled else None
        candidates.append((os.path.join(opts.vhost_root, name), link))
    else:
        if debian and opts.handle_sites and enabled and available:
            candidates.append((os.path.join(available, name), os.path.join(enabled, name)))
        if source:
            candidates.append((os.path.join(os.path.dirname(os.path.abspath(source)), name),
                               None))
        conf_available = opts.path(layout.conf_available)
        conf_dir = os.path.join(opts.server_root, layout.conf_dir)
        if conf_available and os.path.isdir(conf_available):
            candidates.append((os.path.join(conf_available, name), os.path.join(conf_dir, name)))
        candidates.append((os.path.join(conf_dir, name), None))
    for target, link in candidates:
        if config.includes_path(link or target):
            return target, link
    where = candidates[0][1] or candidates[0][0]
    raise PluginError(f"{where}: no Include of {config.main_file} reads a file there, so a new "
                      "vhost would never be loaded; give --apache-vhost-root a directory "
                      "that is included")


def _stem(path: str) -> str:
    base = os.path.basename(path)
    return base[:-5] if base.endswith(".conf") else base


def _link(b: _Builder, link: str | None, target: str) -> None:
    b.put(modules.link_change(link, target))


def _twins(b: _Builder, file: str, vhosts: Sequence[VirtualHost]) -> None:
    text, _ = _text(file)
    parts = []
    for vhost in vhosts:
        span = vhosttext.find_vhost(file, text, vhost.line)
        addresses = [str(a) for a in _https(vhost.addresses, b.req.https_port)]
        parts.append(vhosttext.ssl_twin(span, addresses, b.req.fullchain_path,
                                        b.req.key_path, b.opts.options_file))
    target, link = _new_file_place(b.opts, b.config, file, _stem(file))
    body = "\n".join(parts)
    current = read_file(target)
    if current is None:
        text = f"# {HEADER[0]}\n" + body
    else:  # twins made for other certificates stay: these vhosts join them
        kept = current.decode(ENCODING, ERRORS)
        text = kept + ("" if kept.endswith("\n") else "\n") + "\n" + body
    b.put(managed_change(target, text))
    _link(b, link, target)


def _own(b: _Builder, name: str, catch_all: VirtualHost) -> None:
    root = next((d.args[0] for d in catch_all.directives
                 if d.name.lower() == "documentroot" and d.args), None)
    source = catch_all.file
    target, link = _new_file_place(b.opts, b.config, source, name)
    text = vhosttext.fresh_vhost(name, [f"*:{b.req.https_port}"], root, b.req.fullchain_path,
                                 b.req.key_path, b.opts.options_file, HEADER)
    b.put(managed_change(target, text))
    _link(b, link, target)
    b.notes.append(f"{name}: only a catch-all vhost answers it; it got a vhost of its own "
                   f"in {target}")


def _modules(b: _Builder, reading: ApacheReading) -> None:
    config = reading.config
    if "ssl_module" in config.modules:
        return
    risks = wake_risks(reading.woken, b.req.https_port)
    fatal = [r.reason for r in risks if "AH01916" in r.reason]
    if fatal:
        raise PluginError("enabling mod_ssl would wake a vhost that serves plain http on "
                          f"the TLS port: {fatal[0]}; add 'SSLEngine on' there or remove it")
    for risk in risks:
        b.notes.append(f"enabling mod_ssl activates {risk.reason}")
    modules.enable(b.put, b.opts, config, SSL_MODULES, MODULE_FILE, "the TLS vhosts need it")


def _listen(b: _Builder, config: ApacheConfig) -> None:
    port = b.req.https_port
    if any(listen.port == port for listen in config.listens):
        return
    opts, layout = b.opts, b.opts.layout
    name = LISTEN_NAME.format(port=port)
    text = f"# {HEADER[0]}\nListen {port}\n"
    places: list[tuple[str, str | None]] = []  # (file, the link that enables it)
    for available, enabled in ((layout.conf_available, layout.conf_dir),
                               (layout.sites_available, layout.sites_enabled)):
        full_available, full_enabled = opts.path(available), opts.path(enabled)
        if full_enabled is None:
            continue
        if full_available and os.path.isdir(full_available):
            places.append((os.path.join(full_available, name), os.path.join(full_enabled, name)))
        places.append((os.path.join(full_enabled, name), None))
    for target, link in places:
        if config.includes_path(link or target):
            b.put(managed_change(target, text))
            _link(b, link, target)
            return
    modules.included(config, [places[0][1] or places[0][0]], "Listen")  # raises
