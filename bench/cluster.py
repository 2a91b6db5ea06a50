#!/usr/bin/env python3
"""The Dask cluster path against the local pool: per-boot overhead, 1 against 2
workers, and the artifact transfer per kernel; then a paper estimate for N machines.

    .venv/bin/python bench/cluster.py [--rounds N] [--boots B]

Starts `dask scheduler`s and `dask worker --nthreads 1 --resources qemu=1` processes
on 127.0.0.1, each worker with its own LAB_CACHE (machines without a shared
filesystem): a cluster of one worker and a cluster of two.
1. Overhead: the same one-boot cells (aarch64 nokpti, `true`) through the local pool
   at -j1 and through the one-worker cluster, alternating in rounds: the wall time
   per boot of each, and the ratio.
2. Throughput: B boots on the one-worker cluster against the two-worker cluster,
   alternating: boots per minute.
3. Transfer: each kernel's image and initramfs into an empty worker cache: the
   client's scatter and the worker's pull (sha256 checked, stored), per kernel.
Kernels must be built (lab build); this runs the runner in-process, like `lab run`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.host.command import quiet  # noqa: E402
from lab.run import (  # noqa: E402
    cluster,
    runner,
)
from lab.scenario import scenario  # noqa: E402

DASK = str(Path(sys.executable).parent / "dask")
CELLS = """\
name: bench-cluster
description: one-boot cells that do nothing
matrix:
  arch: [{arch}]
  kernel: [{kernel}]
  cmdline: {cmdlines}
steps:
  - name: nothing
    run: "true"
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dask_cluster(tmp: Path, name: str, workers: int):
    """A scheduler and its workers (own LAB_CACHE each); yields (address, caches)."""
    address = f"tcp://127.0.0.1:{_port()}"
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}
    procs = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port",
                               address.rsplit(":", 1)[1], "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    caches = [tmp / f"{name}-cache-{i}" for i in range(workers)]
    for cache in caches:
        procs.append(subprocess.Popen(
            [DASK, "worker", address, "--nthreads", "1", "--no-nanny", "--resources",
             "qemu=1", "--no-dashboard", "--local-directory", str(cache) + "-dask"],
            env={**env, "LAB_CACHE": str(cache)}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
    try:
        with cluster.connect(address) as executor:
            executor.client.wait_for_workers(workers, timeout=60)
        yield address, caches
    finally:
        for p in reversed(procs):          # the workers, then the scheduler
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def load(tmp: Path, arch: str, kernel: str, cells: int) -> list:
    path = tmp / f"{arch}-{kernel}-{cells}.yaml"
    cmdlines = "{" + ", ".join(f"c{i}: 'lab.bench={i}'" for i in range(cells)) + "}"
    path.write_text(CELLS.format(arch=arch, kernel=kernel, cmdlines=cmdlines))
    return scenario.load_all([str(path)], ())


def timed_run(scenarios: list, out: Path, address: str | None) -> tuple[float, object]:
    """Wall seconds of one run (local pool at -j1 without address); its results."""
    shutil.rmtree(out, ignore_errors=True)
    opts = runner.Options(out=out, jobs=1)
    progress_for = lambda name: contextlib.nullcontext(quiet)
    with contextlib.ExitStack() as stack:
        executor = stack.enter_context(cluster.connect(address)) if address else None
        started = time.monotonic()
        results = runner.run(scenarios, opts, lambda *a, **k: None, progress_for, executor)
        seconds = time.monotonic() - started
        scattered = dict(executor.scattered) if executor else {}
    assert all(c.status.value == "pass" for c in results.cells), "a bench cell failed"
    return seconds, (results, scattered)


def overhead(tmp: Path, one: str, rounds: int, cells: int) -> tuple[float, float]:
    s = load(tmp, "aarch64", "nokpti", cells)
    times: dict[str, list[float]] = {"local": [], "cluster": []}
    for _ in range(rounds):
        for kind, address in (("local", None), ("cluster", one)):
            times[kind].append(timed_run(s, tmp / "out", address)[0] / cells)
    local, remote = statistics.median(times["local"]), statistics.median(times["cluster"])
    print(f"per boot: local pool -j1 {local:.2f} s, one-worker cluster {remote:.2f} s, "
          f"ratio {remote / local:.3f} (+{(remote - local) * 1000:.0f} ms a boot; medians of "
          f"{rounds} alternating runs of {cells} one-boot cells)")
    return local, remote


def throughput(tmp: Path, one: str, two: str, rounds: int, boots: int) -> None:
    s = load(tmp, "aarch64", "nokpti", boots)
    rates: dict[str, list[float]] = {"1 worker": [], "2 workers": []}
    for _ in range(rounds):
        for kind, address in (("1 worker", one), ("2 workers", two)):
            rates[kind].append(boots / timed_run(s, tmp / "out", address)[0] * 60)
    r1, r2 = statistics.median(rates["1 worker"]), statistics.median(rates["2 workers"])
    print(f"throughput: 1 worker {r1:.1f} boots/min, 2 workers {r2:.1f} boots/min, "
          f"speed-up {r2 / r1:.2f}x ({boots} boots a run, medians of {rounds})")


def transfer(tmp: Path, one: str, caches: list[Path]) -> float:
    """Seconds per kernel (scatter + pull of image and initramfs), the mean of all."""
    print(f"{'kernel':16} {'MB':>6} {'scatter s':>10} {'pull s':>8} {'total s':>8}")
    totals = []
    for arch in ("aarch64", "x86_64"):
        for kernel in ("kpti", "nokpti"):
            for cache in caches:
                shutil.rmtree(cache / "artifacts", ignore_errors=True)
            _, (results, scattered) = timed_run(load(tmp, arch, kernel, 1), tmp / "out", one)
            fetched = results.cells[0].boots[0].worker["fetched"]
            size = sum(f.get("bytes", 0) for f in fetched) / 1e6
            pull, scatter = sum(f.get("seconds", 0) for f in fetched), sum(scattered.values())
            totals.append(pull + scatter)
            print(f"{arch + '/' + kernel:16} {size:6.1f} {scatter:10.3f} {pull:8.3f} "
                  f"{pull + scatter:8.3f}")
    return statistics.mean(totals)


def estimate(local: float, remote: float, per_kernel: float) -> None:
    """T(N) = B*c/(N*K) + kernels*transfer: c, the cluster's measured time a boot (its
    overhead included), runs in parallel over N machines of K slots (each with the
    cores for K guests); each machine pulls each kernel once, the machines at once."""
    boots, kernels, slots = 180, 4, 2
    print(f"\npaper estimate: {boots} boots like these over {kernels} kernels (the kpti matrix "
          f"x10 has that many, each a few seconds longer) on "
          f"machines of {slots} guest slots: {remote:.2f} s a boot on the cluster "
          f"({local:.2f} s locally), {per_kernel:.2f} s to move a kernel")
    one = boots * local / slots
    print(f"  one machine, local pool -j{slots}: {one:7.1f} s")
    for n in (1, 2, 4, 8, 16, 32):
        t = boots * remote / (n * slots) + kernels * per_kernel
        print(f"  N={n:2} workers: {t:7.1f} s  ({one / t:5.1f}x one machine)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--boots", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lab-bench-cluster-") as tmp_name:
        tmp = Path(tmp_name)
        with dask_cluster(tmp, "one", 1) as (one, caches), \
                dask_cluster(tmp, "two", 2) as (two, _):
            per_kernel = transfer(tmp, one, caches)
            local, remote = overhead(tmp, one, args.rounds, 4)
            throughput(tmp, one, two, args.rounds, args.boots)
    estimate(local, remote, per_kernel)


if __name__ == "__main__":
    main()
