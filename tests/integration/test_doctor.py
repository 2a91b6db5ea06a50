"""lab doctor on a provisioned host: every Debian package present, and the
accelerator probe (a tiny QEMU boot). Moved out of tests/unit: it needs the host."""

import os
from pathlib import Path

import pytest

from tests.conftest import lab

pytestmark = pytest.mark.host


def fake_path(tmp_path, *without: str) -> Path:
    """A PATH directory of links to every command on this host's PATH but `without`."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for d in os.environ["PATH"].split(os.pathsep) + ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]:
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            if name not in without and not (bindir / name).exists():
                (bindir / name).symlink_to(os.path.join(d, name))
    return bindir


def test_doctor_names_the_debian_package_of_a_missing_tool(tmp_path):
    """A PATH without qemu-system-aarch64, as if qemu-system-arm were removed."""
    bindir = fake_path(tmp_path, "qemu-system-aarch64")
    result = lab("doctor", env={"PATH": str(bindir), "COLUMNS": "200"})
    assert result.returncode == 2
    missing = [line for line in result.stdout.splitlines() if "MISSING" in line]
    assert len(missing) == 1 and "qemu-system-arm" in missing[0], result.stdout


def test_strict_doctor_names_ocaml_nox_when_the_ocaml_compiler_is_gone(tmp_path):
    """coccicheck's OCaml scripts need ocamlopt, which Debian's coccinelle does not pull
    in: a fresh machine's CI once failed on it after 80 minutes. Without it, the check
    fails at once and names the package."""
    bindir = fake_path(tmp_path, "ocamlopt", "ocamlopt.opt", "ocamlfind")
    result = lab("doctor", "--strict", env={"PATH": str(bindir), "COLUMNS": "250"})
    assert result.returncode == 2
    bad = [line for line in result.stdout.splitlines() if "MISSING" in line or "FAILED" in line]
    assert len(bad) == 1 and "ocaml-nox" in bad[0], result.stdout


def test_strict_doctor_runs_spatch_with_an_ocaml_script(tmp_path):
    """An ocamlopt that is there but does not work: only running spatch on an OCaml
    script, as coccicheck does, shows it."""
    bindir = fake_path(tmp_path, "ocamlopt", "ocamlopt.opt")
    for name in ("ocamlopt", "ocamlopt.opt"):
        (bindir / name).write_text("#!/bin/sh\necho 'ocamlopt: broken' >&2\nexit 2\n")
        (bindir / name).chmod(0o755)
    result = lab("doctor", "--strict", env={"PATH": str(bindir), "COLUMNS": "400"})
    assert result.returncode == 2
    failed = [line for line in result.stdout.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and "spatch" in failed[0] and "ocaml-nox" in result.stdout, \
        result.stdout


def test_strict_doctor_reads_what_spatch_prints_not_only_its_exit_code(tmp_path):
    """Without libpython, spatch prints "Py.find_library: unable to find the Python
    library" for a Python script rule and exits 0 (a fresh machine's coccicheck failed
    so): the probe wants the script's own output."""
    bindir = fake_path(tmp_path, "spatch")
    (bindir / "spatch").write_text("#!/bin/sh\necho 'Py.find_library: unable to find the "
                                   "Python library [libpython3.11m.so]' >&2\nexit 0\n")
    (bindir / "spatch").chmod(0o755)
    result = lab("doctor", "--strict", env={"PATH": str(bindir), "COLUMNS": "400"})
    assert result.returncode == 2
    failed = [line for line in result.stdout.splitlines() if "FAILED" in line]
    assert any("libpython3.11" in line and "did not print" in line for line in failed) \
        or ("did not print" in result.stdout and "libpython3.11" in result.stdout), result.stdout


def test_strict_doctor_passes_on_this_machine():
    result = lab("doctor", "--strict", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MISSING" not in result.stdout and "FAILED" not in result.stdout


def test_doctor_passes_on_this_machine_and_reports_the_accelerator():
    result = lab("doctor", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MISSING" not in result.stdout
    assert "accelerator: tcg" in result.stdout or "accelerator: kvm" in result.stdout
