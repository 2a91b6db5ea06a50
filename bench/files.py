#!/usr/bin/env python3
"""What host files in the initramfs (lab exec --add, a scenario's files:) add to a boot.

    .venv/bin/python bench/files.py [--rounds N] [--mib M]

Per arch, a plain boot and a boot with M MiB of files added (default 100, into a
512 MiB guest) alternate N times in one run; each is timed from `cont` to the ready
marker (BootFacts.boot_s), and the added file's md5 is checked in the guest. The
one-off cost of making the combined image (hashing and writing it) is timed too,
once, before the rounds (random content, so it is new), against the time a second
lookup of it takes; the benchmark removes that image from the cache at the end. The machine
is shared and noisy, so only the ratio of the medians is meant to be compared.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.app.pytest_plugin import lab_kernel
from lab.arches import ARCHES
from lab.artifacts import build
from lab.core.model import GuestFile
from lab.guest.guest import Guest

MEMORY_MB = 512


def boot_s(kbuild, arch: str, tmp: Path, md5: str | None) -> float:
    with Guest(kbuild, logdir=tmp / f"{arch}-{time.monotonic_ns()}", memory_mb=MEMORY_MB) as g:
        if md5 is not None:
            out = g.run("md5sum /opt/bench/big").output.split()
            assert out and out[0] == md5, f"{arch}: the file arrived changed: {out}"
        assert g.facts is not None
        return g.facts.boot_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mib", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lab-bench-files-") as tmp_name:
        tmp = Path(tmp_name)
        data = os.urandom(args.mib << 20)     # new content: the image is made anew
        (tmp / "big").write_bytes(data)
        md5 = hashlib.md5(data).hexdigest()
        print(f"{args.mib} MiB into a {MEMORY_MB} MiB guest, {args.rounds} alternating boots")
        print("| arch | plain boot (s) | with files (s) | with / plain | image made (s) "
              "| image found again (s) |")
        print("|---|---|---|---|---|---|")
        for arch in ARCHES:
            plain = lab_kernel(arch, "nokpti")
            files = (GuestFile(tmp / "big", "/opt/bench/big"),)
            started = time.monotonic()
            added = build.with_files(plain, files)
            made = time.monotonic() - started
            started = time.monotonic()
            build.with_files(plain, files)
            found = time.monotonic() - started
            a, b = [], []
            try:
                for _ in range(args.rounds):
                    a.append(boot_s(plain, arch, tmp, None))
                    b.append(boot_s(added, arch, tmp, md5))
            finally:
                assert added.initramfs is not None
                added.initramfs.unlink()     # the benchmark's own cache entry
                for manifest in added.initramfs.parent.glob(added.initramfs.name + ".*"):
                    manifest.unlink()
            pa, pb = statistics.median(a), statistics.median(b)
            print(f"| {arch} | {pa:.2f} | {pb:.2f} | {pb / pa:.2f} | {made:.2f} | {found:.2f} |")


if __name__ == "__main__":
    main()
