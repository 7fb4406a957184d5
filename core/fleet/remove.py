"""Taking a removed domain's lineage away: out of its servers first, revoked if asked,
then deleted.

Order matters, each step only once the one before it succeeded (a failure keeps the
lineage, and the next run tries again):

1. a lineage served through an installer is taken out of that server's configuration
   (the installer's own server block removed, config test, reload); when a file that is
   not certwright's still names the certificate the lineage is kept (deleting it would
   make that server fail its next reload) and the error names the file and line;
2. ``--revoke-removed``: the certificate is revoked with its own key (RFC 8555 §7.6, no
   account needed), reason cessationOfOperation; an expired one is not revoked;
3. the lineage is deleted, and what the work dir kept for it (an install or hooks still
   owed, the due-date cache entry) forgotten, as `certwright delete` does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import cast

from certwright.core import clock, lineage_cache, pending_hooks
from certwright.core.errors import CertwrightError
from certwright.core.settings import Source, from_values
from certwright.core.storage import store
from certwright.core.storage.lineage import Lineage
from certwright.core.verbs import redeploy

log = logging.getLogger(__name__)
CESSATION_OF_OPERATION = 5  # RFC 5280 §5.3.1 CRLReason
Revoke = Callable[[Lineage], None]


class StillServed(CertwrightError):
    """A server's configuration outside certwright's own files names the certificate."""


def retire(config_dir: Path, work_dir: Path, name: str, revoke: Revoke | None) -> str:
    """Remove the lineage ``name`` (nothing when there is none); what was done, for the
    report ("" when there was nothing to delete)."""
    lineage = store.find_lineage(config_dir, name)
    if lineage is None:
        return ""
    unserve(config_dir, work_dir, lineage)
    done = "deleted"
    if revoke is not None:
        if lineage.error is None and lineage.not_after.timestamp() > clock.now():
            revoke(lineage)
            done = "revoked and deleted"
        else:
            done = "deleted (expired or unreadable: not revoked)"
    store.delete_lineage(config_dir, lineage.name)
    redeploy.unmark(work_dir, lineage.name)  # what `delete` leaves behind: nothing
    pending_hooks.unmark(work_dir, lineage.name)
    lineage_cache.forget(work_dir, lineage)
    return done


def unserve(config_dir: Path, work_dir: Path, lineage: Lineage) -> None:
    """Take the lineage out of the servers its renewal conf names; StillServed when one
    still uses it afterwards."""
    from certwright.core.deploy import apply_plan
    from certwright.core.interfaces import Installer
    from certwright.core.verbs.manage import _installers_of

    if lineage.error or not lineage.conf.params.get("installer"):
        return
    values = {"config_dir": str(config_dir), "work_dir": str(work_dir),
              "logs_dir": str(work_dir / "logs"), "noninteractive": True, "verb": "fleet"}
    config = from_values(values, dict.fromkeys(values, Source.CALLER))
    for installer in _installers_of(config, lineage):
        server = cast("Installer", installer)
        plan = installer.plan_forget(lineage.name, lineage.names)
        if not plan.empty:
            apply_plan(server, plan, work_dir=work_dir, say=lambda text: log.info("%s", text))
        found = installer.references(f"{lineage.live_dir}/")
        if found:
            more = f" and {len(found) - 3} more" if len(found) > 3 else ""
            raise StillServed(
                f"{server.name} still uses the certificate at {', '.join(found[:3])}{more}; "
                "the lineage is kept until that configuration no longer names it")
