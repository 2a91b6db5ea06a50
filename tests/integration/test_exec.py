"""The lab exec acceptance commands, as a user runs them."""

import json

import pytest

from tests.conftest import ROOT, lab

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize("arch", ["aarch64", "x86_64"])
def test_uname_and_exit_code(arch):
    result = lab("exec", "--arch", arch, "--kernel", "nokpti", "--", "uname", "-m")
    assert (result.returncode, result.stdout) == (0, f"{arch}\n"), result.stderr
    result = lab("exec", "--arch", arch, "--kernel", "nokpti", "--", "sh", "-c", "exit 7")
    assert result.returncode == 7, result.stderr


@pytest.mark.parametrize("arch, kernel, cmdline, active", [
    ("aarch64", "kpti", "kpti=1", True),
    ("aarch64", "kpti", "", False),        # cortex-a72 is not Meltdown-affected
    ("aarch64", "nokpti", "kpti=1", False),
    ("x86_64", "kpti", "pti=on", True),
    ("x86_64", "kpti", "", False),         # TCG CPUs report an AMD vendor
    ("x86_64", "nokpti", "pti=on", False),
])
def test_json_reports_whether_kpti_is_really_active(arch, kernel, cmdline, active):
    result = lab("exec", "--json", "--arch", arch, "--kernel", kernel, "--cmdline", cmdline,
                 "--", "true")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["exit_code"] == 0 and data["output"] == ""
    boot = data["boot"]
    assert boot["kpti_active"] is active
    assert boot["accel"] in ("tcg", "kvm") and boot["kernel_release"].startswith("6.1")
    assert cmdline in boot["cmdline"] and boot["boot_s"] > 0


def test_a_panic_exits_2_with_the_panic_on_stderr():
    result = lab("exec", "--arch", "x86_64", "--kernel", "nokpti", "--",
                 "sh", "-c", "echo c > /proc/sysrq-trigger")
    assert result.returncode == 2
    assert "Kernel panic - not syncing" in result.stderr
    assert "Traceback" not in result.stderr


def test_lab_shell_runs_what_it_is_given_and_shuts_down():
    result = lab("shell", "--arch", "aarch64", "--kernel", "nokpti",
                 input="echo shell-$((6 * 7))\nuname -m\n", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "shell-42" in result.stdout and "aarch64" in result.stdout
    assert "Leave with Ctrl-]" in result.stderr and "guest shut down" in result.stderr


def test_a_person_at_a_terminal_gets_a_line_editor_and_exit_ends_the_session():
    """bash's readline: history (up arrow) and completion (tab); a background job
    that ends meanwhile leaves the shell be; `exit` shuts the guest down."""
    import fcntl
    import os
    import re
    import select
    import struct
    import subprocess
    import termios
    import time

    from tests.conftest import LAB, lab_qemus
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    shell = subprocess.Popen([*LAB, "shell", "--arch", "aarch64", "--kernel", "nokpti"],
                             cwd=ROOT, stdin=slave, stdout=slave, stderr=slave,
                             start_new_session=True)
    os.close(slave)
    seen = b""

    def expect(pattern: str, within: float = 60) -> None:
        nonlocal seen
        until = time.monotonic() + within
        while not re.search(pattern.encode(), seen):
            assert time.monotonic() < until, f"no {pattern!r} in {seen[-2000:]!r}"
            if select.select([master], [], [], 0.1)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:           # the terminal closed: the lab exited
                    assert re.search(pattern.encode(), seen), seen[-2000:]
        seen = seen[re.search(pattern.encode(), seen).end():]

    try:
        expect("lab:/# ")
        os.write(master, b"sleep 0.2 &\r")
        time.sleep(1.5)
        os.write(master, b"echo hi-$((6 * 7))\r")
        expect("hi-42")
        expect("lab:/# ")
        os.write(master, b"\x1b[A\r")              # the up arrow: the same line again
        expect("hi-42")
        os.write(master, b"cd /tm\t\r")
        expect("lab:/tmp# ")
        os.write(master, b"exit\r")
        expect("guest shut down")
        assert shell.wait(30) == 0
    finally:
        shell.kill()
        os.close(master)
    assert not lab_qemus()


def test_ctrl_c_shuts_the_guest_down_and_exits_130(tmp_path):
    import signal
    import subprocess
    import time

    from tests.conftest import LAB, lab_qemus
    proc = subprocess.Popen([*LAB, "exec", "--arch", "aarch64", "--kernel", "nokpti",
                             "--logs", str(tmp_path), "--", "sleep", "600"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not lab_qemus(guests=True):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        time.sleep(3)                   # booted, and into the command
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert not lab_qemus()


@pytest.mark.parametrize("arch", ["aarch64", "x86_64"])
def test_20_mb_of_output_come_back_byte_exact(arch):
    """Issue 16's acceptance: every byte, exit 0 (README: "Measured here")."""
    result = lab("exec", "--arch", arch, "--kernel", "nokpti", "--",
                 "sh", "-c", "head -c 20000000 /dev/zero | tr '\\0' a; echo END")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout) == 20_000_004
    assert result.stdout == "a" * 20_000_000 + "END\n"
