"""A booted guest: a QEMU machine, its consoles, and what the lab knows of it.

Steps and tests talk to a Guest's capabilities (run, put_file, hmp, qmp, uart,
faults), never to QEMU directly.
"""

from __future__ import annotations

import logging
import re
import secrets
import shlex
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from lab.arches import get_arch
from lab.core.deadline import Deadline
from lab.core.errors import AbnormalShutdown, GuestError, InfraError, LabError
from lab.core.model import BootFacts, CommandResult, KernelBuild, KernelMessage, accel_label
from lab.guest import qemu, snapshot
from lab.guest.console import ConsoleLog, KernelLog, Resume, Shell
from lab.guest.monitor import QMP_TIMEOUT_S, Monitor
from lab.guest.uart import Uart
from lab.host import facts
from lab.host.cache import CorruptEntry
from lab.parse import faults

log = logging.getLogger("lab.guest.guest")

BOOT_DEADLINE_S = 60.0
COMMAND_DEADLINE_S = 60.0
#: Saving a template's state (some 300 KB) and loading it into a clone.
SAVE_DEADLINE_S = 30.0
RESTORE_DEADLINE_S = 30.0


class Guest:
    """Boot with `with Guest(build) as g:`; the guest is always torn down on exit."""

    def __init__(self, build: KernelBuild, cmdline: tuple[str, ...] = (),
                 logdir: Path | None = None, accel: str | None = None,
                 memory_mb: int | None = None, icount: bool = False,
                 boot_deadline_s: float = BOOT_DEADLINE_S, echo_kernel=None,
                 sysctls: tuple[tuple[str, str], ...] = (), restore: bool = False):
        if build.initramfs is None:
            raise InfraError(f"kernel {build.arch}/{build.kernel} has no initramfs")
        self.build = build
        self.arch = get_arch(build.arch)
        self.accel = facts.choose_accel(self.arch, accel)
        self.icount = icount
        self.cmdline = qemu.kernel_cmdline(self.arch, tuple(cmdline))
        self.logdir = Path(logdir) if logdir else Path(tempfile.mkdtemp(prefix="lab-guest-"))
        self.memory_mb = memory_mb
        self.sysctls = sysctls
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
                                 self.accel, self.memory_mb, self.icount, ram, incoming)

    def _launch(self, ram: qemu.RamFile | None = None, incoming: bool = False,
                resume: Resume | None = None) -> None:
        """QEMU started paused, and both consoles connected (a restored shell resumes
        its template's session)."""
        rundir = qemu.make_rundir()
        self.machine = qemu.Machine(self._argv(rundir, ram, incoming), rundir, self.logdir)
        self.machine.launch()
        self._log = ConsoleLog(self.logdir / "console.log")
        self.kernel = KernelLog(self.machine.connect("kernel"), self._log, self._echo_kernel)
        self.kernel.start()
        self.shell = Shell(self.machine.connect("shell"), self._log, self.kernel,
                           self.logdir, self.arch.console_kind, resume)

    def _cold(self, ram: qemu.RamFile | None = None) -> BootFacts:
        """A real boot, up to the shell set up, and what dmesg says of it."""
        launched = time.monotonic()
        self._launch(ram)
        assert self.shell
        started = time.monotonic()
        self._monitor.cont()
        self.shell.wait_ready(self.boot_deadline_s)
        boot_s = time.monotonic() - started
        #: From launching QEMU to the ready marker (to the first command, when
        #: restored), as the user waits for it.
        self.ready_s = time.monotonic() - launched
        self.shell.setup()
        # Kernel messages go to the kernel console only: let them all through.
        release = self.shell.run("dmesg -n 8; uname -r", COMMAND_DEADLINE_S).output
        dmesg = self.shell.run("dmesg", COMMAND_DEADLINE_S).output
        return BootFacts(
            kernel_release=release.strip(), accel=accel_label(self.accel, self.icount),
            cmdline=self.cmdline, boot_s=boot_s,
            kpti_active=faults.kpti_active(self.arch.kpti_dmesg, dmesg))

    # -- snapshot templates (lab/guest/snapshot.py)

    def template_key(self) -> str:
        assert self.build.initramfs is not None   # checked in __init__
        return snapshot.key(self._argv(Path(snapshot.RUNDIR)), self.build.image,
                            self.build.initramfs)

    def _from_template(self) -> BootFacts:
        """Restore from the template; make it first if there is none. A template that
        fails its check or its restore is deleted, and the guest boots cold."""
        key = self.template_key()
        try:
            template = snapshot.lookup(self.arch.name, key)
        except CorruptEntry as bad:
            snapshot.discard(snapshot.template_dir(self.arch.name, key))
            return self._cold_instead(key, bad)
        note = ""
        if template is None:
            template, note = self._make_template(key)
            if template is None:          # this guest booted cold, and goes on as it is
                assert self.facts is not None
                return replace(self.facts, note=note)
        try:
            return self._restore(template, key, note)
        except (LabError, OSError) as exc:
            self._teardown()
            snapshot.discard(template.path)
            return self._cold_instead(key, exc)

    def _cold_instead(self, key: str, why: BaseException) -> BootFacts:
        return replace(self._cold(), note=f"template {key[:12]} did not restore ({why}); "
                                          "it was deleted, and this guest booted cold")

    def _make_template(self, key: str) -> tuple[snapshot.Template | None, str]:
        """A cold boot saved as key's template, then shut down; or, when its boot
        printed a kernel fault, no template (the guest goes on, cold: a template
        never carries a fault into its clones)."""
        with snapshot.making(self.arch.name, key, Deadline(self.boot_deadline_s)) as scratch:
            if scratch is None:          # another guest made it while this one waited
                return snapshot.lookup(self.arch.name, key), ""
            self.facts = self._cold(qemu.RamFile(scratch / snapshot.RAM, shared=True))
            if self.faults():
                kinds = ", ".join(sorted({f.kind for f in self.faults()}))
                return None, f"no template made: the boot printed a kernel {kinds}"
            meta = self._template_meta(key, self.facts)
            self._monitor.save_state(scratch / snapshot.STATE, Deadline(SAVE_DEADLINE_S))
            self._teardown()
            template = snapshot.finish(scratch, meta)
        return template, f"template {key[:12]} made now, by a cold boot of " \
                         f"{self.facts.boot_s:.2f} s"

    def _template_meta(self, key: str, facts: BootFacts) -> snapshot.TemplateMeta:
        """What a clone needs to know: the guest marked with its key, where its
        kernel log stands, its shell's session, and its boot facts."""
        assert self.shell
        present = f"/usr/bin/present {snapshot.PRESENT_IN} {snapshot.PRESENT_OUT}"
        reply = self.shell.run(
            f"echo {key} > {snapshot.GUEST_MARK} && {present} && dmesg | wc -l",
            COMMAND_DEADLINE_S)
        numbers = re.findall(r"^(\d+)$", reply.output, re.M)
        if reply.exit_code != 0 or not numbers:
            raise GuestError(f"marking the template's guest failed: {reply.output[-200:]!r}")
        resume = self.shell.resume()
        return snapshot.TemplateMeta(
            key=key, arch=self.arch.name, session=resume.session, tx_base=resume.tx_base,
            kernel_release=facts.kernel_release, kpti_active=facts.kpti_active,
            dmesg_lines=int(numbers[-1]), cold_boot_s=facts.boot_s, cmdline=self.cmdline,
            made=time.time())

    def _restore(self, template: snapshot.Template, key: str, note: str) -> BootFacts:
        """A clone: QEMU on the template's RAM (private), its state loaded, the
        consoles reconnected, then the guest brought to the present. The template
        is checked while QEMU starts and loads the state; the guest runs only
        once the check has passed."""
        launched = time.monotonic()
        with ThreadPoolExecutor(1, thread_name_prefix="template-check") as pool:
            checked = pool.submit(snapshot.verify, template, key)
            try:
                self._launch(qemu.RamFile(template.ram, shared=False), incoming=True,
                             resume=template.resume())
                assert self.kernel
                self._monitor.load_state(template.state, Deadline(RESTORE_DEADLINE_S))
            except Exception:
                checked.result()    # a damaged template is the better explanation
                raise
            checked.result()
        if self.kernel.lines or self.kernel.faults():
            raise GuestError("the restored guest's kernel console did not start clean")
        self._monitor.cont()
        self._bring_to_present(template)
        self.template = template
        self.ready_s = time.monotonic() - launched
        snapshot.touch(template)
        m = template.meta
        return BootFacts(m.kernel_release, accel_label(self.accel, self.icount),
                         self.cmdline, self.ready_s, m.kpti_active, boot="restored",
                         template=key, note=note)

    def _bring_to_present(self, template: snapshot.Template) -> None:
        """The first command of a clone: the wall clock set from the host, 64 host
        random bytes mixed into the guest's pool (this credits no entropy), and the
        check that this is the template's guest. No new process: TCG has translated
        no code of the clone yet, and a program's exec costs it some 80 ms; the
        template's own `present` (images/tools/present.c), already running, does
        the work, and the shell talks to it with builtins."""
        assert self.shell
        now = time.time_ns()
        request = f"{now // 10**9} {now % 10**9} {secrets.token_hex(64)}"
        reply = self.shell.run(
            f"echo '{request}' > {snapshot.PRESENT_IN} && "
            f"read -r _lab_ok < {snapshot.PRESENT_OUT} && "
            f"read -r _lab_t < {snapshot.GUEST_MARK} && echo $_lab_ok $_lab_t",
            COMMAND_DEADLINE_S)
        if reply.exit_code != 0 or reply.output.split()[-2:] != ["ok", template.key]:
            raise GuestError(f"the restored guest is not its template's (exit code "
                             f"{reply.exit_code}): {reply.output[-300:]!r}")

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
        self._teardown()
        if self.template is not None:
            try:
                snapshot.check_unwritten(self.template)
            except CorruptEntry as bad:
                log.warning("deleting template %s: %s", self.template.path, bad)
                snapshot.discard(self.template.path)
            self.template = None

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

    # -- capabilities

    def run(self, command: str, timeout: float | Deadline = COMMAND_DEADLINE_S,
            output_file: Path | None = None) -> CommandResult:
        """Run a shell command in the guest; its whole output also goes to output_file,
        if given. Kernel faults seen meanwhile come along."""
        assert self.shell and self.kernel
        before = len(self.kernel.faults())
        started = time.monotonic()
        reply = self.shell.run(command, timeout, output_file)
        return CommandResult(command, reply.output, reply.exit_code, time.monotonic() - started,
                             tuple(self.kernel.faults()[before:]), reply.output_file,
                             reply.shell_reset)

    def put_file(self, data: bytes, path: str, mode: int = 0o644,
                 deadline: Deadline | None = None) -> None:
        """Copy data into the guest, all of it within deadline (default 60 s)."""
        assert self.shell
        self.shell.put_file(data, path, mode, deadline or Deadline(COMMAND_DEADLINE_S))

    def faults(self) -> list[KernelMessage]:
        return self.kernel.faults() if self.kernel else []

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
