"""Throwaway Postfix and Dovecot instances on loopback, run as root from a temp tree.

Facts behind the layout are in ``shared/notes/mail-instances.md``: the spool and data dirs sit
outside the config dir, every parent must be searchable by the postfix user (so the root is
made 0755 under the system temp dir, not pytest's 0700 tmp_path), ``-c`` always gets an
absolute path, and ``dovecot`` must not inherit pipes (its daemon keeps them open).

Both servers start with the key and certificate files they are given (``key``, ``fullchain``);
tests replace those files and call ``reload()``. Both are :class:`TreeServer` s (daemons:
they ``launch`` and ``halt`` through their own control commands).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from tests.servers.ports import free_port, log_tail
from tests.servers.tree_server import TreeServer, new_root

POSTFIX_BINARY = "postfix"
DOVECOT_BINARY = "dovecot"

_MASTER_CF_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


# Both servers may share one root: each one's snapshot leaves out the other's scratch too
# (Dovecot's run/ holds sockets, which can't be read)
_DOVECOT_SCRATCH = ("dovecot/run", "dovecot/state", "dovecot/home", "dovecot/dovecot.log")


def mail_root() -> Path:
    """A fresh 0755 directory under the system temp dir (postfix must traverse it)."""
    return new_root("certwright-mail-")


def _run(argv: list[str], what: str, log: Path | None = None) -> None:
    with tempfile.TemporaryFile() as out:  # never a pipe: a daemon may keep it open
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                              timeout=60, check=False)
        out.seek(0)
        said = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{what}: {' '.join(argv)} exited {proc.returncode}\n{said}\n"
                           f"--- {log} ---\n{log_tail(log)}")


@dataclass(eq=False)
class Postfix(TreeServer):
    """``smtp`` listens with STARTTLS, ``smtps`` with implicit TLS (wrapper mode), and
    ``plain`` without TLS at all."""

    name: ClassVar[str] = "postfix"

    root: Path
    key: Path
    fullchain: Path
    smtp: int = field(default_factory=free_port)
    smtps: int = field(default_factory=free_port)
    plain: int = field(default_factory=free_port)
    scratch = ("postfix/spool", "postfix/data", "postfix/maillog", *_DOVECOT_SCRATCH)

    def __post_init__(self) -> None:
        TreeServer.__init__(self, self.root)

    @property
    def etc(self) -> Path:
        return self.root / "postfix" / "etc"

    @property
    def maillog(self) -> Path:
        return self.root / "postfix" / "maillog"

    @property
    def log(self) -> Path:
        return self.maillog

    def ports(self) -> tuple[int, ...]:
        return (self.smtp, self.smtps, self.plain)

    def write_config(self) -> None:
        base = self.root / "postfix"
        self.etc.mkdir(parents=True, mode=0o755, exist_ok=True)
        (base / "spool").mkdir(mode=0o755, exist_ok=True)
        (self.etc / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {base}/spool
data_directory = {base}/data
syslog_name = postfix-certwright-test
maillog_file = {self.maillog}
maillog_file_prefixes = {self.root}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mail.example.org
mydestination =
relay_domains =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
service_throttle_time = 2s
smtpd_tls_security_level = may
smtpd_tls_chain_files = {self.key}, {self.fullchain}
""")
        (self.etc / "master.cf").write_text(f"""\
127.0.0.1:{self.smtp} inet n - n - - smtpd
127.0.0.1:{self.smtps} inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
127.0.0.1:{self.plain} inet n - n - - smtpd
  -o smtpd_tls_security_level=none
{_MASTER_CF_SERVICES}""")

    def launch(self) -> None:
        self.write_config()
        postfix = shutil.which(POSTFIX_BINARY) or POSTFIX_BINARY
        _run([postfix, "-c", str(self.etc), "check"], "postfix check", self.maillog)
        _run([postfix, "-c", str(self.etc), "start"], "postfix start", self.maillog)

    def reload(self) -> None:
        _run([POSTFIX_BINARY, "-c", str(self.etc), "reload"], "postfix reload", self.maillog)

    def halt(self) -> None:
        subprocess.run([POSTFIX_BINARY, "-c", str(self.etc), "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
                       check=False)  # exits 1 when it was never started: fine
        _end_master(self.root / "postfix" / "spool" / "pid" / "master.pid")


@dataclass(eq=False)
class Dovecot(TreeServer):
    """IMAP (STARTTLS and implicit), POP3 (STLS and implicit) and ManageSieve (STARTTLS)."""

    name: ClassVar[str] = "dovecot"

    root: Path
    key: Path
    fullchain: Path
    imap: int = field(default_factory=free_port)
    imaps: int = field(default_factory=free_port)
    pop3: int = field(default_factory=free_port)
    pop3s: int = field(default_factory=free_port)
    sieve: int = field(default_factory=free_port)
    scratch = (*_DOVECOT_SCRATCH, "postfix/spool", "postfix/data", "postfix/maillog")

    def __post_init__(self) -> None:
        TreeServer.__init__(self, self.root)

    def ports(self) -> tuple[int, ...]:
        return (self.imap, self.imaps, self.pop3, self.pop3s, self.sieve)

    @property
    def conf(self) -> Path:
        return self.root / "dovecot" / "dovecot.conf"

    @property
    def log(self) -> Path:
        return self.root / "dovecot" / "dovecot.log"

    def write_config(self) -> None:
        base = self.root / "dovecot"
        base.mkdir(parents=True, mode=0o755, exist_ok=True)
        self.conf.write_text(f"""\
base_dir = {base}/run
state_dir = {base}/state
instance_name = dovecot-certwright-test
log_path = {self.log}
protocols = imap pop3 sieve
listen = 127.0.0.1
ssl = yes
ssl_cert = <{self.fullchain}
ssl_key = <{self.key}
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={base}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {self.imap}
  }}
  inet_listener imaps {{
    port = {self.imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {self.pop3}
  }}
  inet_listener pop3s {{
    port = {self.pop3s}
    ssl = yes
  }}
}}
service managesieve-login {{
  inet_listener sieve {{
    port = {self.sieve}
  }}
}}
""")

    def launch(self) -> None:
        self.write_config()
        dovecot = shutil.which(DOVECOT_BINARY) or DOVECOT_BINARY
        _run([dovecot, "-c", str(self.conf)], "dovecot start", self.log)

    def reload(self) -> None:
        _run(["doveadm", "-c", str(self.conf), "reload"], "doveadm reload", self.log)

    def halt(self) -> None:
        pid_file = self.root / "dovecot" / "run" / "master.pid"
        if pid_file.exists():
            subprocess.run(["doveadm", "-c", str(self.conf), "stop"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
                           check=False)
            _end_master(pid_file)


def _end_master(pid_file: Path) -> None:
    """After the control command: a master it could not stop (it reads the configuration
    first, and a test may have broken that on purpose) is ended by the pid in its file, so
    no server outlives its test."""
    import signal
    import time

    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while pid_file.exists() and time.monotonic() < deadline:  # the master removes it
        time.sleep(0.05)


def root_or_fail() -> None:
    """Postfix and Dovecot masters bind and setuid: these fixtures need root."""
    if os.geteuid() != 0:
        raise RuntimeError("the mail server fixtures need root")


def verified_certificate(port: int, server_name: str, protocol: str, cadata: bytes,
                         host: str = "127.0.0.1", timeout: float = 5.0) -> bytes:
    """DER of the leaf served over ``protocol`` (``smtp-starttls``, ``smtps``,
    ``imap-starttls``, ``imaps``, ``pop3s``), after the chain and ``server_name`` were
    verified against ``cadata`` (PEM roots) the way a mail client does: ``ssl.SSLError``
    when they fail. The STARTTLS dialogs are the standard library's own clients."""
    import imaplib
    import smtplib
    import socket
    import ssl

    ctx = ssl.create_default_context(cadata=cadata.decode())
    if protocol == "smtp-starttls":
        with smtplib.SMTP(host, port, timeout=timeout) as smtp:
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise AssertionError(f"no STARTTLS offered on {port}")
            code, said = smtp.docmd("STARTTLS")
            if code != 220:
                raise AssertionError(f"STARTTLS on {port}: {code} {said!r}")
            tls = ctx.wrap_socket(smtp.sock, server_hostname=server_name)
            smtp.sock, smtp.file = tls, None
            der = tls.getpeercert(binary_form=True)
            smtp.ehlo()
    elif protocol == "imap-starttls":
        imap = imaplib.IMAP4(host, port, timeout=timeout)
        imap.host = server_name  # imaplib sends .host as SNI and checks the name on it
        imap.starttls(ssl_context=ctx)
        der = imap.sock.getpeercert(binary_form=True)  # type: ignore[attr-defined]
        imap.logout()
    elif protocol in ("smtps", "imaps", "pop3s"):
        with socket.create_connection((host, port), timeout=timeout) as sock, \
                ctx.wrap_socket(sock, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
    else:
        raise ValueError(f"no verified client for {protocol!r}")
    assert der is not None
    return der
