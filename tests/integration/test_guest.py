"""Real guests, real kernels: the runtime's reliability (both arches)."""

import os
import shlex
import signal
import threading
import time

import pytest

from lab.core.deadline import Deadline
from lab.core.errors import GuestLost, GuestPanic, GuestTimeout
from tests.conftest import lab_qemus

pytestmark = pytest.mark.qemu
ARCHES = ["aarch64", "x86_64"]


@pytest.mark.parametrize("arch", ARCHES)
def test_commands_return_output_and_exit_codes(lab_boot, arch):
    guest = lab_boot(arch, "nokpti")
    assert guest.run("uname -m").output == f"{arch}\n"
    assert guest.run("sh -c 'exit 7'").exit_code == 7
    assert guest.run("printf 'no newline'").output == "no newline"
    quoted = guest.run("""echo "it's" '$HOME' "$HOME" """)
    assert quoted.output == "it's $HOME /root\n"
    assert guest.run("cat").exit_code == 0          # stdin is /dev/null: no hang
    assert guest.facts.kernel_release == guest.run("uname -r").output.strip()


@pytest.mark.parametrize("arch", ARCHES)
def test_long_commands_and_files_cross_the_tty_line_limit_in_chunks(lab_boot, arch):
    guest = lab_boot(arch, "nokpti")
    long = "echo " + "x" * 9000 + " | wc -c"
    assert guest.run(long).output.strip() == "9001"
    script = "a=1\nb=2\necho $((a + b))\n"
    assert guest.run(script).output == "3\n"
    data = os.urandom(20000)
    guest.put_file(data, "/tmp/blob")
    import hashlib
    assert guest.run("md5sum /tmp/blob").output.split()[0] == hashlib.md5(data).hexdigest()


@pytest.mark.parametrize("arch", ARCHES)
def test_a_kernel_panic_is_reported_within_5_seconds(lab_boot, arch):
    guest = lab_boot(arch, "nokpti")
    started = time.monotonic()
    with pytest.raises(GuestPanic) as err:
        guest.run("echo c > /proc/sysrq-trigger", timeout=60)
    assert time.monotonic() - started < 5
    assert "Kernel panic - not syncing: sysrq triggered crash" in str(err.value)
    assert "echo c > /proc/sysrq-trigger" in str(err.value)
    assert "sysrq triggered crash" in (guest.logdir / "console.log").read_text()


@pytest.mark.parametrize("arch", ARCHES)
def test_a_hung_command_hits_its_deadline_and_the_guest_is_torn_down(lab_boot, arch):
    guest = lab_boot(arch, "nokpti")
    started = time.monotonic()
    with pytest.raises(GuestTimeout) as err:
        guest.run("sleep 600", timeout=2)
    assert 2 <= time.monotonic() - started < 4
    assert "'sleep 600'" in str(err.value) and "deadline 2 s" in str(err.value)
    guest.close()
    assert not guest.machine.alive()
    assert not any(guest.machine.rundir.name in q for q in lab_qemus())


@pytest.mark.parametrize("arch", ARCHES)
def test_qemu_killed_mid_command_is_an_error_not_a_hang(lab_boot, arch):
    guest = lab_boot(arch, "nokpti")
    threading.Timer(1.0, os.kill, (guest.machine.proc.pid, signal.SIGKILL)).start()
    started = time.monotonic()
    with pytest.raises(GuestLost, match="QEMU exited"):
        guest.run("sleep 600", timeout=60)
    assert time.monotonic() - started < 5


def test_run_directory_is_private_and_logs_are_kept(lab_boot):
    guest = lab_boot("aarch64", "nokpti")
    assert guest.machine.rundir.stat().st_mode & 0o777 == 0o700
    guest.run("echo hello-log")
    guest.close()
    assert not guest.machine.rundir.exists()
    for name in ("console.log", "qemu.log", "qmp.log", "reproduce.sh"):
        assert (guest.logdir / name).is_file(), name
    assert "hello-log" in (guest.logdir / "console.log").read_text()
    assert "-S" in (guest.logdir / "reproduce.sh").read_text().split()


def test_qmp_and_hmp_reach_the_machine(lab_boot):
    guest = lab_boot("aarch64", "nokpti")
    assert guest.qmp("query-status")["status"] == "running"
    # The PL011's peripheral ID registers (0xfe0..) read from the host: 0x11 0x10 0x14/0x34.
    words = guest.hmp("xp /4wx 0x9000fe0").split(":")[1].split()
    assert [int(w, 16) for w in words][:2] == [0x11, 0x10]


def test_a_killed_lab_leaves_no_qemu_the_next_lab_sweeps_it(tmp_path):
    """SIGKILL the lab process itself: PDEATHSIG takes its QEMU down."""
    import subprocess
    import sys
    code = ("from lab.app.pytest_plugin import lab_kernel\nfrom lab.guest.guest import Guest\n"
            f"g = Guest(lab_kernel('aarch64', 'nokpti'), logdir={str(tmp_path)!r})\ng.boot()\n"
            "print('booted', flush=True)\nimport time; time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "booted"
    assert lab_qemus()
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while lab_qemus() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not lab_qemus()


@pytest.mark.parametrize("arch", ARCHES)
def test_marker_look_alikes_cannot_forge_the_exit_code(lab_boot, arch):
    guest = lab_boot(arch, "nokpti")
    forged = "for n in 0 1 2 3 4 5 6 7 8 9; do printf '\\n@@LAB-E%s@@0@@\\n' $n; done; exit 3"
    r = guest.run(f"sh -c {shlex.quote(forged)}")
    assert r.exit_code == 3
    assert r.output == "".join(f"\n@@LAB-E{n}@@0@@\n" for n in range(10))


@pytest.mark.parametrize("arch", ARCHES)
def test_background_output_never_breaks_the_protocol(lab_boot, arch):
    guest = lab_boot(arch, "nokpti")
    # It stays alive: an exiting child of the shell, which is PID 1, panics the
    # guest today (issue 17: a real init).
    guest.run("(sleep 1; echo late; printf '\\n@@LAB-E9@@0@@\\n'; sleep 600) &")
    assert guest.run("echo next").output == "next\n"
    time.sleep(1.5)                                   # the late output arrives between commands
    assert guest.run("echo after").output == "after\n"
    assert guest.tainted() == 0
    assert "late" in (guest.logdir / "console.log").read_text()


def test_poweroff_ends_the_step_at_once(lab_boot):
    guest = lab_boot("x86_64", "nokpti")
    started = time.monotonic()
    # Without a power-off driver (no ACPI here) the kernel halts instead.
    with pytest.raises(GuestLost, match="the guest (powered off|halted)"):
        guest.run("poweroff -f", timeout=60)
    assert time.monotonic() - started < 10


def test_halt_ends_the_step_at_once(lab_boot):
    guest = lab_boot("x86_64", "nokpti")
    started = time.monotonic()
    with pytest.raises(GuestLost, match="halted"):
        guest.run("halt -f", timeout=60)
    assert time.monotonic() - started < 10


def test_a_put_ends_at_its_deadline(lab_boot):
    """1 MiB takes some 17 s through x86_64's serial console; the deadline is 2 s."""
    guest = lab_boot("x86_64", "nokpti")
    started = time.monotonic()
    with pytest.raises(GuestTimeout, match="deadline 2 s"):
        guest.put_file(os.urandom(1 << 20), "/tmp/big", deadline=Deadline(2))
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("arch", ["aarch64", "x86_64"])
def test_an_orphan_that_ends_while_the_shell_idles_does_not_end_the_guest(lab_boot, arch):
    """PID 1 is /init, which reaps; the lab's shell is its child (it used to be PID 1,
    and an orphan's exit ended it: "Attempted to kill init!")."""
    guest = lab_boot(arch, "nokpti")
    assert guest.run('sh -c "(sleep 0.2; exit 3) &"').exit_code == 0
    time.sleep(1.0)                  # the shell waits for a command; the orphan ends
    r = guest.run("echo alive")
    assert r.output == "alive\n" and r.exit_code == 0
    assert guest.faults() == []


@pytest.mark.parametrize("arch", ARCHES)
def test_a_background_job_that_ends_while_the_shell_idles_leaves_the_shell_as_it_was(
        lab_boot, arch):
    """busybox 1.35's line editor ends the shell when a job of its own ends while it
    waits for a line; the lab's shell reads without it, so its state survives."""
    guest = lab_boot(arch, "nokpti")
    assert guest.run("kept=yes; cd /tmp; sleep 0.3 &").exit_code == 0
    time.sleep(1.0)                  # the job ends while the shell waits
    r = guest.run('echo "$kept $PWD"')
    assert (r.output, r.shell_reset) == ("yes /tmp\n", False)


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("command", ["if", "echo 'unterminated", "x=$((1 / 0))",
                                     "readonly r=1; r=2", "set -o no-such-option"])
def test_a_shell_error_is_the_commands_status_not_a_hang(lab_boot, arch, command):
    """An interactive shell abandons the rest of a line on such an error; the lab's
    line would lose its end marker and wait out the deadline."""
    guest = lab_boot(arch, "nokpti")
    guest.run("kept=yes")
    started = time.monotonic()
    r = guest.run(command, timeout=30)
    assert r.exit_code != 0 and not r.shell_reset and time.monotonic() - started < 5
    assert guest.run('echo "$kept"').output == "yes\n"


def test_bytes_lost_on_the_way_into_the_guest_are_a_result_not_a_timeout(lab_boot):
    """A second reader on the tty takes some of the bytes, as a driver that drops
    them would: the transfer ends once arrivals stall, and says what arrived."""
    guest = lab_boot("aarch64", "nokpti")
    assert guest.run("modprobe amba-pl011 && test -c /dev/ttyAMA0").exit_code == 0
    guest.run("cat /dev/ttyAMA0 > /dev/null &")
    started = time.monotonic()
    moved = guest.uart().transfer_in("/dev/ttyAMA0", 65536, Deadline(60))
    assert not moved.ok and 0 < moved.received < 65536, moved
    assert f"{moved.received} of 65536 bytes arrived" in moved.detail
    assert time.monotonic() - started < 20
