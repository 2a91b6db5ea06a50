#!/usr/bin/env python3
"""Shell-console throughput: N MB of output through Guest.run, checked byte for byte.

    .venv/bin/python bench/console.py [--mb 20] [--arch aarch64 x86_64]

Per arch, one guest (nokpti) runs `head -c N /dev/zero | tr '\\0' a; echo END`
and the benchmark reads the whole output back (from the spill file past the
memory bound), compares it with what was sent, and prints MB/s of the command
alone (boot excluded).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.app.pytest_plugin import lab_kernel
from lab.guest.guest import Guest


def measure(arch: str, nbytes: int) -> tuple[float, bool]:
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp, \
            Guest(lab_kernel(arch, "nokpti"), logdir=Path(tmp)) as guest:
        started = time.monotonic()
        r = guest.run(f"head -c {nbytes} /dev/zero | tr '\\0' a; echo END", 600)
        seconds = time.monotonic() - started
        data = r.output_file.read_bytes() if r.output_file else r.output.encode()
        return seconds, r.exit_code == 0 and data == b"a" * nbytes + b"END\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=20)
    ap.add_argument("--arch", nargs="+", default=["aarch64", "x86_64"])
    args = ap.parse_args()
    print("| arch | MB | seconds | MB/s | byte-exact |\n|---|---|---|---|---|")
    for arch in args.arch:
        seconds, exact = measure(arch, args.mb * 1_000_000)
        print(f"| {arch} | {args.mb} | {seconds:.1f} | {args.mb / seconds:.2f} | {exact} |")


if __name__ == "__main__":
    main()
