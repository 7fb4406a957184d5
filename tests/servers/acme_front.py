"""A local HTTPS front for Pebble that adds what Pebble 2.4.0 lacks: ARI and profiles.

    with Pebble(workdir) as ca, AcmeFront(ca, workdir / "front", profiles=PROFILES) as front:
        subprocess.run([..., "--server", front.directory_url], env=front.env(), check=True)

A stand-in for these two features only, not a CA: every ACME request goes on to Pebble.

- **Forwarding.** GET, HEAD and POST are passed to Pebble with the ``Host`` header set to
  the front's own host:port. Pebble builds every URL it hands out from the request's Host
  (directory, Location, Link, order and authz URLs), and checks a JWS's ``url`` and ``kid``
  against URLs built the same way; so clients sign the front's URLs and Pebble accepts
  them. Signed bodies are forwarded byte for byte (the front cannot re-sign). As a safety
  net, Pebble's own base URL is still rewritten to the front's in JSON bodies and in
  Location / Link headers.
- **Directory.** ``renewalInfo`` (when ``ari``) and ``meta.profiles`` (when ``profiles``).
- **Renewal information (RFC 9773).** ``GET <front>/renewal-info/<certID>`` answers a
  ``suggestedWindow``. The window is, first that applies: ``ari_windows[certID]``,
  ``ari_window`` (a pair, or a callable of the certID returning a pair or None), else
  derived from the certificate Pebble issued with that serial (looked up through Pebble's
  management API): from 2/3 of its lifetime, lasting 1/30 of it. Unknown certificates get
  404. ``ari_retry_after`` adds Retry-After, ``ari_fail`` answers 500 (a problem document).
  Every certID asked for is appended to ``ari_requests``.
- **newOrder.** The decoded JWS payload of every newOrder is appended to ``orders``. With
  ``profiles`` set, an unknown ``profile`` is refused with ``invalidProfile`` (400) and not
  forwarded. Pebble 2.4.0 ignores unknown newOrder fields, so ``profile`` and ``replaces``
  reach it unchanged; the front adds them to the order objects it passes back, as a CA
  supporting them would.

TLS: the front's certificate comes from its own throwaway CA (Pebble's test CA key is not
kept). ``ca_bundle`` holds both CA certificates; ``env()`` / ``session`` trust it.
The configuration attributes (``ari_window``, ``ari_windows``, ``ari_fail``,
``ari_retry_after``, ``ari_explanation_url``, ``profiles``) may be changed while running.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import errno
import http.server
import json
import logging
import re
import socket
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import requests
from cryptography import x509

from tests.servers.pebble import Pebble
from tests.servers.ports import free_port
from tests.servers.process import StartStop
from tests.servers.tlsca import TestCA, cert_pem, key_pem

log = logging.getLogger(__name__)

Window = tuple[dt.datetime, dt.datetime]
WindowPolicy = Window | Callable[[str], Window | None]

RENEWAL_INFO_PATH = "/renewal-info"
ERROR = "urn:ietf:params:acme:error:"
PORT_RETRIES = 3
# not passed on from Pebble's responses: hop-by-hop, or recomputed by the front
_DROP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length",
                 "content-encoding", "date", "server"}  # fmt: skip
_FORWARD_REQUEST_HEADERS = ("Content-Type", "Accept", "Accept-Language", "User-Agent")
_CERT_ID = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rfc3339(moment: dt.datetime) -> str:
    text = moment.astimezone(dt.UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def default_window(cert: x509.Certificate) -> Window:
    """From 2/3 of the certificate's lifetime, lasting 1/30 of it (3 days for 90 days)."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    lifetime = end - start
    return start + lifetime * 2 / 3, start + lifetime * 2 / 3 + lifetime / 30


class _Server(http.server.ThreadingHTTPServer):
    """A threading HTTP server doing the TLS handshake in each request's thread."""

    daemon_threads = True
    front: AcmeFront

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.front._tls_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake from %s failed: %s", client_address, exc)
            return
        with self.front._lock:
            self.front._connections.add(tls)
        try:
            super().finish_request(tls, client_address)
        finally:
            with self.front._lock:
                self.front._connections.discard(tls)
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("error handling a request from %s", client_address, exc_info=True)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real CA
    timeout = 30  # seconds an idle kept-alive connection stays open
    server: _Server

    def do_GET(self) -> None:
        self.server.front._handle(self, "GET")

    def do_HEAD(self) -> None:
        self.server.front._handle(self, "HEAD")

    def do_POST(self) -> None:
        self.server.front._handle(self, "POST")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class AcmeFront(StartStop):
    """An HTTPS front for a running Pebble adding RFC 9773 renewal info and profiles.

    Constructor arguments (all but `pebble` and `workdir` keyword-only):
      pebble               a started tests.servers.pebble.Pebble
      workdir              TLS files and the combined CA bundle go here
      ari                  advertise `renewalInfo` and answer it (default True)
      profiles             name -> description, advertised as meta.profiles; when set, a
                           newOrder naming another profile gets invalidProfile (default None)
      ari_window           (start, end) for every certificate, or a callable certID ->
                           (start, end) | None; None: derived from Pebble's certificate
      ari_windows          certID -> (start, end), wins over ari_window
      ari_retry_after      seconds for the Retry-After header of ARI answers (default none)
      ari_explanation_url  explanationURL of ARI answers (default none)
      ari_fail             answer every ARI request with 500 serverInternal
    Set ``unreachable`` to end every connection unanswered (a CA that is down).
      tamper               a callable (path, JSON document) -> document applied to every
                           JSON answer passed on from Pebble: a hostile CA for tests
      rate_limit_orders    (attribute) Retry-After values; each newOrder takes one and is
                           refused with rateLimited instead of being forwarded
      host                 address to listen on (default: Pebble's host)

    Recorded while running: `orders` (decoded newOrder payloads), `ari_requests` (certIDs
    asked for), `requests_log` ((method, path) of every request), `forwarded` (those
    Pebble answered, with its status), `user_agents` (the
    User-Agent header of every request).
    """

    def __init__(
        self,
        pebble: Pebble,
        workdir: Path | str,
        *,
        ari: bool = True,
        profiles: Mapping[str, str] | None = None,
        ari_window: WindowPolicy | None = None,
        ari_windows: Mapping[str, Window] | None = None,
        ari_retry_after: int | None = None,
        ari_explanation_url: str | None = None,
        ari_fail: bool = False,
        host: str | None = None,
        tamper: Callable[[str, Any], Any] | None = None,
    ) -> None:
        self.pebble = pebble
        self.workdir = Path(workdir).resolve()
        self.ari = ari
        self.profiles: dict[str, str] | None = dict(profiles) if profiles is not None else None
        self.ari_window = ari_window
        self.ari_windows: dict[str, Window] = dict(ari_windows or {})
        self.ari_retry_after = ari_retry_after
        self.ari_explanation_url = ari_explanation_url
        self.ari_fail = ari_fail
        self.unreachable = False
        self.tamper = tamper
        self.host = host or pebble.host
        self.orders: list[dict[str, Any]] = []
        # Retry-After values: each newOrder takes the first one and is refused with
        # rateLimited (429) instead of being forwarded, until the list is empty
        self.rate_limit_orders: list[str] = []
        self.ari_requests: list[str] = []
        self.requests_log: list[tuple[str, str]] = []
        # (method, path, Pebble's status) of each request forwarded and answered
        self.forwarded: list[tuple[str, str, int]] = []
        self.user_agents: list[str] = []
        self._order_extras: dict[str, dict[str, Any]] = {}  # order / finalize URL -> fields
        self._lock = threading.Lock()
        self._connections: set[ssl.SSLSocket] = set()
        self._port: int | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._upstream: requests.Session | None = None
        self._pebble_urls: dict[str, str] = {}
        self._session: requests.Session | None = None
        self._tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Self:
        """Write the TLS files, bind a free port, serve in a background thread. Idempotent."""
        if self.running:
            return self
        self._write_tls_files()
        upstream = requests.Session()
        upstream.trust_env = False  # ignore REQUESTS_CA_BUNDLE / proxies of the test run
        upstream.verify = str(self.pebble.ca_bundle)
        self._upstream = upstream
        self._pebble_urls = {k: str(v) for k, v in self.pebble.directory().items()
                             if k in ("newNonce", "newOrder")}  # fmt: skip
        self._server = self._bind()
        self._server.front = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"acme-front-{self.port}", daemon=True,
        )  # fmt: skip
        self._thread.start()
        return self

    def _bind(self) -> _Server:
        for attempt in range(PORT_RETRIES):
            port = free_port(self.host)
            try:
                server = _Server((self.host, port), _Handler)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or attempt == PORT_RETRIES - 1:
                    raise
                continue
            self._port = port
            return server
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop serving, end open connections, close the sessions. Idempotent."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:  # kept-alive connections must not outlive the front
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for session in (self._upstream, self._session):
            if session is not None:
                session.close()
        self._upstream = self._session = None

    def _write_tls_files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ca = TestCA.create(common_name="certwright ACME front test CA")
        cert, key = ca.issue_server_cert()
        self.cert_path.write_bytes(cert_pem(cert) + cert_pem(ca.cert))
        self.key_path.touch(mode=0o600)
        self.key_path.write_bytes(key_pem(key))
        self.ca_bundle.write_bytes(self.pebble.ca_bundle.read_bytes() + cert_pem(ca.cert))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        self._tls_context = context

    # -- facts -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("ACME front not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def directory_url(self) -> str:
        return self.base_url + urlsplit(self.pebble.directory_url).path

    @property
    def renewal_info_url(self) -> str:
        return self.base_url + RENEWAL_INFO_PATH

    @property
    def pebble_base_url(self) -> str:
        parts = urlsplit(self.pebble.directory_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def cert_path(self) -> Path:
        return self.workdir / "front-fullchain.pem"

    @property
    def key_path(self) -> Path:
        return self.workdir / "front-key.pem"

    @property
    def ca_bundle(self) -> Path:
        """Pebble's API CA and the front's CA in one file: trust this for both."""
        return self.workdir / "ca-bundle.pem"

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Pebble's env() for a client subprocess, trusting `ca_bundle` instead."""
        env = self.pebble.env(base)
        env["REQUESTS_CA_BUNDLE"] = env["SSL_CERT_FILE"] = str(self.ca_bundle)
        return env

    @property
    def session(self) -> requests.Session:
        """A requests session trusting `ca_bundle`, ignoring the environment."""
        if self._session is None:
            session = requests.Session()
            session.trust_env = False
            session.verify = str(self.ca_bundle)
            self._session = session
        return self._session

    def directory(self) -> dict[str, Any]:
        response = self.session.get(self.directory_url, timeout=5)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    # -- request handling ------------------------------------------------------------------
    def _handle(self, req: _Handler, method: str) -> None:
        path = req.path
        self.requests_log.append((method, path))
        self.user_agents.append(req.headers.get("User-Agent", ""))
        if self.unreachable:  # the connection ends unanswered, as with a CA that is down
            req.close_connection = True
            return
        body = b""
        if method == "POST":
            if "chunked" in req.headers.get("Transfer-Encoding", "").lower():
                self._problem(req, 411, "malformed", "send a Content-Length")
                return
            body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        try:
            if self.ari and method in ("GET", "HEAD") and path.startswith(RENEWAL_INFO_PATH + "/"):
                self._renewal_info(req, path.removeprefix(RENEWAL_INFO_PATH + "/"))
            elif method == "POST" and self._is_new_order(path):
                self._new_order(req, body)
            else:
                self._forward(req, method, path, body)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("client went away during %s %s", method, path)

    def _is_new_order(self, path: str) -> bool:
        return path == urlsplit(self._pebble_urls["newOrder"]).path

    def _forward(
        self, req: _Handler, method: str, path: str, body: bytes,
        extras: Mapping[str, Any] | None = None,
    ) -> requests.Response | None:  # fmt: skip
        headers = {k: v for k in _FORWARD_REQUEST_HEADERS if (v := req.headers.get(k))}
        headers["Host"] = f"{self.host}:{self.port}"
        headers["Accept-Encoding"] = "identity"
        assert self._upstream is not None
        try:
            upstream = self._upstream.request(
                method, self.pebble_base_url + path, data=body or None, headers=headers,
                timeout=30, allow_redirects=False,
            )  # fmt: skip
        except requests.RequestException as exc:
            self._problem(req, 502, "serverInternal", f"Pebble did not answer: {exc}")
            return None
        self.forwarded.append((method, path, upstream.status_code))
        content = upstream.content
        ctype = upstream.headers.get("Content-Type", "")
        is_json = ctype.split(";")[0].strip().endswith("json")
        if is_json:
            content = self._rewrite(content)
            content = self._decorate(method, path, upstream.status_code, content, extras)
            if self.tamper is not None:
                content = json.dumps(self.tamper(path, json.loads(content))).encode()
        out: list[tuple[str, str]] = []
        for name in dict.fromkeys(upstream.raw.headers.keys()):
            if name.lower() in _DROP_HEADERS:
                continue
            for value in upstream.raw.headers.getlist(name):
                if name.lower() in ("location", "link"):
                    value = self._rewrite(value.encode()).decode()
                out.append((name, value))
        self._send(req, upstream.status_code, out, content, head=method == "HEAD")
        return upstream

    def _rewrite(self, data: bytes) -> bytes:
        return data.replace(self.pebble_base_url.encode(), self.base_url.encode())

    def _decorate(
        self, method: str, path: str, status: int, content: bytes,
        extras: Mapping[str, Any] | None,
    ) -> bytes:  # fmt: skip
        """Add what Pebble does not know to its JSON: renewalInfo and profiles in the
        directory, profile / replaces in order objects."""
        is_directory = method == "GET" and path == urlsplit(self.pebble.directory_url).path
        with self._lock:
            fields = dict(extras or self._order_extras.get(self.base_url + path, {}))
        if not is_directory and (not fields or status >= 400):
            return content
        try:
            doc = json.loads(content)
        except ValueError:
            return content
        if not isinstance(doc, dict):
            return content
        if is_directory:
            if self.ari:
                doc["renewalInfo"] = self.renewal_info_url
            if self.profiles:
                doc.setdefault("meta", {})["profiles"] = dict(self.profiles)
        else:
            doc.update(fields)
        return json.dumps(doc, indent=3).encode()

    # -- newOrder --------------------------------------------------------------------------
    def _new_order(self, req: _Handler, body: bytes) -> None:
        payload = _jws_payload(body)
        if payload is not None:
            self.orders.append(payload)
        with self._lock:
            limited = self.rate_limit_orders.pop(0) if self.rate_limit_orders else None
        if limited is not None:
            self._problem(req, 429, "rateLimited", "too many new orders recently",
                          [("Retry-After", limited)])
            return
        profile = payload.get("profile") if payload else None
        if self.profiles is not None and profile is not None and profile not in self.profiles:
            offered = ", ".join(sorted(self.profiles)) or "none"
            detail = f"profile {profile!r} is not offered here (offered: {offered})"
            self._problem(req, 400, "invalidProfile", detail)
            return
        extras: dict[str, Any] = {
            k: payload[k] for k in ("profile", "replaces") if payload and k in payload
        }
        upstream = self._forward(req, "POST", req.path, body, extras)
        if upstream is None or upstream.status_code != 201 or not extras:
            return
        order_url = self._rewrite(upstream.headers.get("Location", "").encode()).decode()
        try:
            finalize = self._rewrite(str(upstream.json().get("finalize", "")).encode()).decode()
        except ValueError:
            finalize = ""
        with self._lock:
            for url in (order_url, finalize):
                if url:
                    self._order_extras[url] = extras

    # -- renewal info (RFC 9773) -------------------------------------------------------------
    def _renewal_info(self, req: _Handler, cert_id: str) -> None:
        self.ari_requests.append(cert_id)
        if self.ari_fail:
            self._problem(req, 500, "serverInternal", "renewal info is failing on purpose")
            return
        if not _CERT_ID.fullmatch(cert_id):
            self._problem(req, 400, "malformed", f"not an ARI certificate identifier: {cert_id}")
            return
        window = self._window(cert_id)
        if window is None:
            self._problem(req, 404, "malformed", f"no certificate known for {cert_id}")
            return
        doc: dict[str, Any] = {
            "suggestedWindow": {"start": rfc3339(window[0]), "end": rfc3339(window[1])}
        }
        if self.ari_explanation_url:
            doc["explanationURL"] = self.ari_explanation_url
        headers = [("Content-Type", "application/json")]
        if self.ari_retry_after is not None:
            headers.append(("Retry-After", str(self.ari_retry_after)))
        self._send(req, 200, headers, json.dumps(doc).encode(), head=req.command == "HEAD")

    def _window(self, cert_id: str) -> Window | None:
        if cert_id in self.ari_windows:
            return self.ari_windows[cert_id]
        policy = self.ari_window
        if callable(policy):
            return policy(cert_id)
        if policy is not None:
            return policy
        cert = self._pebble_cert(cert_id)
        return default_window(cert) if cert is not None else None

    def _pebble_cert(self, cert_id: str) -> x509.Certificate | None:
        """The certificate Pebble issued with this certID's serial and AKI, if any."""
        aki_part, serial_part = cert_id.split(".")
        try:
            serial = int.from_bytes(b64decode(serial_part), "big", signed=True)
            status = self.pebble.cert_status(serial)
            cert = x509.load_pem_x509_certificate(status["Certificate"].encode())
            aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        except (LookupError, ValueError, binascii.Error, requests.RequestException,
                x509.ExtensionNotFound):  # fmt: skip
            return None
        return cert if aki.key_identifier == b64decode(aki_part) else None

    # -- responses -------------------------------------------------------------------------
    def _problem(self, req: _Handler, status: int, code: str, detail: str,
                 extra_headers: Sequence[tuple[str, str]] = ()) -> None:
        doc = {"type": ERROR + code, "detail": detail, "status": status}
        headers = [("Content-Type", "application/problem+json"), *extra_headers]
        nonce = self._fresh_nonce()
        if nonce:
            headers.append(("Replay-Nonce", nonce))
        self._send(req, status, headers, json.dumps(doc).encode(), head=req.command == "HEAD")

    def _fresh_nonce(self) -> str | None:
        """A nonce from Pebble for the front's own error answers (RFC 8555 §6.5)."""
        try:
            assert self._upstream is not None
            response = self._upstream.head(self._pebble_urls["newNonce"], timeout=5)
        except requests.RequestException:
            return None
        return response.headers.get("Replay-Nonce")

    @staticmethod
    def _send(
        req: _Handler, status: int, headers: list[tuple[str, str]], body: bytes, head: bool
    ) -> None:
        req.send_response(status)
        for name, value in headers:
            req.send_header(name, value)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if not head and body:
            req.wfile.write(body)

    def describe(self) -> str:
        return f"ACME front {self.base_url} for {self.pebble.directory_url}"


def _jws_payload(body: bytes) -> dict[str, Any] | None:
    """The decoded payload of a flattened JWS request body; None when it is not one."""
    try:
        jws = json.loads(body)
        payload = json.loads(b64decode(jws["payload"])) if jws.get("payload") else None
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        return None
    return payload if isinstance(payload, dict) else None
