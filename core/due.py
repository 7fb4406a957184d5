"""The one rule for "is this certificate due for renewal", used by `certonly`, `run` and
`renew` alike.

Without other advice a certificate is due when a third of its lifetime is left (half of it
for lifetimes under 10 days: short-lived certificates must not wait until their last days).
A ``renew_before_expiry`` in the lineage's renewal conf replaces that moment; a moment the
CA chose in its ARI window (RFC 9773) makes it due earlier. ``autorenew = False`` turns
automatic renewal off; ``--force-renewal`` and ``--dry-run`` always renew, as in Certbot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from certwright.core import clock

if TYPE_CHECKING:
    from certwright.core.ari_check import AriCheck
    from certwright.core.lineage_cache import LineageCache
    from certwright.core.storage.lineage import Lineage

SHORT_LIFETIME = 10 * 86400.0
_UNITS = {"day": 86400, "week": 7 * 86400}


def default_due_time(not_before: float, not_after: float) -> float:
    """The POSIX time at which a certificate valid over [not_before, not_after] is due
    by its lifetime alone."""
    lifetime = not_after - not_before
    return not_after - lifetime / (2 if lifetime < SHORT_LIFETIME else 3)


def renew_before_expiry(value: object) -> float | None:
    """Seconds from a ``renew_before_expiry`` value (``N day(s)`` / ``N week(s)``), None
    when it is absent or not in that form."""
    parts = str(value or "").strip().split()
    if len(parts) == 2 and parts[0].isascii() and parts[0].isdigit():
        unit = _UNITS.get(parts[1].lower().removesuffix("s"))
        if unit is not None:
            return int(parts[0]) * unit
    return None


def as_bool(value: object) -> bool:
    """configobj's as_bool, which Certbot reads renewal confs with: yes/no, on/off, 1/0."""
    return str(value).strip().lower() not in ("false", "no", "off", "0")


def due_time(not_before: float, not_after: float, before_expiry: float | None = None,
             ari_moment: float | None = None) -> float:
    """When a certificate is due: the lifetime rule, or ``not_after - before_expiry``;
    the CA's ARI moment when that is earlier."""
    due = default_due_time(not_before, not_after) if before_expiry is None \
        else not_after - before_expiry
    return due if ari_moment is None else min(due, ari_moment)


def should_renew(lin: Lineage, now: float | None = None, *, force: bool = False,
                 cache: LineageCache | None = None, ari: AriCheck | None = None) -> bool:
    """Whether ``lin`` is to be renewed at ``now`` (default: :func:`clock.now`).
    ``force``: --force-renewal or --dry-run. ``cache`` spares parsing the certificate;
    ``ari`` asks the CA for its window (and remembers its answer), None leaves ARI out."""
    if force:
        return True
    now = clock.now() if now is None else now
    if not as_bool(lin.params.get("autorenew", True)):
        return False
    if cache is not None:
        found = cache.summary(lin)
        not_before, not_after, serial = found.not_before, found.not_after, found.serial
    else:
        not_before, not_after = lin.not_before.timestamp(), lin.not_after.timestamp()
        serial = f"{lin.serial:x}"
    before = renew_before_expiry(lin.conf.extra.get("renew_before_expiry"))
    if now >= due_time(not_before, not_after, before):
        return True  # the CA is not asked (RFC 9773 §4.3: never about an expired one)
    moment = ari.renewal_time(lin, now, serial) if ari is not None else None
    return moment is not None and now >= moment
