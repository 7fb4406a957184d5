"""What the Postfix and Dovecot installers share: running their tools, and
the checks their own config tests never make (a key that matches its certificate).

Neither ``postfix check`` nor ``doveconf -n`` opens the TLS files, and both reloads return 0
with a broken TLS setup (``shared/notes/mail-instances.md``): the installers check the key
against the certificate before a reload, and the core checks by handshake after it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from certwright.core import runner
from certwright.core.errors import PluginError
from certwright.core.runner import Completed

COMMAND_TIMEOUT = 60.0

Runner = Callable[[Sequence[str]], Completed]


def run_command(argv: Sequence[str]) -> Completed:
    """Run ``argv`` (no shell) with output captured, killed after ``COMMAND_TIMEOUT`` s."""
    return runner.run(argv, timeout=COMMAND_TIMEOUT, what="mail server command")


def output_line(done: Completed, prefer: str = "") -> str:
    """The most telling line of a failed command's output: the first holding ``prefer``,
    else the last non-empty one."""
    lines = [line.strip() for line in (done.stderr + "\n" + done.stdout).splitlines()
             if line.strip()]
    for line in lines:
        if prefer and prefer in line:
            return line
    return lines[-1] if lines else "(no output)"


def log_tail(path: str | None, count: int = 3) -> str:
    """The last ``count`` lines of a server log (postfix(1) says why only there when
    its stderr is not a terminal); "" when there is none to read."""
    if not path or not os.path.isabs(path):
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - 8192))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-count:])


def key_problem(key_path: str, cert_paths: Sequence[str]) -> str | None:
    """Why the private key in ``key_path`` can't serve the first certificate found in
    ``cert_paths`` (PEM files; one file may hold the key and the chain); None when it can.
    A file that can't be read is a problem too, named by path."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    def read(path: str) -> bytes:
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise PluginError(f"{path}: can't be read: {exc.strerror or exc}") from None

    try:
        key_pem = read(key_path)
        start = key_pem.find(b"-----BEGIN")
        block_end = key_pem.find(b"-----END", start)
        end = key_pem.find(b"\n", block_end) + 1 or len(key_pem)
        if start < 0 or b"PRIVATE KEY" not in key_pem[start:start + 40]:
            return f"{key_path}: no private key in it"
        key = serialization.load_pem_private_key(key_pem[start:end], password=None)
        for path in cert_paths:
            data = read(path)
            if b"-----BEGIN CERTIFICATE-----" not in data:
                continue
            cert = x509.load_pem_x509_certificates(data[data.find(b"-----BEGIN CERTIFICATE"):])[0]
            mine = key.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
            theirs = cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            if mine != theirs:
                return f"the key {key_path} does not match the certificate in {path}"
            return None
        return f"no certificate in {', '.join(cert_paths)}"
    except PluginError as exc:
        return str(exc)
    except (ValueError, TypeError) as exc:
        return f"{key_path}: can't be read as a key and certificate: {exc}"
