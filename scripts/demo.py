"""`make demo`: a local Pebble CA and a throwaway nginx on loopback. certwright obtains a
certificate (nginx answers the challenge), installs it into nginx with an http->https
redirect, and we show what nginx now serves.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography import x509  # noqa: E402

from tests.servers.nginx_tree import NginxTree  # noqa: E402
from tests.servers.pebble import Pebble  # noqa: E402

NAMES = ["demo.example.org", "www.demo.example.org"]
SITE = """\
# the demo site, as an admin would have written it
server {{
    listen 127.0.0.1:{http};
    server_name demo.example.org www.demo.example.org;
    root {www};
}}
"""


def main() -> int:
    base = Path(tempfile.mkdtemp(prefix="certwright-demo-"))
    base.chmod(0o755)  # nginx workers must reach the web root
    certwright = str(Path(sys.executable).parent / "certwright")
    store = ["--config-dir", str(base / "config"), "--work-dir", str(base / "work"),
             "--logs-dir", str(base / "logs")]
    with Pebble(base / "pebble") as ca:
        tree = NginxTree(base / "nginx", http_port=ca.http_port)  # Pebble's http-01 port
        site = tree.site("demo", SITE)
        (tree.www / "index.html").write_text("served by nginx, certificate by certwright\n")
        with tree:
            print(f"Pebble CA:  {ca.directory_url}")
            print(f"nginx:      http://127.0.0.1:{tree.http_port}/ (config {tree.main})\n")
            argv = [certwright, "run", "--nginx", *tree.args(),
                    *[arg for n in NAMES for arg in ("-d", n)], "--redirect",
                    "--server", ca.directory_url, "-m", "admin@example.org", "--agree-tos",
                    "-n", *store]
            print("$ certwright " + " ".join(argv[1:]))
            subprocess.run(argv, env=ca.env(os.environ), check=True)
            print(f"\n--- {site} now reads:\n{site.read_text()}---")
            print(f"\nnginx serves https://127.0.0.1:{tree.https_port}/:")
            show_served(tree.https_port, ca.root_pem())
            print(f"  http://{NAMES[0]}/page -> {redirect_of(tree.http_port)}")
            print()
            subprocess.run([certwright, "certificates", *store], env=ca.env(os.environ),
                           check=True)
    print(f"\nFiles kept in {base}")
    return 0


def show_served(port: int, root_pem: bytes) -> None:
    """Handshake with SNI, verify against Pebble's root and print the served certificate."""
    ctx = ssl.create_default_context(cadata=root_pem.decode())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, \
            ctx.wrap_socket(sock, server_hostname=NAMES[0]) as tls:
        der = tls.getpeercert(binary_form=True)
        version = tls.version()
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    print(f"  TLS handshake ({version}, SNI {NAMES[0]}): chain verified against Pebble's root")
    print(f"  names:   {', '.join(sans.get_values_for_type(x509.DNSName))}")
    print(f"  issuer:  {cert.issuer.rfc4514_string()}")
    print(f"  serial:  {cert.serial_number:x}")
    print(f"  expires: {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")


def redirect_of(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET /page HTTP/1.0\r\nHost: {NAMES[0]}\r\n\r\n".encode())
        head = sock.recv(4096).decode(errors="replace").split("\r\n\r\n")[0].splitlines()
    location = next((h.split(":", 1)[1].strip() for h in head
                     if h.lower().startswith("location:")), "-")
    return f"{head[0].split(' ', 1)[1]} {location}"


if __name__ == "__main__":
    sys.exit(main())
