"""The core's line-anchored text edits on configs that are not nginx's (haproxy.cfg,
Postfix's main.cf): everything not edited stays byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from certwright.core.errors import PluginError
from certwright.core.textedit import (
    Edit,
    TextEdits,
    lines_after,
    lines_before,
    managed_change,
    managed_text,
    read_file,
    replace_keeping_indent,
)

HAPROXY = ("global\r\n\tlog stdout local0  # keep\r\n\r\n"
           "frontend https\r\n\tbind :443 ssl crt /old.pem\r\n\tdefault_backend web\r\n")


def test_insert_after_a_line_keeps_crlf_tabs_and_the_comment() -> None:
    at = HAPROXY.index("local0") + len("local0")
    edits = TextEdits("haproxy.cfg", HAPROXY)
    edits.add(lines_after(HAPROXY, at, ["tune.ssl.default-dh-param 2048"], "\t"))
    edits.add(lines_after(HAPROXY, at, ["tune.ssl.default-dh-param 2048"], "\t"))  # once
    assert edits.result() == HAPROXY.replace(
        "# keep\r\n", "# keep\r\n\ttune.ssl.default-dh-param 2048\r\n")


def test_replace_a_line_range_keeping_indentation() -> None:
    start = HAPROXY.index("bind")
    end = HAPROXY.index("\r\n", start)
    edit = replace_keeping_indent(HAPROXY, start, end,
                                  ["bind :443 ssl crt /new.pem", "bind :::443 ssl crt /new.pem"])
    edits = TextEdits("haproxy.cfg", HAPROXY)
    edits.add(edit)
    assert edits.result() == HAPROXY.replace(
        "bind :443 ssl crt /old.pem",
        "bind :443 ssl crt /new.pem\r\n\tbind :::443 ssl crt /new.pem")


def test_lines_before_the_end_of_a_section_and_overlaps_are_refused() -> None:
    main_cf = "smtpd_tls_cert_file = /a\nsmtpd_tls_key_file = /b\n"
    end = len(main_cf)
    edits = TextEdits("main.cf", main_cf)
    edits.add(lines_before(main_cf, end, ["smtpd_tls_security_level = may"], ""))
    assert edits.result() == main_cf + "smtpd_tls_security_level = may\n"
    edits.add(Edit(0, 10, "x"))
    edits.add(Edit(5, 12, "y"))
    with pytest.raises(PluginError, match=r"main\.cf: two planned edits overlap"):
        edits.result()


def test_managed_file_changes_only_when_its_bytes_differ(tmp_path: Path) -> None:
    path = str(tmp_path / "certwright.cfg")
    text = managed_text("Managed by certwright.\nEdits are kept.", "ssl-min-ver TLSv1.2\n")
    assert text == "# Managed by certwright.\n# Edits are kept.\nssl-min-ver TLSv1.2\n"
    created = managed_change(path, text, mode=0o600)
    assert created is not None and created.expected_sha256 is None and created.mode == 0o600
    Path(path).write_text(text)
    assert managed_change(path, text) is None
    removed = managed_change(path, None)
    assert removed is not None and removed.new_content is None
    assert removed.expected_sha256 is not None
    assert read_file(str(tmp_path / "missing")) is None
