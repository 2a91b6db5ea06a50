#!/usr/bin/env python3
"""How long each class of bad input takes to be refused, measured in one run.

    .venv/bin/python bench/refusal.py [--cli]

Loads every file of tests/data/bad-scenarios (grouped by its `# class:` line)
and every generated case of tests/badinputs.py (binary files, FIFOs, symlinks,
a 64 MiB file, 40,000 YAML nodes) with scenario.load, in this process, and
prints per class: how many inputs, the median and the slowest refusal. Each
must be refused (UserError); one that loads is reported and fails the script.
With --cli it also times one `lab ...` process per class of the command line
(Python's start included), with an empty cache and no kernel tree, so that
nothing can be built or booted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.core.errors import UserError  # noqa: E402
from lab.scenario import scenario  # noqa: E402
from tests.badinputs import corpus_class, make  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "bad-scenarios"


def _timed(load: Callable[[], object]) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        load()
    except UserError as exc:
        return time.perf_counter() - started, str(exc)
    raise SystemExit(f"not refused: {load}")


def in_process(tmp: Path) -> dict[str, list[tuple[float, str]]]:
    """(seconds, input) per refusal, by class."""
    times: dict[str, list[tuple[float, str]]] = {}
    for path in sorted(CORPUS.glob("*.yaml")):
        seconds, _ = _timed(lambda p=path: scenario.load(p))
        times.setdefault(corpus_class(path), []).append((seconds, path.stem))
    for case in make(tmp):
        seconds, _ = _timed(lambda c=case: scenario.load(c.path, allow=c.allow))
        times.setdefault(case.cls, []).append((seconds, case.name))
    return times


def cli_cases(tmp: Path) -> dict[str, list[str]]:
    """One `lab` command line per class of command-line input."""
    ok = tmp / "ok.yaml"
    ok.write_text("name: ok\nmatrix: {arch: aarch64, kernel: nokpti}\nsteps: [{run: 'true'}]\n")
    afile = tmp / "a-file"
    afile.write_text("")
    out = ["--out", str(tmp / "out")]
    return {
        "monitor (lab run)": ["run", str(CORPUS / "26-qmp-migrate-exec.yaml"), *out],
        "fragment (lab build)": ["build", "--arch", "aarch64", "--kernel",
                                 str(CORPUS / "fragments" / "backtick.config")],
        "put (lab run)": ["run", str(CORPUS / "41-put-dotdot-passwd.yaml"), *out],
        "names (lab run)": ["run", str(CORPUS / "45-name-dotdot.yaml"), *out],
        "yaml bomb (lab run)": ["run", str(CORPUS / "53-yaml-bomb.yaml"), *out],
        "numbers: -j -1": ["run", str(ok), "-j", "-1", *out],
        "numbers: --timeout nan": ["exec", "--arch", "aarch64", "--kernel", "nokpti",
                                   "--timeout", "nan", "--", "true"],
        "paths: --out in a file": ["run", str(ok), "--out", str(afile / "out")],
        "paths: lab compare missing": ["compare", str(tmp / "missing")],
        "encoding: PNG as YAML": ["run", str(ROOT / "tests/data/bad-inputs/image.png.yaml"),
                                  *out],
    }


def on_the_cli(tmp: Path) -> list[tuple[str, float, str]]:
    env = {**os.environ, "LAB_CACHE": str(tmp / "cache"), "LAB_KERNEL_SRC": str(tmp / "none")}
    rows = []
    for what, args in cli_cases(tmp).items():
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60)
        seconds = time.perf_counter() - started
        if result.returncode != 2 or (tmp / "out").exists() or (tmp / "cache").exists():
            raise SystemExit(f"{what}: exit {result.returncode}, or something was created")
        rows.append((what, seconds, result.stderr.strip()))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cli", action="store_true", help="also time one lab process per class")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lab-bench-refusal-") as tmp:
        times = in_process(Path(tmp))
        print(f"{'class':10} {'inputs':>6} {'median ms':>10} {'max ms':>8}   slowest "
              "(scenario.load, in this process)")
        for cls, rows in sorted(times.items()):
            slowest = max(rows)
            median = statistics.median(s for s, _ in rows)
            print(f"{cls:10} {len(rows):6d} {median * 1000:10.2f} {slowest[0] * 1000:8.2f}   "
                  f"{slowest[1]}")
        if args.cli:
            print(f"\n{'command line':28} {'ms':>6}   message")
            for what, seconds, message in on_the_cli(Path(tmp)):
                print(f"{what:28} {seconds * 1000:6.0f}   {message[:90]}")


if __name__ == "__main__":
    main()
