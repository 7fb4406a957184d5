"""`make demo`: a local Pebble CA and a throwaway nginx on loopback; certwright obtains a
certificate through nginx's web root, nginx serves it over HTTPS, and we show what is served.
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

from tests.servers.nginx import Nginx  # noqa: E402
from tests.servers.pebble import Pebble  # noqa: E402

NAMES = ["demo.example.org", "www.demo.example.org"]


def main() -> int:
    base = Path(tempfile.mkdtemp(prefix="certwright-demo-"))
    base.chmod(0o755)  # nginx workers (www-data) must reach the web root
    www = base / "www"
    www.mkdir(mode=0o755)
    (www / "index.html").write_text("served by nginx, certificate by certwright\n")
    certwright = str(Path(sys.executable).parent / "certwright")
    with Pebble(base / "pebble") as ca, \
            Nginx(base / "nginx", www, http_port=ca.http_port) as web:  # Pebble's http-01 port
        print(f"Pebble CA:  {ca.directory_url}")
        print(f"nginx:      http://127.0.0.1:{web.http_port}/ (web root {www})\n")
        store = ["--config-dir", str(base / "config"), "--work-dir", str(base / "work"),
                 "--logs-dir", str(base / "logs")]
        argv = [certwright, "certonly", "--webroot", "-w", str(www),
                *[arg for n in NAMES for arg in ("-d", n)], "--server", ca.directory_url,
                "-m", "admin@example.org", "--agree-tos", "-n", *store]
        print("$ certwright " + " ".join(argv[1:]))
        subprocess.run(argv, env=ca.env(os.environ), check=True)
        live = base / "config" / "live" / NAMES[0]
        web.serve_tls(live / "fullchain.pem", live / "privkey.pem")
        print(f"\nnginx now serves https://127.0.0.1:{web.https_port}/ with that certificate.")
        show_served(web.https_port, ca.root_pem())
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


if __name__ == "__main__":
    sys.exit(main())
