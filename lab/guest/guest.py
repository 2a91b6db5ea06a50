"""A booted guest: a QEMU machine, its consoles, and what the lab knows of it.

Steps and tests talk to a Guest's capabilities (run, put_file, hmp, qmp, uart,
faults), never to QEMU directly. Booting from a snapshot template instead of the
kernel is the part of Guest in lab/guest/clone.py.
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from lab.arches import get_arch
from lab.core.deadline import Deadline
from lab.core.errors import AbnormalShutdown, GuestError, InfraError, LabError
from lab.core.model import BootFacts, CommandResult, KernelBuild, KernelMessage, accel_label
from lab.guest import qemu, snapshot
from lab.guest.clone import Cloning
from lab.guest.console import COMMAND_DEADLINE_S, ConsoleLog, Dialog, KernelLog, Resume, Shell
from lab.guest.monitor import QMP_TIMEOUT_S, Monitor
from lab.guest.uart import Uart
from lab.host import facts, proc
from lab.host.cache import CorruptEntry
from lab.parse import faults

log = logging.getLogger("lab.guest.guest")

BOOT_DEADLINE_S = 60.0
#: A kernel that leaves a vmcore waits this long after a panic before it reboots
#: (which ends QEMU: -no-reboot), instead of rebooting at once (panic=-1): the lab
#: sees the panic within a second or two and dumps the guest's memory meanwhile.
PANIC_HOLD_S = 10
#: The vmcore's name in a guest's logs, the time its dump may take, and the room the
#: disk keeps beside it.
CORE = "vmcore"
CORE_DEADLINE_S = 120.0
CORE_SPARE_BYTES = 1 << 30
#: How long after the shell is ready the kernel log may take to bring the boot's
#: lines (the forwarder starts after the shell); then the lab asks dmesg.
BOOT_LOG_S = 5.0
#: The kernel's release, in its first line.
KERNEL_VERSION = re.compile(r"\] Linux version (\S+)")


class Guest(Cloning):
    """Boot with `with Guest(build) as g:`; the guest is always torn down on exit."""

    def __init__(self, build: KernelBuild, cmdline: tuple[str, ...] = (),
                 logdir: Path | None = None, accel: str | None = None,
                 memory_mb: int | None = None, icount: bool = False,
                 boot_deadline_s: float = BOOT_DEADLINE_S, echo_kernel=None,
                 sysctls: tuple[tuple[str, str], ...] = (), restore: bool = False,
                 gdb: bool = False):
        if build.initramfs is None:
            raise InfraError(f"kernel {build.arch}/{build.kernel} has no initramfs")
        self.build = build
        self.arch = get_arch(build.arch)
        self.accel = facts.choose_accel(self.arch, accel)
        self.icount = icount
        #: A kernel with debug information (a +dbg one) leaves a vmcore when it panics.
        self.post_mortem = build.vmlinux is not None
        hold = (f"panic={PANIC_HOLD_S}",) if self.post_mortem else ()
        self.cmdline = qemu.kernel_cmdline(self.arch, (*hold, *cmdline))
        #: The vmcore this guest left in its logs, if it panicked.
        self.core: Path | None = None
        self.logdir = Path(logdir) if logdir else Path(tempfile.mkdtemp(prefix="lab-guest-"))
        self.memory_mb = memory_mb
        self.sysctls = sysctls
        #: QEMU's gdbstub on gdb_socket (lab debug); a cold boot only.
        self.gdb = gdb
        self.boot_deadline_s = boot_deadline_s
        self._echo_kernel = echo_kernel
        self.machine: qemu.Machine | None = None
        self.kernel: KernelLog | None = None
        self.shell: Shell | None = None
        self._log: ConsoleLog | None = None
        self._uart: Uart | None = None
        self.facts: BootFacts | None = None
        #: Restore from a snapshot template of this guest (made by a cold boot the
        #: first time) instead of booting: see lab/guest/snapshot.py.
        self.restore = restore
        #: The template this guest was restored from, while it runs.
        self.template: snapshot.Template | None = None
        #: Set when QEMU ignored the quit and was killed (the guest is down either way).
        self.shutdown_error: AbnormalShutdown | None = None

    # -- lifecycle

    def __enter__(self) -> Guest:
        try:
            self.boot()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def boot(self) -> BootFacts:
        """A cold boot, or (restore) a clone of this guest's snapshot template, made
        by a cold boot first if there is none; then the sysctls."""
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.facts = self._from_template() if self.restore else self._cold()
        self._set_sysctls()
        return self.facts

    def _argv(self, rundir: Path, ram: qemu.RamFile | None = None,
              incoming: bool = False) -> list[str]:
        """QEMU's argv; a restore's (incoming) names stand-ins that it reads
        faster, the template key always the real kernel and initramfs."""
        assert self.build.initramfs is not None   # checked in __init__
        kernel, initramfs = self.build.image, self.build.initramfs
        if incoming:
            kernel, initramfs = qemu.restore_stand_ins(kernel, initramfs, rundir)
        return qemu.command_line(self.arch, kernel, initramfs, self.cmdline, rundir,
                                 self.accel, self.memory_mb, self.icount, ram, incoming,
                                 gdb=self.gdb)

    def _launch(self, ram: qemu.RamFile | None = None, incoming: bool = False,
                resume: Resume | None = None) -> None:
        """QEMU started paused, and both consoles connected (a restored shell resumes
        its template's session)."""
        rundir = qemu.make_rundir()
        self.machine = qemu.Machine(self._argv(rundir, ram, incoming), rundir, self.logdir)
        self.machine.launch()
        self._log = ConsoleLog(self.logdir / "console.log")
        self.kernel = KernelLog(self.machine.connect("kernel"), self._log, self._echo_kernel,
                                first_seq=resume.kmsg_seq if resume else 0)
        self.kernel.start()
        self.kernel.attach_kmsg(self.machine.connect("kmsg"))
        self.shell = Shell(self.machine.connect("shell"), self._log, self.kernel,
                           self.logdir, resume)

    def _cold(self, ram: qemu.RamFile | None = None) -> BootFacts:
        """A real boot, up to the shell set up, and what dmesg says of it."""
        launched = time.monotonic()
        self._launch(ram)
        assert self.shell and self.kernel
        started = time.monotonic()
        self._monitor.cont()
        self.shell.wait_ready(self.boot_deadline_s)
        boot_s = time.monotonic() - started
        #: From launching QEMU to the ready marker (to the first command, when
        #: restored), as the user waits for it.
        self.ready_s = time.monotonic() - launched
        self.shell.setup()
        # The facts come from the kernel log the lab already has (the kernel console
        # and the forwarded /dev/kmsg, merged), up to the start of /init; asking the
        # guest (uname, dmesg: 6 KB through the shell) cost every boot a few round trips.
        dmesg = self.kernel.boot_log(BOOT_LOG_S) or self.shell.run("dmesg",
                                                                  COMMAND_DEADLINE_S).output
        m = KERNEL_VERSION.search(dmesg)
        release = m.group(1) if m else self.shell.run("uname -r", COMMAND_DEADLINE_S).output
        return BootFacts(
            kernel_release=release.strip(), accel=accel_label(self.accel, self.icount),
            cmdline=self.cmdline, boot_s=boot_s,
            kpti_active=faults.kpti_active(self.arch.kpti_dmesg, dmesg))

    def _set_sysctls(self) -> None:
        """Each sysctl written into /proc/sys; one the kernel refuses ends the boot."""
        assert self.shell
        for name, value in self.sysctls:
            path = "/proc/sys/" + name.replace(".", "/")
            reply = self.shell.run(f"printf '%s\\n' {shlex.quote(value)} > {path}",
                                   COMMAND_DEADLINE_S)
            if reply.exit_code != 0:
                raise GuestError(f"sysctl {name}={value}: the guest kernel refused it: "
                                 f"{reply.output.strip()[-300:]}")

    def close(self) -> None:
        """Shut the guest down: QMP quit, a bounded wait, kill. Idempotent.

        The machine closes the consoles' sockets before it asks QEMU to quit;
        the kernel console's reader then ends, and is joined. A QEMU that had
        to be killed is kept in shutdown_error, not raised: close() runs while
        another error may be on its way out. A clone's template is checked
        unwritten (its RAM file's size and mtime), and deleted if it was not.
        """
        if self.post_mortem and self.core is None and self.kernel is not None \
                and self.kernel.panicked.is_set() and self.machine and self.machine.alive():
            self._dump_core()
        self._teardown()
        if self.template is not None:
            try:
                snapshot.check_unwritten(self.template)
            except CorruptEntry as bad:
                log.warning("deleting template %s: %s", self.template.path, bad)
                snapshot.discard(self.template.path)
            self.template = None

    def _dump_core(self) -> None:
        """The panicked guest's memory, as an ELF vmcore in its logs (gdb reads it with
        the kernel's vmlinux: lab debug --core), holes punched where the guest left
        its memory zero. Skipped, with a warning, when the disk has too little room;
        a failure is a warning too: close() must not fail."""
        core = self.logdir / CORE
        memory = (self.memory_mb or self.arch.memory_mb) * 2**20
        try:
            if shutil.disk_usage(self.logdir).free < memory + CORE_SPARE_BYTES:
                log.warning("no vmcore: %s has less than %d MiB free", self.logdir,
                            (memory + CORE_SPARE_BYTES) >> 20)
                return
            assert self.machine and self.machine.monitor
            self.machine.monitor.dump_memory(core, CORE_DEADLINE_S, self.arch.dump_paging)
            proc.run(["fallocate", "--dig-holes", str(core)], deadline=CORE_DEADLINE_S)
            self.core = core
        except (LabError, OSError) as exc:
            log.warning("no vmcore: %s", exc)
            core.unlink(missing_ok=True)

    def _teardown(self) -> None:
        """QEMU shut down, the consoles closed; the guest can be launched again."""
        if self.machine:
            try:
                self.machine.shutdown()
            except AbnormalShutdown as exc:
                self.shutdown_error = exc
        if self._uart:
            self._uart.close()
            self._uart = None
        if self.shell:
            self.shell.close()
        if self.kernel:
            self.kernel.close()
        if self._log:
            self._log.close()
            self._log = None

    @property
    def gdb_socket(self) -> Path:
        """QEMU's gdbstub (a guest made with gdb=True), while the guest runs."""
        assert self.gdb and self.machine, "a running guest with gdb=True"
        return self.machine.rundir / qemu.GDB_SOCKET

    # -- capabilities

    def run(self, command: str, timeout: float | Deadline = COMMAND_DEADLINE_S,
            output_file: Path | None = None) -> CommandResult:
        """Run a shell command in the guest; its whole output also goes to output_file,
        if given. The kernel faults it logged come along: the kernel log is read once
        it has caught up with the command's end (KernelLog.sync)."""
        assert self.shell and self.kernel
        before = len(self.kernel.faults())
        started = time.monotonic()
        reply = self.shell.run(command, timeout, output_file)
        elapsed = time.monotonic() - started
        self.kernel.sync(mark=reply.mark)
        return CommandResult(command, reply.output, reply.exit_code, elapsed,
                             tuple(self.kernel.faults()[before:]), reply.output_file,
                             reply.shell_reset)

    def put_file(self, data: bytes, path: str, mode: int = 0o644,
                 deadline: Deadline | None = None) -> None:
        """Copy data into the guest, all of it within deadline (default 60 s)."""
        assert self.shell
        self.shell.put_file(data, path, mode, deadline or Deadline(COMMAND_DEADLINE_S))

    def spawn(self, command: str, timeout: float = 30.0,
              encoding: str | None = "utf-8") -> Dialog:
        """command on the guest shell's tty, its stdin that tty, as a pexpect object
        (lab.guest.console.Dialog: expect, sendline, sendcontrol; EOF when it
        ends, then exitstatus). Use it in a `with`: the shell runs nothing else
        until the dialog is closed."""
        assert self.shell
        return self.shell.spawn(command, timeout, encoding)

    def faults(self) -> list[KernelMessage]:
        """The kernel faults so far, with every record the guest logged before this
        call: the kernel log's channel lags the shell's at times, and a warning a
        command printed may still be on its way (a guest that cannot answer, as a
        panicked or stopped one, gets what has come)."""
        if self.kernel is None:
            return []
        self.kernel.sync()
        return self.kernel.faults()

    def tainted(self) -> int:
        """The kernel's taint flags. Background output may share the command's
        output: the last line that is a number is the answer, and none is an error."""
        out = self.run("cat /proc/sys/kernel/tainted")
        numbers = re.findall(r"^(\d+)$", out.output, re.M)
        if out.exit_code != 0 or not numbers:
            raise GuestError(f"reading /proc/sys/kernel/tainted failed (exit code "
                             f"{out.exit_code}): {out.output[-200:]!r}")
        return int(numbers[-1])

    @property
    def _monitor(self) -> Monitor:
        assert self.machine and self.machine.monitor, "the guest has a machine"
        return self.machine.monitor

    def qmp(self, command: str, arguments: dict[str, Any] | None = None,
            timeout: float = QMP_TIMEOUT_S, **args: Any) -> Any:
        """A QMP command's answer; QEMU's error answer is a MonitorError."""
        return self._monitor.qmp(command, timeout, arguments, **args)

    def hmp(self, command_line: str, timeout: float = QMP_TIMEOUT_S) -> str:
        """An HMP command's answer; an error answer is a MonitorError."""
        return self._monitor.hmp(command_line, timeout)

    def uart(self) -> Uart:
        """The device-under-test UART (aarch64: the virt board's PL011), from the host
        end; connected on first use, then the same one until the guest closes."""
        if not self.arch.dut_uart:
            raise GuestError(f"{self.arch.name} guests have no device-under-test UART")
        if self._uart is None:
            assert self.machine
            self._uart = Uart(self.machine.connect("dut"), self.run)
        return self._uart
