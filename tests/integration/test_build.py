"""The four default kernels: built, verified, listed, and cached."""

import json

import pytest

from lab.app.pytest_plugin import lab_kernel
from lab.arches import ARCHES
from tests.conftest import lab

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize("arch", list(ARCHES))
def test_kpti_option_in_the_final_config(arch):
    option = ARCHES[arch].kpti_option
    on = lab_kernel(arch, "kpti").config.read_text().splitlines()
    off = lab_kernel(arch, "nokpti").config.read_text().splitlines()
    assert f"CONFIG_{option}=y" in on
    assert f"# CONFIG_{option} is not set" in off


def test_lab_kernels_json_lists_every_default_kernel_with_its_files():
    for arch in ARCHES:
        for kernel in ("kpti", "nokpti"):
            lab_kernel(arch, kernel)
    result = lab("kernels", "--json")
    assert result.returncode == 0, result.stderr
    listed = {(k["arch"], k["kernel"]): k for k in json.loads(result.stdout)}
    for arch in ARCHES:
        for kernel in ("kpti", "nokpti"):
            entry = listed[(arch, kernel)]
            assert len(entry["hash"]) == 64
            for key in ("image", "config", "initramfs"):
                assert entry[key] and open(entry[key], "rb").read(4)


def test_a_second_build_with_nothing_changed_builds_nothing():
    before = {k: lab_kernel(*k).image.parent / "build.log" for k in
              [(a, v) for a in ARCHES for v in ("kpti", "nokpti")]}
    stamps = {k: p.stat().st_mtime_ns for k, p in before.items()}
    result = lab("build")
    assert result.returncode == 0, result.stderr
    assert "built" not in result.stderr      # only a build that happened says so
    assert {k: p.stat().st_mtime_ns for k, p in before.items()} == stamps
