#!/usr/bin/env python3
"""The lab against labgrid: the same kernels and initramfs, interleaved, with and without host load.

    .venv/bin/python bench/peer.py [--runs 3] [--arch aarch64 x86_64] [--json FILE]
                                   [--boot-only]

Per repetition, per arch (kernel nokpti, TCG), per load ('none', then 'load': one
`sh -c 'while :; do :; done'` per host core, started before the cell's two sessions
and killed after them), one session of each tool on a fresh guest, their order
alternating from one repetition to the next. A session: the boot, 20 round trips
of `true`, then `seq 1 N` sized to 200 KB and to 2 MB, each output compared byte
for byte with what seq prints.

- lab: two boots per session. cold boot = Guest(build, accel="tcg").__enter__
  (launch to the shell set up: the kernel boots, as when a template is made).
  boot = the same with restore=True, the lab's boot as `lab exec`, `lab shell`,
  scenarios and the pytest plugin give it: a clone of the snapshot template of that
  kernel, initramfs and command line, made once before the first session (its
  time is printed, a one-off per template). round trip = g.run("true") and the
  outputs (r.output, or its spill file) on the restored guest.
- labgrid: QEMUDriver + ShellDriver from a generated environment YAML, driven by
  bench/peer_labgrid.py in a venv of its own (~/.cache/lab/bench/labgrid-venv,
  made on first use: labgrid 26.x from PyPI, else the newest). Its console is a
  board UART, so the same initramfs boots with rdinit=/bin/sh: busybox sh is PID 1
  (x86_64: the 16550, console=ttyS0; aarch64: the PL011, whose driver is a module
  in this kernel, so the shell loads serial_core and amba-pl011 from the
  initramfs first and then runs on /dev/ttyAMA0). Its machine is the lab's (board,
  CPU, memory, firmware: x86_64's qboot). boot = QEMUDriver activated and
  powered on, to the ShellDriver's first successful run("true"); its output is
  run()'s lines joined with "\\n".

labgrid boots its kernel every session: its one boot is both its figures.
Prints per arch x load x figure each tool's median over its sessions (a round trip:
the median of the session's medians), labgrid/lab (>1: the lab is faster) and
'exact' as sessions exact / sessions (for boot and round trip: sessions that got
that far). The machine is shared and noisy: compare ratios, not seconds.
The boots differ in what they do: the lab's /init sets the guest up (mounts,
/dev, its console relay) and Guest.__enter__ then sets the shell up;
labgrid's sh does the least a shell needs. A labgrid session takes some 4 min:
QEMUDriver sleeps 10 ms before each read of its socket, into which QEMU's 16550
and PL011 write one byte at a time; it gets about 17 KB/s of output where the
same guest's UART, read flat out, gives some 100 KB/s.
Everything it starts (guests, helpers, load) is killed on exit and on Ctrl-C or
SIGTERM, which still print the table of the sessions done so far; --json is
rewritten after every session.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.venvs import tool_python
from lab.app.pytest_plugin import lab_kernel
from lab.arches import ARCHES
from lab.guest.guest import Guest

VENV = Path.home() / ".cache" / "lab" / "bench" / "labgrid-venv"
HELPER = Path(__file__).resolve().parent / "peer_labgrid.py"
RTTS = 20
SIZES = {"200KB": 200_000, "2MB": 2_000_000}
FIGURES = (("boot", "s"), ("cold boot", "s"), ("round trip", "ms"), ("200KB", "s"),
           ("2MB", "s"))
#: labgrid's serial console per arch, and what the shell (PID 1) runs first (busybox's
#: links are in the image).
UART = {
    "x86_64": ("ttyS0", "exec /bin/sh -i"),
    "aarch64": ("ttyAMA0", "mount -t devtmpfs devtmpfs /dev; "
                "for m in serial_core amba-pl011; do "
                "insmod /lib/modules/*/kernel/drivers/tty/serial/$m.ko; done; "
                "while [ ! -c /dev/ttyAMA0 ]; do usleep 10000; done; "
                "exec /bin/sh -i </dev/ttyAMA0 >/dev/ttyAMA0 2>&1"),
}
_started: list[subprocess.Popen] = []   # helpers and load, each its own process group


def seq_n(nbytes: int) -> int:
    """The smallest N whose `seq 1 N` prints at least nbytes."""
    n, size = 0, 0
    while size < nbytes:
        n += 1
        size += len(str(n)) + 1
    return n


def seq_text(n: int) -> str:
    return "".join(f"{i}\n" for i in range(1, n + 1))


def kill(proc: subprocess.Popen) -> None:
    """proc's whole process group (a helper's QEMU with it), then reap proc."""
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    if proc in _started:
        _started.remove(proc)


def labgrid_python() -> tuple[Path, str]:
    """The labgrid venv's python (the venv made on first use), and labgrid's version."""
    return tool_python(VENV.name, "labgrid", ["labgrid>=26,<27", "labgrid"])


def start_load() -> list[subprocess.Popen]:
    procs = []
    for _ in range(os.cpu_count() or 2):
        procs.append(subprocess.Popen(["sh", "-c", "while :; do :; done"],
                                      start_new_session=True))
        _started.append(procs[-1])
    return procs


def make_template(build) -> float:
    """The snapshot template the sessions' restored guests come from (made by a cold
    boot the first time, found in the cache after): the seconds it took."""
    with tempfile.TemporaryDirectory(prefix="lab-peer-") as tmp:
        started = time.monotonic()
        with Guest(build, logdir=Path(tmp), accel="tcg", restore=True):
            return time.monotonic() - started


def lab_session(build, sizes: dict[str, int]) -> dict:
    out: dict = {"rtt_s": [], "outputs": {}}
    with tempfile.TemporaryDirectory(prefix="lab-peer-") as tmp:
        started = time.monotonic()
        with Guest(build, logdir=Path(tmp) / "cold", accel="tcg") as cold:
            out["cold_boot_s"] = time.monotonic() - started
            out["cold_ready_s"] = cold.ready_s   # launch to the ready marker, before setup
        guest = Guest(build, logdir=Path(tmp) / "restored", accel="tcg", restore=True)
        started = time.monotonic()
        with guest:
            out["boot_s"] = time.monotonic() - started
            assert guest.facts and guest.facts.boot == "restored", guest.facts
            for _ in range(RTTS):
                t = time.monotonic()
                r = guest.run("true", 30)
                out["rtt_s"].append(time.monotonic() - t)
                assert r.exit_code == 0, r
            for label, nbytes in sizes.items():
                n = seq_n(nbytes)
                t = time.monotonic()
                r = guest.run(f"seq 1 {n}", 600)
                seconds = time.monotonic() - t
                text = r.output_file.read_text() if r.output_file else r.output
                out["outputs"][label] = {"seconds": seconds, "chars": len(text),
                                         "exact": r.exit_code == 0 and text == seq_text(n)}
    return out


def labgrid_session(python: Path, arch, build, sizes: dict[str, int]) -> dict:
    uart, script = UART[arch.name]
    boot_args = [a for a in arch.cmdline if not a.startswith("console=")]
    cfg = {"qemu": shutil.which(arch.qemu) or arch.qemu, "machine": arch.machine,
           "cpu": arch.cpu, "memory": f"{arch.memory_mb}M",
           "extra_args": "-accel tcg -smp 1 -nodefaults -no-user-config -no-reboot "
                         f"-initrd {build.initramfs}"
                         + (f" -bios {arch.firmware}" if arch.firmware else ""),
           "kernel": str(build.image), "prompt": "/ # ", "rtts": RTTS,
           "boot_args": " ".join([f"console={uart}", *boot_args, "rdinit=/bin/sh",
                                  "--", "-c", f'"{script}"']),
           "outputs": {label: seq_n(nbytes) for label, nbytes in sizes.items()}}
    proc = subprocess.Popen([str(python), str(HELPER)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    _started.append(proc)
    try:
        stdout, stderr = proc.communicate(json.dumps(cfg), timeout=1800)
    except subprocess.TimeoutExpired:
        return {"error": "the labgrid session took over 30 min"}
    finally:
        kill(proc)
    lines = stdout.strip().splitlines()
    if not lines:
        return {"error": f"helper exited {proc.returncode}: {stderr[-3000:]}"}
    return json.loads(lines[-1])


def session(tool: str, python: Path, arch, build, sizes: dict[str, int]) -> dict:
    try:
        out = (lab_session(build, sizes) if tool == "lab"
               else labgrid_session(python, arch, build, sizes))
    except Exception:
        out = {"error": traceback.format_exc()}
    if "error" in out:
        print(f"[{tool} {arch.name}] {out['error']}", file=sys.stderr)
    return out


def figure(s: dict, name: str) -> tuple[float | None, bool]:
    """A session's value of one figure (None: it never got there) and whether it is exact."""
    if name == "boot":
        return s.get("boot_s"), "boot_s" in s
    if name == "cold boot":
        key = "boot_s" if s.get("tool") == "labgrid" else "cold_boot_s"
        return s.get(key), key in s
    if name == "round trip":
        rtts = s.get("rtt_s") or []
        ok = len(rtts) == RTTS
        return (statistics.median(rtts) * 1000 if ok else None), ok
    o = (s.get("outputs") or {}).get(name)
    return (o["seconds"] if o else None), bool(o and o["exact"])


def fmt(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.3f} {unit}"


def table(sessions: list[dict], arches: list[str], sizes: dict[str, int]) -> None:
    print("| arch | load | figure | lab | labgrid | labgrid/lab | lab exact | labgrid exact |")
    print("|---|---|---|---|---|---|---|---|")
    for arch in arches:
        for load in ("none", "load"):
            for name, unit in FIGURES:
                if name in SIZES and name not in sizes:   # an output not measured
                    continue
                med, exact = {}, {}
                for tool in ("lab", "labgrid"):
                    mine = [s for s in sessions
                            if (s["arch"], s["load"], s["tool"]) == (arch, load, tool)]
                    got = [figure(s, name) for s in mine]
                    vals = [v for v, _ in got if v is not None]
                    med[tool] = statistics.median(vals) if vals else None
                    exact[tool] = f"{sum(ok for _, ok in got)}/{len(mine)}"
                a, b = med["lab"], med["labgrid"]
                ratio = f"{b / a:.2f}" if a and b else "-"
                print(f"| {arch} | {load} | {name} | {fmt(a, unit)} | {fmt(b, unit)} | {ratio} | "
                      f"{exact['lab']} | {exact['labgrid']} |")


def dump(path: Path | None, version: str, runs: int, began: float, sessions: list[dict],
         partial: bool) -> None:
    """The raw numbers so far (rewritten after every session)."""
    if path:
        path.write_text(json.dumps({"labgrid": version, "runs": runs, "partial": partial,
                                    "elapsed_s": time.monotonic() - began,
                                    "sessions": sessions}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--arch", nargs="+", default=["aarch64", "x86_64"], choices=list(ARCHES))
    ap.add_argument("--json", type=Path, help="write every session's raw numbers here")
    ap.add_argument("--boot-only", action="store_true",
                    help="boots and round trips only, no outputs (a labgrid session takes "
                         "seconds instead of minutes, so many runs fit)")
    args = ap.parse_args()
    sizes = {} if args.boot_only else SIZES
    signal.signal(signal.SIGTERM, signal.default_int_handler)   # as Ctrl-C
    began = time.monotonic()
    sessions: list[dict] = []
    version, stopped = "?", ""
    try:
        python, version = labgrid_python()
        builds = {a: lab_kernel(a, "nokpti") for a in args.arch}
        for arch, build in builds.items():
            print(f"the lab's snapshot template, {arch}: {make_template(build):.2f} s "
                  "(a one-off per kernel, initramfs and command line)", file=sys.stderr,
                  flush=True)
        for rep in range(args.runs):
            order = ("lab", "labgrid") if rep % 2 == 0 else ("labgrid", "lab")
            for arch in args.arch:
                for cond in ("none", "load"):
                    load = start_load() if cond == "load" else []
                    try:
                        for tool in order:
                            print(f"run {rep + 1}/{args.runs} {arch} load={cond} {tool}",
                                  file=sys.stderr, flush=True)
                            loadavg = os.getloadavg()[0]
                            s = session(tool, python, ARCHES[arch], builds[arch], sizes)
                            sessions.append({"rep": rep, "arch": arch, "load": cond,
                                             "tool": tool, "loadavg_before": loadavg, **s})
                            dump(args.json, version, args.runs, began, sessions, True)
                    finally:
                        for proc in load:
                            kill(proc)
    except KeyboardInterrupt:
        stopped = f"INTERRUPTED after {len(sessions)} session(s); "
    finally:
        for proc in list(_started):
            kill(proc)
    elapsed = time.monotonic() - began
    print(f"{stopped}labgrid {version} against the lab, kernel nokpti, TCG, {args.runs} "
          f"run(s), {elapsed / 60:.1f} min; outputs: `seq 1 N` of "
          + (", ".join(f"{k} (N={seq_n(v)})" for k, v in sizes.items()) or "none"))
    table(sessions, args.arch, sizes)
    dump(args.json, version, args.runs, began, sessions, bool(stopped))
    if stopped:
        sys.exit(130)


if __name__ == "__main__":
    main()
