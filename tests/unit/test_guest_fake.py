"""The console protocol and the guest's lifecycle against the fake QEMU: boot to the
ready marker, run -> (output, exit code), files, panics, hangs, a lost QEMU, the UART."""

import hashlib
import os
import signal
import threading
import time

import pytest

from lab.deadline import Deadline
from lab.errors import GuestError, GuestLost, GuestPanic, GuestTimeout
from lab.guest import Guest
from tests.conftest import lab_qemus
from tests.unit.conftest import fake_build


@pytest.fixture
def guest(fake_qemu, tmp_path):
    """A factory of booted guests on the fake QEMU; every one is closed at the end."""
    guests = []

    def boot(arch="x86_64", **kw):
        g = Guest(fake_build(arch, tmp_path), accel="tcg", logdir=tmp_path / f"g{len(guests)}",
                  boot_deadline_s=5, **kw)
        guests.append(g)
        g.__enter__()
        return g

    yield boot
    for g in guests:
        g.close()


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
    uart.send(b"hello lab\n", Deadline(2))
    assert uart.expect(r"hel+o", Deadline(2)) == b"hello"
    assert uart.expect(r"lab\n", Deadline(2)) == b"lab\n"
    assert uart.expect(r"never", Deadline(0.2)) is None
    assert uart.tail.endswith(b"hello lab\n")


def test_x86_guests_have_no_uart_under_test(guest):
    with pytest.raises(GuestError, match="no device-under-test UART"):
        guest("x86_64").uart()
