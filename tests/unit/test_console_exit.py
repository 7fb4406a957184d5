"""The `certwright` command ends without the interpreter's teardown, but only after its
output is flushed and every atexit handler ran; a thread still running is waited for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import atexit, sys, threading, time
from pathlib import Path
marker = Path(sys.argv[1])
atexit.register(lambda: marker.write_text("atexit ran"))


class Teardown:  # freed by the interpreter's teardown, if there is one
    def __del__(self):
        Path(str(marker) + ".teardown").write_text("freed")


kept = Teardown()
if sys.argv[2] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.3), print("thread done"))).start()
sys.stdout.write("buffered, not flushed")
sys.argv = ["certwright", *sys.argv[3:]]
from certwright.core.cli import console
console()
"""


# (make test traces its subprocesses for coverage: a tracer keeps the usual exit)
UNTRACED = {k: v for k, v in os.environ.items() if not k.startswith("COV")}
PROFILED = {"profiled": ("-m", "cProfile", "-o", os.devnull)}


def run(tmp_path: Path, mode: str, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    here = tmp_path / str(len(list(tmp_path.iterdir())))
    here.mkdir()
    marker, script = here / "marker", here / "script.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, *PROFILED.get(mode, ()), str(script), str(marker),
                           mode, *args], capture_output=True, text=True, timeout=60,
                          env=UNTRACED)
    return done, marker


def test_output_flushed_atexit_run_and_the_exit_status_kept(tmp_path: Path) -> None:
    done, marker = run(tmp_path, "-", "--version")
    assert done.returncode == 0 and "buffered, not flushed" in done.stdout
    assert marker.read_text() == "atexit ran"
    assert not marker.with_name("marker.teardown").exists()  # no teardown: ended at once
    done, marker = run(tmp_path, "-", "no-such-verb")
    assert done.returncode == 2 and "unknown verb" in done.stderr
    assert "buffered, not flushed" in done.stdout and marker.read_text() == "atexit ran"


def test_a_thread_still_running_is_waited_for(tmp_path: Path) -> None:
    done, marker = run(tmp_path, "thread", "no-such-verb")
    assert done.returncode == 2
    assert "thread done" in done.stdout and marker.read_text() == "atexit ran"
    assert marker.with_name("marker.teardown").read_text() == "freed"  # the usual exit


FLUSH_FAILS = """
import errno, io, sys


class Full(io.StringIO):
    def flush(self):
        raise OSError(errno.ENOSPC, "No space left on device")


sys.stdout = Full()
sys.argv = ["certwright", "no-such-verb"]
from certwright.core.cli import console
console()
"""


def test_output_that_cannot_be_flushed_exits_120_as_python_does() -> None:
    done = subprocess.run([sys.executable, "-c", FLUSH_FAILS], capture_output=True,
                          text=True, timeout=60, env=UNTRACED)
    assert done.returncode == 120, done.stderr


def test_a_profiler_keeps_the_usual_exit_so_it_can_save_its_data(tmp_path: Path) -> None:
    done, marker = run(tmp_path, "profiled", "no-such-verb")  # (cProfile drops the status)
    assert "unknown verb" in done.stderr and marker.read_text() == "atexit ran"
    assert marker.with_name("marker.teardown").read_text() == "freed"
