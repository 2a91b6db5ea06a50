"""qemu.Machine's lifecycle and QMP against the fake QEMU: launch phases, soft and
hard shutdown, the cleanup that always runs, typed errors. No real QEMU."""

import os
import signal
import threading
import time

import pytest

from lab.core.errors import AbnormalShutdown, GuestLost, InfraError, LaunchFailure
from lab.guest import qemu


def test_launch_then_a_soft_quit_leaves_nothing_behind(machine):
    m = machine()
    m.launch()
    assert m.alive() and m in qemu._live
    assert m.monitor.qmp("query-status")["status"] == "prelaunch"     # paused (-S) until cont
    m.shutdown()
    assert m.exitcode == 0                                    # it quit; nobody killed it
    assert not m.rundir.exists() and m not in qemu._live
    log = (m.logdir / "qmp.log").read_text()
    assert '"execute": "quit"' in log
    script = (m.logdir / "reproduce.sh").read_text().splitlines()[-1].split()
    assert script[:4] == ["setpriv", "--pdeathsig=KILL", "--", "qemu-system-x86_64"]
    m.shutdown()                                              # idempotent


def test_a_qemu_that_ignores_quit_is_killed_and_still_cleaned_up(machine, fake_qemu):
    fake_qemu("hang")             # greets, negotiates, then never answers again
    m = machine()
    m.launch()
    started = time.monotonic()
    with pytest.raises(AbnormalShutdown) as err:
        m.shutdown(timeout=0.5)
    assert time.monotonic() - started < 3
    assert m.exitcode == -signal.SIGKILL
    assert err.value.argv == tuple(m.argv) and isinstance(err.value, InfraError)
    assert "command line: qemu-system-x86_64" in str(err.value)
    assert isinstance(err.value.__cause__, Exception)         # the timed-out wait
    assert not m.rundir.exists() and m not in qemu._live


def test_a_launch_that_fails_keeps_argv_and_output_and_cleans_up(machine, fake_qemu):
    fake_qemu("exit")
    m = machine()
    with pytest.raises(LaunchFailure) as err:
        m.launch()
    text = str(err.value)
    assert "QEMU exited with code 1" in text
    assert "command line: qemu-system-x86_64 -M q35" in text
    assert "told to exit" in text.split("QEMU said:")[1]
    assert err.value.argv == tuple(m.argv) and err.value.exitcode == 1
    assert isinstance(err.value.__cause__, InfraError)
    assert not m.rundir.exists() and m not in qemu._live
    m.shutdown()                                              # nothing left to do


def test_a_qmp_error_reply_is_an_infra_error_with_qemus_message(machine):
    m = machine()
    m.launch()
    with pytest.raises(InfraError) as err:
        m.monitor.qmp("no-such-command")
    assert not isinstance(err.value, GuestLost)
    assert "QMP no-such-command failed: The command no-such-command has not been found" \
        in str(err.value)
    assert "CommandNotFound" in (m.logdir / "qmp.log").read_text()
    words = m.monitor.hmp("xp /4wx 0x9000fe0").split(":")[1].split()
    assert words[:2] == ["0x00000011", "0x00000010"]


def test_qmp_to_a_qemu_that_is_gone_is_guest_lost(machine):
    m = machine()
    m.launch()
    os.kill(m.proc.pid, signal.SIGKILL)
    with pytest.raises(GuestLost):
        m.monitor.qmp("query-status", timeout=2)
    m.shutdown()                                              # already gone: not abnormal
    assert not m.rundir.exists()


def test_the_consoles_close_before_the_quit_so_a_blocked_qemu_can_quit(machine, fake_qemu):
    """QEMU blocks writing to a console nobody reads; closing it first unblocks the quit."""
    fake_qemu("flood")
    m = machine()
    m.launch()
    m.connect("kernel")
    m.connect("shell")            # never read
    m.monitor.cont()
    with pytest.raises(InfraError, match="no answer"):
        m.monitor.qmp("query-status", timeout=0.5)                   # stuck writing the console
    m.shutdown(timeout=5)                                     # no AbnormalShutdown
    assert m.exitcode == 0


def test_qemu_dies_with_the_thread_that_launched_it(machine):
    """setpriv --pdeathsig: the kernel kills QEMU when its launching thread ends."""
    m = machine()
    t = threading.Thread(target=m.launch)
    t.start()
    t.join()
    assert m.proc.wait(timeout=5) == -signal.SIGKILL
    m.shutdown()
    assert not m.rundir.exists()
