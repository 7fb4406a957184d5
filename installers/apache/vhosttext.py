"""A ``<VirtualHost>`` as text: where it starts and ends in its file, its certificate lines,
and the copy of an http vhost that becomes its https twin. Pure functions of the text.

Edits stay line-anchored (:mod:`certwright.core.textedit`): everything outside the lines
changed keeps its bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from certwright.core.errors import PluginError

_OPEN = re.compile(r"^[ \t]*<VirtualHost(?:[ \t]+([^>]*))?>", re.IGNORECASE)
_CLOSE = re.compile(r"^[ \t]*</VirtualHost[ \t]*>", re.IGNORECASE)
_CERT = re.compile(
    r"^[ \t]*SSLCertificate(?:File|KeyFile|ChainFile)[ \t]", re.IGNORECASE)
_SSL_ENGINE = re.compile(r"^[ \t]*SSLEngine[ \t]", re.IGNORECASE)
_HTTPS_REDIRECT = re.compile(
    r"^[ \t]*(?:RewriteRule|Redirect(?:Match|Permanent)?)[ \t].*https://", re.IGNORECASE)
_REWRITE_COND = re.compile(r"^[ \t]*RewriteCond[ \t]", re.IGNORECASE)


@dataclass(frozen=True)
class VhostSpan:
    """Lines ``first``..``last`` (0-based, inclusive) of ``lines`` hold the vhost."""

    lines: tuple[str, ...]
    """The file's lines, each with its own line ending."""
    first: int
    last: int

    @property
    def body(self) -> tuple[str, ...]:
        return self.lines[self.first + 1:self.last]

    @property
    def indent(self) -> str:
        opener = self.lines[self.first]
        inner = self.body
        for line in inner:
            if line.strip():
                return line[: len(line) - len(line.lstrip(" \t"))]
        return opener[: len(opener) - len(opener.lstrip(" \t"))] + "    "


def find_vhost(path: str, text: str, line: int) -> VhostSpan:
    """The vhost whose ``<VirtualHost`` is on 1-based ``line``; a clear error when the
    file changed since it was read."""
    lines = tuple(text.splitlines(keepends=True))
    first = line - 1
    if not 0 <= first < len(lines) or not _OPEN.match(lines[first]):
        raise PluginError(f"{path}:{line}: no <VirtualHost> there any more (the file "
                          "changed while certwright read it); run again")
    for number in range(first + 1, len(lines)):
        if _CLOSE.match(lines[number]):
            return VhostSpan(lines, first, number)
        if _OPEN.match(lines[number]):
            break
    raise PluginError(f"{path}:{line}: <VirtualHost> without its </VirtualHost>")


def newline(lines: Sequence[str]) -> str:
    return "\r\n" if any(line.endswith("\r\n") for line in lines) else "\n"


def cert_lines(indent: str, fullchain: str, key: str, options: str | None) -> list[str]:
    out = [f'{indent}SSLCertificateFile "{fullchain}"',
           f'{indent}SSLCertificateKeyFile "{key}"']
    if options:
        out.append(f'{indent}Include "{options}"')
    return out


def update_in_place(span: VhostSpan, fullchain: str, key: str) -> str:
    """The file's text with the vhost's certificate lines replaced by ours (the first
    ``SSLCertificateFile`` becomes the fullchain, the key line the key, a chain line goes:
    the fullchain carries it); added after the opener when the vhost has none."""
    nl = newline(span.lines)
    out = list(span.lines[: span.first + 1])
    placed = False
    for raw in span.body:
        if _CERT.match(raw):
            if not placed:
                indent = raw[: len(raw) - len(raw.lstrip(" \t"))]
                out.extend(line + nl for line in cert_lines(indent, fullchain, key, None))
                placed = True
            continue
        out.append(raw)
    if not placed:
        at = span.first + 1
        out[at:at] = [line + nl for line in cert_lines(span.indent, fullchain, key, None)]
    out.extend(span.lines[span.last:])
    return "".join(out)


def ssl_twin(span: VhostSpan, addresses: Sequence[str], fullchain: str, key: str,
             options: str, header: Sequence[str] = ()) -> str:
    """An https copy of the http vhost: same contents, on ``addresses``, with TLS on and
    our certificate; an http→https redirect in the original is left out (it would loop),
    and so are certificate lines the http vhost may carry."""
    nl = newline(span.lines)
    indent = span.indent
    opener = span.lines[span.first]
    lead = opener[: len(opener) - len(opener.lstrip(" \t"))]
    out = [f"# {line}".rstrip() + nl for line in header]
    out.append(f"{lead}<VirtualHost {' '.join(addresses)}>{nl}")
    out.append(f"{indent}SSLEngine on{nl}")
    out.extend(line + nl for line in cert_lines(indent, fullchain, key, options))
    body = list(span.body)
    redirects = [i for i, raw in enumerate(body) if _HTTPS_REDIRECT.match(raw)]
    drop = set()
    for i in redirects:
        drop.add(i)
        j = i - 1
        while j >= 0 and _REWRITE_COND.match(body[j]):  # the conditions of that rule
            drop.add(j)
            j -= 1
    for i, raw in enumerate(body):
        if i in drop or _CERT.match(raw) or _SSL_ENGINE.match(raw):
            continue
        out.append(raw if raw.endswith("\n") else raw + nl)
    closer = span.lines[span.last]
    out.append(closer.rstrip("\r\n") + nl)
    return "".join(out)


def fresh_vhost(name: str, addresses: Sequence[str], document_root: str | None,
                fullchain: str, key: str, options: str,
                header: Sequence[str] = ()) -> str:
    """A vhost of its own for a name only a catch-all answers."""
    out = [f"# {line}".rstrip() for line in header]
    out.append(f"<VirtualHost {' '.join(addresses)}>")
    out.append(f"    ServerName {name}")
    if document_root:
        out.append(f"    DocumentRoot {document_root}")
    out.append("    SSLEngine on")
    out.extend(cert_lines("    ", fullchain, key, options))
    out.append("</VirtualHost>")
    return "\n".join(out) + "\n"
