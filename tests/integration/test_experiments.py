"""The experiment catalogue: each claim's numbers, from one real run."""

import statistics

import pytest

from tests.conftest import cells_of

pytestmark = pytest.mark.qemu


def median(cell, metric):
    return statistics.median(cell["metrics"][metric])


@pytest.mark.parametrize("scenario, arches", [
    ("fork-cow", {"aarch64", "x86_64"}), ("proc-self-mem", {"aarch64", "x86_64"}),
    ("demand-paging", {"aarch64", "x86_64"}), ("syscall-abi", {"aarch64", "x86_64"}),
    ("mmio", {"aarch64"}),
])
def test_scenario_passes_on_its_arches(catalogue, scenario, arches):
    cells = cells_of(catalogue[2], scenario)
    assert {c["arch"] for c in cells.values()} == arches
    for cell in cells.values():
        assert cell["status"] == "pass", [s for s in cell["steps"] if s["status"] != "pass"]


def test_fork_faults_and_spawn_does_not(catalogue):
    for cell in cells_of(catalogue[2], "fork-cow").values():
        assert median(cell, "cow_faults_per_mib_fork") == pytest.approx(256, abs=6)
        assert median(cell, "cow_faults_per_mib_spawn") < 2
        assert median(cell, "spawn_other_thread_progress") > 0.1


def test_page_tables_grow_with_the_stride(catalogue):
    for cell in cells_of(catalogue[2], "demand-paging").values():
        assert median(cell, "pt_bytes_per_page_2m") == pytest.approx(4096, rel=0.05)
        assert median(cell, "pt_bytes_per_page_1g") == pytest.approx(8192, rel=0.05)
        assert median(cell, "pagetables_kib_1g") > 1.5 * median(cell, "rss_kib_1g")


def test_syscall_abi_runs_all_four_abis_on_both_kernels(catalogue):
    cells = cells_of(catalogue[2], "syscall-abi")
    assert set(cells) == {f"{a}-{k}-default" for a in ("aarch64", "x86_64")
                          for k in ("kpti", "nokpti")}
    ran = {(c["arch"], s["name"].split()[0]) for c in cells.values() for s in c["steps"]
           if s["status"] == "pass" and s["exit_code"] not in (None, 0)}
    assert ran == {("x86_64", "x86_64"), ("x86_64", "i386"), ("aarch64", "AArch64"),
                   ("aarch64", "Armv7")}


def test_mmio_guest_and_host_agree_and_0x14_is_not_the_control_register(catalogue):
    (cell,) = cells_of(catalogue[2], "mmio").values()
    assert median(cell, "cr_guest") == median(cell, "cr_host") == 0xf01
    assert median(cell, "reg_0x14") == 0
    assert median(cell, "cr_host_closed") == 0
