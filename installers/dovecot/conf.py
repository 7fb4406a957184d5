"""Dovecot's effective configuration, as ``doveconf`` prints it (never by reading the admin's
files ourselves, which nest ``!include`` s and override each other in order).

``doveconf -c CONF -n -P`` gives the settings that differ from the defaults, secrets shown;
plain ``doveconf -c CONF`` gives every setting, which is where listeners on default ports
are (``-n`` leaves a default ``inet_listener imap`` out). Both print blocks as
``name {`` ... ``}`` and settings as ``key = value``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from certwright.core.errors import PluginError


@dataclass
class Block:
    """One ``header { ... }`` section (the top level has header "")."""

    header: str
    settings: dict[str, str] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    def children(self, kind: str) -> list[Block]:
        """Sub-blocks whose header starts with ``kind`` (``service``, ``inet_listener``)."""
        return [b for b in self.blocks if b.header.split()[:1] == [kind]]

    def arg(self) -> str:
        """What follows the kind in the header (``imap-login`` of ``service imap-login``)."""
        parts = self.header.split(None, 1)
        return parts[1] if len(parts) > 1 else ""


def parse(text: str) -> Block:
    top = Block("")
    stack = [top]
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("{"):
            block = Block(line[:-1].strip())
            stack[-1].blocks.append(block)
            stack.append(block)
        elif line == "}":
            if len(stack) == 1:
                raise PluginError(f"doveconf printed an unbalanced '}}' at line {number}")
            stack.pop()
        else:
            key, sep, value = line.partition("=")
            if sep:
                stack[-1].settings[key.strip()] = value.strip()
    return top


def version(text: str) -> tuple[int, int]:
    """From doveconf's first line, ``# 2.3.19.1 (9b53102964): /etc/dovecot/dovecot.conf``;
    (2, 4) when the 2.4 ``dovecot_config_version`` setting is there."""
    found = re.search(r"^# (\d+)\.(\d+)", text, re.MULTILINE)
    if found:
        return int(found.group(1)), int(found.group(2))
    if re.search(r"^dovecot_config_version\s*=", text, re.MULTILINE):
        return 2, 4
    return 2, 3


def error_line(output: str) -> str:
    """The line of doveconf's output that names the file and line at fault."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if "Error in configuration file" in line or "Fatal:" in line:
            return re.sub(r"^doveconf: (Fatal|Error): ", "", line)
    return lines[-1] if lines else "(no output)"
