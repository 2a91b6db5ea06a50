"""The out-of-tree PL011 driver: style, the scenario, x86, and the driver loop."""

import json
import shutil
import subprocess

import pytest

from lab.artifacts import build
from tests.conftest import ROOT, cells_of, lab, lab_qemus

pytestmark = pytest.mark.qemu
DRIVER = ROOT / "drivers" / "pl011-lab"


def test_checkpatch_strict_is_clean():
    src, _ = build.kernel_source()
    for source in sorted(DRIVER.glob("*.c")):
        result = subprocess.run([str(src / "scripts" / "checkpatch.pl"), "--strict", "--no-tree",
                                 "-f", str(source)], capture_output=True, text=True)
        assert "total: 0 errors, 0 warnings, 0 checks" in result.stdout, result.stdout


def test_pl011_driver_scenario_moves_data_intact_both_ways_with_both_drivers(catalogue):
    _, result, results = catalogue
    (cell,) = cells_of(results, "pl011-driver").values()
    assert cell["status"] == "pass", cell
    steps = {s["name"]: s for s in cell["steps"]}
    for driver in ("in-tree", "pl011_lab"):
        for direction in ("guest to host", "host to guest"):
            for r in range(1, 6):                 # md5 equal on both ends, every round
                assert steps[f"{driver}, {direction} (round {r}/5)"]["status"] == "pass"
    for metric in ("amba_g2h_kib_s", "amba_h2g_kib_s", "lab_g2h_kib_s", "lab_h2g_kib_s"):
        assert len(cell["metrics"][metric]) == 5 and cell["units"][metric] == "KiB/s"
    assert steps["9600 baud, from the host"]["status"] == "pass"
    assert steps["rmmod leaves no oops or warning"]["status"] == "pass"
    assert cell["faults"] == []
    assert "metrics" in result.stdout and "lab_g2h_kib_s" in result.stdout


def test_on_x86_64_the_module_loads_and_says_it_binds_nothing(lab_boot):
    guest = lab_boot("x86_64", "nokpti")
    loaded = guest.run("modprobe pl011_lab && dmesg | grep pl011_lab")
    assert loaded.exit_code == 0, loaded.output
    assert "no AMBA bus on this machine, so no PL011 to bind" in loaded.output
    assert guest.run("ls /dev/ttyLAB0").exit_code != 0
    assert guest.run("rmmod pl011_lab").exit_code == 0
    assert guest.faults() == []


def test_driver_loop_passes_on_the_driver(tmp_path):
    result = lab("driver", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS aarch64-nokpti-default" in result.stdout


def test_a_broken_driver_makes_the_loop_report_the_oops_and_stop(tmp_path):
    broken = tmp_path / "pl011-lab"
    shutil.copytree(DRIVER, broken)
    source = broken / "pl011_lab.c"
    text = source.read_text()
    anchor = "\tlp->clk = devm_clk_get(&dev->dev, NULL);\n"
    assert anchor in text
    source.write_text(text.replace(anchor, "\tlp = NULL;\t/* the bug */\n" + anchor))
    result = lab("driver", str(broken), "--out", str(tmp_path / "out"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL aarch64-nokpti-default: first failure at step 'load pl011_lab'" in result.stdout
    assert "kernel oops:" in result.stdout or "kernel fault:" in result.stdout
    assert "Unable to handle kernel NULL pointer dereference" in result.stdout
    assert "lab_probe" in result.stdout          # KALLSYMS: symbol names in the trace
    (cell,) = json.loads((tmp_path / "out" / "results.json").read_text())["cells"]
    assert [s["status"] for s in cell["steps"]].count("skip") > 10
    assert not lab_qemus()


DATA = ROOT / "tests" / "data" / "drivers"


def test_a_directory_without_a_scenario_gets_a_smoke_test_of_its_own_module(tmp_path):
    result = lab("driver", str(DATA / "hello"), "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS aarch64-nokpti-default: smoke test of lab_hello" in result.stdout
    (cell,) = json.loads((tmp_path / "results.json").read_text())["cells"]
    assert [s["name"] for s in cell["steps"]] == [
        "load lab_hello", "lab_hello is in /proc/modules", "unload lab_hello",
        "lab_hello is gone from /proc/modules"]
    assert "lab_hello: loaded" in (tmp_path / cell["logs"]["console"]).read_text()


def test_the_smoke_test_fails_on_a_module_that_oopses_in_its_init_and_names_it(tmp_path):
    result = lab("driver", str(DATA / "oops-init"), "--out", str(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL aarch64-nokpti-default: first failure at step 'load oops_init'" in result.stdout
    assert "oops_init_init" in result.stdout          # the oops, with symbols
    (cell,) = json.loads((tmp_path / "results.json").read_text())["cells"]
    assert cell["steps"][0]["status"] == "fail" and "kernel" in cell["steps"][0]["message"]
    assert not lab_qemus()


def test_a_directory_that_builds_no_module_is_refused(tmp_path):
    (tmp_path / "Kbuild").write_text("# nothing\n")
    result = lab("driver", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "builds no module" in result.stderr and "Traceback" not in result.stderr
