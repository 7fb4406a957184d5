"""The time every "is it due" decision reads.

``now`` is called, never captured at import, so a caller can replace it for one process:
the integration tests start the CLI through ``tests/servers/clocked_cli.py``, which moves
the clock forward instead of sleeping. Nothing a user sets (option, environment, file)
reaches it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

now: Callable[[], float] = time.time
