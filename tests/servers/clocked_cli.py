"""Runs the certwright CLI with its clock moved forward, instead of sleeping in a test.

    python clocked_cli.py SECONDS ARG...

Only for tests: it replaces :data:`certwright.core.clock.now` in this one process, the
seam every "is it due" decision reads; the CA (Pebble) keeps real time. Nothing in the
installed tool reads an option or a variable for this.
"""

from __future__ import annotations

import sys
import time


def main() -> int:
    offset = float(sys.argv[1])
    from certwright.core import clock
    from certwright.core.cli import main as cli_main

    clock.now = lambda: time.time() + offset
    return cli_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
