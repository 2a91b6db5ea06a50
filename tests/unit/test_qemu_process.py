"""QEMU process hygiene against small real processes: launch errors and the sweep."""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import qemu
from lab.errors import InfraError


def test_a_launch_that_fails_reports_the_command_line_and_what_qemu_said(tmp_path):
    rundir = qemu.make_rundir()
    argv = ["qemu-system-x86_64", "-M", "no-such-machine", "-display", "none"]
    machine = qemu.Machine(argv, rundir, tmp_path)
    with pytest.raises(InfraError) as err:
        machine.start()
    text = str(err.value)
    assert "QEMU exited with code 1" in text
    assert "command line: qemu-system-x86_64 -M no-such-machine" in text
    assert "unsupported machine type" in text.split("QEMU said:")[1]
    machine.stop()
    assert not rundir.exists()


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


def test_the_probe_boot_can_pass_under_tcg():
    """The KVM probe's boot sector really boots (so a failing probe means KVM)."""
    ok, reason = qemu.probe_boot("tcg", "qemu64")
    assert ok, reason
    started = time.monotonic()
    ok, reason = qemu.probe_boot("tcg", "no-such-cpu")
    assert not ok and "probe boot failed" in reason
    assert time.monotonic() - started < qemu.PROBE_DEADLINE_S + 2
