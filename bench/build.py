#!/usr/bin/env python3
"""Kernel build times: cold, warm (cached) and after a one-option change.

    .venv/bin/python bench/build.py [--cold]

Per default kernel (every arch x {kpti, nokpti}):
- cold: the build_s that the build which made the cached kernel recorded
  (with --cold: measured now, into an empty temporary cache);
- warm: `lab build --arch A --kernel K` with the kernel cached, a whole
  process as the user runs it;
- new variant: the same kernel with CONFIG_LOCALVERSION changed, as a new
  variant: a new build tree, seeded from the cached kernel's tree (a sibling
  whose .config differs in one option), so kbuild compiles what that option
  touches; the new build and its tree are removed afterwards. (An option
  toggled in a variant's own fragment is bench/edit.py's.)
Ratios are against the cold build.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.arches import ARCHES  # noqa: E402
from lab.artifacts import (  # noqa: E402
    build,
    kconfig,
)
from lab.core.paths import cache_dir  # noqa: E402

LAB = [sys.executable, "-m", "lab"]


def timed(cmd: list[str], env: dict | None = None) -> float:
    started = time.monotonic()
    subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, **(env or {})},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold", action="store_true", help="measure cold builds now (about 20 min)")
    args = ap.parse_args()
    rows = []
    for name, arch in ARCHES.items():
        for kernel in ("kpti", "nokpti"):
            variant = kconfig.resolve_variant(arch, kernel)
            cached = build.ensure_kernel(arch, variant)
            if args.cold:
                with tempfile.TemporaryDirectory(prefix="lab-cold-") as tmp:
                    shutil.copytree(cache_dir() / "debs", Path(tmp) / "debs")
                    shutil.copytree(cache_dir() / "src", Path(tmp) / "src", symlinks=True)
                    cold = timed([*LAB, "build", "--arch", name, "--kernel", kernel],
                                 {"LAB_CACHE": tmp})
                    how = "measured"
            else:
                cold = build.kernel_meta(cached)["build_s"]
                how = "recorded"
            warm = timed([*LAB, "build", "--arch", name, "--kernel", kernel])
            with tempfile.TemporaryDirectory() as tmp:
                frag = Path(tmp) / f"bench-{kernel}.config"
                frag.write_text("".join(p.read_text() for p in variant.fragments)
                                + 'CONFIG_LOCALVERSION="-bench"\n')
                one = timed([*LAB, "build", "--arch", name, "--kernel", str(frag)])
                for made in (*cache_dir().glob(f"kernels/{name}-bench-{kernel}-*"),
                             *cache_dir().glob(f"trees/{name}-bench-{kernel}-*")):
                    shutil.rmtree(made)
            rows.append((name, kernel, cold, how, warm, one))
    print(f"{'kernel':16} {'cold (s)':>9} {'':8} {'warm (s)':>9} {'warm/cold':>10} "
          f"{'new variant (s)':>16} {'new/cold':>9}")
    for name, kernel, cold, how, warm, one in rows:
        print(f"{name + '/' + kernel:16} {cold:9.1f} {how:8} {warm:9.2f} {warm / cold:10.4f} "
              f"{one:16.1f} {one / cold:9.3f}")


if __name__ == "__main__":
    main()
