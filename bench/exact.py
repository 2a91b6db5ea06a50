#!/usr/bin/env python3
"""Is the console exact under host load? `lab exec` as a user runs it, many times.

    .venv/bin/python bench/exact.py [--big 10] [--lines 50] [--kmsg 100000] [--no-load]
                                    [--arch ...]

While two host processes keep both cores busy, per arch: --big runs of
`lab exec -- sh -c 'head -c 20000000 /dev/zero | tr "\\0" a'` (20,000,000 bytes, md5
compared, exit 0) and --lines runs of `lab exec -- seq 1 35000` (about 200 KB of
numbered lines, compared). Each run is a fresh `lab exec` process and guest (kernel
nokpti). Prints how many runs were exact, and the slowest. Then the kernel log: one
run writes --kmsg numbered lines to /dev/kmsg (each must be in console.log once, in
order), and one stops the log's forwarder while 40,000 lines are written (the
records the ring buffer overwrote must be reported lost, as a fault).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAB = [sys.executable, "-m", "lab"]
BIG = ("sh", "-c", "head -c 20000000 /dev/zero | tr '\\0' a")
BIG_MD5 = hashlib.md5(b"a" * 20_000_000).hexdigest()
LINES = "".join(f"{n}\n" for n in range(1, 35_001)).encode()


def run(arch: str, argv: tuple[str, ...]) -> tuple[bytes, int, float, str]:
    started = time.monotonic()
    done = subprocess.run([*LAB, "exec", "--arch", arch, "--kernel", "nokpti", "--", *argv],
                          cwd=ROOT, capture_output=True, timeout=900)
    return done.stdout, done.returncode, time.monotonic() - started, done.stderr.decode()[-300:]


KMSG = "i=0; while [ $i -lt {n} ]; do echo \"lab-kmsg $i\" > /dev/kmsg; i=$((i + 1)); done"
#: The forwarder stopped (SIGSTOP) while more than the 1 MB ring buffer is written.
GAP = ("p=$(pidof lab-kmsg); kill -STOP $p; " + KMSG.format(n=40000)
       + "; kill -CONT $p; sleep 2")


def kernel_log(arch: str, n: int) -> str:
    """The n-line run and the planted gap: one line of verdicts."""
    done = subprocess.run([*LAB, "exec", "--json", "--arch", arch, "--kernel", "nokpti",
                           "--timeout", "1200", "--", "sh", "-c", KMSG.format(n=n) + "; sleep 1"],
                          cwd=ROOT, capture_output=True, timeout=1500)
    if done.returncode != 0:
        return f"{n} lines: exit {done.returncode}: {done.stderr.decode()[-300:]}"
    log = (Path(json.loads(done.stdout)["logs"]) / "console.log").read_text()
    seen = [int(m) for m in re.findall(r"\] lab-kmsg (\d+)$", log, re.M)]
    lost = "lines lost" in log
    verdict = (f"{n} lines: each once, in order" if seen == list(range(n)) and not lost
               else f"{n} lines: NOT exact ({len(seen)} seen, {len(set(seen))} distinct, "
                    f"in order: {seen == sorted(seen)}, a gap reported: {lost})")
    done = subprocess.run([*LAB, "exec", "--json", "--arch", arch, "--kernel", "nokpti",
                           "--timeout", "1200", "--", "sh", "-c", GAP],
                          cwd=ROOT, capture_output=True, timeout=1500)
    faults = [f["kind"] for f in json.loads(done.stdout)["faults"]] if done.stdout else []
    return verdict + ("; a planted gap is reported" if "lost-log" in faults
                      else f"; the planted gap is NOT reported (exit {done.returncode})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big", type=int, default=10)
    ap.add_argument("--lines", type=int, default=50)
    ap.add_argument("--kmsg", type=int, default=100_000)
    ap.add_argument("--no-load", action="store_true")
    ap.add_argument("--arch", nargs="+", default=["aarch64", "x86_64"])
    args = ap.parse_args()
    load = [] if args.no_load else [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        for arch in args.arch:
            for what, n, argv, ok in (
                    ("20,000,000 bytes", args.big, BIG,
                     lambda out: hashlib.md5(out).hexdigest() == BIG_MD5),
                    ("35,000 numbered lines", args.lines, ("seq", "1", "35000"),
                     lambda out: out == LINES)):
                exact, slowest, failures = 0, 0.0, []
                for _ in range(n):
                    out, code, seconds, err = run(arch, argv)
                    slowest = max(slowest, seconds)
                    if code == 0 and ok(out):
                        exact += 1
                    else:
                        failures.append(f"exit {code}, {len(out)} bytes: {err.strip()}")
                print(f"{arch}: {what}: exact {exact} of {n} "
                      f"({'under' if load else 'without'} host load; slowest {slowest:.1f} s)")
                for failure in failures[:3]:
                    print(f"  {failure}")
            if args.kmsg:
                print(f"{arch}: kernel log: {kernel_log(arch, args.kmsg)} "
                      f"({'under' if load else 'without'} host load)")
    finally:
        for p in load:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
