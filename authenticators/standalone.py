"""standalone: answer http-01 from a small built-in HTTP server, and tls-alpn-01 (RFC 8737)
from a built-in TLS server.

The server listens on ``--http-01-address`` (``config.http01_address``; empty means every
address, IPv6 and IPv4 where the host has both) and ``--http-01-port``
(``config.http01_port``, default 80). It starts with the first ``present()`` and stops when
``cleanup()`` has removed the last token. It answers ``GET`` and ``HEAD`` for
``/.well-known/acme-challenge/<token>`` with the key authorization and 404 for anything else,
logging requests at debug level only.

tls-alpn-01 (``--preferred-challenges tls-alpn-01``) is answered on ``--tls-alpn-01-port``
(``config.tls_alpn01_port``, default 443) of the same address, by
:class:`certwright.authenticators.tls_alpn.TlsAlpnServer`: only ``acme-tls/1`` handshakes
naming a challenge get its certificate. It too runs while challenges are pending; one
instance (share key: address and both ports) serves parallel renewals.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from certwright.core.errors import PluginError
from certwright.core.http01 import http01_token, http01_types
from certwright.core.listen import display
from certwright.core.settings import Settings

if TYPE_CHECKING:
    from certwright.core.interfaces import AddArgument, ChallengeTask, Identifier
    from certwright.core.responder import Responder

logger = logging.getLogger(__name__)

DEFAULT_PORT = 80
DEFAULT_TLS_PORT = 443
TLSALPN01 = "tls-alpn-01"
BUSY = "is a web server running? try --webroot or --http-01-port"


class StandaloneAuthenticator:
    """Serves http-01 key authorizations from a thread of this process."""

    name: ClassVar[str] = "standalone"
    description: ClassVar[str] = "Run a temporary built-in web server on port 80 (http-01)"

    def __init__(self, config: Settings) -> None:
        self.config = config
        address = getattr(config, "http01_address", "") or ""
        self.address: str = str(address).strip("[]")
        port = getattr(config, "http01_port", None)
        self.port: int = DEFAULT_PORT if port is None else int(port)
        self.tls_port_raw = getattr(config, "tls_alpn01_port", None)
        self._alpn: Any = None  # the TlsAlpnServer while tls-alpn-01 challenges are pending
        self._http: Responder | None = None  # made on the first http-01 challenge
        self._lock = threading.Lock()

    @classmethod
    def add_arguments(cls, add: AddArgument) -> None:
        """``--tls-alpn-01-port``; ``--http-01-port`` and ``--http-01-address`` are global."""
        add("--tls-alpn-01-port", dest="tls_alpn01_port", default=None, metavar="PORT",
            help=f"port the tls-alpn-01 server listens on (default {DEFAULT_TLS_PORT})")

    @property
    def tls_port(self) -> int:
        raw = self.tls_port_raw
        if raw in (None, "", "None"):
            return DEFAULT_TLS_PORT
        text = str(raw)
        if not text.isdigit() or int(text) > 65535:
            raise PluginError(f"--tls-alpn-01-port {raw!r} is not a TCP port (0-65535)")
        return int(text)

    def prepare(self) -> None:
        if not 0 <= self.port <= 65535:
            raise PluginError(f"--http-01-port {self.port} is not a TCP port (0-65535)")
        _ = self.tls_port

    def challenge_types(self, identifier: Identifier) -> Sequence[str]:
        """http-01; tls-alpn-01 too when --preferred-challenges names it (it takes port
        443, which a running web server usually holds). Neither proves a wildcard."""
        http = http01_types(identifier)
        preferred = getattr(self.config, "pref_challs", None) or ()
        return [*http, TLSALPN01] if http and TLSALPN01 in preferred else http

    def share_key(self) -> Hashable:
        """One server per address and port serves every lineage renewing through it (a
        second one could not bind); its token table is guarded by a lock."""
        return (self.address, self.port, self.tls_port)

    @property
    def bound_port(self) -> int | None:
        """The port actually listened on while the server runs (useful with port 0)."""
        return None if self._http is None else self._http.bound_port

    def present(self, task: ChallengeTask) -> None:
        if task.challenge_type == TLSALPN01:
            self._present_alpn(task)
            return
        token = http01_token(task, self.name)
        self._responder().add(token, task.key_authorization)

    def cleanup(self, task: ChallengeTask) -> None:
        if task.challenge_type == TLSALPN01:
            with self._lock:
                if self._alpn is not None and self._alpn.remove(task):
                    self._alpn.stop()
                    self._alpn = None
            return
        if self._http is not None:
            self._http.remove(task.token)

    def _responder(self) -> Responder:
        from certwright.core.responder import Responder

        with self._lock:
            if self._http is None:
                self._http = Responder(self.address, self.port, busy_hint=BUSY, logger=logger)
            return self._http

    def _stop(self) -> None:
        """Stop both servers whatever challenges are left (for tests and teardown)."""
        with self._lock:
            http, alpn, self._alpn = self._http, self._alpn, None
        if http is not None:
            http.close()
        if alpn is not None:
            alpn.stop()

    def renewal_params(self) -> Mapping[str, object]:
        if self.tls_port_raw in (None, "", "None"):
            return {}
        return {"tls_alpn01_port": str(self.tls_port)}

    @property
    def bound_tls_port(self) -> int | None:
        """The port the tls-alpn-01 server listens on while it runs."""
        return None if self._alpn is None else int(self._alpn.bound_port)

    def _present_alpn(self, task: ChallengeTask) -> None:
        from certwright.authenticators._task import check_task
        from certwright.authenticators.tls_alpn import TlsAlpnServer

        check_task(task, self.name)
        with self._lock:
            if self._alpn is None:
                self._alpn = TlsAlpnServer(self.address, self.tls_port)
                logger.debug("tls-alpn-01 server listening on %s",
                             display(self.address, self.tls_port))
            self._alpn.add(task)
