"""File modes for trees that web server workers must read.

Debian's nginx and Apache workers run as www-data. A challenge or web root below a
`mktemp -d` directory (mode 0700) answers 403, so test trees must be world-traversable.
"""

from __future__ import annotations

import stat
from pathlib import Path


def open_up(path: Path, top: Path) -> None:
    """Add r-x for group and others on `path` and every parent up to and including `top`.

    Only directories the caller created belong between `path` and `top`; nothing above
    `top` is touched.
    """
    path, top = path.resolve(), top.resolve()
    if path != top and top not in path.parents:
        raise ValueError(f"{top} is not an ancestor of {path}")
    current = path
    while True:
        mode = stat.S_IMODE(current.stat().st_mode)
        current.chmod(mode | 0o055 | (0o011 if current.is_dir() else 0))
        if current == top:
            return
        current = current.parent


def blocking_ancestor(path: Path) -> Path | None:
    """The first parent of `path` that others cannot traverse (no o+x), if any."""
    for parent in path.resolve().parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            return parent
    return None
