#!/usr/bin/env python3
"""Turnaround of the driver loop: edit the driver, then `lab driver`, with the kernel cached.

    .venv/bin/python bench/driver.py [--rounds N]

Each round copies drivers/pl011-lab, changes a comment in its source (so the
module and the guest image must be rebuilt, as after a real edit), and times
a whole `lab driver COPY` process: module build, image, boot, load, the
pl011-driver scenario, shutdown. The issue's target is 15 s on aarch64 TCG.
The 'scenario' column is the same run's scenario time, to set the loop's
own overhead apart.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    subprocess.run([sys.executable, "-m", "lab", "build", "--arch", "aarch64", "--kernel",
                    "nokpti"], cwd=ROOT, check=True, capture_output=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lab-bench-driver-") as tmp:
        driver = Path(tmp) / "pl011-lab"
        shutil.copytree(ROOT / "drivers" / "pl011-lab", driver)
        source = driver / "pl011_lab.c"
        for i in range(args.rounds):
            source.write_text(source.read_text() + f"/* edit {time.time()} */\n")
            out = Path(tmp) / f"out-{i}"
            started = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "lab", "driver", str(driver),
                                   "--out", str(out)], cwd=ROOT, capture_output=True)
            total = time.monotonic() - started
            results = json.loads((out / "results.json").read_text())
            rows.append((total, results["duration_s"], done.returncode))
            for cell in results["cells"]:
                for step in cell["steps"]:
                    if step["status"] in ("fail", "error"):
                        print(f"round {i + 1}: {step['name']}: {step['message'][:300]}")
    print(f"{'round':>5} {'turnaround (s)':>15} {'scenario (s)':>13} {'exit':>5}")
    for i, (total, scen, rc) in enumerate(rows):
        print(f"{i + 1:5} {total:15.1f} {scen:13.1f} {rc:5}")
    print(f"median turnaround {statistics.median(r[0] for r in rows):.1f} s "
          f"(target 15 s), scenario share {statistics.median(r[1] / r[0] for r in rows):.2f}")


if __name__ == "__main__":
    main()
