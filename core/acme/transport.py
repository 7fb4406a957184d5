"""HTTP for ACME: one ``requests.Session``, the nonce pool, badNonce retries, Retry-After.

Every response's ``Replay-Nonce`` goes into the pool (RFC 8555 §7.2); a ``badNonce``
error is retried with the nonce that came with it, several times (§6.5).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import requests
from josepy.jwk import JWK

from certwright.core import __version__
from certwright.core.acme import jws
from certwright.core.acme.errors import AcmeError, TransportError
from certwright.core.acme.messages import Directory

log = logging.getLogger(__name__)

JOSE_JSON = "application/jose+json"
# A badNonce costs one round trip; a CA that rejects half its nonces (Pebble's
# PEBBLE_WFE_NONCEREJECT=50) needs 2**-31 luck to exhaust 30 retries.
BAD_NONCE_RETRIES = 30
# A rateLimited answer whose Retry-After is this short is waited out in-process (a few
# times per request); a longer one is an error that says when to try again.
RATE_LIMIT_MAX_WAIT = 60.0
RATE_LIMIT_RETRIES = 3


_NO_LINKS: Mapping[str, tuple[str, ...]] = MappingProxyType({})


class Response(NamedTuple):
    """What the core needs of an HTTP response."""

    url: str
    status: int
    headers: Mapping[str, str]
    content: bytes
    links: Mapping[str, tuple[str, ...]] = _NO_LINKS

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.content)
        except ValueError:
            raise TransportError(f"{self.url}: response is not valid JSON") from None
        if not isinstance(data, dict):
            raise TransportError(f"{self.url}: expected a JSON object")
        return data

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"))


def default_user_agent(comment: str | None = None) -> str:
    """``certwright/VERSION``, with ``--user-agent-comment`` as the product's comment
    (RFC 9110 §10.1.5): ``certwright/VERSION (COMMENT)``."""
    return f"certwright/{__version__} ({comment})" if comment else f"certwright/{__version__}"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not '²', which float() refuses
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _links(resp: requests.Response) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for part in resp.headers.get("Link", "").split(","):
        url, _, params = part.partition(";")
        url = url.strip().strip("<>")
        for param in params.split(";"):
            key, _, val = param.strip().partition("=")
            if key.strip().lower() == "rel" and url:
                found.setdefault(val.strip().strip('"'), []).append(
                    requests.compat.urljoin(resp.url, url)
                )
    return {rel: tuple(urls) for rel, urls in found.items()}


class RequestTimeout(TransportError):
    """The server accepted the connection but did not answer in time."""


class Transport:
    """Talks to one ACME server. Hand it a session to control retries, proxies, trust.

    ``verify`` (False, or a CA bundle path) is passed with every request: requests merges
    ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` over a session's own ``verify``, so only a
    per-request value is sure to win (proxy settings from the environment still apply).

    A session made here reads the environment (``HTTPS_PROXY``, ``NO_PROXY``, the CA
    bundle variables) once per host rather than at every request, and never sends
    ``~/.netrc`` credentials: an ACME server authenticates requests by their signature.
    """

    def __init__(
        self,
        directory_url: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 45.0,
        user_agent: str | None = None,
        bad_nonce_retries: int = BAD_NONCE_RETRIES,
        rate_limit_max_wait: float = RATE_LIMIT_MAX_WAIT,
        sleep: Callable[[float], None] = time.sleep,
        verify: bool | str | None = None,
    ) -> None:
        self.directory_url = directory_url
        self.verify = verify
        self._environment: dict[str, dict[str, Any]] | None = None
        if session is None:
            session = requests.Session()
            session.trust_env = False  # the environment is read by _from_environment
            self._environment = {}
            # renewals in parallel may share one transport: more than requests' 10 pooled
            # connections would be opened and dropped with a warning each time
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=64)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session
        self.session.headers["User-Agent"] = user_agent or default_user_agent()
        self.timeout = timeout
        self.bad_nonce_retries = bad_nonce_retries
        self.rate_limit_max_wait = rate_limit_max_wait
        self._sleep = sleep
        self._nonces: list[str] = []  # append and pop are atomic: shared by threads
        self._directory: Directory | None = None
        self._directory_lock = threading.Lock()
        # a short Retry-After is honoured by every thread sharing this transport (renew
        # --jobs), not only the one that was told: signed requests start after it
        self._quiet_until = 0.0

    # -- plain HTTP -------------------------------------------------------------------
    def _from_environment(self, url: str) -> dict[str, Any]:
        """The proxies and CA bundle the environment gives for ``url``'s host, as a
        session that trusts the environment would merge them into each request."""
        assert self._environment is not None
        host = url.split("/", 3)[2] if "://" in url else url
        found = self._environment.get(host)
        if found is None:
            reader = requests.Session()  # trust_env: only to read the environment
            merged = reader.merge_environment_settings(url, {}, None, None, None)
            reader.close()
            found = self._environment[host] = {"proxies": merged["proxies"],
                                               "verify": merged["verify"]}
        return found

    def _request(self, method: str, url: str, *, timeout: float | None = None,
                 **kwargs: Any) -> Response:
        if self._environment is not None:
            for name, value in self._from_environment(url).items():
                kwargs.setdefault(name, value)
        if self.verify is not None:
            kwargs["verify"] = self.verify
        try:
            resp = self.session.request(method, url, timeout=timeout or self.timeout, **kwargs)
        except requests.exceptions.Timeout as exc:
            raise RequestTimeout(f"{url}: no answer in time: {_reason(exc)}") from None
        except requests.exceptions.SSLError as exc:
            raise TransportError(f"TLS error talking to {url}: {_reason(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise TransportError(f"could not reach {url}: {_reason(exc)}") from None
        nonce = resp.headers.get("Replay-Nonce")
        if nonce:
            self._nonces.append(nonce)
        log.debug("%s %s -> %s", method, url, resp.status_code)
        return Response(
            url=url,
            status=resp.status_code,
            headers=resp.headers,
            content=resp.content,
            links=_links(resp),
        )

    def get(self, url: str) -> Response:
        return self._check(self._request("GET", url))

    @property
    def directory(self) -> Directory:
        """Fetched once, by whichever thread asks first; the others wait for it."""
        if self._directory is not None:
            return self._directory
        with self._directory_lock:
            if self._directory is None:
                resp = self.get(self.directory_url)
                try:
                    data = resp.json()
                    self._directory = Directory.from_json(self.directory_url, data)
                except (TransportError, KeyError):
                    raise TransportError(
                        f"{self.directory_url} is not an ACME directory (no newNonce/"
                        "newAccount/newOrder); check --server"
                    ) from None
            return self._directory

    # -- signed requests --------------------------------------------------------------
    def _nonce(self) -> str:
        # list.pop is atomic, a check before it is not: threads sharing this transport
        # may empty the pool between the two
        while True:
            with contextlib.suppress(IndexError):
                return self._nonces.pop()
            resp = self._request("HEAD", self.directory.new_nonce)
            with contextlib.suppress(IndexError):
                return self._nonces.pop()
            if not resp.headers.get("Replay-Nonce"):
                raise TransportError(f"{resp.url}: no Replay-Nonce in the newNonce response")
            # another thread took the one this request brought: ask again

    def post(
        self,
        url: str,
        payload: Mapping[str, Any] | None,
        key: JWK,
        kid: str | None,
        *,
        timeout: float | None = None,
    ) -> Response:
        """POST a JWS; ``payload=None`` is POST-as-GET. Retries ``badNonce`` with a fresh
        nonce, and ``rateLimited`` after its Retry-After when that is short (§6.6)."""
        bad_nonces = rate_waits = 0
        quiet = self._quiet_until - time.monotonic()
        if quiet > 0:
            self._sleep(quiet)
        while True:
            body = jws.sign(key, payload, url=url, nonce=self._nonce(), kid=kid)
            resp = self._request(
                "POST", url, data=json.dumps(body), headers={"Content-Type": JOSE_JSON},
                timeout=timeout,
            )
            try:
                return self._check(resp)
            except AcmeError as err:
                if err.code == "badNonce" and bad_nonces < self.bad_nonce_retries:
                    bad_nonces += 1
                    log.debug("badNonce on %s, retrying (%d)", url, bad_nonces)
                    continue
                wait = err.retry_after
                if (err.code == "rateLimited" and wait is not None
                        and wait <= self.rate_limit_max_wait and rate_waits < RATE_LIMIT_RETRIES):
                    rate_waits += 1
                    log.info("rate limited by the CA at %s; trying again in %.0f s", url, wait)
                    self._quiet_until = max(self._quiet_until, time.monotonic() + wait)
                    self._sleep(wait)
                    continue
                raise

    def _check(self, resp: Response) -> Response:
        if resp.status < 400:
            return resp
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype in ("application/problem+json", "application/json"):
            try:
                doc = json.loads(resp.content)
            except ValueError:
                doc = None
            if isinstance(doc, dict) and "type" in doc:
                raise AcmeError.from_json(doc, resp.status, resp.retry_after, resp.url)
        kind = ctype or "unknown content"
        raise TransportError(
            f"{resp.url}: HTTP {resp.status} with a non-ACME response ({kind}); "
            "is --server an ACME directory, and is the CA up?"
        )


def _reason(exc: Exception) -> str:
    text = str(exc.args[0] if exc.args else exc)
    if "Max retries exceeded" in text and "(Caused by" in text:
        text = text.split("(Caused by", 1)[1].rstrip(")")
    return text.strip()[:300]
