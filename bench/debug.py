#!/usr/bin/env python3
"""What the debug kernel costs (issue 13): the plain nokpti kernel against the
debug variant (KASAN, UBSAN, lockdep, kmemleak, debugobjects), side by side.

    .venv/bin/python bench/debug.py [--rounds N] [--arch A ...]

Per arch, N rounds, alternating which kernel goes first:
  boot      a cold boot to the first command answered (Guest() to `true`);
  workload  in that same guest, `forkcow 16 3` (fork and copy-on-write of 16 MiB,
            posix_spawn: page faults, fork, exec, exit), timed on the host.
Medians, and the ratio debug / plain. Both kernels must be in the cache
(`lab build --kernel debug`); the machine is shared and noisy, so compare ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.app.pytest_plugin import lab_kernel  # noqa: E402
from lab.guest.guest import Guest  # noqa: E402

KERNELS = ("nokpti", "debug")
WORKLOAD = "forkcow 16 3"


def one(arch: str, kernel: str, logdir: Path) -> tuple[float, float]:
    started = time.monotonic()
    with Guest(lab_kernel(arch, kernel), ("lab.bench=debug",), logdir=logdir) as g:
        g.run("true")
        boot = time.monotonic() - started
        started = time.monotonic()
        r = g.run(WORKLOAD, 600)
        assert r.exit_code == 0, r.output
        return boot, time.monotonic() - started


def per_arch(arch: str, rounds: int, tmp: Path) -> None:
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in KERNELS}
    for r in range(rounds):
        for kernel in (KERNELS if r % 2 == 0 else KERNELS[::-1]):
            times[kernel].append(one(arch, kernel, tmp / f"{arch}-{kernel}-{r}"))
    for i, what in enumerate(("boot", "workload")):
        plain, debug = (statistics.median(t[i] for t in times[k]) for k in KERNELS)
        print(f"| {arch} | {what} | {plain:.2f} | {debug:.2f} | {debug / plain:.1f}x |",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--arch", action="append", choices=("aarch64", "x86_64"))
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds, interleaved; "
          "medians in seconds")
    print("| arch | measure | plain nokpti | debug | debug / plain |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="lab-bench-debug-") as tmp:
        for arch in args.arch or ("aarch64", "x86_64"):
            per_arch(arch, args.rounds, Path(tmp))


if __name__ == "__main__":
    main()
