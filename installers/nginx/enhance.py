"""Enhancement plans for nginx: the redirect to https, HSTS, upgrade-insecure-requests.

The forms are described in :mod:`.plan` (whose planner makes the edits): the redirect is an
``if`` at server level in the plain-http block(s) for the names, testing ``$request_uri``
so ``/.well-known/acme-challenge/`` keeps answering over plain http; the headers are
``add_header … always;`` in the https block(s).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from certwright.core.errors import PluginError
from certwright.core.interfaces import ChangePlan, EnhanceRequest
from certwright.core.textedit import Read, read_file
from certwright.installers.nginx.edit import statement
from certwright.installers.nginx.plan import ENHANCEMENTS, _blocks_for, _Planner
from certwright.installers.nginx.planner import (
    HSTS_HEADER,
    HSTS_LINE,
    REDIRECT_LINES,
    UIR_HEADER,
    UIR_LINE,
    UIR_VALUE,
    _copy_body,
    _server_text,
)
from certwright.installers.nginx.select import match_name, normalize_name
from certwright.installers.nginx.targets import Layout, _listen_arg, _new_block_hosts
from certwright.installers.nginx.tree import Directive, NginxTree


def plan_enhance(
    tree: NginxTree, req: EnhanceRequest, layout: Layout, read: Read = read_file
) -> ChangePlan:
    unknown = sorted(req.enhancements - ENHANCEMENTS)
    if unknown:
        raise PluginError(f"nginx cannot do: {', '.join(unknown)}")
    planner = _Planner(tree, layout, read)
    if "redirect" in req.enhancements:
        _redirect(planner, req)
    if "hsts" in req.enhancements:
        _header(planner, req, HSTS_LINE, lambda d: d.args[:1] != () and
                d.args[0].lower() == HSTS_HEADER.lower())
    if "uir" in req.enhancements:
        _header(planner, req, UIR_LINE, lambda d: len(d.args) > 1 and
                d.args[0].lower() == UIR_HEADER.lower() and UIR_VALUE in d.args[1].lower())
    what = ", ".join(sorted(req.enhancements))
    return planner.plan(f"nginx: enable {what} for {', '.join(req.domains)}")


def _redirect(planner: _Planner, req: EnhanceRequest) -> None:
    _, unserved = _blocks_for(planner.tree, req.domains, req.https_port, ssl=True)
    if unserved:  # a redirect to an https that serves another name's certificate
        raise PluginError(f"no server block serves {', '.join(unserved)} over https on port "
                          f"{req.https_port}; install a certificate first")
    blocks, missing = _blocks_for(planner.tree, req.domains, req.http_port, ssl=False)
    planner.upgrade_redirects(blocks)
    for block in blocks:
        answered = [n for n in req.domains
                    if any(match_name(p, n) for p in block.server_names)]
        if block.redirects and all(any(_redirects_host(r, n) for r in block.redirects)
                                   for n in answered):
            planner.note(f"{block.where}: already redirects to https; left as it is")
            continue
        planner.insert_top(block, REDIRECT_LINES)
    if missing:
        path = planner.layout.redirect_file(missing[0])
        hosts = _new_block_hosts(planner.tree, req.http_port)
        body = [statement("listen", _listen_arg(h, req.http_port)) for h in hosts]
        body += [statement("server_name", *missing), *REDIRECT_LINES]
        planner.ensure_bucket(missing)
        # the challenge path keeps answering as the catch-all answered it (a webroot there)
        source = planner.catch_all(missing, req.http_port, path)
        copied = _copy_body(planner.tree, source) if source is not None else ""
        planner.write(path, "# Managed by certwright: redirects plain http to https.\n"
                      + _server_text(body)[: -len("}\n")] + copied + "}\n")
        planner.ensure_included(os.path.join(planner.layout.servers_dir, "*.conf"), path)


def _redirects_host(item: Directive, name: str) -> bool:
    """Whether the redirect ``item`` applies to requests for ``name``: an ``if`` on
    ``$host`` (Certbot writes one per name) only to the names it tests."""
    if item.name != "if" or len(item.args) != 3 or item.args[0] not in ("$host", "$http_host"):
        return True
    _, op, value = item.args
    value = value.strip("\"'")
    if op == "=":
        return normalize_name(value) == normalize_name(name)
    if op == "!=":
        return normalize_name(value) != normalize_name(name)
    if op in ("~", "~*"):
        try:
            return re.search(value, name, re.IGNORECASE if op == "~*" else 0) is not None
        except re.error:
            return True
    return True


def _header(
    planner: _Planner, req: EnhanceRequest, line: str, present: Callable[[Directive], bool]
) -> None:
    blocks, missing = _blocks_for(planner.tree, req.domains, req.https_port, ssl=True)
    if missing:
        raise PluginError(f"no server block serves {', '.join(missing)} over https on port "
                          f"{req.https_port}; install a certificate first")
    for block in blocks:
        if any(present(d) for d in block.headers):
            continue
        planner.insert_after_listens(block, [line])
        shadowing = [d.where for d in block.locations
                     if any(i.name == "add_header" for i in d.block or ())]
        if shadowing:
            planner.note(f"add_header in {', '.join(shadowing)} replaces the server's "
                         "headers there; add the header in those locations too")
