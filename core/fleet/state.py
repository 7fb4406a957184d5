"""What the fleet keeps in the store, beside the lineages (``<config-dir>/fleet/``):

- ``domains/<name>.json``: per domain its names, DN, state, last error, the number of
  failures in a row and the time of the next attempt (the growing backoff survives
  between runs), the certificate's expiry.
- ``orders/<name>.json`` (0600): an order placed at the CA and not yet stored as a
  certificate: its URL, the names and the private key of the CSR. Written before the
  order is finalized; a run after a crash resumes it instead of ordering again.

Every file is written atomically with an explicit mode.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from certwright.core.errors import StorageError
from certwright.core.storage.files import atomic_write, ensure_dir

log = logging.getLogger(__name__)
DIR_MODE = 0o755
STATE_MODE = 0o644
ORDER_MODE = 0o600
BACKOFF_BASE = 3600.0
BACKOFF_MAX = 7 * 86400.0


@dataclass
class DomainState:
    name: str
    names: list[str]
    dn: str | None = None
    customer: str | None = None
    webroot: str | None = None
    lineage: str | None = None
    state: str = "pending"
    not_after: float | None = None
    error: str | None = None
    failures: int = 0
    next_attempt: float | None = None
    last_attempt: float | None = None
    https_checked: float | None = None  # when https last did not serve the certificate
    check_after: float | None = None  # a kept lineage: when to read it again
    conf_key: list[int] | None = None  # its renewal conf then (inode, size, mtime)
    installed: str | None = None  # the installer and options it was last installed with
    refresh: bool = field(default=False, compare=False)  # changed in memory, to be saved

    def failed(self, state: str, error: str, now: float, base: float = BACKOFF_BASE,
               maximum: float = BACKOFF_MAX, wait: float | None = None) -> None:
        """One more failure: the next attempt waits base, 2×base, 4×base… (at most
        ``maximum``), or ``wait`` when the CA said how long (Retry-After)."""
        self.failures += 1
        self.state, self.error, self.last_attempt = state, _one_line(error), now
        delay = min(maximum, base * 2 ** (self.failures - 1)) if wait is None else wait
        self.next_attempt = now + delay

    def succeeded(self, not_after: float, now: float, lineage: str) -> None:
        self.state, self.error, self.failures, self.next_attempt = "valid", None, 0, None
        self.check_after = self.conf_key = None
        self.not_after, self.last_attempt, self.lineage = not_after, now, lineage


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


class FleetStore:
    def __init__(self, config_dir: Path) -> None:
        self.root = config_dir / "fleet"
        self.domains_dir = self.root / "domains"
        self.orders_dir = self.root / "orders"

    def _ensure(self, directory: Path, mode: int = DIR_MODE) -> None:
        ensure_dir(directory, mode)

    # -- domain states ---------------------------------------------------------------------
    def _state_path(self, name: str) -> Path:
        if "/" in name or name.startswith("."):
            raise StorageError(f"refusing the domain name {name!r} as a file name")
        return self.domains_dir / f"{name}.json"

    def states(self) -> dict[str, DomainState]:
        """Every domain the fleet manages; a damaged file is named and skipped (its
        lineage is then left alone)."""
        out: dict[str, DomainState] = {}
        try:
            entries = os.listdir(self.domains_dir)
        except FileNotFoundError:
            return out
        for entry in entries:
            if not entry.endswith(".json") or entry.startswith("."):
                continue
            found = self.load_state(self.domains_dir / entry)
            if found is not None:
                out[found.name] = found
        return out

    def load_state(self, path: Path) -> DomainState | None:
        try:
            data = json.loads(path.read_bytes())
            known = {f.name for f in fields(DomainState)}
            state = DomainState(**{k: v for k, v in data.items() if k in known})
            if state.name + ".json" != path.name:
                raise ValueError("the name inside does not match the file name")
            return state
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            log.warning("%s: skipped, can't be read: %s", path, exc)
            return None

    def save_state(self, state: DomainState) -> None:
        self._ensure(self.root)
        self._ensure(self.domains_dir)
        state.refresh = False
        data = json.dumps({k: v for k, v in asdict(state).items() if k != "refresh"},
                          indent=1, sort_keys=True).encode()
        atomic_write(self._state_path(state.name), data, STATE_MODE)

    def drop_state(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._state_path(name).unlink()

    # -- orders in flight ------------------------------------------------------------------
    def _order_path(self, name: str) -> Path:
        self._state_path(name)  # the same check of the name
        return self.orders_dir / f"{name}.json"

    def save_order(self, record: OrderRecord) -> None:
        self._ensure(self.root)
        self._ensure(self.orders_dir, 0o700)
        atomic_write(self._order_path(record.name), json.dumps(asdict(record)).encode(),
                     ORDER_MODE)

    def load_order(self, name: str) -> OrderRecord | None:
        path = self._order_path(name)
        try:
            data = json.loads(path.read_bytes())
            return OrderRecord(**data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            log.warning("%s: an unreadable order record, ordering anew: %s", path, exc)
            return None

    def drop_order(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._order_path(name).unlink()

    def pending_orders(self) -> set[str]:
        try:
            return {e[:-5] for e in os.listdir(self.orders_dir) if e.endswith(".json")}
        except FileNotFoundError:
            return set()


@dataclass
class OrderRecord:
    name: str
    url: str
    names: list[str]
    key_pem: str
    server: str
    account: str
    extra: dict[str, Any] = field(default_factory=dict)
