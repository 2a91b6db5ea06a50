"""lab doctor on a provisioned host: every Debian package present, and the
accelerator probe (a tiny QEMU boot). Moved out of tests/unit: it needs the host."""

import os

import pytest

from tests.conftest import lab

pytestmark = pytest.mark.host


def test_doctor_names_the_debian_package_of_a_missing_tool(tmp_path):
    """A PATH without qemu-system-aarch64, as if qemu-system-arm were removed."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for d in os.environ["PATH"].split(os.pathsep) + ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]:
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            if name != "qemu-system-aarch64" and not (bindir / name).exists():
                (bindir / name).symlink_to(os.path.join(d, name))
    result = lab("doctor", env={"PATH": str(bindir), "COLUMNS": "200"})
    assert result.returncode == 2
    missing = [line for line in result.stdout.splitlines() if "MISSING" in line]
    assert len(missing) == 1 and "qemu-system-arm" in missing[0], result.stdout


def test_doctor_passes_on_this_machine_and_reports_the_accelerator():
    result = lab("doctor", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MISSING" not in result.stdout
    assert "accelerator: tcg" in result.stdout or "accelerator: kvm" in result.stdout
