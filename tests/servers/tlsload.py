"""A steady stream of new TLS connections, one ``GET /`` each, for hot-swap tests.

``python tlsload.py PORT STOP_FILE NAME [NAME...]`` runs ``THREADS`` clients (4, or
``$TLSLOAD_THREADS``) on 127.0.0.1
until ``STOP_FILE`` exists (at most ``MAX_SECONDS``), each opening a new connection per
request with the next name as SNI (no certificate check: the serial served is recorded).
It writes ``STOP_FILE.ready`` after the first good answer, then prints a JSON summary (ok,
failed, the first errors, serials seen per name, the time each serial was last seen) and
exits 0 only when nothing failed.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import sys
import threading
import time
from pathlib import Path

from cryptography import x509

THREADS = int(os.environ.get("TLSLOAD_THREADS", "4"))
MAX_SECONDS = 60.0


def one(port: int, name: str) -> int:
    ctx = ssl._create_unverified_context()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=name) as tls:
        der = tls.getpeercert(binary_form=True)
        tls.sendall(f"GET / HTTP/1.0\r\nHost: {name}\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    status = data.split(b" ", 2)[1] if data.startswith(b"HTTP/") else b"?"
    if status != b"200":
        raise OSError(f"status {status.decode(errors='replace')}")
    if der is None:
        raise OSError("no certificate")
    return int(x509.load_der_x509_certificate(der).serial_number)


def main() -> int:
    port, stop, names = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    ready = stop.with_name(stop.name + ".ready")
    lock = threading.Lock()
    state: dict[str, object] = {"ok": 0, "failed": 0, "errors": []}
    seen: dict[str, dict[str, float]] = {n: {} for n in names}
    started = time.monotonic()

    def worker(index: int) -> None:
        count = index
        while not stop.exists() and time.monotonic() - started < MAX_SECONDS:
            name = names[count % len(names)]
            count += 1
            try:
                serial = one(port, name)
            except (OSError, ssl.SSLError) as exc:
                with lock:
                    state["failed"] = int(str(state["failed"])) + 1
                    errors = state["errors"]
                    if isinstance(errors, list) and len(errors) < 5:
                        errors.append(f"{name}: {exc}")
                continue
            with lock:
                state["ok"] = int(str(state["ok"])) + 1
                seen[name][f"{serial:x}"] = time.monotonic() - started
                if not ready.exists():
                    ready.write_text("ready\n")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({**state, "seen": seen, "seconds": time.monotonic() - started}))
    return 0 if state["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
