#!/usr/bin/env python3
"""What the cache check costs on each use: sha256 of every recorded artifact.

    .venv/bin/python bench/cache.py [--rounds N]

- sha256 of a 30 MB file, with the file in the page cache (warm) and
  without (cold: its pages dropped with posix_fadvise before each round);
- per cached kernel: the check one use of it makes (kernel entry: image,
  config, meta.json; its newest initramfs), warm;
- list_kernels() over all of them.
The real cache is only read: its kernels are copied (without their build
trees) into a temporary LAB_CACHE, where their manifests are written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.artifacts import (  # noqa: E402
    build,
    image,
    kernel,
)
from lab.host import cache  # noqa: E402


def median_ms(fn, rounds: int, before=lambda: None) -> float:
    times = []
    for _ in range(rounds):
        before()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def drop(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def copy_kernels(into: Path) -> list[Path]:
    """Every real kernel entry's image, config, meta.json and newest initramfs."""
    copies = []
    for kdir in kernel.kernel_entries():
        newest = max(kdir.glob("initramfs-*.cpio"), key=lambda p: p.stat().st_mtime,
                     default=None)
        copy = into / "kernels" / kdir.name
        copy.mkdir(parents=True)
        for path in [kdir / "config", kdir / "meta.json", *([newest] if newest else [])]:
            shutil.copy2(path, copy / path.name)
        shutil.copy2(kernel.cached_kernel(kdir).image, copy)
        copies.append(copy)
    return copies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lab-bench-cache-") as tmp:
        big = Path(tmp) / "30MB"
        big.write_bytes(os.urandom(30_000_000))
        os.sync()
        warm = median_ms(lambda: cache.file_sha(big), args.rounds)
        cold = median_ms(lambda: cache.file_sha(big), args.rounds, lambda: drop(big))
        print(f"sha256 of 30 MB: {warm:.1f} ms warm, {cold:.1f} ms cold "
              f"({30 / warm:.2f} GB/s warm)")
        copies = copy_kernels(Path(tmp) / "cache")
        os.environ["LAB_CACHE"] = str(Path(tmp) / "cache")
        print(f"{'kernel entry':32} {'MB checked':>10} {'check (ms)':>11}")
        for copy in copies:
            images = list(copy.glob("initramfs-*.cpio"))
            cache.adopt(copy, kernel.kernel_artifacts)
            for img in images:
                cache.adopt(img, cache.itself)

            def use(copy=copy, images=images) -> None:
                build.verify_kernel(copy)
                for img in images:
                    image.verify_initramfs(img)

            mb = sum(p.stat().st_size for p in copy.iterdir() if p.is_file()) / 1e6
            print(f"{copy.name:32} {mb:10.1f} {median_ms(use, args.rounds):11.1f}")
        print(f"list_kernels() of {len(copies)}: "
              f"{median_ms(build.list_kernels, args.rounds):.1f} ms")


if __name__ == "__main__":
    main()
