"""Facts about the host that results record: the accelerator, QEMU's version,
the CPU and the cores.

KVM is used only where a real probe boot passes: these machines have
/dev/kvm, but nested KVM cannot run a guest. The answer is cached in
cache_dir()/accel.json per QEMU version and host kernel, written once under a
lock and atomically (a temporary file, then os.replace), so labs started side
by side probe once and never read a half-written file. Every command runs
through lab.host.proc.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from lab.core.model import AccelStatus, ArchProfile, HostFacts
from lab.core.paths import cache_dir
from lab.host import cache, proc

#: A boot sector that writes "OK\n" to COM1 and halts: the smallest real boot.
PROBE_MBR = (bytes.fromhex("baf803b04fee" "b04bee" "b00aee" "faf4ebfd")
             .ljust(510, b"\0") + b"\x55\xaa")
PROBE_DEADLINE_S = 10.0
PROBE_QEMU = "qemu-system-x86_64"
VERSION_DEADLINE_S = 30.0


def host_arch() -> str:
    return os.uname().machine


def host_cpu() -> str:
    """The CPU's model name, or the machine name where /proc/cpuinfo has none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return host_arch()


def cores() -> int:
    return os.cpu_count() or 1


def qemu_version() -> str:
    """The first line of `qemu-system-* --version`, or 'not installed'."""
    exe = shutil.which("qemu-system-x86_64") or shutil.which("qemu-system-aarch64")
    return _version_of(exe) if exe else "not installed"


@functools.cache
def _version_of(exe: str) -> str:
    """Asked once per process and binary (it feeds every accel_status call)."""
    done = proc.run([exe, "--version"], deadline=VERSION_DEADLINE_S, check=False,
                    what="qemu --version")
    return done.lines[0] if done.lines else "unknown"


# ---------------------------------------------------------------- the KVM probe

def probe_kvm() -> tuple[bool, str]:
    """Boot a boot sector under KVM with the CPU the lab would use."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is missing or not accessible"
    if host_arch() != "x86_64" or not shutil.which(PROBE_QEMU):
        return False, "the KVM probe runs on x86_64 hosts with qemu-system-x86"
    ok, reason = probe_boot("kvm", "host")
    return ok, ("KVM: " if ok else "KVM is unusable: ") + reason


def _said_ok(serial: Path) -> bool:
    return serial.exists() and b"OK" in serial.read_bytes()


def probe_boot(accel: str, cpu: str) -> tuple[bool, str]:
    """Boot the probe's boot sector; True when its output reached the serial port.

    The guest halts after printing, so QEMU never exits by itself: the probe
    watches the serial file while QEMU runs, and stops QEMU when it has seen
    the output, when QEMU exits, or at the deadline (the watcher's waiter).
    """
    with tempfile.TemporaryDirectory(prefix="lab-kvm-probe-") as tmp:
        disk, serial = Path(tmp) / "probe.img", Path(tmp) / "serial.txt"
        disk.write_bytes(PROBE_MBR)
        argv = [PROBE_QEMU, "-accel", accel, "-cpu", cpu, "-M", "pc", "-m", "32",
                "-nodefaults", "-no-user-config", "-display", "none",
                "-serial", f"file:{serial}", "-drive", f"file={disk},format=raw,if=ide"]
        with proc.Watched(proc.with_pdeathsig(argv), deadline=PROBE_DEADLINE_S,
                          what="probe boot") as qemu:
            while qemu.poll() is None and not _said_ok(serial):
                time.sleep(0.05)
        booted = _said_ok(serial)
        said = qemu.output.strip()
    if booted:
        return True, "a probe boot reached its serial output"
    if said:
        return False, f"a probe boot failed: {said.splitlines()[-1][:200]}"
    return False, f"a probe boot hung (no output within {PROBE_DEADLINE_S:.0f} s)"


# ---------------------------------------------------------------- the accelerator

def _cache_path() -> Path:
    return cache_dir() / "accel.json"


def _probed(stamp: str, again: bool) -> dict:
    """The cached probe for stamp; probes (once, under the lock) when there is none.

    A lab that waited for the lock finds what the first one wrote; again=True
    (lab doctor) probes whatever the cache says.
    """
    def probe(cached: dict) -> dict:
        if again or cached.get("stamp") != stamp:
            ok, reason = probe_kvm()
            return {"stamp": stamp, "kvm": ok, "reason": reason}
        return cached
    return cache.update_json(_cache_path(), probe)


def accel_status(probe: bool = False) -> AccelStatus:
    """KVM when $LAB_ACCEL says so or the (cached) probe passed; TCG otherwise."""
    forced = os.environ.get("LAB_ACCEL")
    if forced:
        return AccelStatus(forced, forced == "kvm", "set by LAB_ACCEL")
    stamp = f"{qemu_version()}|{os.uname().release}"
    cached = cache.read_json(_cache_path())
    if probe or cached.get("stamp") != stamp:
        cached = _probed(stamp, again=probe)
    return AccelStatus("kvm" if cached["kvm"] else "tcg", bool(cached["kvm"]),
                       str(cached["reason"]))


def choose_accel(arch: ArchProfile, requested: str | None = None) -> str:
    """The accelerator for a guest of arch: requested, else KVM only where it works."""
    if requested:
        return requested
    return "kvm" if accel_status().kvm and host_arch() == arch.name else "tcg"


def summary() -> HostFacts:
    """The host part of a results document."""
    status = accel_status()
    return HostFacts("kvm" if status.kvm else "tcg", status.reason, host_cpu(),
                     qemu_version(), cores(), socket.gethostname())
