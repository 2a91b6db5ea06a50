"""The kernel-fault catalogue against recorded kernel output."""

from pathlib import Path

from lab.arches import ARCHES
from lab.parse import faults

DATA = Path(__file__).parent.parent / "data"


def test_recorded_panic_is_one_fatal_fault_with_its_trace():
    found = faults.scan((DATA / "panic-aarch64.log").read_text())
    assert [f.kind for f in found] == ["panic"]
    assert found[0].fatal
    assert "sysrq triggered crash" in found[0].text.splitlines()[0]
    assert "write_sysrq_trigger" in found[0].text


def test_cut_here_and_its_warning_are_one_fault_and_the_oops_another():
    found = faults.scan((DATA / "oops-warning-aarch64.log").read_text())
    assert [(f.kind, f.fatal) for f in found] == [("warning", False), ("oops", False)]
    assert "labtest.c:12" in found[0].text
    assert found[1].text.startswith("[   14.100000] Unable to handle kernel NULL pointer")
    assert "Internal error: Oops" in found[1].text


def test_a_panic_after_an_oops_is_its_own_fatal_fault():
    text = ("[1.0] Internal error: Oops: 96000044 [#1] SMP\n"
            "[1.1] Call trace:\n"
            "[1.2] Kernel panic - not syncing: Fatal exception\n")
    found = faults.scan(text)
    assert [(f.kind, f.fatal) for f in found] == [("oops", False), ("panic", True)]
    scanner = faults.FaultScanner()
    for line in text.splitlines():
        scanner.feed(line)
    assert scanner.panic.text.endswith("Fatal exception")


def test_ordinary_output_is_no_fault():
    assert faults.scan("[0.1] Booting Linux\n[0.2] Run /init as init process\n") == []


def test_taint_letters():
    assert faults.taint_flags(0) == ""
    assert faults.taint_flags(4096) == "O"            # out-of-tree module
    assert faults.taint_flags((1 << 9) | (1 << 7)) == "DW"


ARM64_ON = "[    0.000000] CPU features: detected: Kernel page table isolation (KPTI)\n"
ARM64_FORCED_OFF = ("[    0.000000] CPU features: kernel page table isolation forced OFF "
                    "by kpti command line option\n")
ARM64_CMDLINE = "[    0.000000] Kernel command line: console=hvc0 kpti=1\n"
X86_ON = "[    0.000000] Kernel/User page tables isolation: enabled\n"
X86_OFF = "[    0.000000] Kernel/User page tables isolation: disabled on command line.\n"


def test_kpti_is_read_from_the_kernel_log_lines_that_mean_it():
    arm, x86 = ARCHES["aarch64"].kpti_dmesg, ARCHES["x86_64"].kpti_dmesg
    assert faults.kpti_active(arm, ARM64_CMDLINE + ARM64_ON)
    assert not faults.kpti_active(arm, ARM64_CMDLINE + ARM64_FORCED_OFF)
    assert not faults.kpti_active(arm, ARM64_CMDLINE)   # "kpti" on the command line is no proof
    assert faults.kpti_active(x86, X86_ON)
    assert not faults.kpti_active(x86, X86_OFF)
    assert not faults.kpti_active(x86, ARM64_ON)


def test_summary_keeps_what_where_and_the_top_of_the_trace():
    oops = faults.scan((DATA / "oops-warning-aarch64.log").read_text())[1]
    summary = faults.summarize(oops.text)
    assert summary[0].endswith("Unable to handle kernel NULL pointer dereference at "
                               "virtual address 0000000000000000")
    assert any("Internal error: Oops" in line for line in summary)
    assert any("pc : labtest_probe+0x8/0x20 [labtest]" in line for line in summary)
    assert any("Modules linked in" in line for line in summary)
    at = next(i for i, line in enumerate(summary) if line.endswith("Call trace:"))
    assert "labtest_probe" in summary[at + 1]
    assert not any("ESR" in line for line in summary)
