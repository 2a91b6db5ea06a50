"""QEMU: the command line (a pure function), the process, and QMP.

The only module that imports qemu.qmp. Every QEMU runs paused (-S) in a
private run directory (mode 0700) holding its unix sockets; it is in its own
process group, dies with the thread that started it (PR_SET_PDEATHSIG), is
killed at interpreter exit, and run directories left by a lab that was
killed outright are swept, with their QEMU, by the next lab that starts one.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from qemu.qmp import QMPClient
from qemu.qmp.error import QMPError

from lab import hostdeps
from lab.errors import GuestLost, InfraError
from lab.model import ArchProfile
from lab.paths import cache_dir

RUN_PREFIX = "lab-run-"
SOCKETS = ("qmp", "kernel", "shell")


def kernel_cmdline(arch: ArchProfile, extra: tuple[str, ...] = ()) -> str:
    return " ".join((*arch.cmdline, f"labshell={arch.shell_console}", *extra))


def command_line(arch: ArchProfile, kernel: Path, initramfs: Path, cmdline: str,
                 rundir: Path, accel: str = "tcg", memory_mb: int | None = None,
                 icount: bool = False) -> list[str]:
    """The whole QEMU argv for one guest. Pure: no I/O, same input, same argv."""
    sock = lambda name: f"socket,id={name},path={rundir / (name + '.sock')},server=on,wait=off"  # noqa: E731
    argv = [
        arch.qemu, "-M", arch.machine,
        "-cpu", arch.kvm_cpu if accel == "kvm" else arch.cpu,
        "-accel", accel, "-m", str(memory_mb or arch.memory_mb), "-smp", "1",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-S",
        "-kernel", str(kernel), "-initrd", str(initramfs), "-append", cmdline,
        "-qmp", f"unix:{rundir / 'qmp.sock'},server=on,wait=off",
        "-chardev", sock("kernel"), "-chardev", sock("shell"),
    ]
    if icount:
        argv += ["-icount", "shift=0"]
    if arch.console_kind == "virtconsole":
        argv += ["-device", "virtio-serial-device",
                 "-device", "virtconsole,chardev=kernel",
                 "-device", "virtconsole,chardev=shell"]
    else:
        argv += ["-serial", "chardev:kernel", "-serial", "chardev:shell"]
    if arch.dut_uart:
        argv += ["-chardev", sock("dut"), "-serial", "chardev:dut"]
    return argv


# ---------------------------------------------------------------- process hygiene

_live: set["Machine"] = set()
_live_lock = threading.Lock()
_swept = False


def _set_pdeathsig() -> None:  # runs in the child, between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def sweep_stale() -> int:
    """Kill the QEMU of every run directory whose lab process is gone; remove them."""
    swept = 0
    for rundir in Path(tempfile.gettempdir()).glob(RUN_PREFIX + "*"):
        try:
            owner = int((rundir / "owner.pid").read_text())
        except (OSError, ValueError):
            owner = 0
        if owner and _pid_alive(owner):
            continue
        try:
            pid = int((rundir / "qemu.pid").read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if str(rundir).encode() in cmdline:
                os.killpg(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass
        shutil.rmtree(rundir, ignore_errors=True)
        swept += 1
    return swept


def kill_all() -> None:
    """Kill every QEMU this process started and has not stopped yet."""
    with _live_lock:
        machines = list(_live)
    for m in machines:
        m.kill()


atexit.register(kill_all)


def make_rundir() -> Path:
    global _swept
    if not _swept:
        sweep_stale()
        _swept = True
    rundir = Path(tempfile.mkdtemp(prefix=RUN_PREFIX))   # mode 0700
    os.chmod(rundir, 0o700)
    (rundir / "owner.pid").write_text(str(os.getpid()))
    return rundir


# ---------------------------------------------------------------- machine

class Machine:
    """One QEMU process and its QMP connection."""

    def __init__(self, argv: list[str], rundir: Path, logdir: Path):
        self.argv = argv
        self.rundir = rundir
        self.logdir = logdir
        self.proc: subprocess.Popen | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._qmp: QMPClient | None = None
        self._qmp_log = None

    # -- lifecycle

    def start(self, deadline_s: float = 10.0) -> None:
        """Start QEMU paused and connect QMP; the guest runs only on cont()."""
        hostdeps.require(self.argv[0])
        self.logdir.mkdir(parents=True, exist_ok=True)
        (self.logdir / "reproduce.sh").write_text(
            "#!/bin/sh\n# The exact QEMU command line of this guest. It starts paused (-S):\n"
            "# connect to the sockets, then send 'cont' on QMP.\n"
            + shlex.join(self.argv) + "\n")
        (self.logdir / "reproduce.sh").chmod(0o755)
        qemu_log = open(self.logdir / "qemu.log", "wb")
        with _live_lock:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=qemu_log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_set_pdeathsig)
            _live.add(self)
        qemu_log.close()
        (self.rundir / "qemu.pid").write_text(str(self.proc.pid))
        end = time.monotonic() + deadline_s
        while not all((self.rundir / f"{s}.sock").exists() for s in SOCKETS):
            if self.proc.poll() is not None:
                self._launch_failed(f"QEMU exited with code {self.proc.returncode}")
            if time.monotonic() > end:
                self._launch_failed(f"QEMU did not create its sockets within {deadline_s:.0f} s")
            time.sleep(0.01)
        self._qmp_log = open(self.logdir / "qmp.log", "a")
        self._loop = asyncio.new_event_loop()
        self._qmp = QMPClient("lab")
        try:
            self._sync(self._qmp.connect(str(self.rundir / "qmp.sock")), 5)
        except (QMPError, OSError, asyncio.TimeoutError) as exc:
            self._launch_failed(f"cannot connect to QMP: {exc!r}")

    def _launch_failed(self, why: str):
        self.kill()
        log = (self.logdir / "qemu.log").read_text(errors="replace")[-3000:]
        raise InfraError(f"{why}\ncommand line: {shlex.join(self.argv)}\nQEMU said:\n{log}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the process group and reap. Safe to call twice."""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        with _live_lock:
            _live.discard(self)

    def stop(self, deadline_s: float = 3.0) -> None:
        """QMP quit, a bounded wait, then kill; always removes the run directory."""
        try:
            if self.alive() and self._qmp is not None:
                try:
                    self.qmp("quit", timeout=deadline_s)
                except (InfraError, GuestLost):
                    pass
                try:
                    self.proc.wait(timeout=deadline_s)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            self.kill()
            self._close_qmp()
            shutil.rmtree(self.rundir, ignore_errors=True)

    def _close_qmp(self) -> None:
        if self._qmp is not None and self._loop is not None:
            try:
                self._sync(self._qmp.disconnect(), 2)
            except Exception:   # noqa: BLE001 - best effort on teardown
                pass
            self._loop.close()
            self._qmp = None
        if self._qmp_log:
            self._qmp_log.close()
            self._qmp_log = None

    # -- sockets and QMP

    def connect(self, name: str, deadline_s: float = 5.0) -> socket.socket:
        """A connected unix socket to one of QEMU's chardevs (kernel, shell, dut)."""
        path = self.rundir / f"{name}.sock"
        end = time.monotonic() + deadline_s
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(path))
                return s
            except OSError as exc:
                s.close()
                if time.monotonic() > end or not self.alive():
                    raise InfraError(f"cannot connect to {path}: {exc.strerror}") from None
                time.sleep(0.01)

    def _sync(self, coro, timeout: float):
        assert self._loop is not None
        return self._loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def qmp(self, command: str, timeout: float = 10.0, **args):
        """Run a QMP command; returns its 'return' value."""
        if self._qmp is None or not self.alive():
            raise GuestLost(f"QMP {command}: QEMU is not running")
        self._log_qmp(">", {"execute": command, "arguments": args})
        try:
            reply = self._sync(self._qmp.execute(command, args or None), timeout)
        except asyncio.TimeoutError:
            raise InfraError(f"QMP {command}: no answer within {timeout:.0f} s") from None
        except QMPError as exc:
            if not self.alive():
                raise GuestLost(f"QMP {command}: QEMU exited") from None
            raise InfraError(f"QMP {command} failed: {exc}") from None
        self._log_qmp("<", reply)
        return reply

    def _log_qmp(self, direction: str, data) -> None:
        if self._qmp_log:
            self._qmp_log.write(f"{time.time():.3f} {direction} {json.dumps(data)}\n")
            self._qmp_log.flush()

    def hmp(self, command_line: str, timeout: float = 10.0) -> str:
        """A human-monitor command, e.g. 'xp /4wx 0x9000030'."""
        return self.qmp("human-monitor-command", timeout, **{"command-line": command_line})

    def cont(self) -> None:
        self.qmp("cont")


# ---------------------------------------------------------------- accelerator

#: A boot sector that writes "OK\n" to COM1 and halts: the smallest real boot.
_PROBE_MBR = (bytes.fromhex("baf803b04fee" "b04bee" "b00aee" "faf4ebfd")
              .ljust(510, b"\0") + b"\x55\xaa")
PROBE_DEADLINE_S = 10.0


def _host_arch() -> str:
    return os.uname().machine


def probe_kvm() -> tuple[bool, str]:
    """Boot a boot sector under KVM with the CPU the lab would use."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is missing or not accessible"
    if _host_arch() != "x86_64" or not shutil.which("qemu-system-x86_64"):
        return False, "the KVM probe runs on x86_64 hosts with qemu-system-x86"
    ok, reason = probe_boot("kvm", "host")
    return ok, ("KVM: " if ok else "KVM is unusable: ") + reason


def probe_boot(accel: str, cpu: str) -> tuple[bool, str]:
    """Boot the probe's boot sector; True when its output reached the serial port."""
    with tempfile.TemporaryDirectory(prefix="lab-kvm-probe-") as tmp:
        disk = Path(tmp) / "probe.img"
        disk.write_bytes(_PROBE_MBR)
        out = Path(tmp) / "serial.txt"
        argv = ["qemu-system-x86_64", "-accel", accel, "-cpu", cpu, "-M", "pc", "-m", "32",
                "-nodefaults", "-no-user-config", "-display", "none",
                "-serial", f"file:{out}", "-drive", f"file={disk},format=raw,if=ide"]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_set_pdeathsig)
        end = time.monotonic() + PROBE_DEADLINE_S
        while time.monotonic() < end and proc.poll() is None:
            if out.exists() and b"OK" in out.read_bytes():
                break
            time.sleep(0.05)
        booted = out.exists() and b"OK" in out.read_bytes()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        said = (proc.communicate(timeout=10)[0] or b"").decode(errors="replace").strip()
    if booted:
        return True, "a probe boot reached its serial output"
    if said:
        return False, f"a probe boot failed: {said.splitlines()[-1][:200]}"
    return False, f"a probe boot hung (no output within {PROBE_DEADLINE_S:.0f} s)"


def qemu_version() -> str:
    exe = shutil.which("qemu-system-x86_64") or shutil.which("qemu-system-aarch64")
    if not exe:
        return "not installed"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def accel_status(probe: bool = False) -> dict:
    """KVM when $LAB_ACCEL says so or the (cached) probe passed; TCG otherwise."""
    forced = os.environ.get("LAB_ACCEL")
    if forced:
        return {"accel": forced, "kvm": forced == "kvm", "reason": "set by LAB_ACCEL"}
    stamp = f"{qemu_version()}|{os.uname().release}"
    cache = cache_dir() / "accel.json"
    try:
        cached = json.loads(cache.read_text())
    except (OSError, ValueError):
        cached = {}
    if probe or cached.get("stamp") != stamp:
        ok, reason = probe_kvm()
        cached = {"stamp": stamp, "kvm": ok, "reason": reason}
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(cached) + "\n")
    return {"accel": "kvm" if cached["kvm"] else "tcg", "kvm": cached["kvm"],
            "reason": cached["reason"]}


def choose_accel(arch: ArchProfile, requested: str | None = None) -> str:
    """The accelerator for a guest of arch: requested, else KVM only where it works."""
    if requested:
        return requested
    status = accel_status()
    native = {"x86_64": "x86_64", "aarch64": "aarch64"}.get(_host_arch())
    return "kvm" if status["kvm"] and native == arch.name else "tcg"
