"""The catalogue of kernel faults, and parsers of kernel output. Pure logic."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.core.model import KernelMessage

#: How many lines after its first line belong to a fault's text, at most.
CONTEXT_LINES = 40
#: The line that closes a fault's text.
_END = re.compile(r"---\[ end (trace|Kernel panic)")
#: The rule of "=" that closes a KASAN or UBSAN report (a rule opens it too,
#: on the line before the one that names it).
_RULE = re.compile(r"={40,}\s*$")
_CALL_TRACE = re.compile(r"Call [Tt]race:")


@dataclass(frozen=True)
class FaultClass:
    """A kind of kernel report: the line that names it, and where its text ends."""

    kind: str
    fatal: bool
    pattern: re.Pattern[str]
    #: At most this many lines after the first belong to it.
    context: int = CONTEXT_LINES
    #: The line that closes it, kept in its text.
    end: re.Pattern[str] = _END
    #: A debug report opens a fault of its own even while another fault's
    #: context is open, unless that fault is a bare "cut here" that announced it
    #: (ODEBUG's WARN). Generic lines (BUG, WARNING, Call trace) fold into the
    #: open fault instead, as a WARNING folds into its "cut here".
    report: bool = False
    #: The line that opens the report's last block (a call trace, a kmemleak
    #: record): the report ends at the first line after it that is not indented.
    #: Lockdep and sleep-in-atomic reports have no end marker of their own.
    tail: re.Pattern[str] | None = None


#: Lockdep's own reports, besides the circular dependency
#: (kernel/locking/lockdep.c; "still has locks held" is debug_check_no_locks_held).
_LOCKDEP = (r"WARNING: (possible (circular|recursive) locking|possible irq lock inversion"
            r"|inconsistent lock state|suspicious RCU usage|bad unlock balance|held lock freed"
            r"|lock held when returning to user space|\S+-safe -> \S+-unsafe lock order"
            r"|Nested lock was not taken|bad contention detected|chain_key collision"
            r"|\S+/\d+ still has locks held)")
#: lockdep's "Invalid wait context" is counted as a sleep in atomic context: on
#: this kernel (no PROVE_RAW_LOCK_NESTING) it means a sleeping lock taken where
#: the task may not sleep, the bug DEBUG_ATOMIC_SLEEP's reports name.
_ATOMIC_SLEEP = (r"BUG: (sleeping function called from invalid context|scheduling while atomic)"
                 r"|\[ BUG: Invalid wait context \]")
#: A kmemleak record's first line (address, size); the record is the indented
#: lines under it.
KMEMLEAK_RECORD = re.compile(r"unreferenced object 0x([0-9a-f]+) \(size (\d+)\):")

#: Most severe first; a line is of the first class whose pattern it matches, so
#: the specific debug reports come before the generic BUG and WARNING lines
#: that also match them.
CATALOGUE: tuple[FaultClass, ...] = tuple(
    FaultClass(kind, fatal, re.compile(pattern), **rules) for kind, fatal, pattern, rules in (
        ("panic", True, r"Kernel panic - not syncing", {}),
        ("oops", False, r"Internal error: Oops|\bOops\b|general protection fault", {}),
        ("kasan", False, r"\bBUG: KASAN: ", {"context": 150, "end": _RULE, "report": True}),
        ("ubsan", False, r"\bUBSAN: ", {"context": 100, "end": _RULE, "report": True}),
        ("lockdep", False, _LOCKDEP, {"context": 200, "report": True, "tail": _CALL_TRACE}),
        ("atomic-sleep", False, _ATOMIC_SLEEP,
         {"context": 100, "report": True, "tail": _CALL_TRACE}),
        # ODEBUG's WARN, with arm64's register dump, is 43 lines to its end marker.
        ("odebug", False, r"\bODEBUG: (?!Out of memory)", {"context": 60, "report": True}),
        ("kmemleak", False, KMEMLEAK_RECORD.pattern,
         {"context": 60, "report": True, "tail": KMEMLEAK_RECORD}),
        # The lab's own line for a gap in the forwarded /dev/kmsg (lab.guest.console):
        # what was lost may have been an oops.
        ("lost-log", False, r"^lab: kernel log: \d+ lines? lost", {"context": 0, "report": True}),
        ("bug", False, r"\bBUG: |kernel BUG at", {}),
        ("fault", False, r"Unable to handle kernel", {}),
        ("warning", False, r"\bWARNING: ", {}),
        ("cut-here", False, r"-+\[ cut here \]-+", {}),
        ("call-trace", False, r"^(\[\s*\d+\.\d+\] )?\s*Call [Tt]race:", {}),
    )
)
_SEVERITY = {c.kind: i for i, c in enumerate(CATALOGUE)}
#: A kernel line's message: without its printk timestamp, nor kmemleak's prefix
#: (kmemleak.verbose=1 prints its records to the console).
_PREFIX = re.compile(r"^(\[\s*\d+\.\d+\] ?)?(kmemleak: )?")
#: A line inside a report's last block: indented (frames, kmemleak's fields), or
#: the user registers x86 prints inside a call trace.
_TAIL_LINE = re.compile(r"\s|(RIP|RSP|RAX|RDX|RBP|R10|R13|Code): ")


def message(line: str) -> str:
    """The line as the kernel printed it: no timestamp, no kmemleak prefix."""
    return _PREFIX.sub("", line, count=1)


def fault_class(line: str) -> FaultClass | None:
    return next((c for c in CATALOGUE if c.pattern.search(line)), None)


def classify(line: str) -> tuple[str, bool] | None:
    found = fault_class(line)
    return (found.kind, found.fatal) if found else None


@dataclass
class _Open:
    cls: FaultClass
    lines: list[str]
    kind: str
    left: int
    in_tail: bool = False


class FaultScanner:
    """Fed kernel output line by line; groups each fault with the lines after it.

    A fault line that arrives while another fault's context is still open is
    folded into it (a "cut here" followed by its WARNING is one fault), except a
    panic, which always opens a fault of its own, and a debug report (see
    FaultClass.report). A fault's context ends after CONTEXT_LINES (or its
    class's own limit), at its end marker, or after its last block.
    """

    def __init__(self) -> None:
        self._faults: list[_Open] = []

    def feed(self, line: str) -> KernelMessage | None:
        """Returns the new fault if this line opens one."""
        hit = fault_class(line)
        current = self._continued()
        if current is not None and current.in_tail and not _TAIL_LINE.match(message(line)):
            current.left, current = 0, None
        if hit and (current is None or hit.fatal or (hit.report and current.kind != "cut-here")):
            tail = hit.tail is not None and hit.tail.search(line) is not None
            self._faults.append(_Open(hit, [line], hit.kind, hit.context, tail))
            return self._freeze(self._faults[-1])
        if current is not None:
            self._fold(current, line, hit)
        return None

    def _continued(self) -> _Open | None:
        if self._faults and self._faults[-1].left > 0:
            return self._faults[-1]
        return None

    @staticmethod
    def _fold(f: _Open, line: str, hit: FaultClass | None) -> None:
        f.lines.append(line)
        f.left = 0 if f.cls.end.search(line) else f.left - 1
        if hit and _SEVERITY[hit.kind] < _SEVERITY[f.kind]:
            f.kind = hit.kind
            if hit.report:      # the report a "cut here" announced: its rules now
                f.cls, f.left = hit, max(f.left, hit.context)
        if f.cls.tail is not None and f.cls.tail.search(line):
            f.in_tail = True

    @staticmethod
    def _freeze(f: _Open) -> KernelMessage:
        return KernelMessage(f.kind, f.cls.fatal, "\n".join(f.lines))

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
                       r"Kernel panic|BUG: |WARNING: |Unable to handle|ODEBUG: ")
#: How many frames of a debug report's call trace its summary keeps, after the
#: frames of the reporting machinery itself.
REPORT_FRAMES = 6
#: How many of its other stacks' (KASAN's allocation and free, lockdep's chain).
STACK_FRAMES = 4
#: Functions of the reporting machinery, on top of a report's stacks.
_MACHINERY = re.compile(
    r"(dump_backtrace|show_stack|dump_stack(_lvl)?|print_report|kasan_report|__asan_\w+"
    r"|_*kasan_\w+|check_region_inline|ubsan_epilogue|__ubsan_handle_\w+|__might_resched"
    r"|__might_sleep|__schedule_bug|__schedule|print_\w+_bug|check_noncircular|check_prevs?_add"
    r"|validate_chain|__lock_acquire|lock_acquire|lock_release|lockdep_rcu_suspicious"
    r"|check_wait_context|print_lock_invalid_wait_context|mark_lock|slab_post_alloc_hook"
    r"|slab_free_freelist_hook)$")
#: A frame: "  do_one_initcall+0x194/0x3c4", "  [<ptr>] kfree+0x1/0x2", or a bare address.
_FN = re.compile(r"^\s+(?:\[<[^>]*>\] )?([\w.]+)\+0x")
_BARE_FRAME = re.compile(r"^\s+(?:\[<[^>]*>\] )?0x[0-9a-f]+\s*$")


def summarize(text: str, trace_lines: int = 12, kind: str | None = None) -> list[str]:
    """The lines of a fault a developer reads first: what happened, where
    (pc/lr, RIP), which modules, and the top of the call trace; registers
    and abort details are left to the log. A debug report (kind, or else the
    most severe kind its lines name) keeps its own key lines instead: see
    _SUMMARIES."""
    lines = text.splitlines()
    pick = _SUMMARIES.get(kind or _kind_of(lines))
    if pick is None:
        return _generic_summary(lines, trace_lines)
    msgs = [message(line) for line in lines]
    return [lines[i] for i in sorted(pick(msgs, min(trace_lines, REPORT_FRAMES)))]


def _kind_of(lines: list[str]) -> str:
    kinds = {c.kind for c in map(fault_class, lines) if c is not None}
    return min(kinds, key=_SEVERITY.__getitem__, default="")


def _generic_summary(lines: list[str], trace_lines: int) -> list[str]:
    out = [line for line in lines[:1]]
    trace_at = next((i for i, line in enumerate(lines) if "Call trace:" in line
                     or "Call Trace:" in line), len(lines))
    out += [line for line in lines[1:trace_at] if _KEY_LINE.search(line)]
    out += lines[trace_at:trace_at + 1 + trace_lines]
    return out


def _kasan_summary(msgs: list[str], frames: int) -> set[int]:
    """The BUG line, the access, its call trace, where the object was allocated
    and freed, and where in the object the access fell."""
    picks = {0} | _matching(msgs, r"^(Read|Write) (of size \d+ )?at addr|^Free of addr")
    picks |= _trace(msgs, frames)
    for head in _matching(msgs, r"^(Allocated|Freed) by task \d+:"):
        picks |= {head, *_top(msgs, _frames(msgs, head), STACK_FRAMES)}
    return picks | _with_next(msgs, r"^The buggy address (belongs to the object|is located)")


def _ubsan_summary(msgs: list[str], frames: int) -> set[int]:
    """The UBSAN line (file:line:column), what was wrong ("index 16 is out of
    range for type 'u8 [16]'"), and the call trace."""
    cpu = next((i for i, m in enumerate(msgs) if m.startswith("CPU: ") or _CALL_TRACE.search(m)),
               len(msgs))
    return set(range(cpu)) | _trace(msgs, frames)


def _locking_summary(msgs: list[str], frames: int) -> set[int]:
    """Lockdep's and the sleep-in-atomic reports: the header, what the task
    tried ("is trying to acquire lock:" and the lock), what it held, the
    dependency chain and the unsafe scenario, where preemption was disabled,
    and the call trace."""
    picks = {0} | _after_rule(msgs)
    picks |= _with_next(msgs, r"^but task is already holding lock:|^Preemption disabled at:")
    picks |= _matching(msgs, r"^in_atomic\(\)|^preempt_count: |^Modules linked in")
    for head in _matching(msgs, r"^-> #\d+ "):
        picks |= {head, *_top(msgs, _frames(msgs, head), STACK_FRAMES)}
    table = _matching(msgs, r"Possible unsafe locking scenario|\*\*\* DEADLOCK \*\*\*")
    if table:
        picks |= {i for i in range(min(table), max(table) + 1) if msgs[i].strip()}
    for head in _matching(msgs, r"^(\d+ locks? held by|no locks held by) "):
        picks.add(head)
        picks |= set(range(head + 1, _run_end(msgs, head + 1, r"^\s+#\d+: ")))
    return picks | _trace(msgs, frames)


def _kmemleak_summary(msgs: list[str], frames: int) -> set[int]:
    """The object and its size, who allocated it, the first bytes, and where."""
    picks = {0} | _matching(msgs, r"^\s+comm ") | _with_next(msgs, r"^\s+hex dump")
    for head in _matching(msgs, r"^\s+backtrace"):
        picks |= {head, *_top(msgs, _frames(msgs, head), frames)}
    return picks


_SUMMARIES = {"kasan": _kasan_summary, "ubsan": _ubsan_summary, "lockdep": _locking_summary,
              "atomic-sleep": _locking_summary, "kmemleak": _kmemleak_summary}


def _matching(msgs: list[str], pattern: str) -> set[int]:
    return {i for i, m in enumerate(msgs) if re.search(pattern, m)}


def _with_next(msgs: list[str], pattern: str) -> set[int]:
    """Each matching line and the line after it (the lock, the address)."""
    return {j for i in _matching(msgs, pattern) for j in (i, i + 1) if j < len(msgs)}


def _run_end(msgs: list[str], start: int, pattern: str) -> int:
    """The index after the run of lines from start that match pattern."""
    end = start
    while end < len(msgs) and re.match(pattern, msgs[end]):
        end += 1
    return end


def _after_rule(msgs: list[str]) -> set[int]:
    """The lines under lockdep's "-----" rule, up to the first blank line or its
    "other info": what the task did, the lock, or the file:line of the RCU use."""
    rule = next((i for i, m in enumerate(msgs) if re.fullmatch(r"-{10,}\s*", m)), None)
    if rule is None:
        return set()
    end = _run_end(msgs, rule + 1, r"^(?!other info)\S")
    return set(range(rule + 1, end))


def _trace(msgs: list[str], frames: int) -> set[int]:
    """The report's (last) "Call trace:" line and its top frames."""
    at = max(_matching(msgs, _CALL_TRACE.pattern), default=None)
    return set() if at is None else {at, *_top(msgs, _frames(msgs, at), frames)}


def _frames(msgs: list[str], at: int) -> list[int]:
    """The frames of the indented block after line `at`, without x86's guessed
    ("? ") frames and <TASK> markers."""
    end = _run_end(msgs, at + 1, _TAIL_LINE.pattern)
    return [i for i in range(at + 1, end) if _FN.match(msgs[i]) or _BARE_FRAME.match(msgs[i])]


def _top(msgs: list[str], frames: list[int], count: int) -> list[int]:
    """The first count frames below the reporting machinery's own."""
    start = 0
    while start < len(frames) and _machinery(msgs[frames[start]]):
        start += 1
    return frames[start:start + count]


def _machinery(msg: str) -> bool:
    m = _FN.match(msg)
    return m is not None and _MACHINERY.match(m.group(1).split(".")[0]) is not None


@dataclass(frozen=True)
class Site:
    """Where a report says the fault happened: a function, and its module (None: the
    kernel's own)."""

    function: str
    module: str | None


#: The report's own word for where it happened: arm64's pc line, x86_64's kernel RIP
#: (0010, the kernel's code segment; 0033 is user space), KASAN's "in FUNC".
_SITE = re.compile(r"(?:^pc : |^RIP: 0010:|^BUG: KASAN: [\w-]+ in )([A-Za-z_][\w.]*)"
                   r"\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[(\w+)\])?")
_FRAME_AT = re.compile(r"^\s+(?:\[<[^>]*>\] )?([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+"
                       r"(?: \[(\w+)\])?")


def fault_site(text: str, modules: frozenset[str] | None = None) -> Site | None:
    """The first place a report names that is in the kernel or in one of modules
    (the modules under test, a frame of any other is skipped; None: any): the pc or
    RIP of an oops, KASAN's function, else the first frame of its call trace
    below the reporting machinery. None when it names none (a bare address)."""
    msgs = [message(line) for line in text.splitlines()]
    candidates = [m for msg in msgs if (m := _SITE.match(msg))]
    at = max(_matching(msgs, _CALL_TRACE.pattern), default=None)
    if at is not None:
        frames = _frames(msgs, at)
        start = next((k for k, i in enumerate(frames) if not _machinery(msgs[i])), len(frames))
        candidates += [m for i in frames[start:] if (m := _FRAME_AT.match(msgs[i]))]
    for m in candidates:
        if m.group(2) is None or modules is None or m.group(2) in modules:
            return Site(m.group(1), m.group(2))
    return None
