#!/usr/bin/env python3
"""The shell's channel: throughput, round trip and boot, against a baseline revision.

    .venv/bin/python bench/console.py [--baseline REV] [--mb 20] [--rounds 3] [--arch ...]

Each session boots a fresh guest (kernel nokpti), runs `true` 20 times (the round
trip), then `head -c N /dev/zero | tr '\\0' a; echo END` (every byte compared), and
reports MB/s of that command alone and the boot to the first command
(Guest.ready_s). With --baseline, the same session runs from a git worktree of REV
(made once under ~/.cache/lab/bench/, its kernels built by its own code on first
use), and the two trees alternate, arch by arch, round by round, in one run: these
machines are shared and noisy, so the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: One session, run by `python -c` inside a tree (only APIs every revision has).
SESSION = r"""
import json, statistics, sys, tempfile, time
from pathlib import Path
import lab
from lab.app.pytest_plugin import lab_kernel
from lab.guest.guest import Guest
arch, nbytes = sys.argv[1], int(sys.argv[2])
build = lab_kernel(arch, "nokpti")
with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp, \
        Guest(build, logdir=Path(tmp)) as guest:
    rtts = []
    for _ in range(20):
        t = time.monotonic()
        guest.run("true")
        rtts.append(time.monotonic() - t)
    started = time.monotonic()
    try:
        r = guest.run(f"head -c {nbytes} /dev/zero | tr '\\0' a; echo END", 600)
        seconds = time.monotonic() - started
        data = r.output_file.read_bytes() if r.output_file else r.output.encode()
        exact = r.exit_code == 0 and data == b"a" * nbytes + b"END\n"
    except Exception as exc:   # output lost, a deadline: not exact
        seconds, exact = time.monotonic() - started, False
        print(f"{arch}: {exc}"[:300], file=sys.stderr)
    print(json.dumps({"tree": str(Path(lab.__file__).parent.parent), "ready_s": guest.ready_s,
                      "rtt_ms": statistics.median(rtts) * 1000,
                      "mb_s": nbytes / 1e6 / seconds, "exact": exact}))
"""


def worktree(rev: str) -> Path:
    """A detached worktree of rev under the cache, made once."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", rev + "^{commit}"],
                         capture_output=True, text=True, check=True).stdout.strip()
    path = Path.home() / ".cache" / "lab" / "bench" / f"tree-{sha[:12]}"
    if not (path / "lab").is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), sha],
                       check=True, capture_output=True)
    return path


def session(tree: Path, arch: str, nbytes: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", SESSION, arch, str(nbytes)], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=3600)
    if done.returncode != 0 or not done.stdout.strip():
        raise SystemExit(f"session {arch} in {tree} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["tree"]) == tree, f"imported lab from {result['tree']}, not {tree}"
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", help="a git revision to measure beside this tree")
    ap.add_argument("--mb", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--arch", nargs="+", default=["aarch64", "x86_64"])
    args = ap.parse_args()
    trees = {"this tree": ROOT}
    if args.baseline:
        trees[args.baseline] = worktree(args.baseline)
    runs: dict[tuple[str, str], list[dict]] = {}
    for i in range(args.rounds):
        for arch in args.arch:
            order = list(trees.items())
            for name, tree in order if i % 2 == 0 else order[::-1]:
                runs.setdefault((name, arch), []).append(session(tree, arch, args.mb * 10**6))
    med = lambda name, arch, key: statistics.median(r[key] for r in runs[name, arch])
    print(f"{args.mb} MB of output, boot and round trip: medians of {args.rounds} sessions "
          f"per tree and arch, alternating")
    print("| tree | arch | MB/s | byte-exact | `true` round trip (ms) "
          "| boot to first command (s) |")
    print("|---|---|---|---|---|---|")
    for (name, arch), rs in runs.items():
        print(f"| {name} | {arch} | {med(name, arch, 'mb_s'):.2f} | "
              f"{sum(r['exact'] for r in rs)} of {len(rs)} | {med(name, arch, 'rtt_ms'):.1f} | "
              f"{med(name, arch, 'ready_s'):.3f} |")
    if "x86_64" in args.arch and "aarch64" in args.arch:
        x86, arm = med("this tree", "x86_64", "mb_s"), med("this tree", "aarch64", "mb_s")
        print(f"this tree: x86_64 / aarch64 throughput {x86 / arm:.2f}")
    if args.baseline:
        for arch in args.arch:
            mb, rtt, boot = (med("this tree", arch, key) / med(args.baseline, arch, key)
                             for key in ("mb_s", "rtt_ms", "ready_s"))
            print(f"{arch}: this tree / {args.baseline}: throughput x{mb:.2f}, "
                  f"round trip x{rtt:.2f}, boot x{boot:.2f}")


if __name__ == "__main__":
    main()
