"""The catalogue of kernel faults, and parsers of kernel output. Pure logic."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lab.model import KernelMessage

#: (kind, fatal, pattern), most severe first. The first line of a fault names it.
CATALOGUE: tuple[tuple[str, bool, re.Pattern], ...] = tuple(
    (kind, fatal, re.compile(pattern)) for kind, fatal, pattern in (
        ("panic", True, r"Kernel panic - not syncing"),
        ("oops", False, r"Internal error: Oops|\bOops\b|general protection fault"),
        ("bug", False, r"\bBUG: |kernel BUG at"),
        ("fault", False, r"Unable to handle kernel"),
        ("warning", False, r"\bWARNING: "),
        ("cut-here", False, r"-+\[ cut here \]-+"),
        ("call-trace", False, r"^(\[\s*\d+\.\d+\] )?\s*Call [Tt]race:"),
    )
)
_SEVERITY = {kind: i for i, (kind, _, _) in enumerate(CATALOGUE)}
#: The line that closes a fault's text.
_END = re.compile(r"---\[ end (trace|Kernel panic)")
#: How many lines after its first line belong to a fault's text, at most.
CONTEXT_LINES = 40


def classify(line: str) -> tuple[str, bool] | None:
    for kind, fatal, pattern in CATALOGUE:
        if pattern.search(line):
            return kind, fatal
    return None


@dataclass
class _Open:
    kind: str
    fatal: bool
    lines: list[str] = field(default_factory=list)


class FaultScanner:
    """Fed kernel output line by line; groups each fault with the lines after it.

    A fault line that arrives while another fault's context is still open is
    folded into it (a "cut here" followed by its WARNING is one fault), except a
    panic, which always opens a fault of its own.
    """

    def __init__(self) -> None:
        self._faults: list[_Open] = []
        self._left = 0

    def feed(self, line: str) -> KernelMessage | None:
        """Returns the new fault if this line opens one."""
        hit = classify(line)
        current = self._faults[-1] if self._faults and self._left > 0 else None
        if hit and (current is None or hit[1]):
            self._faults.append(_Open(hit[0], hit[1], [line]))
            self._left = CONTEXT_LINES
            return self._freeze(self._faults[-1])
        if current is not None:
            current.lines.append(line)
            self._left = 0 if _END.search(line) else self._left - 1
            if hit and _SEVERITY[hit[0]] < _SEVERITY[current.kind]:
                current.kind = hit[0]
        return None

    @staticmethod
    def _freeze(f: _Open) -> KernelMessage:
        return KernelMessage(f.kind, f.fatal, "\n".join(f.lines))

    @property
    def faults(self) -> list[KernelMessage]:
        return [self._freeze(f) for f in self._faults]

    @property
    def panic(self) -> KernelMessage | None:
        return next((f for f in self.faults if f.fatal), None)


def scan(text: str) -> list[KernelMessage]:
    scanner = FaultScanner()
    for line in text.splitlines():
        scanner.feed(line)
    return scanner.faults


TAINT_FLAGS = "PFSRMBUDAWCIOELKXT"


def taint_flags(value: int) -> str:
    """The letters the kernel uses for a /proc/sys/kernel/tainted value."""
    return "".join(c for bit, c in enumerate(TAINT_FLAGS) if value & (1 << bit))


def kpti_active(pattern: str, dmesg: str) -> bool:
    """Whether the kernel log says KPTI is on (see ArchProfile.kpti_dmesg).

    The sysfs meltdown file is no help: it says "Not affected" on the emulated
    CPUs even when KPTI is forced on. The kernel prints a line only when KPTI
    is really in use.
    """
    return re.search(pattern, dmesg) is not None


_KEY_LINE = re.compile(r"Modules linked in|\bpc : |\blr : |\bRIP: |Comm: |Internal error|"
                       r"Kernel panic|BUG: |WARNING: |Unable to handle")


def summarize(text: str, trace_lines: int = 12) -> list[str]:
    """The lines of a fault a developer reads first: what happened, where
    (pc/lr, RIP), which modules, and the top of the call trace; registers
    and abort details are left to the log."""
    lines = text.splitlines()
    out = [line for line in lines[:1]]
    trace_at = next((i for i, line in enumerate(lines) if "Call trace:" in line
                     or "Call Trace:" in line), len(lines))
    out += [line for line in lines[1:trace_at] if _KEY_LINE.search(line)]
    out += lines[trace_at:trace_at + 1 + trace_lines]
    return out
