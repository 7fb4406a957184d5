"""HAProxy's own configuration test and a graceful reload that waits for the new worker.

``haproxy -c -f CONFIG [-f CONFIG…]`` is the test; its first ``[ALERT]`` names the file and
line. The reload is ``--haproxy-reload-cmd`` when given; else the systemd unit's reload when
the unit runs this HAProxy (its main pid is the master's); else SIGUSR2 to the master (master-worker
mode re-executes itself with the new configuration and starts a new worker). Then wait,
bounded, until the master has a worker it did not have before: a reload HAProxy refused
(the old worker keeps serving) is a failure, not a silent success. Before the signal, and
after it until the new worker runs, the master must be handling SIGUSR2 again (``SigCgt``
and ``SigBlk`` in ``/proc/PID/status``): while it re-executes it blocks the signal, and a
reload asked for in that moment would be late or merged with the one in progress.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
from collections.abc import Callable, Sequence

from certwright.core import runner
from certwright.core.errors import PluginError
from certwright.core.poll import poll_until
from certwright.core.runner import Completed

COMMAND_TIMEOUT = 60.0
RELOAD_TIMEOUT = 15.0
UNIT = "haproxy.service"
Runner = Callable[[Sequence[str]], Completed]


def run_command(argv: Sequence[str]) -> Completed:
    return runner.run(argv, timeout=COMMAND_TIMEOUT, what="haproxy command")


def alert(output: str) -> str:
    """The first ALERT of ``haproxy -c``, as ``file:line: message`` where it names one."""
    for line in output.splitlines():
        if "[ALERT]" not in line:
            continue
        place = re.search(r"parsing \[([^\]]+)\]\s*:\s*(.*)$", line)
        if place:
            return f"{place.group(1)}: {place.group(2).strip()}"
        return line.split(" : ", 1)[-1].strip() if " : " in line else line.strip()
    tail = [x.strip() for x in output.splitlines() if x.strip()]
    return tail[-1] if tail else "(no output)"


def config_test(binary: str, configs: Sequence[str], run: Runner = run_command) -> None:
    done = run([binary, "-c", *(a for path in configs for a in ("-f", path))])
    if done.returncode != 0:
        raise PluginError(f"haproxy configuration test failed: "
                          f"{alert(done.stdout + chr(10) + done.stderr)}")


def read_pid(pidfile: str) -> int | None:
    try:
        with open(pidfile) as handle:
            pid = int(handle.read().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def children(pid: int, proc_root: str = "/proc") -> set[int]:
    found: set[int] = set()
    for entry in os.listdir(proc_root):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc_root, entry, "stat")) as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[1] == str(pid) and fields[0] != "Z":
            found.add(int(entry))
    return found


def accepts_reload(pid: int, proc_root: str = "/proc") -> bool:
    """Whether the master would take a SIGUSR2 now as a reload of its own: it handles the
    signal (while it re-executes and loads a configuration it blocks it, or has no handler
    yet) and none is pending (a second one would merge with it)."""
    bit = 1 << (signal.SIGUSR2 - 1)
    try:
        with open(os.path.join(proc_root, str(pid), "status")) as handle:
            masks = {k: int(v, 16) for k, _, v in (line.partition(":\t") for line in handle)
                     if k in ("SigBlk", "SigCgt", "SigPnd", "ShdPnd")}
    except (OSError, ValueError):
        return False
    busy = masks.get("SigBlk", 0) | masks.get("SigPnd", 0) | masks.get("ShdPnd", 0)
    return bool(masks.get("SigCgt", 0) & bit) and not busy & bit


def systemd_main_pid(run: Runner) -> int | None:
    if shutil.which("systemctl") is None or not os.path.isdir("/run/systemd/system"):
        return None
    done = run(["systemctl", "show", "--property=MainPID", "--value", UNIT])
    value = done.stdout.strip()
    return int(value) if done.returncode == 0 and value.isdigit() and value != "0" else None


def reload(pidfile: str | None, reload_cmd: str | None, run: Runner = run_command,
           timeout: float = RELOAD_TIMEOUT) -> None:
    if reload_cmd:
        done = run(shlex.split(reload_cmd))
        if done.returncode != 0:
            raise PluginError(f"--haproxy-reload-cmd {reload_cmd!r} failed (exit "
                              f"{done.returncode}): {done.last_error_line()}")
        return
    master = read_pid(pidfile) if pidfile else None
    unit_pid = systemd_main_pid(run)
    if master is None and unit_pid is None:
        where = f"its pidfile {pidfile} names no running process" if pidfile else \
            "there is no 'pidfile' in its global section"
        raise PluginError(f"can't reload HAProxy: {where}, and no systemd unit runs it "
                          "(give --haproxy-reload-cmd)")
    pid = master if master is not None else unit_pid
    if pid is None:  # (excluded above; for the type checker)
        return
    ready = poll_until(lambda: True if accepts_reload(pid) else None, timeout=timeout,
                       first=0.01, maximum=0.1)
    if ready is None:
        raise PluginError(f"HAProxy (master pid {pid}) is still loading a configuration "
                          f"after {timeout:.0f} s; see its log")
    before = children(pid)
    if unit_pid is not None and unit_pid == pid:
        done = run(["systemctl", "reload", UNIT])
        if done.returncode != 0:
            raise PluginError(f"systemctl reload {UNIT} failed: {done.last_error_line()}")
    else:
        os.kill(pid, signal.SIGUSR2)
    if not poll_until(lambda: True if children(pid) - before and accepts_reload(pid) else None,
                      timeout=timeout, first=0.02, maximum=0.2):
        raise PluginError(f"HAProxy (master pid {pid}) started no new worker within "
                          f"{timeout:.0f} s of the reload; see its log")
