"""Plans for the Apache authenticator: serve http-01 tokens from the running Apache.

Each answer is a file (the key authorization) in a challenge directory
(``--apache-challenge-location``, default ``<server root>/certwright/http01``). Every vhost
that answers the name on the http port (by name or as the catch-all; IPv4 and IPv6) gets,
for as long as the CA needs it:

at its top, before the vhost's own rewrites and redirects::

    RewriteEngine on
    RewriteRule ^/\\.well-known/acme-challenge/([A-Za-z0-9_-]+)$ "DIR/$1" [END]

A rewrite to a file ends URL translation before mod_alias, so neither an http→https
``Redirect``/``RewriteRule`` nor a hidden-path ``RedirectMatch 404 /\\..*`` is reached;
``[END]`` keeps an ``.htaccess`` that rewrites everything out of it (the file is not in
the docroot, and its directory allows no override either).

at its bottom, after the vhost's own sections, so they come later in Apache's merge and
win over a ``<Location />`` with basic auth or a ``<LocationMatch "/\\.">`` ban::

    Alias /.well-known/acme-challenge/ "DIR/"
    <Directory "DIR"> AllowOverride None, Options None, Require all granted
    <Location /.well-known/acme-challenge/> Require all granted

mod_rewrite is enabled inside the same temporary plan when the tree does not load it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from certwright.core.errors import PluginError
from certwright.core.http01 import CHALLENGE_PATH, Probe, add_probe, http01_token
from certwright.core.interfaces import ChallengeTask, ChangePlan, FileChange
from certwright.core.serverkit import key_authorization
from certwright.installers.apache import modules
from certwright.installers.apache.edits import VhostEdits, insert_bottom, insert_top
from certwright.installers.apache.enhance import CHALLENGE_RE, REWRITE
from certwright.installers.apache.model import ApacheConfig, VirtualHost
from certwright.installers.apache.options import ApacheOptions
from certwright.installers.apache.select import choose

MARK = "# certwright: temporary http-01 answers (removed after validation)"
_SAFE_DIR = re.compile(r"/[A-Za-z0-9_./+@-]*")


def top_lines(directory: str) -> list[str]:
    return [MARK, "RewriteEngine on",
            f'RewriteRule ^{CHALLENGE_RE}([A-Za-z0-9_-]+)$ "{directory}/$1" [END]']


def bottom_lines(directory: str) -> list[str]:
    return [MARK,
            "<IfModule mod_alias.c>",
            f'\tAlias {CHALLENGE_PATH} "{directory}/"',
            "</IfModule>",
            f'<Directory "{directory}">',
            "\tAllowOverride None",
            "\tOptions None",
            "\tRequire all granted",
            "</Directory>",
            f"<Location {CHALLENGE_PATH}>",
            "\tRequire all granted",
            "</Location>"]


def answering(config: ApacheConfig, name: str, port: int) -> list[VirtualHost]:
    """The plain-http vhosts a request for ``name`` on ``port`` reaches, one per address."""
    choice = choose(config, name, port)
    if choice.left_alone:
        raise PluginError(f"{name}: {choice.left_alone}")
    found = [a.vhost for a in choice.answers if a.vhost.file and not a.vhost.ssl_engine]
    if not found:
        raise PluginError(f"{name}: no virtual host answers plain http on port {port} (only "
                          "the main server would); add a <VirtualHost> for it, or use "
                          "-a webroot")
    return list(dict.fromkeys(found))


def check_location(directory: str) -> None:
    """The challenge directory goes unquoted-safe into a ``RewriteRule`` and a section."""
    if not _SAFE_DIR.fullmatch(directory):
        raise PluginError(f"--apache-challenge-location {directory}: give an absolute path "
                          "of letters, digits and ./_+@-")


def plan_http01(config: ApacheConfig, tasks: Sequence[ChallengeTask], opts: ApacheOptions,
                directory: str, http_port: int = 80) -> ChangePlan:
    check_location(directory)
    directory = directory.rstrip("/") or "/"
    changes: dict[str, FileChange] = {}
    edits = VhostEdits()
    seen: set[tuple[str, int]] = set()
    for task in tasks:
        token = http01_token(task, "apache")
        path = f"{directory}/{token}"
        changes[path] = FileChange(path, key_authorization(task).encode(), None, 0o644)
        for vhost in answering(config, task.domain, http_port):
            if (vhost.file, vhost.line) in seen:
                continue
            seen.add((vhost.file, vhost.line))
            edits.add(vhost, lambda span: insert_bottom(span, bottom_lines(directory)))
            edits.add(vhost, lambda span: insert_top(span, top_lines(directory)))
    for change in edits.changes():
        changes[change.path] = change

    def put(change: FileChange | None) -> None:
        if change is not None:
            changes[change.path] = change

    modules.enable(put, opts, config, REWRITE, "00-certwright-rewrite.conf",
                   "the http-01 answers need it")
    domains = ", ".join(dict.fromkeys(t.domain for t in tasks))
    return ChangePlan(f"Apache: http-01 challenges for {domains}", tuple(changes.values()))


def http01_probes(config: ApacheConfig, tasks: Sequence[ChallengeTask],
                  http_port: int = 80) -> list[Probe]:
    """Where Apache should answer each task once the plan is live: one address of each
    vhost (a wildcard as loopback)."""
    probes: list[Probe] = []
    for task in tasks:
        http01_token(task, "apache")
        for vhost in answering(config, task.domain, http_port):
            add_probe(probes, [a.host for a in vhost.addresses
                               if a.port is None or a.port == http_port], http_port, task)
    return probes
