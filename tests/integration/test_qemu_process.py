"""QEMU process hygiene against the real qemu-system-x86_64 (no kernel needed):
launch errors and the KVM probe's boot."""

import time

import pytest

from lab.core.errors import InfraError, LaunchFailure
from lab.guest import qemu
from lab.host import facts

pytestmark = pytest.mark.qemu


def test_a_launch_that_fails_reports_the_command_line_and_what_qemu_said(tmp_path):
    rundir = qemu.make_rundir()
    argv = ["qemu-system-x86_64", "-M", "no-such-machine", "-display", "none"]
    machine = qemu.Machine(argv, rundir, tmp_path)
    with pytest.raises(InfraError) as err:
        machine.launch()
    assert isinstance(err.value, LaunchFailure)
    text = str(err.value)
    assert "QEMU exited with code 1" in text
    assert "command line: qemu-system-x86_64 -M no-such-machine" in text
    assert "unsupported machine type" in text.split("QEMU said:")[1]
    machine.shutdown()
    assert not rundir.exists()


def test_the_probe_boot_can_pass_under_tcg():
    """The KVM probe's boot sector really boots (so a failing probe means KVM)."""
    ok, reason = facts.probe_boot("tcg", "qemu64")
    assert ok, reason
    started = time.monotonic()
    ok, reason = facts.probe_boot("tcg", "no-such-cpu")
    assert not ok and "probe boot failed" in reason
    assert time.monotonic() - started < facts.PROBE_DEADLINE_S + 2
