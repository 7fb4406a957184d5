"""A small TLS server with a runtime API, run as a process by the activate() tests.

``python runtime_tls_server.py CERT_DIR PORT CONTROL_SOCKET STATE_FILE`` serves, for each
SNI name, the ``CERT_DIR/<name>.pem`` (certificate chain and key in one file, as HAProxy
wants them). SIGHUP re-reads the whole directory (a reload); a line ``set PATH`` on the
unix socket loads one file into the running server without a reload (like HAProxy's
``set ssl cert``). Every reload and activation is counted in STATE_FILE (JSON).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import sys
import threading
from pathlib import Path

from cryptography import x509


def main() -> None:
    cert_dir, port, control, state_file = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], \
        Path(sys.argv[4])
    contexts: dict[str, ssl.SSLContext] = {}
    state = {"reloads": 0, "activations": 0}
    lock = threading.Lock()

    def save() -> None:
        tmp = state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, state_file)

    def load(path: Path) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(path)
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        for name in names.value.get_values_for_type(x509.DNSName):
            contexts[name] = ctx

    def reload(*_: object) -> None:
        with lock:
            for path in sorted(cert_dir.glob("*.pem")):
                load(path)
            state["reloads"] += 1
            save()

    def pick(sslobj: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> int | None:
        found = contexts.get(name or "")
        if found is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        sslobj.context = found
        return None

    def serve_tls() -> None:
        base = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        base.sni_callback = pick  # type: ignore[assignment]
        with socket.create_server(("127.0.0.1", port)) as listener:
            while True:
                conn, _ = listener.accept()
                try:
                    with base.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(1)
                except (OSError, ssl.SSLError):
                    pass

    def serve_control() -> None:
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(control)
            listener.listen()
            while True:
                conn, _ = listener.accept()
                with conn:
                    words = conn.makefile().readline().split()
                    try:
                        with lock:
                            load(Path(words[1]))
                            state["activations"] += 1
                            save()
                        conn.sendall(b"ok\n")
                    except Exception as exc:
                        conn.sendall(f"error {exc}\n".encode())

    reload()
    state["reloads"] = 0
    save()
    signal.signal(signal.SIGHUP, reload)
    threading.Thread(target=serve_control, daemon=True).start()
    threading.Thread(target=serve_tls, daemon=True).start()
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
