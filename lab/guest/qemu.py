"""QEMU: the command line (a pure function) and the process; its monitor (QMP)
is lab.guest.monitor. Machine's lifecycle has the shape of QEMU's own
python/qemu/machine/machine.py:

- launch() = _pre_launch (logs, reproduce.sh) + _launch (the process) +
  _post_launch (sockets, QMP); any failure cleans up and becomes a
  LaunchFailure that keeps QEMU's argv and output.
- shutdown() = a soft quit (QMP quit, a bounded wait), else a hard kill and
  AbnormalShutdown; then _post_shutdown(), which always runs.

Every QEMU runs paused (-S) in a private run directory (mode 0700) holding
its unix sockets. It is in its own process group, dies with the thread that
started it (setpriv --pdeathsig, see proc.with_pdeathsig), is killed at
interpreter exit, and the run directories left by a lab that was killed
outright are swept, with their QEMU, by the next lab that starts one.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lab.core.deadline import Deadline
from lab.core.errors import (
    AbnormalShutdown,
    InfraError,
    LabError,
    LaunchFailure,
    UserError,
)
from lab.core.model import ArchProfile
from lab.guest.monitor import Monitor
from lab.host import packages, proc

log = logging.getLogger("lab.guest.qemu")

RUN_PREFIX = "lab-run-"
SOCKETS = ("qmp", "kernel", "shell", "kmsg")
#: QEMU's gdbstub, when a guest is started for a debugger: a unix socket in the
#: private run directory.
GDB_SOCKET = "gdb.sock"
#: The virtserialports' names, which the guest's init looks for (images/tools/labconsole.c):
#: chardev id -> port name.
PORTS = {"shell": "lab.shell", "kmsg": "lab.kmsg"}
#: The virtio-serial device's ports: 0 (a console's, kept free on x86_64, where the
#: console is a UART) and the two above. QEMU's default is 31, and the guest's driver
#: sets up two virtqueues for every one: with 31, an aarch64 kernel under TCG reached
#: /init some 0.12 s later (raw QEMU, medians of 5: 0.605 s against 0.487 s).
MAX_PORTS = 1 + len(PORTS)
#: Between two looks for QEMU's sockets: it makes them some 30 ms after it starts, and
#: a restored guest's whole start is 0.15 s.
SOCKET_POLL_S = 0.002


def kernel_cmdline(arch: ArchProfile, extra: tuple[str, ...] = ()) -> str:
    return " ".join((*arch.cmdline, *extra))


@dataclass(frozen=True)
class RamFile:
    """Guest RAM in a file (a snapshot template's): shared, the guest writes it (the
    template's boot); private, a copy-on-write view the guest never writes back (a
    clone: QEMU maps it MAP_PRIVATE, so the file stays as the template left it)."""

    path: Path
    shared: bool


#: The id of the RAM backend a RamFile gives the machine.
RAM_ID = "lab-ram"


def _opt(value: object) -> str:
    """A value inside a QEMU option list, where a comma is written twice."""
    return str(value).replace(",", ",,")


def channel_devices(arch: ArchProfile) -> list[str]:
    """The devices of the lab's channels, on the chardevs `kernel`, `shell` and `kmsg`.
    The kernel console: a virtconsole on the virtio-serial device, or the first UART.
    The shell and the forwarded /dev/kmsg: virtserialports, which QEMU throttles (the
    guest's writer waits) where a virtconsole drops."""
    argv = ["-device", f"{arch.virtio_serial},max_ports={MAX_PORTS}"]
    argv += (["-device", "virtconsole,chardev=kernel"] if arch.console_kind == "virtconsole"
             else ["-serial", "chardev:kernel"])
    return argv + [w for chardev, name in PORTS.items()
                   for w in ("-device", f"virtserialport,chardev={chardev},name={name}")]


def command_line(arch: ArchProfile, kernel: Path, initramfs: Path, cmdline: str,
                 rundir: Path, accel: str = "tcg", memory_mb: int | None = None,
                 icount: bool = False, ram: RamFile | None = None,
                 incoming: bool = False, gdb: bool = False) -> list[str]:
    """The whole QEMU argv for one guest. Pure: no I/O, same input, same argv.

    ram puts guest RAM in a file (which save_state and load_state leave out of
    the migration stream: x-ignore-shared); incoming makes
    QEMU wait for migrate-incoming (a restore) instead of booting; gdb adds
    QEMU's gdbstub on the private socket GDB_SOCKET (lab debug).
    """
    sock = lambda name: f"socket,id={name},path={rundir / (name + '.sock')},server=on,wait=off"
    memory = memory_mb or arch.memory_mb
    argv = [
        arch.qemu, "-M", arch.machine + (f",memory-backend={RAM_ID}" if ram else ""),
        "-cpu", arch.kvm_cpu if accel == "kvm" else arch.cpu,
        "-accel", accel, "-m", str(memory), "-smp", "1",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-S",
        "-kernel", str(kernel), "-initrd", str(initramfs), "-append", cmdline,
        "-qmp", f"unix:{rundir / 'qmp.sock'},server=on,wait=off",
        "-chardev", sock("kernel"), *(w for name in PORTS for w in ("-chardev", sock(name))),
    ]
    if arch.firmware:
        argv += ["-bios", arch.firmware]
    if icount:
        argv += ["-icount", "shift=0"]
    argv += channel_devices(arch)
    if arch.dut_uart:
        argv += ["-chardev", sock("dut"), "-serial", "chardev:dut"]
    if ram:
        argv += ["-object", f"memory-backend-file,id={RAM_ID},size={memory}M,"
                 f"mem-path={_opt(ram.path)},share={'on' if ram.shared else 'off'}"]
    if incoming:
        argv += ["-incoming", "defer"]
    if gdb:
        argv += ["-chardev", sock("gdb"), "-gdb", "chardev:gdb"]
    return argv


#: Where an arm64 Image says what it is ("ARM\\x64"), and the header QEMU reads.
_ARM64_MAGIC = (0x38, b"ARM\x64")
_ARM64_HEADER = 64


def restore_stand_ins(kernel: Path, initramfs: Path, rundir: Path) -> tuple[Path, Path]:
    """A kernel and an initramfs for QEMU to load on a restore, in rundir: the
    initramfs 512 zero bytes, an arm64 Image its header alone (any other kernel as it is).

    QEMU reads both files whole at startup and, while it waits for an incoming
    migration, writes neither into guest RAM (its ROM reset skips then): the
    clone's RAM is the template's. Reading the 14 MB on aarch64 cost some 20 ms
    of a 0.15 s restore. Nothing of either is in the machine's migrated state.
    """
    with open(kernel, "rb") as fh:
        header = fh.read(_ARM64_HEADER)
    at, magic = _ARM64_MAGIC
    if header[at:at + len(magic)] == magic:
        kernel = rundir / "kernel-header"
        kernel.write_bytes(header)
    empty = rundir / "initramfs-none"
    empty.write_bytes(b"\0" * 512)
    return kernel, empty




# ---------------------------------------------------------------- process hygiene

_live: set[Machine] = set()
_live_lock = threading.Lock()
_swept = False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


#: A run directory being made: its owner file is written before it gets its name.
NEW_PREFIX = ".lab-new-"
#: A directory being made whose owner file is missing is left alone this long.
NEW_GRACE_S = 60.0


def _stale(rundir: Path) -> bool:
    """Whether rundir's lab process is gone. A directory without an owner file is
    stale only if it is a run directory (those appear with theirs) or an old
    one still being made (its maker died before it wrote the file)."""
    try:
        return not _pid_alive(int((rundir / "owner.pid").read_text()))
    except (OSError, ValueError):
        if rundir.name.startswith(RUN_PREFIX):
            return True
        try:
            return time.time() - rundir.stat().st_mtime > NEW_GRACE_S
        except OSError:
            return False


def sweep_stale() -> int:
    """Kill the QEMU of every run directory whose lab process is gone; remove them.
    A directory whose owner lives is never touched."""
    swept = 0
    tmp = Path(tempfile.gettempdir())
    for rundir in [*tmp.glob(RUN_PREFIX + "*"), *tmp.glob(NEW_PREFIX + "*")]:
        if not _stale(rundir):
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


def kill_all(thread: int | None = None) -> None:
    """Kill every QEMU this process started (or only those the thread with that
    ident started) and has not shut down yet.

    Only SIGKILL and reaping, which is safe from any thread (Ctrl-C, atexit):
    the owners' shutdown() still runs its cleanup where it can.
    """
    with _live_lock:
        machines = [m for m in _live if thread is None or m.thread == thread]
    for m in machines:
        m.kill()


atexit.register(kill_all)


def make_rundir() -> Path:
    global _swept
    if not _swept:
        sweep_stale()
        _swept = True
    # The directory appears under its run name with its owner file already in it
    # (made under a temporary name, then renamed): a sweep by another lab never
    # sees a run directory without an owner, so never removes a live one.
    # The name is 64 random bits: no other directory has it (rename would replace
    # only an empty one, and fail on another run's).
    new = Path(tempfile.mkdtemp(prefix=NEW_PREFIX))   # mode 0700
    os.chmod(new, 0o700)
    (new / "owner.pid").write_text(str(os.getpid()))
    rundir = new.with_name(RUN_PREFIX + secrets.token_hex(8))
    os.rename(new, rundir)
    return rundir


# ---------------------------------------------------------------- machine

#: From starting QEMU to a greeted QMP connection.
LAUNCH_DEADLINE_S = 10.0
#: QMP quit, then this long for QEMU to exit, before the hard kill.
SOFT_QUIT_S = 3.0
#: How much of qemu.log an error quotes.
OUTPUT_TAIL_CHARS = 3000


class Machine:
    """One QEMU process, its consoles' sockets and its QMP connection.

    argv is QEMU's own command line (command_line()); the process runs
    full_argv, which adds the pdeathsig prefix, and reproduce.sh shows that.
    """

    def __init__(self, argv: list[str], rundir: Path, logdir: Path):
        self.argv = list(argv)
        self.full_argv = proc.with_pdeathsig(self.argv)
        self.rundir = rundir
        self.logdir = logdir
        self.proc: subprocess.Popen | None = None
        #: The thread that launched it: QEMU dies with it (pdeathsig), kill_all(thread=).
        self.thread: int | None = None
        #: QMP: made before the launch, connected by it, closed by the shutdown.
        self.monitor: Monitor | None = None
        self._sockets: list[socket.socket] = []

    # -- launch

    def launch(self, deadline: Deadline | float = LAUNCH_DEADLINE_S) -> None:
        """Start QEMU paused and connect QMP; the guest runs only on cont().

        On any failure everything is cleaned up (QEMU killed, run directory
        removed) and a LaunchFailure keeps QEMU's argv and output; a user
        error (QEMU not installed) and Ctrl-C pass through unwrapped.
        """
        if self.proc is not None:
            raise InfraError(f"QEMU in {self.rundir} was launched already")
        if not isinstance(deadline, Deadline):
            deadline = Deadline(deadline)
        try:
            self._launch(deadline)
        except BaseException as exc:
            self._hard_shutdown()
            output = self.output_tail()
            self._post_shutdown()
            if isinstance(exc, Exception) and not isinstance(exc, UserError):
                raise LaunchFailure(str(exc) or type(exc).__name__, self.argv, output,
                                    self.exitcode) from exc
            raise

    def _pre_launch(self) -> None:
        """What must exist before QEMU starts: the binary, the log directory, the logs."""
        packages.require(self.argv[0])
        self.logdir.mkdir(parents=True, exist_ok=True)
        script = self.logdir / "reproduce.sh"
        script.write_text(
            "#!/bin/sh\n# The exact QEMU command line of this guest, as the lab ran it "
            "(setpriv: QEMU dies with its parent).\n# It starts paused (-S): connect to the "
            "sockets, then send 'cont' on QMP.\n" + shlex.join(self.full_argv) + "\n")
        script.chmod(0o755)
        self.monitor = Monitor(self.rundir / "qmp.sock", self.rundir.name,
                               self.logdir / "qmp.log", self.alive, self._exited)

    def _launch(self, deadline: Deadline) -> None:
        self._pre_launch()
        with open(self.logdir / "qemu.log", "wb") as qemu_log, _live_lock:
            self.proc = proc.popen(self.full_argv, stdout=qemu_log)
            self.thread = threading.get_ident()
            _live.add(self)
        (self.rundir / "qemu.pid").write_text(str(self.proc.pid))
        self._post_launch(deadline)

    def _post_launch(self, deadline: Deadline) -> None:
        self._wait_for_sockets(deadline)
        assert self.monitor is not None
        self.monitor.connect(deadline, kill=self.kill)

    def _wait_for_sockets(self, deadline: Deadline) -> None:
        assert self.proc is not None
        while not all((self.rundir / f"{s}.sock").exists() for s in SOCKETS):
            if self.proc.poll() is not None:
                raise InfraError(f"QEMU exited with code {self.proc.returncode}")
            if deadline.expired():
                raise InfraError(f"QEMU did not create its sockets within "
                                 f"{deadline.seconds:.0f} s")
            time.sleep(SOCKET_POLL_S)

    # -- state

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def exitcode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def _exited(self, grace_s: float = 1.0) -> bool:
        """Whether QEMU is gone, giving it grace_s to finish exiting (a closed
        QMP socket comes a moment before the exit status)."""
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout=grace_s)
            return True
        except subprocess.TimeoutExpired:
            return False

    def output_tail(self) -> str:
        """The end of what QEMU printed (qemu.log)."""
        try:
            return (self.logdir / "qemu.log").read_text(errors="replace")[-OUTPUT_TAIL_CHARS:]
        except OSError:
            return ""

    # -- shutdown

    def shutdown(self, timeout: float = SOFT_QUIT_S, hard: bool = False) -> None:
        """Soft quit (QMP quit, then timeout s for QEMU to exit), else a hard kill;
        then the post-shutdown cleanup, which always runs. Idempotent.

        Raises AbnormalShutdown, after the cleanup, when QEMU had to be killed
        although a soft quit was asked for. A QEMU that had already exited
        (a panic with -no-reboot) is not abnormal: there was nothing to quit.
        """
        try:
            if self.proc is not None:
                if hard:
                    self._hard_shutdown()
                else:
                    self._do_shutdown(Deadline(timeout))
        finally:
            self._post_shutdown()

    def _early_cleanup(self) -> None:
        """Close the console sockets first. A QEMU blocked writing to a console
        that nobody reads never gets to the quit, and the wait would deadlock
        (QEMU's machine.py does the same). Idempotent."""
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)   # wakes a thread blocked in recv()
            except OSError:
                pass
            sock.close()
        self._sockets.clear()

    def _soft_shutdown(self, deadline: Deadline) -> None:
        """Ask QEMU to quit; raises subprocess.TimeoutExpired if it is still there."""
        assert self.proc is not None
        self._early_cleanup()
        if self.alive() and self.monitor is not None and self.monitor.connected:
            try:
                self.monitor.qmp("quit", timeout=deadline.remaining())
            except LabError as exc:   # a QEMU on its way out may not answer: the wait decides
                log.debug("QMP quit: %s", exc)
        self.proc.wait(timeout=deadline.remaining())

    def _do_shutdown(self, deadline: Deadline) -> None:
        try:
            self._soft_shutdown(deadline)
        except subprocess.TimeoutExpired as exc:
            self._hard_shutdown()
            raise AbnormalShutdown(f"QEMU did not quit within {deadline.seconds:g} s of a "
                                   "QMP quit; it was killed", self.argv, self.output_tail(),
                                   self.exitcode) from exc

    def _hard_shutdown(self) -> None:
        self._early_cleanup()
        self.kill()

    def kill(self) -> None:
        """SIGKILL the process group and reap it (bounded). Safe from any thread, twice."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:   # pragma: no cover - an unkillable QEMU
            log.error("QEMU pid %d did not die after SIGKILL", self.proc.pid)

    def _post_shutdown(self) -> None:
        """Always runs, after a shutdown or a failed launch (which may be half done):
        QEMU dead, QMP and the consoles closed, the run directory removed, and
        the machine out of the live set."""
        if self.alive():   # only if the shutdown itself was interrupted (Ctrl-C)
            self._hard_shutdown()
        if self.monitor is not None:
            self.monitor.close()
        self._early_cleanup()
        shutil.rmtree(self.rundir, ignore_errors=True)
        with _live_lock:
            _live.discard(self)

    # -- consoles and QMP

    def connect(self, name: str, deadline: Deadline | float = 5.0) -> socket.socket:
        """A connected unix socket to one of QEMU's chardevs (kernel, shell, dut).

        The machine keeps it, and closes it before shutting QEMU down.
        """
        if not isinstance(deadline, Deadline):
            deadline = Deadline(deadline)
        path = self.rundir / f"{name}.sock"
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(path))
                self._sockets.append(s)
                return s
            except OSError as exc:
                s.close()
                if deadline.expired() or not self.alive():
                    raise InfraError(f"cannot connect to {path}: {exc.strerror}") from exc
                time.sleep(0.01)
