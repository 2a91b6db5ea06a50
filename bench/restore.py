#!/usr/bin/env python3
"""Cold boot against restore from a snapshot template (issue 15).

    .venv/bin/python bench/restore.py [--rounds N] [--arch A] [--skip-suites]

1. Per arch, up to the first command answered: a Guest is created, entered
   (cold: QEMU launched, boot, shell setup, the boot facts read; restored: QEMU
   launched on the template's RAM, its state loaded, the guest brought to the
   present) and runs `true`; timed from Guest() to that command's answer, which
   is what a user of `lab exec` or of the pytest plugin waits for. Cold and
   restored alternate N times in one run (after one restore that makes sure
   the template exists); medians and the ratio.
2. The run time of a 20-test pytest module on the lab_guest fixture, with
   --lab-cold and without (a template already made).
3. The run time of a `repeat: 10` cell that no other cell is compared with,
   `lab run --cold` and without.

The machine is shared and noisy (the host's load average is printed): compare
ratios, and run it again when the load is high.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.app.pytest_plugin import lab_kernel  # noqa: E402
from lab.guest.guest import Guest  # noqa: E402


def first_command(arch: str, restore: bool, logdir: Path) -> float:
    started = time.monotonic()
    with Guest(lab_kernel(arch, "nokpti"), ("lab.bench=restore",), logdir=logdir,
               restore=restore) as g:
        g.run("true")
        took = time.monotonic() - started
        assert g.facts is not None and g.facts.boot == ("restored" if restore else "cold"), \
            g.facts
    return took


def per_arch(arch: str, rounds: int, tmp: Path) -> None:
    first_command(arch, True, tmp / f"{arch}-template")       # the template exists
    times: dict[bool, list[float]] = {True: [], False: []}
    for r in range(rounds):
        for restore in ((True, False) if r % 2 else (False, True)):
            times[restore].append(first_command(arch, restore, tmp / f"{arch}-{r}-{restore}"))
    cold, warm = statistics.median(times[False]), statistics.median(times[True])
    print(f"{arch:8} cold {cold:6.3f} s  restored {warm:6.3f} s  ratio {cold / warm:5.1f}x  "
          f"(restored min {min(times[True]):.3f}, max {max(times[True]):.3f}; "
          f"cold min {min(times[False]):.3f}; {rounds} each)", flush=True)


MODULE = textwrap.dedent("""\
    import pytest

    @pytest.mark.parametrize("n", range(20))
    def test_guest(lab_guest, n):
        assert lab_guest.run(f"echo {n} > /root/n && cat /root/n").output == f"{n}\\n"
        assert lab_guest.run("test -e /root/other").exit_code == 1
        lab_guest.run("touch /root/other")
""")


def timed(argv: list[str]) -> float:
    started = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.monotonic() - started


def suites(tmp: Path) -> None:
    module = tmp / "test_twenty.py"
    module.write_text(MODULE)
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module),
              "--lab-arch", "x86_64", "-o", "addopts="]
    timed(pytest)                                  # the template exists
    cold, warm = timed([*pytest, "--lab-cold"]), timed(pytest)
    print(f"20-test pytest module (x86_64): cold {cold:5.1f} s  restored {warm:5.1f} s  "
          f"ratio {cold / warm:4.1f}x", flush=True)
    scenario = tmp / "ten.yaml"
    scenario.write_text("name: ten\ndescription: one cell, ten boots\nrepeat: 10\n"
                        "matrix:\n  arch: x86_64\n  kernel: nokpti\n"
                        "steps:\n  - name: uname\n    run: uname -m\n")
    lab = [sys.executable, "-m", "lab", "run", str(scenario), "-j1", "--out"]
    timed([*lab, str(tmp / "warm")])
    cells = {}
    for how, extra in (("cold", ["--cold"]), ("restored", [])):
        timed([*lab, str(tmp / how), *extra])
        cells[how] = json.loads((tmp / how / "results.json").read_text())["cells"][0]
    c, w = cells["cold"]["duration_s"], cells["restored"]["duration_s"]
    print(f"repeat: 10 cell (x86_64): cold {c:5.1f} s  restored {w:5.1f} s  ratio "
          f"{c / w:4.1f}x  (boot: {cells['restored']['boot']})", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--arch", action="append", choices=("aarch64", "x86_64"))
    p.add_argument("--skip-suites", action="store_true")
    args = p.parse_args()
    print(f"host load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="lab-bench-restore-") as tmp:
        for arch in args.arch or ["aarch64", "x86_64"]:
            per_arch(arch, args.rounds, Path(tmp))
        if not args.skip_suites:
            suites(Path(tmp))
    print(f"host load average {os.getloadavg()[0]:.2f} at the end", flush=True)


if __name__ == "__main__":
    main()
