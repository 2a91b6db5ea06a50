"""lab run and lab compare on real guests: the kpti scenario end to end."""

import json

import pytest
from junitparser import Error, Failure, JUnitXml

from tests.conftest import ROOT, cells_of, lab

pytestmark = pytest.mark.qemu


def test_the_whole_catalogue_passes(catalogue):
    out, result, results = catalogue
    assert result.returncode == 0, result.stdout + result.stderr
    assert {c["scenario"] for c in results["cells"]} == {
        "kpti", "fork-cow", "proc-self-mem", "demand-paging", "syscall-abi", "mmio",
        "pl011-driver", "dialog"}
    assert {c["status"] for c in results["cells"]} == {"pass"}


def test_kpti_scenario_has_six_cells_and_kpti_on_exactly_where_forced(catalogue):
    out, _, results = catalogue
    cells = cells_of(results, "kpti")
    assert len(cells) == 6 and {c["status"] for c in cells.values()} == {"pass"}
    active = sorted(i for i, c in cells.items() if c["kpti_active"])
    assert active == ["aarch64-kpti-forced-on", "x86_64-kpti-forced-on"]
    for cell in cells.values():
        for key in ("id", "arch", "kernel", "cmdline", "accel", "timing", "status", "error",
                    "kpti_active", "config", "boot_s", "metrics", "steps", "logs"):
            assert key in cell, key
        assert cell["timing"] == "wallclock" and cell["accel"] in ("tcg", "kvm")
        # 3 boots (interleaved), 5 samples of each metric per boot
        assert len(cell["boots"]) == 3
        assert [len(b["samples"]["getppid_ns"]) for b in cell["boots"]] == [5, 5, 5]
        assert len(cell["metrics"]["getppid_ns"]) == len(cell["metrics"]["tcp_rtt_ns"]) == 15
        assert all((out / b["logs"]["console"]).is_file() for b in cell["boots"])
        assert (out / "kpti" / cell["id"] / "result.json").is_file()
        assert (out / "kpti" / cell["id"] / "boot-0" / "reproduce.sh").is_file()
    option = {"aarch64": "CONFIG_UNMAP_KERNEL_AT_EL0", "x86_64": "CONFIG_PAGE_TABLE_ISOLATION"}
    assert cells["aarch64-kpti-forced-on"]["config"] == {option["aarch64"]: "y"}
    assert cells["x86_64-nokpti-default"]["config"] == {option["x86_64"]: "not set"}
    assert results["host"]["qemu"].startswith("QEMU emulator version")


def test_compare_shows_the_syscall_cost_ratio_above_1_with_intervals(catalogue, tmp_path):
    out, _, results = catalogue
    kpti = dict(results, cells=list(cells_of(results, "kpti").values()))
    (tmp_path / "results.json").write_text(json.dumps(kpti))
    out = tmp_path
    result = lab("compare", str(out), "--baseline", "kernel=nokpti", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "TCG flushes its software TLB" in result.stdout
    comparison = json.loads((out / "compare.json").read_text())
    rows = {r["id"]: r for r in comparison["metrics"]["getppid_ns"]}
    for arch in ("aarch64", "x86_64"):
        ratio = rows[f"{arch}-kpti-forced-on"]["ratio"]
        assert ratio["ratio"] > 1 and ratio["ci95"][0] > 1 and ratio["verdict"] == "higher"
        assert rows[f"{arch}-nokpti-default"]["baseline"]
    png = (out / "compare.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10000


def test_junit_xml_reads_in_a_junit_parser(catalogue):
    out, _, results = catalogue
    xml = JUnitXml.fromfile(str(out / "junit.xml"))
    suites = {s.name: s for s in xml}
    assert set(suites) == {c["scenario"] for c in results["cells"]}
    kpti = suites["kpti"]
    cases = list(kpti)
    # per cell: boot, then 3 steps (one of the two asserts applies to each cell) in
    # each of its 3 boots (the scenario's repeat)
    assert len(cases) == 6 * (1 + 3 * 3) == kpti.tests
    assert (kpti.failures, kpti.errors) == (0, 0)
    assert all(not any(isinstance(r, (Failure, Error)) for r in c.result) for c in cases)
    assert {c.classname for c in cases} == {f"kpti.{a}-{k}" for a in ("aarch64", "x86_64")
                                            for k in ("kpti-forced-on", "kpti-forced-off",
                                                      "nokpti-default")}
    assert sum(s.tests for s in suites.values()) == sum(
        1 + len(c["steps"]) for c in results["cells"])


def test_failures_and_errors_are_results_and_the_run_goes_on(tmp_path):
    scenario = tmp_path / "mixed.yaml"
    scenario.write_text(
        "name: mixed\n"
        "matrix: {arch: [aarch64, x86_64], kernel: [nokpti]}\n"
        "steps:\n"
        "  - name: wrong exit code on x86\n"
        "    run: uname -m\n"
        "    match: aarch64\n"
        "  - name: panic on aarch64\n"
        "    run: echo c > /proc/sysrq-trigger\n"
        "    when: {arch: aarch64}\n"
        "  - name: after the panic\n"
        "    run: 'true'\n")
    out = tmp_path / "out"
    result = lab("run", str(scenario), "--out", str(out))
    assert result.returncode == 2            # an error outranks a failure
    cells = {c["arch"]: c for c in json.loads((out / "results.json").read_text())["cells"]}
    assert cells["x86_64"]["status"] == "fail"
    assert [s["status"] for s in cells["x86_64"]["steps"]] == ["fail", "pass"]
    assert cells["aarch64"]["status"] == "error"
    assert "Kernel panic" in cells["aarch64"]["error"]
    assert [s["status"] for s in cells["aarch64"]["steps"]] == ["pass", "error", "skip"]
    xml = JUnitXml.fromfile(str(out / "junit.xml"))
    suite = next(iter(xml))
    assert (suite.failures, suite.errors, suite.skipped) == (1, 1, 1)


def test_repeat_and_icount_are_recorded(tmp_path):
    out = tmp_path / "out"
    result = lab("run", str(ROOT / "scenarios" / "kpti.yaml"), "--only", "arch=x86_64",
                 "--only", "cmdline=forced-on", "--repeat", "2", "--icount", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    (cell,) = json.loads((out / "results.json").read_text())["cells"]
    assert cell["timing"] == "icount" and cell["accel"] == "tcg"
    assert len(cell["boots_s"]) == 2 and len(cell["metrics"]["getppid_ns"]) == 2 * 5
    assert (out / "kpti" / cell["id"] / "boot-1" / "console.log").is_file()
    assert "-icount" in (out / "kpti" / cell["id"] / "boot-0" / "reproduce.sh").read_text()
