"""`lab driver --debug`: the debug kernel names the classic driver bugs that the
plain kernel lets pass (tests/drivers/), and passes the lab's own driver."""

import json

import pytest

from tests.conftest import ROOT, lab, lab_qemus

pytestmark = pytest.mark.qemu
BROKEN = ROOT / "tests" / "drivers"
#: Each broken module, and the report class the debug kernel must name.
CLASSES = {"uaf": "kasan", "atomic-sleep": "atomic-sleep", "leak": "kmemleak",
           "oob": "ubsan", "lock-order": "lockdep"}
#: CI builds the aarch64 debug kernel only (a cold run stays under an hour); the
#: x86_64 half runs by hand: `pytest -m byhand tests/integration/test_debug_driver.py`.
ARCHES = ("aarch64", pytest.param("x86_64", marks=pytest.mark.byhand))


def driver(tmp_path, *args: str):
    out = tmp_path / "out"
    result = lab("driver", *args, "--out", str(out))
    (cell,) = json.loads((out / "results.json").read_text())["cells"]
    return result, cell


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("name", CLASSES)
def test_the_debug_loop_fails_each_broken_module_naming_its_report_class(tmp_path, name, arch):
    result, cell = driver(tmp_path, "--debug", "--arch", arch, str(BROKEN / name))
    assert result.returncode == 1, result.stdout + result.stderr
    assert cell["kernel"] == "debug" and cell["status"] == "fail"
    failed = [s for s in cell["steps"] if s["status"] == "fail"]
    assert failed and f"kernel {CLASSES[name]}:" in failed[0]["message"], failed
    assert f"kernel {CLASSES[name]}:" in result.stdout + result.stderr
    assert not lab_qemus()


@pytest.mark.parametrize("name", CLASSES)
def test_on_the_plain_kernel_the_same_modules_pass(tmp_path, name):
    """Which is the point of the debug kernel."""
    result, cell = driver(tmp_path, str(BROKEN / name))
    assert result.returncode == 0, result.stdout + result.stderr
    assert cell["kernel"] == "nokpti" and cell["status"] == "pass"


def test_the_debug_loop_passes_the_pl011_driver_and_scans_for_its_leaks(tmp_path):
    result, cell = driver(tmp_path, "--debug")
    assert result.returncode == 0, result.stdout + result.stderr
    assert cell["kernel"] == "debug" and cell["status"] == "pass"
    scan = cell["steps"][-1]
    assert scan["name"] == "kmemleak scan: no leak of pl011_lab" and scan["status"] == "pass"
    assert cell["faults"] == []
