"""Bad input: a clear one-line error, exit code 2, and never a traceback."""

import os

import pytest

from tests.conftest import lab


@pytest.mark.parametrize("args, message", [
    (["build", "--arch", "sparc"], "unknown arch 'sparc'; valid arches: aarch64, x86_64"),
    (["build", "--arch", "aarch64", "--kernel", "nokpt"],
     "unknown kernel variant 'nokpt' for aarch64; valid variants: kpti, nokpti"),
    (["build", "--kernel", "/nonexistent/x.config"], "no such file"),
    (["exec", "--arch", "riscv64", "--kernel", "kpti", "--", "true"], "unknown arch 'riscv64'"),
    (["exec", "--arch", "x86_64", "--kernel", "bogus", "--", "true"], "unknown kernel variant"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["exec", "--kernel", "kpti", "--", "true"], "required: --arch"),
])
def test_bad_input_exits_2_with_a_message_and_no_traceback(args, message):
    result = lab(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_bad_fragment_line_names_file_and_line(tmp_path):
    frag = tmp_path / "typo.config"
    frag.write_text("CONFIG_KALLSYMS=y\nCONFIG_MODULES y\n")
    result = lab("build", "--arch", "x86_64", "--kernel", str(frag))
    assert result.returncode == 2
    assert f"{frag}:2: not a Kconfig line" in result.stderr
    assert "Traceback" not in result.stderr


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
