"""The installer's options as the planners see them (paths resolved against the tree)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from certwright.installers.apache.layouts import Layout

OPTIONS_NAME = "options-ssl-apache.conf"


@dataclass(frozen=True)
class ApacheOptions:
    server_root: str
    layout: Layout
    vhost_root: str | None = None
    le_vhost_ext: str = "-le-ssl.conf"
    handle_modules: bool = True
    handle_sites: bool = True

    def path(self, relative: str | None) -> str | None:
        return None if relative is None else os.path.join(self.server_root, relative)

    @property
    def own_dir(self) -> str:
        return os.path.join(self.server_root, "certwright")

    @property
    def options_file(self) -> str:
        return os.path.join(self.own_dir, OPTIONS_NAME)
