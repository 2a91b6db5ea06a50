"""The KTAP parser against recorded KUnit and kselftest logs, and against hostile input."""

import random
import time
from pathlib import Path

import pytest

from lab.core.results import Status
from lab.guest.console import ConsoleLog
from lab.parse import ktap
from lab.parse.ktap import KtapParser, KtapStatus, KtapTest, flatten, parse

DATA = Path(__file__).parent.parent / "data" / "ktap"
PASS, FAIL, SKIP, XFAIL = KtapStatus.PASS, KtapStatus.FAIL, KtapStatus.SKIP, KtapStatus.XFAIL
TIMEOUT, ERROR = KtapStatus.TIMEOUT, KtapStatus.ERROR
END_PANIC = "---[ end Kernel panic - not syncing: Oops: Fatal exception ]---"


def _load(name: str) -> KtapTest:
    with open(DATA / name, encoding="utf-8", errors="replace") as f:
        return parse(f)


def _rows(root: KtapTest, depth: int | None = None) -> dict[str, KtapTest]:
    rows = flatten(root, depth)
    assert len({n for n, _ in rows}) == len(rows), "row names repeat"
    return dict(rows)


def _statuses(root: KtapTest, depth: int | None = None) -> dict[str, str]:
    return {n: t.status.value for n, t in _rows(root, depth).items()}


# --- the spec ---------------------------------------------------------------------

def test_the_spec_example_gives_its_hierarchy():
    root = _load("ktap-spec-example.log")
    assert _statuses(root) == {
        "main_test.example_test_1.test_1": "pass",
        "main_test.example_test_2.test_1": "skip",
        "main_test.example_test_2.test_2": "pass",
        "main_test.example_test_3.test_1": "pass",
        "main_test.example_test_3.test_2": "fail",
        "main_test.example_test_3.test_3": "skip"}
    main = root.subtests[0]
    assert (main.name, main.status) == ("main_test", FAIL)
    assert [t.status for t in main.subtests] == [PASS, PASS, FAIL]
    rows = _rows(root)
    assert rows["main_test.example_test_1.test_1"].diagnostics == ["test_1: initializing test_1"]
    assert rows["main_test.example_test_3.test_2"].diagnostics == ["test_2: FAIL"]
    assert rows["main_test.example_test_2.test_1"].directive_reason == "test_1 skipped"
    assert root.status is FAIL


@pytest.mark.parametrize("line, status, name, reason", [
    ("ok 1 a", PASS, "a", ""),
    ("not ok 1 a", FAIL, "a", ""),
    ("ok 1 a # SKIP no device", SKIP, "a", "no device"),
    ("not ok 1 a # SKIP no device", SKIP, "a", "no device"),
    ("ok 1 a # skipped", SKIP, "a", ""),
    ("ok 1 # XFAIL mremap - Overlapping", XFAIL, "mremap - Overlapping", "mremap - Overlapping"),
    ("not ok 1 a # TIMEOUT 30 seconds", TIMEOUT, "a", "30 seconds"),
    ("not ok 1 a # ERROR no memory", ERROR, "a", "no memory"),
    ("not ok 1 # error CLOCK_TAI failed", ERROR, "CLOCK_TAI failed", "CLOCK_TAI failed"),
    ("not ok 1 a # TODO later", XFAIL, "a", "later"),
    ("ok 1 a # TODO later", PASS, "a", "later"),
    ("ok 1 check return code # rcode=0", PASS, "check return code", "rcode=0"),
    ("not ok 1 selftests: proc: x # exit=1", FAIL, "selftests: proc: x", "exit=1"),
    ("ok 1 - with a dash", PASS, "with a dash", ""),
    ("ok 1", PASS, "", ""),
    ("not ok 1 #", FAIL, "", ""),
    ("ok 1 odd # SKIPPY", PASS, "odd", "SKIPPY"),
])
def test_result_lines_and_their_directives(line, status, name, reason):
    test = parse(["KTAP version 1", "1..1", line]).subtests[0]
    assert (test.status, test.name, test.directive_reason, test.number) == (status, name, reason, 1)


def test_a_result_without_a_number_counts_on():
    root = parse(["TAP version 14", "1..2", "ok first", "not ok second"])
    assert [(t.number, t.name, t.status) for t in root.subtests] == [(1, "first", PASS),
                                                                     (2, "second", FAIL)]


def test_each_status_maps_onto_a_results_status_as_the_docstring_says():
    mapping = {"pass": Status.PASS, "fail": Status.FAIL, "skip": Status.SKIP,
               "xfail": Status.SKIP, "timeout": Status.FAIL, "error": Status.ERROR}
    assert {s.value for s in KtapStatus} == set(mapping)
    for ktap_status, status in mapping.items():
        row = next(r for r in ktap.__doc__.splitlines() if r.startswith(f"| {ktap_status} "))
        assert f"| {status.name} " in row


# --- KUnit --------------------------------------------------------------------------

def test_kunit_at_boot_gives_a_row_per_case_named_suite_dot_case():
    root = _load("kunit-boot-x86_64.log")
    rows = _rows(root)
    assert len(rows) == 4 + 39 + 8
    assert rows["list-kunit-test.list_test_list_init"].status is PASS
    assert rows["example.example_skip_test"].status is SKIP
    assert rows["example.example_skip_test"].directive_reason == "this test should be skipped"
    assert rows["rational.rational_test.Exact answer"].status is PASS
    assert sum(t.status is PASS for t in rows.values()) == 49
    assert root.status is PASS
    assert [t.name for t in root.subtests] == ["example", "list-kunit-test", "rational"]


def test_kunit_lines_go_to_the_test_they_were_printed_for():
    root = _load("kunit-boot-x86_64.log")
    rows = _rows(root)
    # A kernel line printed while a case ran is in that case's log, stamp and all.
    assert rows["example.example_mark_skipped_test"].log == [
        "[    0.352362] clocksource: tsc: mark TSC unstable due to clocksource watchdog"]
    assert rows["example.example_mark_skipped_test"].diagnostics[-1] == \
        "example_mark_skipped_test: You should see this line."
    example = root.subtests[0]
    # The suite_init message comes before the suite's header; the stats after its cases.
    assert example.diagnostics == ["example: initializing suite",
                                   "example: pass:2 fail:0 skip:2 total:4",
                                   "Totals: pass:2 fail:0 skip:2 total:4"]
    assert rows["rational.rational_test.Use convergent"].log[0].endswith(
        "Switched to clocksource tsc")
    # Boot lines before KTAP and the lines after it stay with the root.
    assert root.log[0].startswith("[    0.000000] Linux version 6.1.192")
    assert root.log[-1].endswith("Run /init as init process")


def test_kunit_parameterised_cases_have_no_plan_and_need_none():
    rational = _load("kunit-boot-x86_64.log").subtests[2]
    case = rational.subtests[0]
    assert (case.name, case.status, len(case.subtests)) == ("rational_test", PASS, 8)
    assert case.diagnostics == ["rational_test: pass:8 fail:0 skip:0 total:8"]
    assert not any(t.status is ERROR for t in case.subtests)


def test_kunit_crash_in_the_middle_keeps_the_tree_and_makes_the_rest_errors():
    root = _load("kunit-crash-aarch64.log")   # the lab's console.log format
    assert _statuses(root) == {
        "example.example_simple_test": "pass",
        "example.example_skip_test": "skip",
        "example.example_mark_skipped_test": "skip",
        "example.example_all_expect_macros_test": "pass",
        "pl011-lab-test.pl011_lab_test_registers": "pass",
        "pl011-lab-test.pl011_lab_test_baud_divisor": "fail",
        "pl011-lab-test.#3": "error",    # running when the kernel died: no name printed yet
        "pl011-lab-test.#4": "error",    # planned, never ran
        "#3": "error"}                   # the third suite the plan announced
    rows = _rows(root)
    crashed = rows["pl011-lab-test.#3"]
    assert "Internal error: Oops" in crashed.log[7]
    assert crashed.log[-1].endswith(END_PANIC)
    assert crashed.directive_reason == "no result line (planned 4, reported 2)"
    assert not rows["pl011-lab-test.#4"].log
    failed = rows["pl011-lab-test.pl011_lab_test_baud_divisor"]
    assert failed.diagnostics == ["pl011_lab_test_baud_divisor: EXPECTATION FAILED at "
                                  "drivers/pl011-lab/pl011_lab_test.c:58"]
    assert [line.split("] ", 1)[1] for line in failed.log] == ["    Expected ibrd == 26, but",
                                                             "        ibrd == 27"]
    suite = root.subtests[1]
    assert (suite.name, suite.status, suite.directive_reason) == ("pl011-lab-test", ERROR,
                                                                  "no result line")
    assert root.status is ERROR


def test_kunit_from_a_module_has_no_top_header():
    """6.1 prints a module's suites at 4 spaces and their results at column 0, with no
    `KTAP version 1` / `1..N` above them."""
    root = parse(["    KTAP version 1", "    # Subtest: mod-test", "    1..2",
                  "    ok 1 a", "    not ok 2 b", "not ok 7 mod-test",
                  "    KTAP version 1", "    # Subtest: mod2", "    1..1",
                  "    ok 1 c", "ok 8 mod2"])
    assert _statuses(root) == {"mod-test.a": "pass", "mod-test.b": "fail", "mod2.c": "pass"}
    assert [(t.name, t.number) for t in root.subtests] == [("mod-test", 7), ("mod2", 8)]


def test_the_lab_console_log_format_is_read_as_written(tmp_path):
    log = ConsoleLog(tmp_path / "console.log")
    log.write("kernel", "[    0.5] KTAP version 1\r\n[    0.6] 1..1\r\n")
    log.write("shell", "$ echo hi\nhi\n")
    log.write("kernel", "[    0.7]     KTAP version 1\n[    0.7]     # Subtest: s\n")
    log.write("kernel", "[    0.7]     1..1\n[    0.8]     ok 1 t\n[    0.9] ok 1 s\n")
    log.close()
    root = parse((tmp_path / "console.log").read_text().splitlines())
    assert _statuses(root) == {"s.t": "pass"}
    assert [line.split("| ", 1)[1] for line in root.subtests[0].log] == ["$ echo hi", "hi"]


def test_a_console_tag_before_the_first_version_line_is_a_prefix_of_every_line():
    root = parse(["[hvc0] KTAP version 1", "[hvc0] 1..2", "[hvc0] ok 1 a",
                  "ok 9 not ours", "[hvc0] not ok 2 b"])
    assert _statuses(root) == {"a": "pass", "b": "fail"}
    assert root.subtests[1].log == ["ok 9 not ours"]


def test_prose_that_ends_in_a_version_is_no_start():
    root = parse(["[    1.0] kselftest: this runner prints TAP version 13", "KTAP version 1",
                  "1..1", "ok 1 a"])
    assert _statuses(root) == {"a": "pass"}
    assert root.log == ["[    1.0] kselftest: this runner prints TAP version 13"]


# --- kselftest ------------------------------------------------------------------------

def test_kselftest_proc_gives_a_row_per_program_named_collection_dot_program():
    root = _load("kselftest-proc-x86_64.log")
    statuses = _statuses(root)
    assert len(statuses) == 21
    assert sorted(n for n, s in statuses.items() if s == "fail") == [
        "proc.proc-loadavg-001", "proc.setns-dcache", "proc.setns-sysvipc"]
    rows = _rows(root)
    assert rows["proc.setns-dcache"].directive_reason == "exit=1"
    assert rows["proc.setns-dcache"].log == ["[    9.871402] setns-dcache (112): drop_caches: 3"]
    assert rows["proc.setns-dcache"].diagnostics == [
        "selftests: proc: setns-dcache",
        "setns-dcache: setns-dcache.c:72: main: Assertion `fd >= 0' failed."]
    assert root.status is FAIL


def test_kselftest_nested_tap_behind_the_prefix():
    root = _load("kselftest-timers-x86_64.log")
    assert _statuses(root, depth=1) == {
        "timers.posix_timers": "pass", "timers.nanosleep": "pass",
        "timers.nsleep-lat": "timeout", "timers.set-timer-lat": "fail",
        "timers.rtcpie": "skip", "timers.inconsistency-check": "fail"}
    rows = _rows(root)
    nanosleep = [n for n in rows if n.startswith("timers.nanosleep.")]
    assert len(nanosleep) == 12
    assert rows["timers.nanosleep.CLOCK_REALTIME"].status is PASS
    # kselftest.h's skips carry the name after the directive; trailing padding is gone.
    assert rows["timers.nanosleep.CLOCK_PROCESS_CPUTIME_ID"].status is SKIP
    assert rows["timers.nanosleep.CLOCK_BOOTTIME"].log == [
        "[  131.402215] hrtimer: interrupt took 6108220 ns"]
    assert rows["timers.set-timer-lat.CLOCK_BOOTTIME"].directive_reason == \
        "timer fired early: 1 : 1008 ns"
    assert rows["timers.set-timer-lat.CLOCK_TAI: timer_create failed"].status is ERROR
    assert root.subtests[1].diagnostics[-1] == \
        "Totals: pass:7 fail:0 xfail:0 xpass:0 skip:5 error:0"


def test_kselftest_timeout():
    rows = _rows(_load("kselftest-timers-x86_64.log"))
    test = rows["timers.nsleep-lat"]
    assert (test.status, test.directive_reason) == (TIMEOUT, "45 seconds")
    assert test.diagnostics == ["selftests: timers: nsleep-lat",
                                "nsleep latency CLOCK_REALTIME               [OK]",
                                "nsleep latency CLOCK_MONOTONIC              [OK]", ""]


def test_tests_a_timed_out_program_never_reported_time_out_with_it():
    root = parse(["TAP version 13", "1..1", "# selftests: timers: slow", "# TAP version 13",
                  "# 1..3", "# ok 1 one", "#",
                  "not ok 1 selftests: timers: slow # TIMEOUT 45 seconds"])
    assert _statuses(root) == {"timers.slow.one": "pass", "timers.slow.#2": "timeout",
                               "timers.slow.#3": "timeout"}
    assert _rows(root)["timers.slow.#2"].directive_reason == "45 seconds"
    assert _statuses(root, depth=1) == {"timers.slow": "timeout"}


def test_a_bail_out_leaves_the_rest_of_the_plan_as_errors():
    rows = _rows(_load("kselftest-timers-x86_64.log"))
    missing = [n for n in rows if n.startswith("timers.inconsistency-check.#")]
    assert missing == [f"timers.inconsistency-check.#{n}" for n in range(4, 13)]
    assert all(rows[n].status is ERROR for n in missing)
    assert rows[missing[0]].diagnostics[0] == \
        "Bail out! clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed"
    assert rows[missing[0]].directive_reason == "no result line (planned 12, reported 3)"


def test_several_tap_documents_inside_one_test_and_xfail():
    root = _load("kselftest-vm-xfail-x86_64.log")
    program = root.subtests[0]
    assert (program.name, program.status, program.directive_reason) == (
        "selftests: vm: run_vmtests.sh", FAIL, "exit=1")
    assert len(program.subtests) == 17 + 21
    rows = _rows(root)
    xfail = rows["vm.run_vmtests.sh.mremap - Source and Destination Regions Overlapping"]
    assert xfail.status is XFAIL
    assert rows["vm.run_vmtests.sh.mremap - Destination Address Misaligned (1KB-aligned)"]\
        .diagnostics == ["Expected mremap failure"]
    statuses = [t.status for t in rows.values()]
    assert (statuses.count(XFAIL), statuses.count(PASS), statuses.count(ERROR)) == (3, 18, 17)


def test_a_plan_after_the_results_and_a_yaml_like_block_not_after_a_result():
    root = _load("kselftest-size-x86_64.log")
    assert _statuses(root) == {"size.get_size.get runtime memory use": "pass"}
    program = root.subtests[0]
    assert program.status is PASS
    # Lines after a list's last result belong to its parent (KTAP), YAML-like or not.
    assert "Total:  251436 K" in program.diagnostics
    assert program.subtests[0].diagnostics == ["Testing system size."]


def test_kselftest_crash_in_the_middle():
    root = _load("kselftest-crash-aarch64.log")
    rows = _rows(root)
    assert list(rows)[:6] == ["proc.fd-001-lookup", "proc.fd-002-posix-eq",
                              "proc.fd-003-kthread", "proc.proc-loadavg-001",
                              "proc.proc-empty-vm", "proc.proc-pid-vm"]
    assert [rows[n].status for n in list(rows)[:6]] == [PASS, PASS, PASS, FAIL, PASS, ERROR]
    crashed = rows["proc.proc-pid-vm"]      # named by the runner's `# selftests:` line
    assert crashed.log[-1].endswith(END_PANIC)
    assert [n for n in rows][6:] == [f"#{n}" for n in range(7, 22)]
    assert all(t.status is ERROR and not t.log for t in list(rows.values())[6:])


def test_a_runner_announced_test_with_no_plan_and_no_result_is_an_error():
    root = parse(["TAP version 13", "# selftests: proc: a", "ok 1 selftests: proc: a",
                  "# selftests: proc: b", "[  5.0] Kernel panic - not syncing: x"])
    assert _statuses(root) == {"proc.a": "pass", "proc.b": "error"}
    assert _rows(root)["proc.b"].log == ["[  5.0] Kernel panic - not syncing: x"]


# --- plans --------------------------------------------------------------------------------

def test_missing_plans_and_a_crash():
    root = _load("ktap-missing-plan.log")
    assert _statuses(root) == {
        "pl011-lab-test.pl011_lab_test_registers": "pass",
        "pl011-lab-test.pl011_lab_test_baud_divisor": "pass",
        "pl011-lab-fifo-test": "error",          # no plan: nothing below can be counted missing
        "pl011-lab-fifo-test.pl011_lab_test_tx_fifo": "pass"}
    cut = root.subtests[1]
    assert cut.log[0].endswith("Kernel panic - not syncing: Attempted to kill init! "
                               "exitcode=0x0000000b")
    assert root.status is ERROR


def test_fewer_results_than_the_plan_with_the_parent_result_present():
    root = parse(["KTAP version 1", "1..1", "  KTAP version 1", "  1..3", "  ok 1 a",
                  "ok 1 s"])
    assert _statuses(root) == {"s.a": "pass", "s.#2": "error", "s.#3": "error"}
    assert root.subtests[0].status is PASS


def test_a_plan_of_a_billion_makes_a_bounded_number_of_rows():
    root = parse(["KTAP version 1", "1..999999999", "ok 1 a"])
    assert len(root.subtests) == 1 + ktap.MAX_MISSING
    assert root.diagnostics == [f"{999999998 - ktap.MAX_MISSING} more planned tests missing"]


def test_no_ktap_at_all_and_no_tests():
    root = parse(["[    0.1] Linux version 6.1", "random: crng init done"])
    assert (root.status, root.subtests, len(root.log)) == (ERROR, [], 2)
    assert root.directive_reason == "no KTAP version line in the output"
    empty = parse(["KTAP version 1", "1..0"])
    assert (empty.status, empty.directive_reason) == (ERROR, "no tests in the KTAP output")


# --- TAP 13 YAML --------------------------------------------------------------------------

def test_yaml_blocks_are_skipped_with_what_looks_like_results_inside():
    root = _load("tap13-yaml.log")
    assert _statuses(root) == {"first": "pass", "second": "fail", "third": "skip",
                               "fourth": "xfail"}
    second = root.subtests[1]
    assert second.diagnostics[0] == "---" and second.diagnostics[-1] == "..."
    assert "    ok 1 not a result, only YAML" in second.diagnostics
    third = root.subtests[2]
    assert third.diagnostics == ["---", "unterminated: the block ends at the first line "
                                 "indented less"]


def test_a_dashed_line_not_after_a_result_is_no_yaml():
    root = parse(["TAP version 13", "1..2", "  ---", "ok 1 a", "ok 2 b"])
    assert _statuses(root) == {"a": "pass", "b": "pass"}
    assert root.subtests[0].log == ["  ---"]


# --- flatten --------------------------------------------------------------------------------

def test_a_parent_that_failed_alone_gets_its_own_row():
    root = parse(["TAP version 13", "1..2", "# TAP version 13", "# 1..1", "# ok 1 inner",
                  "not ok 1 selftests: x: prog # exit=139",
                  "# TAP version 13", "# 1..1", "# not ok 1 inner",
                  "not ok 2 selftests: x: other # exit=1"])
    assert flatten(root) == [("x.prog", root.subtests[0]),
                             ("x.prog.inner", root.subtests[0].subtests[0]),
                             ("x.other.inner", root.subtests[1].subtests[0])]


def test_flatten_to_a_depth():
    root = _load("kunit-boot-x86_64.log")
    assert _statuses(root, depth=1) == {"example": "pass", "list-kunit-test": "pass",
                                        "rational": "pass"}
    assert list(_rows(root, depth=2))[-1] == "rational.rational_test"


# --- hostile input and feeding --------------------------------------------------------------

def test_garbage_and_binary_lines_do_not_hide_the_results():
    with open(DATA / "garbage.log", "rb") as f:
        root = parse(line.decode("utf-8", "replace") for line in f)
    statuses = _statuses(root)
    assert list(statuses.values()) == ["pass", "skip", "timeout", "pass"]
    assert list(statuses)[2] == "été"
    assert all(len(line) <= ktap.MAX_LINE for t in root.subtests for line in t.log)
    assert all("\x00" not in line for _, t in flatten(root) for line in t.log + t.diagnostics)


def test_a_very_long_line_is_cut_and_fast():
    start = time.perf_counter()
    root = parse(["KTAP version 1", "1..2", "ok 1 " + "x" * 5_000_000, "# " * 2_000_000,
                  " " * 3_000_000 + "ok 9 deep", "ok 2 b"])
    assert time.perf_counter() - start < 1.0   # generous: a blow-up would take far longer
    assert len(root.subtests[0].name) < ktap.MAX_LINE
    assert _statuses(root)["b"] == "pass"


def test_deep_nesting_is_capped_not_recursed():
    depth = 1200   # past Python's recursion limit
    lines = ["KTAP version 1", "1..1"]
    lines += [" " * (2 * d) + "KTAP version 1" for d in range(1, depth)]
    lines += [" " * (2 * d) + f"ok 1 level{d}" for d in range(depth - 1, -1, -1)]
    start = time.perf_counter()
    root = parse(lines)
    assert time.perf_counter() - start < 1.0   # generous: a blow-up would take far longer
    levels, test = 0, root
    while test.subtests:
        test, levels = test.subtests[0], levels + 1
    assert levels == ktap.MAX_DEPTH
    assert flatten(root)[0][0].startswith("level0.level1.level2")
    repr(root)   # a bounded tree also prints and compares without recursing too deep
    assert root == parse(lines)


def test_random_ktap_like_noise_never_raises():
    rnd = random.Random(14)
    words = ["KTAP version 1", "TAP version 13", "1..3", "1..0", "ok 1 a", "not ok 2 b # SKIP",
             "ok 3 # TIMEOUT", "# Subtest: s", "selftests: c: t", "---", "...", "Bail out!",
             "[    1.0] oops", "\x00\xff", "", "#", "ok", "1..99999999999"]
    for _ in range(300):
        lines = [rnd.choice(["", "  ", "    ", "# ", "# # ", "\t", "[ 0.1] "]) + rnd.choice(words)
                 for _ in range(rnd.randrange(40))]
        root = parse(lines)
        for name, test in flatten(root):
            assert name and isinstance(test.status, KtapStatus)


def test_feeding_line_by_line_or_in_pieces_gives_the_same_tree():
    text = (DATA / "kselftest-timers-x86_64.log").read_text()
    whole = parse(text)
    parser = KtapParser()
    lines = text.splitlines(keepends=True)
    for i in range(0, len(lines), 3):
        parser.feed("".join(lines[i:i + 3]))
    assert parser.finish() == whole
    assert parser.finish() is parser.finish()
