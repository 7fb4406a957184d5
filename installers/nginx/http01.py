"""Plans for the nginx authenticator: serve http-01 tokens from the running nginx.

In each block answering the name on the http port, at its top:
``location = /.well-known/acme-challenge/<token> { default_type text/plain; return 200
"<key authorization>"; }``. Server-level ``return``/``rewrite``/``if`` run before location
matching, so in a block that has any, a guard goes first:
``if ($request_uri ~ "^/\\.well-known/acme-challenge/") { break; }`` (``break`` ends the
block's rewrite directives for that path, so the ``location =`` is reached; ``$request_uri``
because ``$uri`` changes with an internal redirect). Names no block answers
get a temporary server block in ``<server root>/certwright/challenges/http01.conf``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from certwright.core.http01 import CHALLENGE_PATH, Probe, add_probe, http01_token
from certwright.core.interfaces import ChallengeTask, ChangePlan
from certwright.core.serverkit import key_authorization
from certwright.core.textedit import Read, managed_text, read_file
from certwright.installers.nginx.edit import statement
from certwright.installers.nginx.planner import (
    CHALLENGE_GUARD,
    Planner,
    _server_text,
)
from certwright.installers.nginx.select import address_groups, best_match, select_blocks
from certwright.installers.nginx.targets import (
    REDIRECT_VAR,
    Layout,
    _listen_arg,
    _new_block_hosts,
    proxied_hosts,
)
from certwright.installers.nginx.tree import Directive, NginxTree, ServerBlock


def challenge_location(task: ChallengeTask) -> str:
    token = http01_token(task, "nginx")
    key_authorization(task)
    return (f"location = {CHALLENGE_PATH}{token} {{ default_type text/plain; "
            f'return 200 "{task.key_authorization}"; }}')


def _preempts(item: Directive) -> bool:
    """A server-level directive that may answer before locations are matched (our own
    redirect leaves the challenge path alone)."""
    if item.name == "if":
        return REDIRECT_VAR not in item.args
    return item.name in ("return", "rewrite")


def _unanswered_hosts(tree: NginxTree, name: str, port: int) -> list[str]:
    """The addresses on ``port`` where no block answers ``name`` by name (all of them
    when nothing listens there yet): a temporary challenge block must listen there too,
    or that address family's validation reaches a default server."""
    groups = address_groups(tree.servers, port, ssl=False)
    if not groups:
        return _new_block_hosts(tree, port)
    return [key[0] for key, members in groups.items()
            if best_match((b for b, _ in members), name) is None]


def plan_http01(
    tree: NginxTree, tasks: Sequence[ChallengeTask], layout: Layout, http_port: int = 80,
    read: Read = read_file,
) -> ChangePlan:
    planner = Planner(tree, layout, read)
    per_block: dict[int, tuple[ServerBlock, list[str]]] = {}
    per_host: dict[str, list[ChallengeTask]] = {}
    for task in tasks:
        location = challenge_location(task)
        matches = select_blocks(tree.servers, task.domain, http_port, ssl=False, fallback=False)
        for match in matches:
            entry = per_block.setdefault(match.block.order, (match.block, []))
            if location not in entry[1]:
                entry[1].append(location)
        for host in _unanswered_hosts(tree, task.domain, http_port):
            per_host.setdefault(host, []).append(task)  # only a default server answers
    for block, locations in per_block.values():
        preempted = any(_preempts(d) for d in block.directives)
        planner.insert_first(block, [CHALLENGE_GUARD, *locations] if preempted else locations)
    if per_host:
        # one block per address, naming only what no block answers there by name: the
        # same name on an address where the user's block answers would conflict with it
        texts = []
        planner.ensure_bucket([t.domain for pending in per_host.values() for t in pending])
        for host, pending in per_host.items():
            names = list(dict.fromkeys(t.domain for t in pending))
            body = [statement("listen", _listen_arg(host, http_port)),
                    statement("server_name", *names)]
            body += list(dict.fromkeys(challenge_location(t) for t in pending))
            texts.append(_server_text(body))
        planner.write(layout.challenge_file, managed_text(
            "Temporary: certwright's http-01 answers (removed after validation).",
            "".join(texts)))
        planner.ensure_included(os.path.join(layout.challenges_dir, "*.conf"),
                                layout.challenge_file)
    domains = ", ".join(dict.fromkeys(t.domain for t in tasks))
    return planner.plan(f"nginx: http-01 challenges for {domains}")


def http01_probes(
    tree: NginxTree, tasks: Sequence[ChallengeTask], http_port: int = 80
) -> list[Probe]:
    """Where nginx should answer each task once :func:`plan_http01`'s plan is live: one
    address per block (IPv4 first, a wildcard as loopback). Listens that expect a PROXY
    protocol header are not asked."""
    probes: list[Probe] = []
    proxied = proxied_hosts(tree, http_port)
    for task in tasks:
        http01_token(task, "nginx")
        matches = select_blocks(tree.servers, task.domain, http_port, ssl=False, fallback=False)
        host_sets = [[i.host for i in m.block.listens_on(http_port, ssl=False)
                      if not i.unix and "proxy_protocol" not in i.params] for m in matches]
        missing = [h for h in _unanswered_hosts(tree, task.domain, http_port)
                   if h not in proxied]
        if missing:
            host_sets.append(missing)
        for hosts in host_sets:
            add_probe(probes, hosts, http_port, task)
    return probes
