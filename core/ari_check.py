"""Renewal windows from the CA (RFC 9773, ARI) for `renew`, asked only when needed.

The moment chosen in a window is kept in the lineage's renewal conf (with the serial it is
about) until the CA's Retry-After; whether a CA offers ARI at all is kept in the lineage
cache for a day (an answer, never a failure to read the directory). Any failure falls back
to the certificate's lifetime.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from certwright.core.errors import CertwrightError
from certwright.core.lineage_cache import LineageCache
from certwright.core.settings import Settings
from certwright.core.storage.lineage import Lineage

log = logging.getLogger(__name__)

DIRECTORY_TTL = 86400.0


class AriCheck:
    """Asks the CA's ``renewalInfo`` (RFC 9773); any failure falls back to the lifetime.

    Whether a CA offers ``renewalInfo`` is remembered for a day in the validity cache, so
    an idle run against a CA without ARI makes no request at all.
    """

    def __init__(self, config: Settings, cache: LineageCache) -> None:
        self.config = config
        self.cache = cache
        self._directories: dict[str, Any] = {}

    def offers_ari(self, server: str, now: float) -> bool:
        known: dict[str, Any] = self.cache.data.setdefault("_directories", {})
        entry = known.get(server)
        if (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int | float)
                and now - entry[0] < DIRECTORY_TTL):
            return bool(entry[1])
        transport = self.transport(server)
        if transport is None:  # unreachable now: "no ARI" for this run only, not remembered
            return False
        offers = bool(transport.directory.renewal_info)
        known[server] = [now, offers]
        self.cache.dirty = True
        return offers

    def transport(self, server: str) -> Any:
        if server not in self._directories:
            from certwright.core import session

            try:
                self._directories[server] = session.transport(self.config, server)
                _ = self._directories[server].directory
            except Exception as exc:
                log.warning("ARI: could not read %s: %s", server, exc)
                self._directories[server] = None
        return self._directories[server]

    def renewal_time(self, lin: Lineage, now: float, serial: str = "") -> float | None:
        """The moment chosen in the CA's window; asked again only after Retry-After.
        The answer is stored with the serial it is about (a renewed certificate has a
        window of its own); a section Certbot wrote has only the retry time."""
        server = str(lin.params.get("server") or "")
        if not server or server == "None":
            return None
        section = lin.conf.extra.get("acme_renewal_info")
        section = section if isinstance(section, dict) else {}
        stored_serial = section.get("ari_serial")
        if stored_serial is None or stored_serial == serial:
            retry = _timestamp(section.get("ari_retry_after"))
            if retry is not None and retry > now:
                return _timestamp(section.get("ari_renewal_time"))
        if not self.offers_ari(server, now):
            return None
        transport = self.transport(server)
        from certwright.core import ari

        try:
            info = ari.fetch(transport, transport.directory.renewal_info, lin.certificate)
            retry_after = info.retry_after or 6 * 3600
            moment: float | None = info.choose_moment().timestamp()
        except Exception as exc:  # never fatal
            log.warning("ARI check for %s failed: %s", lin.name, exc)
            retry_after, moment = 6 * 3600, None
        _store_ari(lin, now + retry_after, moment, serial)
        return moment


def _timestamp(text: object) -> float | None:
    try:
        return datetime.datetime.fromisoformat(str(text)).timestamp() if text else None
    except ValueError:
        return None


def _iso(when: float) -> str:
    return datetime.datetime.fromtimestamp(when).isoformat(timespec="seconds")  # naive local,


def _store_ari(lin: Lineage, retry: float, moment: float | None, serial: str) -> None:
    from certwright.core.storage.renewal_conf import write_renewal_conf

    section = {"ari_retry_after": _iso(retry)}  # as Certbot writes it (it ignores the rest)
    if serial:
        section["ari_serial"] = serial
        if moment is not None:
            section["ari_renewal_time"] = _iso(moment)
    lin.conf.extra["acme_renewal_info"] = section
    try:
        write_renewal_conf(lin.conf)
    except CertwrightError as exc:
        log.warning("could not store the ARI retry time for %s: %s", lin.name, exc)
