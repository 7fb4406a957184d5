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

Where a ``Listen`` on the http port reaches no vhost, the main server answers: it gets
the rewrite and the directory's access in a managed file a server-level ``Include``
reads (nothing a vhost inherits). mod_rewrite is enabled inside the same temporary plan
when the tree does not load it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from certwright.core.errors import PluginError
from certwright.core.http01 import CHALLENGE_PATH, Probe, add_probe, http01_token
from certwright.core.interfaces import ChallengeTask, ChangePlan, FileChange
from certwright.core.serverkit import key_authorization
from certwright.core.textedit import managed_change
from certwright.installers.apache import modules
from certwright.installers.apache.edits import VhostEdits, insert_bottom, insert_top
from certwright.installers.apache.enhance import CHALLENGE_RE, REWRITE
from certwright.installers.apache.model import ApacheConfig, Listen, VirtualHost
from certwright.installers.apache.options import ApacheOptions
from certwright.installers.apache.select import choose

MARK = "# certwright: temporary http-01 answers (removed after validation)"
SERVER_FILE = "zz-certwright-http01.conf"
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


def answering(config: ApacheConfig, name: str, port: int) -> tuple[list[VirtualHost],
                                                                     list[Listen]]:
    """The plain-http vhosts a request for ``name`` on ``port`` reaches (one per address),
    and the ``Listen`` lines where no vhost does (the main server answers there)."""
    choice = choose(config, name, port)
    if choice.left_alone:
        raise PluginError(f"{name}: {choice.left_alone}")
    found = [a.vhost for a in choice.answers if a.vhost.file and not a.vhost.ssl_engine]
    main = [listen for listen in config.listens if listen.where in choice.main_server]
    if not found and not main:
        raise PluginError(f"{name}: nothing answers plain http on port {port}; add a "
                          "<VirtualHost> or a Listen for it, or use -a webroot")
    return list(dict.fromkeys(found)), main


def server_lines(directory: str) -> list[str]:
    """For the main server (where no vhost listens): the rewrite and the directory's
    access; nothing a vhost would inherit."""
    return [*top_lines(directory),
            f'<Directory "{directory}">',
            "    AllowOverride None",
            "    Options None",
            "    Require all granted",
            "</Directory>"]


def _server_file(config: ApacheConfig, opts: ApacheOptions) -> str:
    layout = opts.layout
    dirs = [d for d in (os.path.join(opts.server_root, layout.conf_dir),
                        opts.path(layout.sites_enabled)) if d]
    return modules.included(config, [os.path.join(d, SERVER_FILE) for d in dirs],
                            "http-01")


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
    server_level = False
    for task in tasks:
        token = http01_token(task, "apache")
        path = f"{directory}/{token}"
        changes[path] = FileChange(path, key_authorization(task).encode(), None, 0o644)
        vhosts, main = answering(config, task.domain, http_port)
        server_level = server_level or bool(main)
        for vhost in vhosts:
            if (vhost.file, vhost.line) in seen:
                continue
            seen.add((vhost.file, vhost.line))
            edits.add(vhost, lambda span: insert_bottom(span, bottom_lines(directory)))
            edits.add(vhost, lambda span: insert_top(span, top_lines(directory)))
    for change in edits.changes():
        changes[change.path] = change
    if server_level:
        text = "\n".join(server_lines(directory)) + "\n"
        server_change = managed_change(_server_file(config, opts), text)
        if server_change is not None:
            changes[server_change.path] = server_change

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
        vhosts, main = answering(config, task.domain, http_port)
        for vhost in vhosts:
            add_probe(probes, [a.host for a in vhost.addresses
                               if a.port is None or a.port == http_port], http_port, task)
        for listen in main:
            add_probe(probes, [listen.host or "*"], http_port, task)
    return probes
