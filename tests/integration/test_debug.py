"""lab debug, as a user runs it (issue 27): gdb on a +dbg kernel with a breakpoint and
a --batch file; from a failed cell of `lab driver` to the function that oopsed; a
panic's vmcore read by gdb; nothing left running. The +dbg kernels are built by
./bootstrap test (lab build --kernel nokpti+dbg) before this tier."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import LAB, ROOT, lab, lab_qemus

pytestmark = pytest.mark.qemu

OOPS = ROOT / "tests" / "data" / "drivers" / "oops-write"
#: The syscall entry each arch's kernel names getppid by.
GETPPID = {"aarch64": "__arm64_sys_getppid", "x86_64": "__x64_sys_getppid"}


def _gdbs(logs: Path) -> list[str]:
    """The gdb processes of one lab debug (their working directory: its logs)."""
    found = []
    for p in Path("/proc").iterdir():
        try:
            cmd = (p / "cmdline").read_bytes().split(b"\0")
            if b"gdb" in cmd[0] \
                    and os.readlink(p / "cwd") == str(logs):
                found.append(b" ".join(cmd).decode(errors="replace"))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("arch", ["aarch64", "x86_64"])
def test_a_break_on_getppid_shows_its_source_line_and_the_command_finishes(arch, tmp_path):
    batch = tmp_path / "f.gdb"
    batch.write_text("bt\ncontinue\n")
    logs = tmp_path / "logs"
    r = lab("debug", "--arch", arch, "--kernel", "nokpti", "--break", GETPPID[arch],
            "--batch", str(batch), "--logs", str(logs), "--", "syscost", "1", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    # x86_64's __x64_sys_getppid is an alias of __do_sys_getppid, the name DWARF has.
    stop = re.search(r"Breakpoint 1, __\w*sys_getppid .* at \S*kernel/sys.c:\d+", r.stdout)
    assert stop, r.stdout
    assert re.search(r"#0 .* at \S*kernel/sys.c:\d+", r.stdout), r.stdout   # the backtrace
    assert "METRIC getppid_ns" in r.stdout, r.stdout       # the command ran to its end
    assert not _gdbs(logs) and not lab_qemus()


def test_a_function_nobody_defines_is_one_line_exit_2(tmp_path):
    batch = tmp_path / "f.gdb"
    batch.write_text("bt\n")
    r = lab("debug", "--arch", "aarch64", "--kernel", "nokpti", "--break", "no_such_fn",
            "--batch", str(batch), "--logs", str(tmp_path / "logs"), "--", "true")
    assert r.returncode == 2, r.stderr
    assert "no function no_such_fn" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_failed_driver_cell_stops_in_the_function_that_oopsed(tmp_path):
    run = tmp_path / "run"
    r = lab("driver", str(OOPS), "--arch", "aarch64", "--out", str(run))
    assert r.returncode == 1, r.stdout + r.stderr
    batch = tmp_path / "f.gdb"
    batch.write_text("bt\n")
    r = lab("debug", "--module", str(OOPS), f"{run}/aarch64-nokpti-default",
            "--batch", str(batch), "--logs", str(tmp_path / "logs"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Breakpoint 1, oops_write_write" in r.stdout, r.stdout
    assert "oops_write.c:" in r.stdout and "fs/read_write.c:" in r.stdout, r.stdout
    assert not lab_qemus()


def test_a_panic_leaves_a_vmcore_that_gdb_reads(tmp_path):
    run = tmp_path / "run"
    r = lab("driver", str(OOPS), "--arch", "x86_64", "--kernel", "nokpti+dbg",
            "--scenario", str(OOPS / "panic.yaml"), "--out", str(run))
    assert r.returncode != 0, r.stdout + r.stderr
    cell = "x86_64-nokpti+dbg-panic"
    core = run / "oops-write-panic" / cell / "vmcore"
    assert core.is_file(), r.stdout + r.stderr
    assert core.stat().st_blocks * 512 < core.stat().st_size      # sparse
    batch = tmp_path / "f.gdb"
    batch.write_text("bt\nlog\nps\n")
    r = lab("debug", "--core", f"{run}/{cell}", "--batch", str(batch),
            "--logs", str(tmp_path / "logs"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "oops_write_write" in r.stdout, r.stdout                 # bt of the panic
    assert "Kernel panic - not syncing" in r.stdout, r.stdout       # log
    assert "sh" in r.stdout and "PID" in r.stdout, r.stdout         # ps


def test_ctrl_c_leaves_no_gdb_and_no_qemu(tmp_path):
    batch = tmp_path / "f.gdb"
    batch.write_text("bt\n")
    logs = tmp_path / "logs"
    child = subprocess.Popen([*LAB, "debug", "--arch", "aarch64", "--kernel", "nokpti",
                              "--break", "__arm64_sys_reboot", "--batch", str(batch),
                              "--logs", str(logs), "--", "sleep", "60"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (logs / "gdb.ready").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (logs / "gdb.ready").exists() and _gdbs(logs)
    child.send_signal(signal.SIGINT)
    child.communicate(timeout=60)
    assert child.returncode != 0
    assert not _gdbs(logs) and not lab_qemus()


def test_a_guest_that_dies_under_gdb_leaves_no_gdb_and_no_qemu(tmp_path):
    batch = tmp_path / "f.gdb"
    batch.write_text("bt\n")
    logs = tmp_path / "logs"
    r = lab("debug", "--arch", "aarch64", "--kernel", "nokpti", "--break", "__arm64_sys_reboot",
            "--batch", str(batch), "--logs", str(logs), "--",
            "sh", "-c", "echo c > /proc/sysrq-trigger")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "kernel panic" in r.stderr, r.stderr
    assert (logs / "vmcore").is_file()          # a +dbg kernel's panic keeps its memory
    assert not _gdbs(logs) and not lab_qemus()


def test_a_break_in_a_module_loaded_later_stops_there(tmp_path):
    batch = tmp_path / "f.gdb"
    batch.write_text("bt 2\n")
    r = lab("debug", "--arch", "aarch64", "--kernel", "nokpti", "--module", str(OOPS),
            "--break", "oops_write_write", "--batch", str(batch),
            "--logs", str(tmp_path / "logs"), "--",
            "sh", "-c", "modprobe oops_write && echo 1 > /dev/oops_write")
    assert "Breakpoint 1 (oops_write_write) pending." in r.stdout, r.stdout
    assert re.search(r"Breakpoint 1, oops_write_write .* at \S*oops_write.c:\d+", r.stdout), \
        r.stdout
    assert r.returncode != 0 and "kernel oops during the command" in r.stderr, r.stderr
