"""Before ordering: can the CA's validator reach the domain's web root over plain http?

A probe file is put in ``/.well-known/acme-challenge/`` of the domain's web root and
fetched for every name as the validator does (Let's Encrypt's documented behaviour):
``http://<name>/…`` on port 80, following redirects (at most 10) to http or https on the
standard ports only, any certificate accepted on https. A name that fails — not pointing
here in DNS, basic auth (401), a ban on hidden directories (403/404), a redirect to an
https site that doesn't answer — keeps the domain from being sent to the CA.
"""

from __future__ import annotations

import http.client
import secrets
import socket
import ssl
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from certwright.core.errors import CertwrightError
from certwright.core.fleet import resolve, webroot
from certwright.core.fleet.model import Domain

MAX_REDIRECTS = 10


@dataclass(frozen=True)
class PrecheckOptions:
    http_port: int = 80
    https_port: int = 443
    dns_server: tuple[str, int] | None = None
    addresses: frozenset[str] = field(default_factory=frozenset)
    timeout: float = 5.0


def check(domain: Domain, opts: PrecheckOptions) -> str | None:
    """None when every name serves the probe; else the reason, one line."""
    if domain.webroot is None:
        return "no web root for the domain"
    token = "certwright-probe-" + secrets.token_hex(8)
    content = secrets.token_urlsafe(24)
    try:
        path = webroot.put(domain.webroot, token, content)
    except CertwrightError as exc:
        return str(exc)
    try:
        for name in domain.names:
            reason = _check_name(name, token, content, opts)
            if reason is not None:
                return reason
        return None
    finally:
        webroot.remove(path)


def serves_https(domain: Domain, cert_der: bytes, opts: PrecheckOptions) -> bool:
    """Whether every name of ``domain`` is served over https (``https_port``, SNI) with
    the certificate ``cert_der``: the hoster's web server has taken it up."""
    from certwright.core import probe

    for name in domain.names:
        try:
            found = resolve.addresses(name, opts.dns_server, opts.timeout)
            if not found or probe.served_certificate(found[0], opts.https_port, name,
                                                     "https", min(opts.timeout, 3.0)) \
                    != cert_der:
                return False
        except (OSError, ssl.SSLError, resolve.ResolveError, CertwrightError):
            return False
    return True


def _check_name(name: str, token: str, content: str, opts: PrecheckOptions) -> str | None:
    try:
        found = resolve.addresses(name, opts.dns_server, opts.timeout)
    except resolve.ResolveError as exc:
        return f"{name}: {exc}"
    if not found:
        return f"{name}: no address in DNS"
    if opts.addresses and not set(found) & opts.addresses:
        return (f"{name}: DNS points at {', '.join(found)}, not at this host "
                f"({', '.join(sorted(opts.addresses))})")
    url = f"http://{name}/{webroot.CHALLENGE_PATH}/{token}"
    for _ in range(MAX_REDIRECTS + 1):
        result = _fetch(url, opts)
        if isinstance(result, str):
            return result
        status, location, body = result
        if status in (301, 302, 303, 307, 308) and location:
            target = urljoin(url, location)
            reason = _redirect_refused(target, opts)
            if reason:
                return f"{name}: {url} redirects to {target}: {reason}"
            url = target
            continue
        if status == 200:
            if body.strip() == content.encode():
                return None
            return f"{name}: {url} answers something else than the probe file (another " \
                "site or a rewrite serves this name)"
        return f"{name}: {url} answers HTTP {status}{_hint(status)}"
    return f"{name}: more than {MAX_REDIRECTS} redirects from http://{name}/"


def _hint(status: int) -> str:
    if status == 401:
        return " (password protection: exempt /.well-known/acme-challenge/ from it)"
    if status in (403, 404):
        return (" (a ban on hidden directories, or another document root: allow "
                "/.well-known/acme-challenge/)")
    return ""


def _redirect_refused(url: str, opts: PrecheckOptions) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "only http and https redirects are followed"
    standard = {"http": (None, 80, opts.http_port), "https": (None, 443, opts.https_port)}
    if parts.port not in standard[parts.scheme]:
        return f"port {parts.port} is not followed by the validator (only 80 and 443)"
    return None


def _fetch(url: str, opts: PrecheckOptions) -> tuple[int, str | None, bytes] | str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        found = resolve.addresses(host, opts.dns_server, opts.timeout)
    except resolve.ResolveError as exc:
        return f"{host}: {exc}"
    if not found:
        return f"{host}: no address in DNS"
    address = found[0]
    if parts.scheme == "https":
        port = parts.port if parts.port not in (None, 443) else opts.https_port
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the validator accepts any certificate here
        conn: http.client.HTTPConnection = _Https(address, host, port, opts.timeout,
                                                  context)
    else:
        port = parts.port if parts.port not in (None, 80) else opts.http_port
        conn = http.client.HTTPConnection(address, port, timeout=opts.timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("GET", target, headers={"Host": host, "User-Agent": "certwright-precheck",
                                             "Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(4096)
        return resp.status, resp.getheader("Location"), body
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        return f"{url} does not answer ({address}:{port}): {type(exc).__name__}: {exc}"
    finally:
        conn.close()


class _Https(http.client.HTTPSConnection):
    """https to ``address`` with SNI for ``name`` (the name's own DNS already chose it)."""

    def __init__(self, address: str, name: str, port: int, timeout: float,
                 context: ssl.SSLContext) -> None:
        super().__init__(name, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
