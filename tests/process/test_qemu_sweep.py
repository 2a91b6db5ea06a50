"""The sweep of run directories left by a lab that was killed outright (no QEMU needed)."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab.guest import qemu


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


def test_a_run_directory_is_never_swept_while_it_is_made():
    """Another lab sweeps without pause while this one makes 300 run directories:
    each appears with its owner file already inside, so none is taken for stale."""
    sweeper = subprocess.Popen([sys.executable, "-c",
                                "from lab.guest import qemu\nwhile True: qemu.sweep_stale()"])
    made = []
    try:
        time.sleep(0.3)                    # the sweeper is under way
        for _ in range(300):
            made.append(qemu.make_rundir())
        assert sweeper.poll() is None
        assert all((d / "owner.pid").read_text() == str(os.getpid()) for d in made)
    finally:
        sweeper.kill()
        sweeper.wait()
        for d in made:
            shutil.rmtree(d, ignore_errors=True)


def test_a_directory_half_made_by_a_dead_lab_is_swept_a_fresh_one_is_not(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = Path(tempfile.mkdtemp(prefix=qemu.NEW_PREFIX))
    (orphan / "owner.pid").write_text(str(dead.pid))
    fresh = Path(tempfile.mkdtemp(prefix=qemu.NEW_PREFIX))   # its maker writes the owner next
    try:
        qemu.sweep_stale()
        assert not orphan.exists() and fresh.exists()
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
