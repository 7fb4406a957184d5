"""HAProxy's runtime API (the admin-level ``stats socket``): swapping certificates live.

One command per connection (HAProxy answers and closes). A certificate swap is a
transaction: ``set ssl cert`` → check the staged serial → ``commit ssl cert``, with ``abort``
on any error. HAProxy 2.6 keeps one transaction per process and silently puts a second
``set`` into the open one (``shared/notes/haproxy-runtime.md``), so swaps take turns under a
lock (threads of this process and other processes, through a lock file), a stale
transaction is aborted first, and every reply must name the path it was about.

The files are written first (by the transaction of the deploy): the runtime state is only a
faster way to what a reload would load, and a restart keeps it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from certwright.core.errors import PluginError

TIMEOUT = 10.0
_THREAD_LOCK = threading.Lock()


class RuntimeApiError(PluginError):
    """The runtime API refused or failed a step (the transaction was aborted)."""


@dataclass(frozen=True)
class RuntimeApi:
    socket_path: str
    timeout: float = TIMEOUT

    def command(self, line: str, payload: str | None = None) -> str:
        """Send one command (with a ``<<`` payload when given) and return the reply."""
        data = line
        if payload is not None:
            body = "\n".join(x for x in payload.splitlines() if x.strip())
            data += " <<\n" + body + "\n"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(self.timeout)
                conn.connect(self.socket_path)
                conn.sendall((data + "\n").encode())
                chunks = []
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise PluginError(f"HAProxy runtime API {self.socket_path}: "
                              f"{exc.strerror or exc}") from None
        return b"".join(chunks).decode(errors="replace").strip()

    def certificates(self) -> tuple[set[str], set[str]]:
        """(paths HAProxy holds, paths with an open transaction)."""
        held: set[str] = set()
        open_: set[str] = set()
        section = ""
        for line in self.command("show ssl cert").splitlines():
            if line.startswith("#"):
                section = line[1:].strip()
                continue
            if not line.strip():
                continue
            if section == "transaction":
                open_.add(line.strip().lstrip("*"))
            else:
                held.add(line.strip())
        return held, open_

    def crt_lists(self) -> set[str]:
        return {x.strip() for x in self.command("show ssl crt-list").splitlines()
                if x.strip() and not x.startswith("#")}

    def serial(self, name: str) -> str | None:
        """The serial (hex) HAProxy shows for ``name`` (a path; ``*path`` for the one
        staged in a transaction), if any."""
        for line in self.command(f"show ssl cert {name}").splitlines():
            if line.startswith("Serial:"):
                value = line.split(":", 1)[1].strip()
                return value if value and all(c in "0123456789abcdefABCDEF" for c in value) \
                    else None
        return None

    def staged_serial(self, path: str) -> str | None:
        return self.serial(f"*{path}")


def check_socket(path: str) -> RuntimeApi:
    """The API at ``path`` if it answers at admin level; PluginError naming it otherwise."""
    if not os.path.exists(path):
        raise PluginError(f"--haproxy-socket {path}: no such socket")
    api = RuntimeApi(path)
    try:
        reply = api.command("show cli level")
    except PluginError as exc:
        raise PluginError(f"--haproxy-socket {path}: HAProxy does not answer there "
                          f"({exc})") from None
    level = reply.splitlines()[0].strip() if reply else ""
    if level != "admin":
        raise PluginError(f"--haproxy-socket {path}: the socket is at level "
                          f"{level or 'unknown'!r}, and swapping certificates needs "
                          "'level admin' on its 'stats socket' line")
    return api


@contextlib.contextmanager
def turn(lock_path: str) -> Iterator[None]:
    """One runtime transaction at a time: in this process and across processes."""
    with _THREAD_LOCK:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _expect(reply: str, *needles: str, path: str, step: str) -> None:
    if path not in reply or not all(n in reply for n in needles):
        raise RuntimeApiError(f"HAProxy runtime API: {step} {path}: "
                              f"{' | '.join(reply.splitlines()) or '(no reply)'}")


def swap(api: RuntimeApi, path: str, pem: str, serial: int, *, new: bool = False) -> None:
    """Load ``pem`` (chain and key) into HAProxy as ``path`` and commit it; abort and raise
    RuntimeApiError on any error (HAProxy keeps serving what it had)."""
    _held, open_ = api.certificates()
    for stale in open_:
        api.command(f"abort ssl cert {stale}")
    if new:
        reply = api.command(f"new ssl cert {path}")
        _expect(reply, "New empty certificate store", path=path, step="new ssl cert")
    try:
        reply = api.command(f"set ssl cert {path}", pem)
        _expect(reply, "Transaction", path=path, step="set ssl cert")
        staged = api.staged_serial(path)
        if staged is None or int(staged, 16) != serial:
            raise RuntimeApiError(f"HAProxy runtime API: the transaction for {path} holds "
                                  f"serial {staged}, not {serial:X}")
        reply = api.command(f"commit ssl cert {path}")
        _expect(reply, "Success!", path=path, step="commit ssl cert")
    except BaseException:
        with contextlib.suppress(PluginError):
            api.command(f"abort ssl cert {path}")
        if new:
            with contextlib.suppress(PluginError):
                api.command(f"del ssl cert {path}")
        raise


def add_to_list(api: RuntimeApi, crt_list: str, line: str, path: str) -> None:
    reply = api.command(f"add ssl crt-list {crt_list}", line)
    _expect(reply, "Success!", path=path, step=f"add ssl crt-list {crt_list}")


def swap_all(api: RuntimeApi, lock_path: str, items: Sequence[tuple[str, str, int]],
             crt_list: str, lines: dict[str, str]) -> None:
    """Swap each (path, pem, serial); a path HAProxy does not hold yet is created and added
    to ``crt_list`` with its line from ``lines``."""
    with turn(lock_path):
        held, _ = api.certificates()
        if any(path not in held for path, _, _ in items) and crt_list not in api.crt_lists():
            raise RuntimeApiError(f"HAProxy does not use {crt_list} yet (a reload loads it)")
        for path, pem, serial in items:
            new = path not in held
            swap(api, path, pem, serial, new=new)
            if new:
                try:
                    add_to_list(api, crt_list, lines[path], path)
                except PluginError:
                    with contextlib.suppress(PluginError):
                        api.command(f"del ssl cert {path}")
                    raise
