#!/usr/bin/env python3
"""The device-under-test UART's throughput, through this tree's engine and a baseline's.

    .venv/bin/python bench/uart.py [--baseline REV] [--rounds 3]

Each round runs `lab run scenarios/pl011-driver.yaml` (aarch64: the in-tree
amba-pl011 and the lab's pl011_lab, 64 KiB each way, host to guest and guest to
host, each metric in KiB/s) from this tree and from a git worktree of REV (as
bench/console.py makes it), alternating which goes first. Prints each metric's
median per tree and this tree / baseline (>= 1: no slower).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from console import ROOT, worktree


def metrics(node, out: dict[str, float]) -> dict[str, float]:
    """Each metric whose name ends in _kib_s, anywhere in results.json (a list of
    samples: their median)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("_kib_s") and isinstance(value, list) and value and \
                    all(isinstance(v, (int, float)) for v in value):
                out[key] = statistics.median(value)   # a cell's samples
            elif key.endswith("_kib_s") and isinstance(value, (int, float)):
                out[key] = float(value)
            else:
                metrics(value, out)
    elif isinstance(node, list):
        for value in node:
            metrics(value, out)
    return out


def run(tree: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="lab-bench-uart-") as out:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        done = subprocess.run([sys.executable, "-m", "lab", "run", "scenarios/pl011-driver.yaml",
                               "--out", out], cwd=tree, env=env, capture_output=True, text=True,
                              timeout=1800)
        found = metrics(json.loads((Path(out) / "results.json").read_text()), {}) \
            if (Path(out) / "results.json").exists() else {}
        if not found:
            raise SystemExit(f"{tree}: no metrics (exit {done.returncode}):\n{done.stderr[-2000:]}")
        return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="b34adb5")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    trees = [("this tree", ROOT), (args.baseline, worktree(args.baseline))]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
    for i in range(args.rounds):
        for name, tree in trees if i % 2 == 0 else trees[::-1]:
            runs[name].append(run(tree))
    keys = sorted(set().union(*runs["this tree"]) & set().union(*runs[args.baseline]))
    print(f"UART throughput (KiB/s), medians of {args.rounds} runs per tree, alternating")
    print(f"| metric | this tree | {args.baseline} | this / baseline |")
    print("|---|---|---|---|")
    for key in keys:
        mine, base = (statistics.median(r[key] for r in runs[name] if key in r)
                      for name in ("this tree", args.baseline))
        print(f"| {key} | {mine:.1f} | {base:.1f} | x{mine / base:.2f} |")


if __name__ == "__main__":
    main()
