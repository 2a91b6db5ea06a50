"""`hmp:` a human-monitor command (e.g. `xp /1wx 0x9000030`), its answer matched
and read for metrics.

Only commands that read the machine are allowed, checked when the scenario
loads: `info` with a subcommand of INFO, `x`/`xp` (read guest memory) and
`p`/`print` (evaluate an expression). Other HMP commands reach the host
(`migrate "exec:..."`, `pmemsave`, `memsave`, `dump-guest-memory`, `screendump`,
`chardev-add`, `drive_add`...) or change the machine (`quit`, `stop`,
`system_reset`, `o`, `sendkey`...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lab.core.errors import MonitorError
from lab.core.model import Metric, Step
from lab.scenario.schema import TEXT_LINE, Fields
from lab.scenario.steps.base import (
    Context,
    check_output,
    expectation,
    extract,
    output_expectation,
)

#: `info` subcommands that show the guest machine (QEMU 7.2); `info usbhost`,
#: which lists the host's USB devices, is left out.
INFO = frozenset("""
    balloon block block-jobs blockstats chardev cpus cpustats dirty_rate dump history
    hotpluggable-cpus ioapic iothreads irq jit kvm lapic mem memdev memory-devices
    memory_size_summary mice migrate migrate_capabilities migrate_parameters mtree name
    network numa opcount pci pic profile qdm qom-tree qtree ramblock registers replay roms
    sev sgx snapshots stats status sync-profile tlb tpm trace-events usb uuid
    vcpu_dirty_limit version virtio virtio-queue-element virtio-queue-status virtio-status
    virtio-vhost-queue-status vm-generation-id vnc
""".split())
#: The commands allowed besides `info`: reads of guest memory, and expressions.
READERS = ("x", "xp", "p", "print")
#: Units x/xp may read at once: their answer comes back as one QMP string.
MAX_UNITS = 4096
ALLOWED = "info SUBCOMMAND, x, xp, p, print"


def refusal(command: str) -> str | None:
    """Why an HMP command line is not allowed (None: it is). The command's name is
    read as HMP reads it: after any blanks, up to a blank or '/', case-sensitively."""
    if not command.isascii():
        return "an HMP command is ASCII text"
    if ";" in command:
        return "';' is not allowed in an HMP command"
    parts = re.match(r"\s*([^\s/]*)(.*)", command, re.S)
    assert parts is not None            # every string matches
    name, rest = parts.groups()
    if not name:
        return "no HMP command"
    if name == "info":
        sub = rest.split()[0] if rest.split() else ""
        if sub not in INFO:
            return (f"'info {sub}' is not allowed; the allowed info subcommands: "
                    f"{', '.join(sorted(INFO))}")
        return None
    if name not in READERS:
        return (f"HMP command {name!r} is not allowed: an hmp step may only read the "
                f"machine; allowed: {ALLOWED}")
    units = re.match(r"\s*/(\d+)", rest)
    if name in ("x", "xp") and units and int(units.group(1)) > MAX_UNITS:
        return f"{name} reads at most {MAX_UNITS} units at once, got {units.group(1)}"
    return None


@dataclass(frozen=True, kw_only=True)
class Hmp(Step):
    kind = "hmp"
    command: str
    match: str | None = None
    metrics: tuple[Metric, ...] = ()

    @classmethod
    def parse(cls, f: Fields, **common: Any) -> Hmp:
        command = f.take("hmp", str, text=TEXT_LINE)
        if problem := refusal(command):
            f.fail("hmp", problem)
        return cls(name=common.pop("name") or f"hmp: {command}", command=command,
                   match=f.regex("match"), metrics=f.metrics(), **common)

    def defines(self) -> tuple[Metric, ...]:
        return self.metrics

    def shown(self) -> tuple[str, str]:
        return f"(HMP) {self.command}", expectation(
            output_expectation(self.match, None), *(f"a sample of {m.name}" for m in self.metrics))

    def execute(self, ctx: Context) -> list[str]:
        try:
            answer = ctx.guest.hmp(self.command, ctx.timeout)
        except MonitorError as exc:   # QEMU said no: this step fails; no answer is an error
            return [str(exc)]
        return check_output(self.match, None, answer) + extract(self.metrics, answer, ctx)
