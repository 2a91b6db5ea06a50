"""How a guest comes up from a snapshot template instead of a boot: the template's
key, making it by a cold boot, checking it while QEMU loads its state, restoring a
clone, and bringing the clone to the present (see lab/guest/snapshot.py).

Cloning is the part of Guest (lab/guest/guest.py) that does this; Guest gives it a
cold boot, a launch, a teardown and the consoles, which it declares below.
"""

from __future__ import annotations

import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from lab.core.deadline import Deadline
from lab.core.errors import GuestError, LabError
from lab.core.model import ArchProfile, BootFacts, KernelBuild, KernelMessage, accel_label
from lab.guest import qemu, snapshot
from lab.guest.console import COMMAND_DEADLINE_S, KernelLog, Resume, Shell
from lab.guest.monitor import Monitor
from lab.host.cache import CorruptEntry

#: Saving a template's state (some 300 KB) and loading it into a clone.
SAVE_DEADLINE_S = 30.0
RESTORE_DEADLINE_S = 30.0


class Cloning:
    """Boots from snapshot templates, for Guest."""

    # What Guest provides.
    build: KernelBuild
    arch: ArchProfile
    accel: str
    icount: bool
    cmdline: str
    boot_deadline_s: float
    facts: BootFacts | None
    kernel: KernelLog | None
    shell: Shell | None
    template: snapshot.Template | None
    ready_s: float

    def _argv(self, rundir: Path, ram: qemu.RamFile | None = None,
              incoming: bool = False) -> list[str]:
        raise NotImplementedError

    def _launch(self, ram: qemu.RamFile | None = None, incoming: bool = False,
                resume: Resume | None = None) -> None:
        raise NotImplementedError

    def _cold(self, ram: qemu.RamFile | None = None) -> BootFacts:
        raise NotImplementedError

    def _teardown(self) -> None:
        raise NotImplementedError

    def faults(self) -> list[KernelMessage]:
        raise NotImplementedError

    @property
    def _monitor(self) -> Monitor:
        raise NotImplementedError

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
            assert self.kernel
            if not self.kernel.sync():
                return None, "no template made: the guest's kernel log did not catch up " \
                             "(its forwarder did not answer)"
            if self.kernel.faults():
                kinds = ", ".join(sorted({f.kind for f in self.kernel.faults()}))
                return None, f"no template made: the boot printed a kernel {kinds}"
            meta = self._template_meta(key, self.facts)
            self._monitor.save_state(scratch / snapshot.STATE, Deadline(SAVE_DEADLINE_S))
            meta = replace(meta, kmsg_seq=self.kernel.next_seq())   # the guest is stopped
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
