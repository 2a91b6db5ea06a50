"""kmemleak's report as records, and which of them a module leaked. Pure logic.

What the guest must record, so that a leak can be pinned on a module (measured on
the 6.1 debug kernel, see tests/data/debug-reports/kmemleak-*):

- while the module is loaded: its line of `/proc/modules` (the core region, base
  and size) and `grep -r . /sys/module/NAME/sections/` (the start of every
  section; sysfs gives no sizes). The module's init code lives in a separate
  allocation outside the core region, and after init has run its symbols are
  gone from kallsyms: a frame there prints as a bare address even while the
  module is loaded. Only the next section's start bounds `.init.text`, so record
  all sections, not only the text ones.
- after unloading it, and at least 5 s after the allocation (kmemleak ignores
  younger objects): `echo scan > /sys/kernel/debug/kmemleak` TWICE, then
  `cat /sys/kernel/debug/kmemleak`. The first scan of an object only records its
  checksum; kmemleak reports it when a later scan finds the checksum unchanged.

kmemleak prints a frame as `[<%p>] %pS`. The bracketed pointer is hashed (and is
`(____ptrval____)` while the hash key is not ready, as under TCG), so it never
locates anything. `%pS` is a symbol, `leak_lost_alloc+0x3c/0xffc [leak_lost]`,
while one covers the address, and the bare address, `0xffffffc0007f0040`, once
none does: the module was unloaded, or the frame is in its freed init code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from lab.parse.faults import KMEMLEAK_RECORD, message

_COMM = re.compile(r'^\s+comm "(.*)", pid (\d+), jiffies (\d+)(?: \(age (\d+\.\d+)s\))?')
_HEX_HEADER = re.compile(r"^\s+hex dump \(first \d+ bytes\):")
_BACKTRACE = re.compile(r"^\s+backtrace( \(crc [0-9a-f]+\))?:")
_FRAME = re.compile(r"^\s+\[<([^>]*)>\] (.*?)\s*$")
_MODULE = re.compile(r" \[(\w+)\]$")
_BARE = re.compile(r"^0x([0-9a-f]+)$")


@dataclass(frozen=True)
class Frame:
    """One backtrace entry, `[<pointer>] symbol`."""

    #: %p: hashed, or "(____ptrval____)"; never an address to look up.
    pointer: str
    #: %pS: "leak_init+0x1c/0x1000 [leak]", or "0xffffffc0007f503c" when no
    #: symbol covers the address.
    symbol: str

    @property
    def module(self) -> str | None:
        """The module the symbol is in, when the kernel could still say."""
        m = _MODULE.search(self.symbol)
        return m.group(1) if m else None

    @property
    def address(self) -> int | None:
        """The raw address, when the kernel printed one instead of a symbol."""
        m = _BARE.match(self.symbol)
        return int(m.group(1), 16) if m else None


@dataclass(frozen=True)
class Leak:
    """One `unreferenced object` record."""

    address: int
    size: int
    comm: str
    pid: int
    jiffies: int
    #: Other kernels print "(age 12.340s)"; 6.1.192 does not.
    age_s: float | None
    hex_dump: tuple[str, ...]
    backtrace: tuple[Frame, ...]
    #: The record as printed.
    text: str


@dataclass(frozen=True)
class AddressRange:
    """Where a module's code or data was while it was loaded: [start, end)."""

    name: str        # "core" (from /proc/modules) or a section name
    start: int
    end: int

    def __contains__(self, address: object) -> bool:
        return isinstance(address, int) and self.start <= address < self.end


def parse(text: str) -> list[Leak]:
    """The records of /sys/kernel/debug/kmemleak (or of the console, with
    kmemleak.verbose=1: timestamps and the "kmemleak: " prefix are dropped)."""
    records: list[list[str]] = []
    for line in text.splitlines():
        if KMEMLEAK_RECORD.match(message(line)):
            records.append([])
        if records:
            records[-1].append(message(line))
    return [_leak(lines) for lines in records]


def _leak(lines: list[str]) -> Leak:
    head = KMEMLEAK_RECORD.match(lines[0])
    assert head is not None
    comm = next((m for m in map(_COMM.match, lines) if m), None)
    hex_at = next((i for i, line in enumerate(lines) if _HEX_HEADER.match(line)), None)
    bt_at = next((i for i, line in enumerate(lines) if _BACKTRACE.match(line)), len(lines))
    hex_dump = lines[hex_at + 1:bt_at] if hex_at is not None else []
    frames = [m for m in map(_FRAME.match, lines[bt_at + 1:]) if m]
    return Leak(address=int(head.group(1), 16), size=int(head.group(2)),
                comm=comm.group(1) if comm else "", pid=int(comm.group(2)) if comm else 0,
                jiffies=int(comm.group(3)) if comm else 0,
                age_s=float(comm.group(4)) if comm and comm.group(4) else None,
                hex_dump=tuple(line.lstrip() for line in hex_dump if line.strip()),
                backtrace=tuple(Frame(m.group(1), m.group(2)) for m in frames),
                text="\n".join(lines))


def core_range(proc_modules: str, module: str) -> AddressRange | None:
    """The module's core region from /proc/modules ("leak 16384 0 - Live
    0xffffffc0007f0000 (O)"), or None when it is not listed or its address is
    hidden (0, under kptr_restrict)."""
    for line in proc_modules.splitlines():
        words = line.split()
        if len(words) >= 6 and words[0] == _modname(module) and words[5].startswith("0x"):
            base = int(words[5], 16)
            return AddressRange("core", base, base + int(words[1])) if base else None
    return None


def parse_sections(text: str) -> dict[str, int]:
    """`grep -r . /sys/module/NAME/sections/` as {section: start address}."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        path, sep, value = line.strip().rpartition(":")
        if sep and value.startswith("0x") and "/sections/" in path:
            found[path.rsplit("/", 1)[1]] = int(value, 16)
    return found


def module_ranges(proc_modules: str, sections: str, module: str) -> tuple[AddressRange, ...]:
    """Where the module was: its core region, and each section outside it (its
    init code above all) up to the next section's start. The highest section has
    no known end and is left out (in practice .strtab or .symtab, never code)."""
    core = core_range(proc_modules, module)
    starts = sorted(parse_sections(sections).items(), key=lambda kv: kv[1])
    ranges = [core] if core else []
    for (name, start), (_, following) in zip(starts, starts[1:], strict=False):
        if core is None or start not in core:
            ranges.append(AddressRange(name, start, following))
    return tuple(r for r in ranges if r.end > r.start)


def frame_in_module(frame: Frame, module: str, ranges: Iterable[AddressRange]) -> bool:
    """The frame is the module's: its symbol names it, or its bare address lies
    in a range the module occupied."""
    if frame.module == _modname(module):
        return True
    address = frame.address
    return address is not None and any(address in r for r in ranges)


def leaks_of(leaks: Iterable[Leak], module: str,
             ranges: Iterable[AddressRange]) -> list[Leak]:
    """The leaks with a frame of the module in their allocation backtrace."""
    ranges = tuple(ranges)
    return [leak for leak in leaks
            if any(frame_in_module(f, module, ranges) for f in leak.backtrace)]


def _modname(module: str) -> str:
    """As the kernel spells it: kbuild turns "-" into "_"."""
    return module.replace("-", "_")
