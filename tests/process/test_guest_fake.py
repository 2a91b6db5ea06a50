"""The console protocol and the guest's lifecycle against the fake QEMU: boot to the
ready marker, run -> (output, exit code), files, panics, hangs, a lost QEMU, the UART."""

import hashlib
import os
import shlex
import signal
import socket
import threading
import time

import pytest

from lab.core.deadline import Deadline
from lab.core.errors import GuestError, GuestLost, GuestPanic, GuestTimeout, OutputLost
from lab.guest import console
from lab.guest.console import TIMEOUT
from lab.guest.guest import Guest
from tests.conftest import lab_qemus
from tests.unit.conftest import fake_build


def test_a_guest_boots_runs_commands_and_shuts_down_cleanly(guest):
    g = guest()
    assert g.facts.kernel_release == "6.1.0-fake" and g.facts.accel == "tcg"
    assert g.run("echo hello").output == "hello\n"
    assert g.run("sh -c 'exit 7'").exit_code == 7
    assert g.run("printf 'no newline'").output == "no newline"
    assert g.run("cat").output == ""                          # stdin is /dev/null
    assert g.tainted() == 0
    assert g.qmp("query-status")["status"] == "running"
    rundir = g.machine.rundir
    g.close()
    assert g.shutdown_error is None and g.machine.exitcode == 0
    assert not rundir.exists() and not any(rundir.name in q for q in lab_qemus())
    assert "hello" in (g.logdir / "console.log").read_text()


def test_files_and_long_commands_cross_the_tty_line_limit_in_chunks(guest):
    g = guest()
    data = os.urandom(5000)
    g.put_file(data, "/tmp/blob")
    assert g.run("md5sum /tmp/blob").output.split()[0] == hashlib.md5(data).hexdigest()
    assert g.run("echo " + "x" * 4000).output == "x" * 4000 + "\n"


def test_a_panic_ends_the_command_at_once_with_the_panic(guest):
    g = guest()
    started = time.monotonic()
    with pytest.raises(GuestPanic) as err:
        g.run("echo c > /proc/sysrq-trigger", timeout=30)
    assert time.monotonic() - started < 3
    assert "Kernel panic - not syncing: sysrq triggered crash" in str(err.value)
    assert "echo c > /proc/sysrq-trigger" in str(err.value)
    g.close()
    assert g.shutdown_error is None                           # QEMU had exited by itself


def test_a_panic_during_boot_is_a_guest_panic(fake_qemu, tmp_path):
    fake_qemu("panic")
    g = Guest(fake_build("x86_64", tmp_path), accel="tcg", logdir=tmp_path / "g",
              boot_deadline_s=5)
    with pytest.raises(GuestPanic), g:
        pass
    assert not g.machine.rundir.exists()


@pytest.mark.parametrize("mode", ["ok", "slowlog"])
def test_a_warning_a_command_logged_comes_with_that_command_and_no_other(guest, fake_qemu,
                                                                         mode):
    """slowlog: the warning reaches the host after the command's end marker (the
    kernel log's channel and the shell's are not ordered); the lab waits for the
    kernel log to catch up before it reads the command's faults."""
    fake_qemu(mode)
    g = guest()
    warned = g.run("echo 'WARNING: CPU: 0 PID: 9 at drivers/x.c:1 probe' > /dev/kmsg")
    assert [f.kind for f in warned.faults] == ["warning"]
    assert g.run("echo after").faults == ()
    assert [f.kind for f in g.faults()] == ["warning"]
    started = time.monotonic()
    assert g.kernel.sync()
    assert time.monotonic() - started < 0.5                  # answered, not waited out


def test_a_kernel_log_that_cannot_answer_is_read_as_it_is(guest):
    """A panicked or stopped guest's forwarder cannot answer: faults() gives what came."""
    g = guest()
    with pytest.raises(GuestLost):
        g.run("poweroff -f")
    started = time.monotonic()
    assert g.kernel.sync() is False and g.faults() == []
    assert time.monotonic() - started < 0.5


def test_a_hung_command_ends_at_its_deadline_and_the_guest_still_quits(guest):
    g = guest()
    started = time.monotonic()
    with pytest.raises(GuestTimeout) as err:
        g.run("sleep 600", timeout=1)
    assert 1 <= time.monotonic() - started < 2
    assert "'sleep 600'" in str(err.value) and "deadline 1 s" in str(err.value)
    g.close()
    assert g.shutdown_error is None and not g.machine.alive()


def test_qemu_killed_mid_command_is_guest_lost_not_a_hang(guest):
    g = guest()
    threading.Timer(0.3, os.kill, (g.machine.proc.pid, signal.SIGKILL)).start()
    started = time.monotonic()
    with pytest.raises(GuestLost, match="QEMU exited"):
        g.run("sleep 600", timeout=30)
    assert time.monotonic() - started < 4


def test_the_uart_is_connected_once_and_talks_both_ways(guest):
    g = guest("aarch64")          # the fake's dut chardev echoes, like a loopback plug
    uart = g.uart()
    assert g.uart() is uart
    uart.sendline(b"hello lab")
    assert uart.expect(rb"hel+o", timeout=2) == 0 and uart.after == b"hello"
    assert uart.expect_exact(b"lab\n", timeout=2) == 0
    with pytest.raises(TIMEOUT):
        uart.expect(rb"never", timeout=0.2)
    assert uart.tail.endswith(b"hello lab\n")


def test_x86_guests_have_no_uart_under_test(guest):
    with pytest.raises(GuestError, match="no device-under-test UART"):
        guest("x86_64").uart()


# -- the console never lies (issue 16: items 6, 7, 8, 14, 18)

def test_marker_look_alikes_cannot_forge_the_exit_code(guest):
    g = guest()
    forged = "printf '\\n@@LAB-E%s@@0@@0@@\\n' 0 1 2 3 4 5 6 7; printf '@@LAB-B%s@@\\n' x"
    r = g.run(f"sh -c {shlex.quote(forged + '; exit 3')}")
    assert r.exit_code == 3
    assert r.output == "".join(f"\n@@LAB-E{n}@@0@@0@@\n" for n in range(8)) + "@@LAB-Bx@@\n"
    assert g.run("echo after").output == "after\n"


def test_output_past_the_memory_bound_spills_whole_to_a_file(guest, monkeypatch):
    monkeypatch.setattr(console, "MEMORY_LIMIT", 100_000)
    g = guest()
    r = g.run("flood 300000; echo END")
    assert r.exit_code == 0 and r.output_file is not None and r.output_file.parent == g.logdir
    assert r.output_file.read_bytes() == b"a" * 300000 + b"END\n"
    assert r.output.startswith("a" * 100_000 + "\n[lab: output truncated")
    assert str(r.output_file) in r.output
    assert g.run("flood 1000").output_file is None


def test_a_large_output_comes_back_whole_and_fast(guest):
    g = guest()
    started = time.monotonic()
    r = g.run("flood 5000000; echo END")
    assert r.output == "a" * 5_000_000 + "END\n" and r.exit_code == 0
    assert time.monotonic() - started < 5


def test_lost_output_is_an_error_never_a_pass(guest, fake_qemu):
    fake_qemu("drop")              # the fake loses 1000 bytes of every big write
    g = guest()
    assert g.run("echo small").output == "small\n"
    with pytest.raises(OutputLost, match="output lost"):
        g.run("flood 100000")


def test_background_output_between_commands_is_logged_not_misparsed(guest):
    g = guest()
    g.run("late 0.2 '@@LAB-E1@@0@@0@@ late-output'")
    g.run("late 0.3 garbage-not-a-number")
    time.sleep(0.6)
    assert g.run("echo next").output == "next\n"
    assert g.tainted() == 0
    log = (g.logdir / "console.log").read_text()
    assert "late-output" in log and "garbage-not-a-number" in log


def test_background_output_during_a_command_never_breaks_the_protocol(guest):
    g = guest()                    # (the fake sends a line's output when the line ends)
    g.run("late 0.2 '@@LAB-E0@@0@@0@@'")
    r = g.run("sleep 0.5; echo done; sh -c 'exit 4'")
    assert (r.output, r.exit_code) == ("done\n", 4)


@pytest.mark.parametrize("command, said", [("poweroff -f", "powered off"),
                                           ("halt -f", "halted")])
def test_a_guest_that_powers_off_or_halts_ends_the_step_at_once(guest, command, said):
    g = guest()
    started = time.monotonic()
    with pytest.raises(GuestLost, match=f"the guest {said}"):
        g.run(command, timeout=30)
    assert time.monotonic() - started < 2
    g.close()
    assert g.shutdown_error is None


def test_put_file_honours_its_deadline_as_a_whole(guest):
    g = guest()
    started = time.monotonic()
    with pytest.raises(GuestTimeout, match="deadline 0.5 s"):
        g.put_file(os.urandom(6_000_000), "/tmp/big", deadline=Deadline(0.5))
    assert time.monotonic() - started < 1.5


def test_the_kernel_log_keeps_a_bounded_tail(tmp_path):
    a, b = socket.socketpair()
    log = console.ConsoleLog(tmp_path / "console.log")
    kernel = console.KernelLog(b, log)
    kernel.start()
    a.sendall("".join(f"line {n}\n" for n in range(console.KERNEL_LINES + 500)).encode())
    a.close()
    kernel.join(5)
    assert len(kernel.lines) == console.KERNEL_LINES
    assert kernel.lines[-1] == f"line {console.KERNEL_LINES + 499}"
    log.close()


def test_a_write_to_a_dead_guest_is_guest_lost(guest):
    g = guest()
    os.kill(g.machine.proc.pid, signal.SIGKILL)
    g.machine.proc.wait(5)
    time.sleep(0.2)
    with pytest.raises(GuestLost):
        g.run("echo hi", timeout=5)


def test_a_bare_exit_ends_the_shell_not_the_guest_and_a_new_shell_runs_on(guest):
    g = guest()
    r = g.run("echo before; exit 7")
    assert (r.output, r.exit_code, r.shell_reset) == ("before\n", 7, True)
    after = g.run("echo after")
    assert (after.output, after.exit_code, after.shell_reset) == ("after\n", 0, False)
    assert g.run("sh -c 'exit 3'").exit_code == 3 and not g.run("true").shell_reset


def test_a_command_keeps_its_whole_output_in_the_file_asked_for(guest, tmp_path):
    g = guest()
    path = tmp_path / "step-01.out"
    r = g.run("flood 1000", output_file=path)
    assert r.output_file == path and path.read_bytes() == b"a" * 1000 and r.output == "a" * 1000
