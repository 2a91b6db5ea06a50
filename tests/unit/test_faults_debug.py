"""The debug kernel's reports (KASAN, UBSAN, lockdep, sleep in atomic context,
debugobjects, kmemleak) against real output of the lab's aarch64 debug kernel:
tests/data/debug-reports/, from the modules in tests/drivers/ and tests/data/drivers/."""

from pathlib import Path

import pytest

from lab.parse import faults

DATA = Path(__file__).parent.parent / "data"
REPORTS = DATA / "debug-reports"


def _scan(name: str):
    return faults.scan((REPORTS / name).read_text())


def _messages(lines):
    return [faults.message(line) for line in lines]


@pytest.mark.parametrize("name, kinds", [
    ("kasan-uaf-aarch64.log", ["kasan"]),
    ("ubsan-oob-aarch64.log", ["ubsan"]),
    ("lockdep-circular-aarch64.log", ["lockdep"]),
    ("lockdep-circular-x86_64.log", ["lockdep"]),
    ("lockdep-unlock-balance-aarch64.log", ["lockdep"]),
    ("lockdep-rcu-aarch64.log", ["lockdep"]),
    # msleep() has no might_sleep() in 6.1: the scheduler names it, then the
    # unbalanced preempt count warns when the spinlock is released.
    ("atomic-sleep-aarch64.log", ["atomic-sleep", "warning"]),
    # mutex_lock() under a spinlock: DEBUG_ATOMIC_SLEEP, then lockdep's wait context.
    ("sleeping-lock-aarch64.log", ["atomic-sleep", "atomic-sleep"]),
    ("odebug-timer-aarch64.log", ["odebug"]),
])
def test_each_report_is_one_fault_of_its_kind(name, kinds):
    found = _scan(name)
    assert [f.kind for f in found] == kinds
    assert not any(f.fatal for f in found)


@pytest.mark.parametrize("name, last", [
    ("kasan-uaf-aarch64.log", "=" * 66),
    ("ubsan-oob-aarch64.log", "=" * 80),
    ("lockdep-circular-aarch64.log", " el0t_64_sync+0x148/0x14c"),
    ("lockdep-rcu-aarch64.log", " el0t_64_sync+0x148/0x14c"),
    # x86 prints the user registers inside the trace, unindented, up to </TASK>.
    ("lockdep-circular-x86_64.log", " </TASK>"),
    ("odebug-timer-aarch64.log", "---[ end trace 0000000000000000 ]---"),
])
def test_a_report_ends_at_its_end_marker_or_after_its_last_trace(name, last):
    """The whole report, its own "Call trace:" lines included, and not the
    ordinary lines after it ("Disabling lock debugging", the module's pr_info)."""
    text = _scan(name)[0].text
    assert _messages(text.splitlines())[-1] == last
    assert "Disabling lock debugging" not in text
    assert "rcu_unlocked: baud" not in text and "oob: drained" not in text


def test_the_kasan_report_keeps_its_three_stacks():
    text = _scan("kasan-uaf-aarch64.log")[0].text
    for part in ("Call trace:", "Allocated by task 52:", "Freed by task 54:",
                 "Memory state around the buggy address:"):
        assert part in text


def test_specific_kinds_win_over_the_generic_lines_that_also_match():
    assert faults.classify("[ 1.0] BUG: KASAN: use-after-free in x+0x4/0x8") == ("kasan", False)
    assert faults.classify("WARNING: possible circular locking dependency detected") \
        == ("lockdep", False)
    assert faults.classify("WARNING: possible recursive locking detected")[0] == "lockdep"
    assert faults.classify("WARNING: inconsistent lock state")[0] == "lockdep"
    assert faults.classify("WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected")[0] \
        == "lockdep"
    assert faults.classify("WARNING: lock held when returning to user space!")[0] == "lockdep"
    assert faults.classify("WARNING: held lock freed!")[0] == "lockdep"
    assert faults.classify("BUG: scheduling while atomic: insmod/5/0x00000002")[0] \
        == "atomic-sleep"
    assert faults.classify("UBSAN: shift-out-of-bounds in a.c:1:2")[0] == "ubsan"
    assert faults.classify("unreferenced object 0xffff0000 (size 64):")[0] == "kmemleak"
    assert faults.classify("ODEBUG: init destroyed (active state 0) object type: hrtimer")[0] \
        == "odebug"
    # The generic ones stay as they were.
    assert faults.classify("BUG: unable to handle page fault for address: 0")[0] == "bug"
    assert faults.classify("WARNING: CPU: 0 PID: 1 at a.c:2 f+0x1/0x2")[0] == "warning"
    assert faults.classify("ODEBUG: Out of memory. ODEBUG disabled") is None


def test_severity_puts_panic_first_and_the_debug_reports_above_the_generic_lines():
    order = [c.kind for c in faults.CATALOGUE]
    assert order[:2] == ["panic", "oops"]
    for kind in ("kasan", "ubsan", "lockdep", "atomic-sleep", "odebug", "kmemleak"):
        assert order.index(kind) < order.index("bug") < order.index("warning")
    assert [c.kind for c in faults.CATALOGUE if c.fatal] == ["panic"]


def test_a_report_opens_its_own_fault_inside_another_faults_context():
    """Lockdep's report has no end marker: a KASAN report right after it is a
    fault of its own, and so is a WARNING once lockdep's trace has ended."""
    text = "\n".join([(REPORTS / "lockdep-circular-aarch64.log").read_text(),
                      (REPORTS / "kasan-uaf-aarch64.log").read_text(),
                      "[   13.0] WARNING: CPU: 0 PID: 5 at a.c:1 f+0x0/0x4"])
    assert [f.kind for f in faults.scan(text)] == ["lockdep", "kasan", "warning"]


def test_a_panic_inside_a_report_is_its_own_fatal_fault():
    lines = (REPORTS / "kasan-uaf-aarch64.log").read_text().splitlines()
    lines.insert(10, "[   12.08] Kernel panic - not syncing: KASAN: panic_on_warn set ...")
    found = faults.scan("\n".join(lines))
    assert [(f.kind, f.fatal) for f in found] == [("kasan", False), ("panic", True)]


def test_each_kmemleak_record_is_a_fault():
    one = (REPORTS / "kmemleak-leak-aarch64" / "kmemleak.txt").read_text()
    other = (REPORTS / "kmemleak-leak-lost-aarch64" / "kmemleak-loaded.txt").read_text()
    found = faults.scan(one + other + "ordinary line\n")
    assert [f.kind for f in found] == ["kmemleak", "kmemleak"]
    assert found[0].text == one.rstrip("\n")
    assert found[1].text == other.rstrip("\n")


def _summary(name: str, index: int = 0) -> list[str]:
    return _messages(faults.summarize(_scan(name)[index].text))


MACHINERY = ("dump_backtrace", "show_stack", "dump_stack", "kasan_report", "__asan_",
             "print_report", "ubsan_epilogue", "__ubsan_handle", "print_circular_bug",
             "__lock_acquire", "__schedule_bug", "__might_resched", "kasan_save_stack",
             "slab_post_alloc_hook")


def _no_machinery(summary: list[str]) -> None:
    assert not [line for line in summary if any(f" {m}" in line for m in MACHINERY)]


def test_kasan_summary_is_the_bug_the_access_and_the_three_stacks():
    s = _summary("kasan-uaf-aarch64.log")
    assert s[0] == "BUG: KASAN: use-after-free in uaf_exit+0x48/0x64 [uaf]"
    assert s[1] == "Read of size 4 at addr ffffff8006342300 by task rmmod/54"
    assert s[s.index("Call trace:") + 1] == " uaf_exit+0x48/0x64 [uaf]"
    alloc, free = s.index("Allocated by task 52:"), s.index("Freed by task 54:")
    assert s[alloc + 1:alloc + 3] == [" kmalloc_trace+0x84/0xa8", " 0xffffffc0007f5040"]
    assert " uaf_exit+0x18/0x64 [uaf]" in s[free + 1:free + 5]
    assert "The buggy address is located 0 bytes inside of" in s
    assert not any("Memory state" in line or line.startswith("raw: ") for line in s)
    _no_machinery(s)
    assert len(s) < 30


def test_ubsan_summary_is_the_location_the_index_and_the_trace():
    s = _summary("ubsan-oob-aarch64.log")
    assert s[0].startswith("UBSAN: array-index-out-of-bounds in ")
    assert s[0].endswith("/oob.c:43:20")
    assert s[1] == "index 16 is out of range for type 'u8 [16]'"
    assert s[2] == "Call trace:"
    assert s[3] == " oob_init+0x114/0x1000 [oob]"
    _no_machinery(s)


def test_lockdep_summary_names_the_locks_the_chain_and_the_scenario():
    s = _summary("lockdep-circular-aarch64.log")
    assert s[0] == "WARNING: possible circular locking dependency detected"
    at = s.index("modprobe/53 is trying to acquire lock:")
    assert "(lock_order_tx_lock)" in s[at + 1]
    at = s.index("but task is already holding lock:")
    assert "(lock_order_rx_lock)" in s[at + 1]
    assert any(line.startswith("-> #1 (lock_order_rx_lock)") for line in s)
    assert any("lock_order_transmit+" in line for line in s)
    assert " Possible unsafe locking scenario:" in s and " *** DEADLOCK ***" in s
    assert "  lock(lock_order_rx_lock);" in s
    assert s[s.index("Call trace:") + 3] == " lock_order_receive+0x30/0x5c [lock_order]"
    _no_machinery(s)
    assert "" not in s


def test_x86_trace_summary_skips_the_guessed_frames_and_the_user_registers():
    s = _summary("lockdep-circular-x86_64.log")
    assert s[0] == "WARNING: possible circular locking dependency detected"
    at = s.index("Call Trace:")
    assert s[at + 1:at + 3] == [" __mutex_lock+0x199/0x5c7",
                                " lock_order_receive+0x1c/0x3a [lock_order]"]
    assert not [line for line in s if line.startswith((" ? ", "RIP: ", " <TASK>"))]
    _no_machinery(s)


def test_other_lockdep_summaries_say_what_was_wrong():
    s = _summary("lockdep-unlock-balance-aarch64.log")
    assert s[:4] == ["WARNING: bad unlock balance detected!",
                     "modprobe/53 is trying to release lock (unlock_balance_mutex) at:",
                     "[<ffffffc0007f5014>] unlock_balance_init+0x14/0x1000 [unlock_balance]",
                     "but there are no more locks to release!"]
    s = _summary("lockdep-rcu-aarch64.log")
    assert s[1].endswith("rcu_unlocked.c:24 suspicious rcu_dereference_check() usage!")
    assert s[s.index("Call trace:") + 1] == " rcu_unlocked_init+0x80/0x1000 [rcu_unlocked]"


def test_atomic_sleep_summaries_say_where_preemption_was_off_and_who_slept():
    s = _summary("atomic-sleep-aarch64.log")
    assert s[0] == "BUG: scheduling while atomic: modprobe/53/0x00000002"
    assert any("(atomic_sleep_lock)" in line for line in s)
    assert "Preemption disabled at:" in s
    assert " msleep+0x20/0x24" in s and " atomic_sleep_init+0x24/0x1000 [atomic_sleep]" in s
    _no_machinery(s)
    s = _summary("sleeping-lock-aarch64.log")
    assert s[:3] == ["BUG: sleeping function called from invalid context at "
                     "kernel/locking/mutex.c:580",
                     "in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 53, name: modprobe",
                     "preempt_count: 1, expected: 0"]
    assert " sleeping_lock_init+0x2c/0x1000 [sleeping_lock]" in s
    _no_machinery(s)
    s = _summary("sleeping-lock-aarch64.log", 1)
    assert s[:2] == ["[ BUG: Invalid wait context ]", "modprobe/53 is trying to lock:"]
    assert "(sleeping_lock_mutex)" in s[2]


def test_odebug_summary_keeps_the_odebug_line():
    s = _summary("odebug-timer-aarch64.log")
    assert any(line.startswith("ODEBUG: free active (active state 0) object type: timer_list")
               for line in s)
    assert " odebug_timer_init+0xa4/0x1000 [odebug_timer]" in s


def test_kmemleak_summary_is_the_object_its_first_bytes_and_where_it_was_allocated():
    text = (REPORTS / "kmemleak-leak-aarch64" / "kmemleak.txt").read_text()
    s = faults.summarize(text)
    assert s[:4] == ["unreferenced object 0xffffff800367a200 (size 256):",
                     '  comm "modprobe", pid 54, jiffies 4294896572',
                     "  hex dump (first 32 bytes):",
                     "    6c 61 62 20 6c 65 61 6b 3a 20 6e 65 76 65 72 20  lab leak: never "]
    assert s[4] == "  backtrace:"
    assert "    [<(____ptrval____)>] 0xffffffc0007f503c" in s
    _no_machinery(s)
