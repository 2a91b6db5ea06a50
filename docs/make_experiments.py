#!/usr/bin/env python3
"""Writes docs/experiments.md from a real run of the catalogue.

    .venv/bin/python docs/make_experiments.py     # runs the catalogue, and kpti with --icount
    .venv/bin/python docs/make_experiments.py --from DIR --icount-from DIR2   # existing runs

The claims and what emulation cannot show are written here, by people;
every number, every table and every verdict comes from the run's
results.json. A claim "held" when every step of its scenario passed in
every cell, "did not hold" otherwise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab import compare  # noqa: E402

CLAIMS = {
    "kpti": {
        "title": "KPTI makes every system call cost more",
        "quote": "KAISER will affect performance for anything that does system calls or "
                 "interrupts: everything. ... Most workloads that we have run show single-digit "
                 "regressions. 5% is a good round number for what is typical. The worst we have "
                 "seen is a roughly 30% regression on a loopback networking test that did a ton "
                 "of syscalls and context switches.",
        "how": "`syscost` times 20000 raw `getppid()` calls, 10 times; `tcprtt` times 500 "
               "one-byte ping-pongs over loopback TCP, 10 times. Cells: the kpti kernel with "
               "KPTI forced on (`kpti=1` / `pti=on`, since the emulated CPUs are not "
               "Meltdown-affected), the same kernel forced off (`kpti=0` / `pti=off`), and the "
               "nokpti kernel. Ratios are against nokpti, with bootstrap 95% intervals.",
        "cannot": "The size of the effect. TCG flushes its whole software TLB on every "
                  "address-space switch and has no PCID or ASID-tagged TLB, so KPTI's cost "
                  "is inflated many times over: this is not the few hundred cycles per "
                  "syscall the article measured on hardware. The direction holds; the "
                  "magnitude does not transfer. `lab run --icount` counts instructions "
                  "instead, and hides the TLB refills.",
        "metrics": ["getppid_ns", "tcp_rtt_ns"],
    },
    "fork-cow": {
        "title": "After fork() the parent takes copy-on-write faults; posix_spawn() does not, "
                 "and suspends only the calling thread",
        "quote": "After calling fork(), a parent process gets its entire address space write "
                 "protected to facilitate COW. This causes page faults. ... posix_spawn() "
                 "doesn't COW — the parent/child literally share memory — so the page fault "
                 "issue doesn't apply. ... only the caller thread of the parent is suspended.",
        "how": "`forkcow` writes one byte into every page of 16 MiB it had already written, "
               "after starting a child by `fork()`, by `posix_spawn()`, or none, and counts "
               "the parent's minor faults (`getrusage`), 5 times each. Then one thread counts "
               "while the other calls `posix_spawn()` 200 times. `spawn_other_thread_progress` "
               "is the counting thread's rate during the spawns over its rate alone; 0 would "
               "mean the whole process was suspended.",
        "cannot": "Real-time latency. The guest has one vCPU under TCG, so the counting thread "
                  "shares the CPU with the spawning thread and the child (hence a ratio near "
                  "0.5, not 1). The claim is that it is not stopped, and it is not. Timing of "
                  "page faults under emulation says nothing about hardware; the fault counts do.",
        "metrics": ["cow_faults_per_mib_fork", "cow_faults_per_mib_spawn",
                    "cow_faults_per_mib_none", "spawn_other_thread_progress"],
    },
    "proc-self-mem": {
        "title": "Writes through /proc/self/mem punch through read-only mappings",
        "quote": "Writes performed through this file will succeed even if the destination "
                 "virtual memory is marked unwritable. In fact, this behavior is intentional "
                 "and actively used by projects such as the Julia JIT compiler and rr debugger.",
        "how": "`procmem` maps a page `PROT_READ` and writes into it with `pwrite()` on "
               "`/proc/self/mem`, then stores to it directly (the SIGSEGV is caught). A process "
               "with uid 1001 tries to open the `/proc/PID/mem` of a uid-1000 process for "
               "writing; one with uid 1000 tries too. 1 means the check went as the claim says.",
        "cannot": "Nothing that matters here: this is kernel logic (FOLL_FORCE and "
                  "ptrace_may_access), the same under emulation as on hardware. The lab kernels "
                  "have no Yama LSM, which would also refuse the same uid.",
        "metrics": ["mem_write_through_readonly", "direct_store_faults",
                    "other_uid_mem_refused", "same_uid_mem_allowed"],
    },
    "demand-paging": {
        "title": "Sparse memory is cheap, but its page tables live in the kernel and grow",
        "quote": "What page tables are and how to calculate the memory overhead incurred by "
                 "them. A cute way to get killed by the OOM killer while appearing to consume "
                 "very little memory.",
        "how": "`sparse` touches 256 pages of a `MAP_NORESERVE` mapping at strides of 4 KiB, "
               "2 MiB and 1 GiB, and reads the growth of VmRSS, of VmPTE (the process's page "
               "tables, exact) and of PageTables in /proc/meminfo (system-wide, batched per "
               "CPU, so it lags by a few pages).",
        "cannot": "Nothing that matters: page-table layout is the architecture's, and QEMU "
                  "emulates it faithfully. aarch64 here has 39-bit virtual addresses (3 levels), "
                  "x86_64 48-bit (4 levels); at a 1 GiB stride both need a PMD-level and a "
                  "PTE-level table per touched page. aarch64's RSS counters are batched per "
                  "thread, hence RSS growths that are not exactly 1024 KiB.",
        "metrics": ["rss_kib_4k", "rss_kib_2m", "rss_kib_1g", "pagetables_kib_4k",
                    "pagetables_kib_2m", "pagetables_kib_1g", "meminfo_pagetables_kib_1g",
                    "pt_bytes_per_page_4k", "pt_bytes_per_page_2m", "pt_bytes_per_page_1g"],
    },
    "syscall-abi": {
        "title": "The raw syscall ABI is stable, in each architecture's registers",
        "quote": "applications that program directly against the raw syscall interface are "
                 "more or less guaranteed to always keep working, even with arbitrarily newer "
                 "kernel versions.",
        "how": "`images/abi/syscall_abi.c` is built freestanding (no C library) once per ABI: "
               "x86_64 (`syscall`; rax; rdi, rsi, rdx), i386 (`int 0x80`; eax; ebx, ecx, edx), "
               "AArch64 (`svc #0`; x8; x0–x2), Armv7 EABI (`svc #0`; r7; r0–r2). Each calls "
               "`write()` and `exit()` with an exit code of its own. The same binaries "
               "(checksums in the log) run on the kpti and nokpti kernels of their arch; the "
               "32-bit ones through IA32_EMULATION and COMPAT.",
        "cannot": "Time. Two kernel configurations of one kernel version are not 'arbitrarily "
                  "newer kernels'; what this shows is that the register conventions of the "
                  "article's table are the ones the kernel implements, on all four ABIs.",
        "metrics": [],
    },
    "mmio": {
        "title": "A driver reads a device register at its base address plus an offset",
        "quote": "cr = readb(uap->port.membase + UART010_CR); are where the real magic happens. "
                 "This is simply doing a read from a memory address derived from some base "
                 "address for the device, plus some offset of the specific register in question.",
        "how": "`pl011_lab` is loaded and `/dev/ttyLAB0` opened. The control register is read "
               "by the driver (`readl(membase + 0x30)`, shown in its debugfs dump) and by the "
               "host through QMP (`xp /1wx 0x9000030`, QEMU's model of the device). Closing the "
               "port clears UARTEN; the host reads CR again. The host also reads offset 0x14.",
        "cannot": "Bus timing and side effects of real silicon. QEMU's device model answers the "
                  "loads and stores; the addresses, offsets and bits are the PL011's. The "
                  "article's `UART010_CR` (0x14) is the PL010's control register; on the "
                  "PL011, 0x08–0x14 are reserved (read as 0) and CR is at 0x30 "
                  "(`UART011_CR`), which is what `amba-pl011.c` uses for this UART.",
        "metrics": ["cr_guest", "cr_host", "reg_0x14", "cr_host_closed"],
    },
    "pl011-driver": {
        "title": "Drivers reach hardware through MMIO registers (the driver experiment)",
        "quote": "How do drivers interface with hardware? These days, mostly via memory mapped "
                 "I/O (MMIO).",
        "how": "See [driver.md](driver.md): 64 KiB of random data each way through the PL011, "
               "by the in-tree `amba-pl011` and by `pl011_lab`, with checksums on both ends; "
               "baud rates set in the guest and read back from the host.",
        "cannot": "Baud-rate timing: QEMU's PL011 is not throttled to its baud rate.",
        "metrics": ["amba_g2h_kib_s", "lab_g2h_kib_s", "amba_h2g_kib_s", "lab_h2g_kib_s"],
    },
}
ORDER = ["kpti", "fork-cow", "proc-self-mem", "demand-paging", "syscall-abi", "mmio",
         "pl011-driver"]


def fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def verdict(cells: list[dict]) -> str:
    return "held" if cells and all(c["status"] == "pass" for c in cells) else "did not hold"


def metrics_table(cells: list[dict], names: list[str]) -> list[str]:
    names = [n for n in names if any(n in c["metrics"] for c in cells)]
    if not names:
        return []
    lines = ["| metric | unit | " + " | ".join(c["id"] for c in cells) + " |",
             "|---|---|" + "---|" * len(cells)]
    for name in names:
        unit = next((c["units"].get(name, "") for c in cells if name in c["units"]), "")
        row = []
        for c in cells:
            v = c["metrics"].get(name)
            if not v:
                row.append("–")
            elif name.startswith("cr_") or name.startswith("reg_"):
                row.append(f"{int(statistics.median(v)):#05x}")
            else:
                row.append(fmt(statistics.median(v)) + (f" (n={len(v)})" if len(v) > 1 else ""))
        lines.append(f"| {name} | {unit} | " + " | ".join(row) + " |")
    return lines


def steps_table(cells: list[dict]) -> list[str]:
    names = list(dict.fromkeys(s["name"] for c in cells for s in c["steps"]))
    lines = ["| step | " + " | ".join(c["id"] for c in cells) + " |",
             "|---|" + "---|" * len(cells)]
    for name in names:
        row = []
        for c in cells:
            statuses = {s["status"] for s in c["steps"] if s["name"] == name}
            row.append(", ".join(sorted(statuses)) if statuses else "–")
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    return lines


def kpti_ratios(results: dict) -> list[str]:
    comparison = compare.compare({"cells": [c for c in results["cells"]
                                            if c["scenario"] == "kpti"]}, ("kernel", "nokpti"),
                                 "getppid_ns" if results["timing"] == "icount" else None)
    lines = ["| metric | arch | cell | median | ratio to nokpti | 95% interval | verdict |",
             "|---|---|---|---|---|---|---|"]
    for metric, rows in comparison["metrics"].items():
        for r in rows:
            ratio = r.get("ratio")
            lines.append(f"| {metric} | {r['arch']} | {r['cell']} | "
                         f"{fmt(r['summary']['median'])} {comparison['units'][metric]} | "
                         + (f"{ratio['ratio']:.2f}× | {ratio['ci95'][0]:.2f}–"
                            f"{ratio['ci95'][1]:.2f} | {ratio['verdict']} |" if ratio
                            else "baseline | | |"))
    return lines


def render(results: dict, source: str, icount: dict | None = None) -> str:
    by = {name: [c for c in results["cells"] if c["scenario"] == name] for name in ORDER}
    accel = sorted({c["accel"] for c in results["cells"]})
    out = [
        "# Experiments",
        "",
        "Each experiment tests a claim from the articles the lab grew from "
        "(`../shared/seed/kernel-articles.txt`). Each one is a scenario in `scenarios/` "
        "with its guest tool in `images/`. `lab run scenarios/` runs them all.",
        "",
        "This page is generated by `docs/make_experiments.py` from a real run: "
        f"{source}. Accelerator: **{', '.join(accel)}**; timing: "
        f"**{results['timing']}**; QEMU: {results['host']['qemu']}; host CPU: "
        f"{results['host']['cpu']} ({results['host']['cores']} cores); the run took "
        f"{results['duration_s']:.0f} s at -j{results['jobs']}. No number here is typed by hand.",
        "",
        "| claim | scenario | arches | verdict here |",
        "|---|---|---|---|",
    ]
    for name in ORDER:
        cells = by[name]
        arches = ", ".join(sorted({c["arch"] for c in cells})) or "–"
        out.append(f"| {CLAIMS[name]['title']} | [{name}](#{name}) | {arches} | "
                   f"**{verdict(cells)}** |")
    for name in ORDER:
        claim, cells = CLAIMS[name], by[name]
        out += ["", f"## {name}", "", f"**{claim['title']}.**", "", f"> {claim['quote']}", "",
                f"How: {claim['how']}", ""]
        if name == "kpti" and cells:
            out += kpti_ratios(results) + [""]
            if icount:
                out += ["The same getppid cells under `lab run --icount` (TCG with `-icount "
                        "shift=0`: virtual time counts instructions, so every sample is the "
                        "same; it shows the extra instructions KPTI executes and hides the "
                        "cost of the TLB refills):", ""] + kpti_ratios(icount) + [""]
        table = metrics_table(cells, claim["metrics"])
        if table:
            out += ["Medians (n = samples):", ""] + table + [""]
        out += ["Steps:", ""] + steps_table(cells) + [""]
        out += [f"Verdict: **{verdict(cells)}** on {', '.join(sorted({c['arch'] for c in cells}))},"
                f" under {', '.join(sorted({c['accel'] + ' ' + c['timing'] for c in cells}))}.",
                "", f"What emulation cannot show: {claim['cannot']}"]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="source", type=Path, help="an existing `lab run` directory")
    ap.add_argument("--icount-from", type=Path,
                    help="an existing `lab run --icount scenarios/kpti.yaml` directory")
    args = ap.parse_args()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out, icount_out = args.source, args.icount_from
    if out is None:
        out = ROOT / "out" / f"catalogue-{stamp}"
        subprocess.run([sys.executable, "-m", "lab", "run", str(ROOT / "scenarios"),
                        "--out", str(out)], cwd=ROOT, check=False)
    if icount_out is None:
        icount_out = ROOT / "out" / f"kpti-icount-{stamp}"
        subprocess.run([sys.executable, "-m", "lab", "run", "--icount",
                        str(ROOT / "scenarios" / "kpti.yaml"), "--out", str(icount_out)],
                       cwd=ROOT, check=False)
    results = json.loads((out / "results.json").read_text())
    icount = json.loads((icount_out / "results.json").read_text())
    day = time.strftime("%Y-%m-%d", time.gmtime((out / "results.json").stat().st_mtime))
    text = render(results, f"`lab run scenarios/` on {day}", icount)
    (ROOT / "docs" / "experiments.md").write_text(text)
    print(f"wrote docs/experiments.md from {out}")


if __name__ == "__main__":
    main()
