#!/usr/bin/env python3
"""Wall time of the whole kpti matrix (6 cells, kernels cached) at -j1 and -j2.

    .venv/bin/python bench/matrix.py [--rounds N] [SCENARIO]

The two alternate in one run, so that both see the same machine; prints the
median wall time of each and the speed-up.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wall(scenario: str, jobs: int) -> float:
    with tempfile.TemporaryDirectory(prefix="lab-bench-matrix-") as out:
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "lab", "run", scenario, "-j", str(jobs),
                        "--out", out], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.monotonic() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("scenario", nargs="?", default=str(ROOT / "scenarios" / "kpti.yaml"))
    args = ap.parse_args()
    subprocess.run([sys.executable, "-m", "lab", "build"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.rounds):
        for jobs in times:
            times[jobs].append(wall(args.scenario, jobs))
    j1, j2 = statistics.median(times[1]), statistics.median(times[2])
    print(f"{'scenario':12} {'-j1 (s)':>8} {'-j2 (s)':>8} {'speed-up':>9}")
    print(f"{Path(args.scenario).stem:12} {j1:8.1f} {j2:8.1f} {j1 / j2:8.2f}x")
    print(f"(medians of {args.rounds} alternating runs each, whole `lab run` processes, "
          "kernels cached)")


if __name__ == "__main__":
    main()
