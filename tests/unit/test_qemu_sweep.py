"""The sweep of run directories left by a lab that was killed outright (no QEMU needed)."""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from lab import qemu


def test_sweep_kills_the_qemu_of_a_dead_lab_and_removes_its_run_directory():
    rundir = qemu.make_rundir()
    # Stand-ins: a dead owner, and a live "QEMU" whose command line names the run dir.
    dead = subprocess.Popen(["true"])
    dead.wait()
    (rundir / "owner.pid").write_text(str(dead.pid))
    # (python keeps its argv; sh -c would exec sleep and lose the run dir from it)
    stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)",
                              str(rundir)], start_new_session=True)
    (rundir / "qemu.pid").write_text(str(stray.pid))
    # Popen returns mid-execve, before /proc/PID/cmdline is filled in.
    cmdline = Path(f"/proc/{stray.pid}/cmdline")
    deadline = time.monotonic() + 5
    while str(rundir).encode() not in cmdline.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert qemu.sweep_stale() >= 1
    assert stray.wait(timeout=5) == -signal.SIGKILL
    assert not rundir.exists()


def test_sweep_leaves_the_run_directories_of_a_live_lab_alone():
    rundir = qemu.make_rundir()           # owned by this (live) process
    qemu.sweep_stale()
    assert rundir.exists()
    shutil.rmtree(rundir)
