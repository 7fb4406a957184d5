"""When a certificate is due without ARI: a third of its lifetime left, or half of it for
lifetimes under 10 days (short-lived certificates must not wait until their last days)."""

from __future__ import annotations

SHORT_LIFETIME = 10 * 86400.0


def default_due_time(not_before: float, not_after: float) -> float:
    """The POSIX time at which a certificate valid over [not_before, not_after] is due."""
    lifetime = not_after - not_before
    return not_after - lifetime / (2 if lifetime < SHORT_LIFETIME else 3)
