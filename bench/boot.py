#!/usr/bin/env python3
"""Boot-to-ready through the lab against a raw QEMU boot, and the command round trip.

    .venv/bin/python bench/boot.py [--rounds N]

Per arch, both boots alternate N times in one run, on the same kernel and
initramfs: 'raw' is QEMU started directly, its shell console connecting to a
socket the benchmark already listens on, timed from launch to the ready
marker; 'lab' is Guest.boot() timed from launch to the ready marker
(QEMU paused, sockets and QMP connected, then cont). The machine is shared
and noisy, so only the ratio of the medians is meant to be compared.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.app.pytest_plugin import lab_kernel
from lab.arches import ARCHES
from lab.core.model import READY_MARKER
from lab.guest import qemu
from lab.guest.guest import Guest


def raw_boot(build, arch) -> float:
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp:
        path = Path(tmp) / "shell.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen(1)
        argv = [arch.qemu, "-M", arch.machine, "-cpu", arch.cpu, "-accel", "tcg",
                "-m", str(arch.memory_mb), "-smp", "1", "-nodefaults", "-no-user-config",
                "-display", "none", "-no-reboot", "-kernel", str(build.image),
                "-initrd", str(build.initramfs), "-append", qemu.kernel_cmdline(arch),
                "-chardev", "null,id=kernel", "-chardev", "null,id=kmsg",
                "-chardev", f"socket,id=shell,path={path}", *qemu.channel_devices(arch)]
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            listener.settimeout(30)
            conn, _ = listener.accept()
            conn.settimeout(30)
            seen = b""
            while READY_MARKER.encode() not in seen:
                data = conn.recv(4096)
                if not data:
                    raise RuntimeError("raw QEMU closed its console before the ready marker")
                seen += data
            elapsed = time.monotonic() - started
            conn.close()
            return elapsed
        finally:
            proc.kill()
            proc.wait()
            listener.close()


def lab_boot(build, rtts: list[float]) -> float:
    with Guest(build, accel="tcg") as guest:
        for _ in range(20):
            t = time.monotonic()
            guest.run("true")
            rtts.append(time.monotonic() - t)
        return guest.ready_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    print(f"{'arch':8} {'raw boot (s)':>13} {'lab boot (s)':>13} {'lab/raw':>8} "
          f"{'true round trip (ms)':>21}")
    for name, arch in ARCHES.items():
        build = lab_kernel(name, "nokpti")
        raw, lab, rtts = [], [], []
        for _ in range(args.rounds):
            raw.append(raw_boot(build, arch))
            lab.append(lab_boot(build, rtts))
        r, m = statistics.median(raw), statistics.median(lab)
        print(f"{name:8} {r:13.3f} {m:13.3f} {m / r:8.2f} "
              f"{statistics.median(rtts) * 1000:14.1f} median")
    print(f"(medians of {args.rounds} alternating boots per arch, TCG, kernel nokpti; "
          f"round trip: median of {20 * args.rounds} runs of `true`)")


if __name__ == "__main__":
    main()
