"""Synthetic runs on disk, as lab run leaves them (results.json, junit.xml, each cell's
result.json, console.log, step-NN.out, reproduce.sh), for the report's fast tests and
bench/report.py. No guest runs: the outcomes are drawn from a seeded generator."""

from __future__ import annotations

import random
from pathlib import Path

from lab.app import report
from lab.core.model import BootFacts, Cell, HostFacts, KernelMessage
from lab.core.results import BootResult, CellResult, RunResult, Status, StepResult, TestResult
from lab.host import cache

OOPS = ("Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000\n"
        "Mem abort info:\n  ESR = 0x0000000096000005\nInternal error: Oops: 96000005 [#1] SMP\n"
        "Modules linked in: pl011_lab(O)\nCPU: 0 PID: 74 Comm: insmod Tainted: G O 6.1.0 #1\n"
        "pc : lab_probe+0x1c/0x40 [pl011_lab]\nlr : do_one_initcall+0x50/0x1d0\n"
        "Call trace:\n lab_probe+0x1c/0x40 [pl011_lab]\n do_one_initcall+0x50/0x1d0\n"
        " do_init_module+0x44/0x1d0\n")


def _console(cell: CellResult, lines: int, rng: random.Random) -> str:
    out = [f"{i * 0.01:9.3f} kernel | [{i * 0.01:10.6f}] synthetic kernel line {i} of "
           f"{cell.id}" for i in range(lines)]
    out.insert(lines // 2, f"{0.5:9.3f} shell  | $ run_kselftest.sh")
    if rng.random() < 0.1:
        out += [f"{9.9:9.3f} kernel | {x}" for x in OOPS.splitlines()]
    return "\n".join(out) + "\n"


def synthetic_run(out: Path, cells: int = 200, tests: int = 5000, *, fail: float = 0.02,
                  skip: float = 0.05, xfail: float = 0.01, repeat: int = 1, seed: int = 0,
                  hostile: str = "") -> RunResult:
    """A run of `cells` cells (2 arches x kernels x command lines) whose one kselftest
    step reports tests/cells tests each, written under out as lab run writes it.
    hostile: a string put into every name, command, message and log the run has."""
    rng = random.Random(seed)
    per_cell = max(1, tests // cells)
    arches = ("aarch64", "x86_64")
    kernels = max(1, round((cells / 2) ** 0.5))
    results = []
    for n in range(cells):
        arch, k, c = arches[n % 2], (n // 2) % kernels, (n // 2) // kernels
        cell = Cell(arch, f"k{k}", f"c{c}", (f"opt{c}=1",))
        result = CellResult(cell, "synthetic", kernel_source={"describe": "linux-source-6.1"},
                            kernel={"hash": f"{n:064x}", "fragments": ["base.config",
                                                                       f"{arch}.config"]},
                            boot_policy="restored from a snapshot template: it records no "
                                        "metrics")
        for b in range(repeat):
            result.boots.append(_boot(out, result, b, repeat, per_cell, rng, n,
                                      (fail, skip, xfail), hostile))
        cache.write_json(out / "synthetic" / cell.id / "result.json", result.to_json())
        results.append(result)
    run = RunResult([{"name": "synthetic", "description": "synthetic tests" + hostile,
                      "path": "scenarios/synthetic.yaml"}],
                    HostFacts("tcg", "KVM is unusable: nested", "Synthetic CPU", "QEMU emulator "
                              "version 7.2.0", 2, "bench-host"), 2, "wallclock", results,
                    duration_s=sum(c.duration_s for c in results) / 2, lab_version="0.1.0",
                    schedule={"order": "in order", "seed": None},
                    executor={"kind": "local", "jobs": 2},
                    builds=[{"what": f"{a}/k{k}", "start_s": 0.2 * i, "duration_s": 0.2,
                             "built": False} for i, (a, k) in enumerate(
                                 (a, k) for a in arches for k in range(min(kernels, 4)))])
    report.write_results(run, out)
    return run


def _boot(out: Path, result: CellResult, b: int, repeat: int, per_cell: int,
          rng: random.Random, n: int, rates: tuple[float, float, float],
          hostile: str) -> BootResult:
    fail, skip, xfail = rates
    rel = Path("synthetic") / result.cell.id / (f"boot-{b}" if repeat > 1 else "")
    logdir = out / rel
    logdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for j in range(per_cell):
        x = rng.random()
        status = (Status.FAIL if x < fail else Status.SKIP if x < fail + skip + xfail
                  else Status.PASS)
        message = ""
        if status is Status.FAIL:
            message = f"# test{j}: expected 0, got 1{hostile}\n# at line {j}"
        elif status is Status.SKIP:
            message = ("xfail (emulation: TCG has no such feature)" if x < fail + xfail
                       else "skip: needs CONFIG_X")
        rows.append(TestResult(f"suite{j % 5}.test{j}{hostile}", status, message))
    start = 1.0 + (n * repeat + b) * 0.9
    stepdur = 0.6
    output = "\n".join(f"# selftests: suite{j % 5}: test{j}{hostile}\nok {j} test{j}"
                       for j in range(per_cell)) + "\n"
    (logdir / "step-01.out").write_text(output)
    (logdir / "console.log").write_text(_console(result, 120, rng) + hostile + "\n")
    for name in ("qemu.log", "qmp.log"):
        (logdir / name).write_text("")
    (logdir / "reproduce.sh").write_text("#!/bin/sh\nqemu-system-x86_64 -S\n")
    status = Status.FAIL if any(t.status is Status.FAIL for t in rows) else Status.PASS
    step = StepResult("kselftest suites" + hostile, "kselftest", b, status, stepdur, 0,
                      f"kselftest: some tests did not pass{hostile}" if status is Status.FAIL
                      else "", str(rel / "step-01.out"), tuple(rows),
                      f"run_kselftest.sh: suite0 suite1{hostile}", "every test passes or skips",
                      start + 0.3)
    facts = BootFacts("6.1.0-lab", "tcg", "console=hvc0", 0.25, False, "restored", "t" * 12)
    faults = [KernelMessage("oops", False, OOPS)] if rng.random() < 0.05 else []
    return BootResult(b, facts, [step], faults=faults,
                      logs={k: str(rel / f"{k}.log") for k in ("console", "qemu", "qmp")},
                      position=n * repeat + b, start_s=start, host_load=1.0,
                      duration_s=0.3 + stepdur + 0.05, worker={"host": "bench-host"})
