"""dns-rfc2136: dns-01 through TSIG-signed dynamic updates (RFC 2136, RFC 8945).

The credentials file is Certbot's (certbot-dns-rfc2136), e.g.::

    dns_rfc2136_server = 192.0.2.1        # the primary server (an address, or a name)
    dns_rfc2136_port = 53                 # default 53
    dns_rfc2136_name = certbot.           # the TSIG key's name
    dns_rfc2136_secret = 4q4wM/2I180UXoMyN4INVhJNi8V9BCV+jMw2mXgZw/CSuxUT8C7NKKFs...
    dns_rfc2136_algorithm = HMAC-SHA512   # default HMAC-MD5, as Certbot
    dns_rfc2136_sign_query = false        # also sign the SOA/CNAME/NS questions

Questions (CNAME, SOA, NS) go to that server; the updates go to it over TCP, one per zone.
Options and the wait for the authoritative servers: :mod:`.dns_base`. dnspython is
imported only when this plugin is used (``pip install 'certwright[dns]'``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from certwright.authenticators.dns_base import DnsAuthenticator, Record
from certwright.core.errors import PluginError
from certwright.core.options import FALSE, TRUE

if TYPE_CHECKING:
    from certwright.authenticators.dns_credentials import Credentials
    from certwright.authenticators.dns_lookup import Server, Signer
    from certwright.core.interfaces import ChallengeTask

TTL = 120  # Certbot's
ALGORITHMS = ("HMAC-MD5", "HMAC-SHA1", "HMAC-SHA224", "HMAC-SHA256", "HMAC-SHA384",
              "HMAC-SHA512")
UPDATE_TIMEOUT = 10.0


class Rfc2136Authenticator(DnsAuthenticator):
    """Adds and removes the TXT records with TSIG-signed RFC 2136 updates."""

    name: ClassVar[str] = "dns-rfc2136"
    description: ClassVar[str] = "RFC 2136 dynamic DNS updates with a TSIG key (dns-01)"
    default_propagation: ClassVar[int] = 60

    _server: Server
    _signer: Signer
    _sign_query: bool
    _credentials: Credentials

    def setup(self, credentials: Credentials) -> None:
        import dns.name
        import dns.tsig

        from certwright.authenticators import dns_lookup

        self._credentials = c = credentials
        host = c.require("dns_rfc2136_server", "the address of the DNS server to update")
        port = c.get("dns_rfc2136_port") or "53"
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise c.bad("dns_rfc2136_port", f"{port!r} is not a port (1-65535)")
        key = c.require("dns_rfc2136_name", "the name of the TSIG key")
        secret = c.require("dns_rfc2136_secret", "the TSIG key's secret, base64")
        try:
            base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            raise c.bad("dns_rfc2136_secret", "not base64 (the secret as in the server's "
                        "key statement)") from None
        algorithm = (c.get("dns_rfc2136_algorithm") or "HMAC-MD5").upper()
        if algorithm not in ALGORITHMS:
            raise c.bad("dns_rfc2136_algorithm",
                        f"{algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        sign = (c.get("dns_rfc2136_sign_query") or "").lower()
        if sign and sign not in TRUE + FALSE:  # unset: no signed queries
            raise c.bad("dns_rfc2136_sign_query", f"{sign!r} is not true or false")
        try:
            keyname = dns.name.from_text(key)
        except Exception as exc:
            raise c.bad("dns_rfc2136_name", f"{key!r} is not a DNS name ({exc})") from None
        alg = dns.name.from_text(algorithm.lower())
        keyring = {keyname: dns.tsig.Key(keyname, secret, alg)}
        try:
            self._server = dns_lookup.resolve_server(host, int(port))
        except dns_lookup.LookupFailed as exc:
            raise c.bad("dns_rfc2136_server", str(exc)) from None
        self._signer = dns_lookup.Signer(keyring, keyname, alg)
        self._sign_query = sign in TRUE

    def lookup_server(self) -> Server:
        return self._server

    def present_all(self, tasks: Sequence[ChallengeTask]) -> None:
        try:
            super().present_all(tasks)
        except PluginError as exc:
            if "refused the question" in str(exc) and not self._sign_query:
                raise PluginError(f"{exc}; if the server answers only signed questions, set "
                                  f"dns_rfc2136_sign_query = true in "
                                  f"{self._credentials.path}") from None
            raise

    def lookup_signer(self) -> Signer | None:
        return self._signer if self._sign_query else None

    def add_records(self, zone: str, records: Sequence[Record]) -> None:
        self._update(zone, "add", records)

    def delete_records(self, zone: str, records: Sequence[Record]) -> None:
        self._update(zone, "delete", records)

    def _update(self, zone: str, action: str, records: Sequence[Record]) -> None:
        import dns.exception
        import dns.query
        import dns.rcode
        import dns.tsig
        import dns.update

        signer = self._signer
        update = dns.update.UpdateMessage(zone + ".", keyring=signer.keyring,
                                          keyname=signer.keyname,
                                          keyalgorithm=signer.algorithm)
        for record in records:
            value = f'"{record.value}"'
            if action == "add":
                update.add(record.name + ".", TTL, "TXT", value)
            else:
                update.delete(record.name + ".", "TXT", value)
        what = f"{self.name}: the {action} of TXT at {records[0].name} in zone {zone} " \
               f"on {self._server}"
        try:
            reply: Any = dns.query.tcp(update, self._server.address, port=self._server.port,
                                       timeout=UPDATE_TIMEOUT)
        except dns.tsig.PeerBadKey:
            raise PluginError(f"{what} failed: the server does not know the TSIG key "
                              f"{signer.keyname} ({self._credentials.where('dns_rfc2136_name')})"
                              ) from None
        except (dns.tsig.PeerBadSignature, dns.tsig.PeerError, dns.tsig.BadSignature):
            raise PluginError(f"{what} failed: the server refused the TSIG signature; check "
                              f"dns_rfc2136_secret and dns_rfc2136_algorithm in "
                              f"{self._credentials.path}") from None
        except (OSError, EOFError, dns.exception.DNSException) as exc:
            raise PluginError(f"{what} failed: {exc or type(exc).__name__}") from None
        rcode = reply.rcode()
        if rcode != dns.rcode.NOERROR:
            hint = {dns.rcode.REFUSED: " (is the key allowed to update TXT records there?)",
                    dns.rcode.NOTAUTH: " (the server is not authoritative for the zone, or "
                                       "refused the key)",
                    dns.rcode.NOTZONE: " (the name is not in the zone)"}.get(rcode, "")
            raise PluginError(f"{what} failed: {dns.rcode.to_text(rcode)}{hint}")
