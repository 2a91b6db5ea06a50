"""kselftest and KUnit as result rows, with no QEMU and no compiler: the rows of
recorded logs, the kernel faults each test saw, the emulation list, the steps
against a fake guest, what the target builds report, and the KUnit suites' modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.app.suites import cmdline_name
from lab.artifacts import kselftest as ksft
from lab.core.errors import GuestPanic, UserError
from lab.core.paths import ROOT
from lab.core.results import Status
from lab.parse import consolelog, ktap
from lab.scenario.steps import testrows
from lab.scenario.steps.kselftest import Kselftest
from lab.scenario.steps.kunit import Kunit, suite_module, suite_names
from tests.unit.fakes import FakeGuest, context

DATA = ROOT / "tests" / "data" / "ktap"
P, F, E, S = Status.PASS, Status.FAIL, Status.ERROR, Status.SKIP


def read(name: str) -> str:
    return (DATA / name).read_text(errors="replace")


# ---------------------------------------------------------------- rows

def test_kselftest_proc_gives_one_row_per_program_with_its_status_and_output():
    rows = testrows.rows(ktap.parse(read("kselftest-proc-x86_64.log")), 1, known=[])
    assert len(rows) == 21
    bad = {r.name: r for r in rows if r.status is not P}
    assert set(bad) == {"proc.proc-loadavg-001", "proc.setns-dcache", "proc.setns-sysvipc"}
    assert all(r.status is F for r in bad.values())
    assert bad["proc.setns-dcache"].message.startswith("exit=1")


def test_a_known_emulation_failure_is_an_xfail_that_says_why_and_a_pass_says_it_was_listed():
    known = [testrows.KnownFailure("emulation", "x86_64", "tcg", "proc.setns-*", "no such thing"),
             testrows.KnownFailure("emulation", "x86_64", "tcg", "proc.read", "listed")]
    rows = {r.name: r for r in testrows.rows(ktap.parse(read("kselftest-proc-x86_64.log")), 1,
                                             arch="x86_64", accel="tcg", known=known)}
    assert rows["proc.setns-dcache"].status is S
    assert rows["proc.setns-dcache"].message.startswith("xfail (emulation: no such thing)")
    assert rows["proc.read"].status is P and "listed as a known failure" in \
        rows["proc.read"].message
    other = testrows.rows(ktap.parse(read("kselftest-proc-x86_64.log")), 1, arch="aarch64",
                          accel="tcg", known=known)
    assert {r.name for r in other if r.status is S} == set()


def test_the_repositorys_emulation_list_reads():
    known = testrows.known_failures()
    assert {k.test for k in known} >= {"x86.mov_ss_trap_64", "x86.amx_64"}
    assert all(k.reason for k in known) and {k.kind for k in known} <= {"emulation", "arch"}


def test_a_bad_emulation_list_line_names_its_place(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("# comment\nemulation x86_64 tcg x\n")
    with pytest.raises(ValueError, match="list.txt:2"):
        testrows.known_failures(path)


def test_a_crash_in_the_middle_errs_that_test_keeps_the_rest_and_carries_the_fault():
    rows = testrows.rows(ktap.parse(read("kselftest-crash-aarch64.log")), 1, known=[])
    by = {r.name: r for r in rows}
    assert by["proc.fd-001-lookup"].status is P
    crashed = by["proc.proc-pid-vm"]
    assert crashed.status is E and {f.kind for f in crashed.faults} >= {"panic"}
    assert all(r.status is E for r in rows[6:])      # planned, never reported
    assert len(rows) == 21


def test_faults_from_the_console_log_go_to_the_test_that_was_running():
    log = [
        "    1.000 shell  | TAP version 13",
        "    1.001 shell  | 1..2",
        "    1.002 shell  | # selftests: proc: a",
        "    1.003 shell  | # BUG: this is the program's own output, no fault",
        "    1.004 shell  | ok 1 selftests: proc: a",
        "    1.005 shell  | # selftests: proc: b",
        "    1.006 kernel | [    9.1] WARNING: CPU: 0 PID: 7 at mm/x.c:1 f+0x1/0x2",
        "    1.007 kernel | [    9.2] ---[ end trace 0000000000000000 ]---",
        "    1.008 shell  | ok 2 selftests: proc: b",
    ]
    seen = testrows.faults_by_row(log, 1)
    assert list(seen) == ["proc.b"] and seen["proc.b"][0].kind == "warning"


def test_kunit_rows_are_suite_dot_case_and_a_crash_is_an_error_with_its_fault():
    rows = testrows.rows(ktap.parse(read("kunit-crash-aarch64.log")), None, known=[])
    by = {r.name: r for r in rows}
    assert by["example.example_simple_test"].status is P
    assert by["example.example_skip_test"].status is S
    assert by["pl011-lab-test.pl011_lab_test_baud_divisor"].status is F
    crashed = by["pl011-lab-test.#3"]
    assert crashed.status is E and {"oops", "panic"} <= {f.kind for f in crashed.faults}
    assert by["#3"].status is E and not by["#3"].faults    # the suite that never started


def test_step_problems_name_the_tests_that_did_not_pass():
    rows = testrows.rows(ktap.parse(read("kselftest-proc-x86_64.log")), 1, known=[])
    (problem,) = testrows.problems(rows, "kselftest")
    assert problem.startswith("kselftest: 3 of 21 tests did not pass: proc.proc-loadavg-001")
    assert testrows.problems([], "kunit") == ["kunit: no tests reported"]
    assert testrows.problems([r for r in rows if r.status is P], "k") == []


# ---------------------------------------------------------------- the steps

def _ctx(guest: FakeGuest, tmp_path: Path, console: list[str] | None = None):
    ctx = context(guest)
    ctx.output_file, ctx.arch = tmp_path / "step-01.out", "x86_64"
    ctx.console_log = tmp_path / "console.log"
    ctx.console_log.write_text("".join(f"{line}\n" for line in console or []))
    return ctx


def test_the_kselftest_step_runs_the_runner_and_reports_a_row_per_program(tmp_path):
    guest = FakeGuest({"run_kselftest.sh": (read("kselftest-proc-x86_64.log"), 0)})
    ctx = _ctx(guest, tmp_path)
    step = Kselftest(name="k", line=1, targets=("proc",))
    problems = step.execute(ctx)
    assert guest.ran[0][0] == f"cd {ksft.GUEST_ROOT} && ./run_kselftest.sh"
    assert len(ctx.tests) == 21 and ctx.exit_code == 0
    assert problems and "3 of 21" in problems[0]


def test_a_kselftest_step_that_crashes_the_guest_keeps_its_rows_and_raises(tmp_path):
    def crash(guest):
        ctx.output_file.write_text(read("kselftest-crash-aarch64.log"))
        raise GuestPanic("Kernel panic - not syncing: Oops")
    guest = FakeGuest({"run_kselftest.sh": crash})
    ctx = _ctx(guest, tmp_path)
    with pytest.raises(GuestPanic):
        Kselftest(name="k", line=1, targets=("proc",)).execute(ctx)
    assert len(ctx.tests) == 21 and ctx.tests[0].status is P


#: The marker the recorded KUnit run (real-*-kunit-modules-aarch64.log) wrote.
RECORDED_MARKER = "lab-kunit-21fb5f94b3ed"


def _kunit_guest(console: list[str] | None = None, crash: bool = False) -> FakeGuest:
    """A guest that answers the kunit step's command with the recorded run's dmesg
    (its marker made this run's); crash: it writes the recorded kernel console lines
    up to the middle of `list-kunit-test` into console.log instead, and panics."""
    def answer(guest):
        marker = guest.ran[-1][0].split("echo ", 1)[1].split(" ", 1)[0]
        if crash:
            kept = "".join(f"{x}\n" for x in console or [])
            guest.console_log.write_text(kept.replace(RECORDED_MARKER, marker))
            raise GuestPanic("Kernel panic - not syncing: Oops")
        return read("real-dmesg-kunit-modules-aarch64.log").replace(RECORDED_MARKER, marker), 0
    return FakeGuest({"modprobe": answer})


@pytest.fixture(autouse=True)
def _short_kunit_stall(monkeypatch):
    """The kunit step waits this long for a console that stopped growing."""
    from lab.scenario.steps import kunit
    monkeypatch.setattr(kunit, "STALL_S", 0.3)


def _kunit_ctx(guest: FakeGuest, tmp_path: Path):
    ctx = _ctx(guest, tmp_path)
    guest.console_log = ctx.console_log
    return ctx


def test_the_kunit_step_loads_each_suites_module_once_and_reads_the_ktap_after_its_marker(
        tmp_path):
    guest = _kunit_guest()
    ctx = _kunit_ctx(guest, tmp_path)
    Kunit(name="k", line=1, suites=("example", "list-kunit-test", "hlist")).execute(ctx)
    (command, _), = guest.ran
    assert "modprobe $m" in command and "for m in kunit-example-test list-test;" in command
    assert "modprobe -r $m" in command           # a later step can run the suites again
    by = {t.name: t.status for t in ctx.tests}
    assert len(by) == 4 + 39 + 18 and ctx.exit_code == 0
    assert [n for n, st in by.items() if st is not P] == [
        "example.example_skip_test", "example.example_mark_skipped_test"]
    assert list(by)[0].startswith("example.") and list(by)[-1].startswith("hlist.")


def test_a_suite_whose_module_printed_nothing_is_an_error_row(tmp_path):
    ctx = _kunit_ctx(_kunit_guest(), tmp_path)
    dmesg = read("real-dmesg-kunit-modules-aarch64.log")
    cut = dmesg[:dmesg.index("    # Subtest: time_test_cases")]
    ctx.guest.commands = {"modprobe": lambda g: (cut.replace(
        RECORDED_MARKER, g.ran[-1][0].split("echo ", 1)[1].split(" ", 1)[0]), 0)}
    problems = Kunit(name="k", line=1, suites=("sysctl_test", "time_test_cases")).execute(ctx)
    assert ctx.tests[-1].name == "time_test_cases" and ctx.tests[-1].status is E
    assert "module time_test did not load" in ctx.tests[-1].message
    assert ctx.tests[0].name.startswith("sysctl_test.") and problems


def test_lines_before_the_marker_are_not_this_steps(tmp_path):
    """The boot's own `KTAP version 1` / `1..0` (KUnit built in, no suite built in) and
    an earlier step's suites come before this step's marker."""
    ctx = _kunit_ctx(_kunit_guest(), tmp_path)
    dmesg = read("real-dmesg-kunit-modules-aarch64.log")
    assert dmesg.index("1..0") < dmesg.index(RECORDED_MARKER)
    ctx.guest.commands = {"modprobe": lambda g: (
        dmesg.replace(RECORDED_MARKER, "lab-kunit-elsewhere") + "[   13.0] "
        + g.ran[-1][0].split("echo ", 1)[1].split(" ", 1)[0] + "\n", 0)}
    Kunit(name="k", line=1, suites=("example",)).execute(ctx)
    assert [(t.name, t.status) for t in ctx.tests] == [("example", E)]


def test_a_kunit_step_that_crashes_the_guest_keeps_the_console_rows_and_raises(tmp_path):
    """A suite that oopses the kernel: the step sends kernel messages to the console
    while it runs, so console.log has the KTAP up to the crash."""
    lines = read("real-console-kunit-modules-aarch64.log").splitlines()
    upto = next(i for i, x in enumerate(lines) if x.endswith(" list_test_list_splice"))
    ctx = _kunit_ctx(_kunit_guest(lines[:upto], crash=True), tmp_path)
    with pytest.raises(GuestPanic):
        Kunit(name="k", line=1, suites=("example", "list-kunit-test", "sysctl_test")
              ).execute(ctx)
    by = {t.name: t.status for t in ctx.tests}
    assert by["example.example_simple_test"] is P
    assert by["list-kunit-test.list_test_list_init"] is P
    assert by["sysctl_test"] is E            # never ran


def test_every_suite_fragment_names_its_module():
    assert {"example", "list-kunit-test", "hlist"} <= set(suite_names())
    assert suite_module("example") == "kunit-example-test"
    assert suite_module("hlist") == suite_module("list-kunit-test") == "list-test"
    for name in suite_names():
        assert suite_module(name)
    with pytest.raises(UserError, match="no KUnit suite nonesuch"):
        suite_module("nonesuch")


def test_a_suite_fragment_without_a_module_line_is_a_user_error(tmp_path):
    (tmp_path / "mine.config").write_text("CONFIG_MINE_KUNIT_TEST=m\n")
    with pytest.raises(UserError, match="mine.config: no '# module: NAME' line"):
        suite_module("mine", tmp_path)


# ---------------------------------------------------------------- builds and variants

def test_a_selection_is_targets_and_tests_in_order():
    assert ksft.parse_selection(["proc", "x86:sigreturn_64", "x86:iopl_64", "proc:read"]) == {
        "proc": None, "x86": ["sigreturn_64", "iopl_64"]}
    for bad in ("../etc", "proc:", ":x", "a b", "-rf"):
        with pytest.raises(UserError):
            ksft.parse_selection([bad])


def test_make_failures_under_ignore_errors_name_each_program_and_its_error(tmp_path):
    build = tmp_path / "build"
    log = tmp_path / "build.log"
    log.write_text(
        "gcc -static ... valid-adjtimex.c -o /x/valid-adjtimex\n"
        "/usr/bin/ld: adjtimex.o: in function `f': undefined reference to `clock_adjtime'\n"
        "collect2: error: ld returned 1 exit status\n"
        f"make[1]: [../lib.mk:155: {build}/timers/valid-adjtimex] Error 1 (ignored)\n"
        "make[1]: [../lib.mk:113: install] Error 23 (ignored)\n")
    assert ksft._failures(log, build) == {
        "timers/valid-adjtimex": "collect2: error: ld returned 1 exit status"}


def test_picking_tests_from_a_target_build(tmp_path):
    tb = ksft.TargetBuild("timers", tmp_path, ("nanosleep", "posix_timers"),
                          {"rtcpie": "build failed"})
    assert ksft._pick(tb, None) == (["nanosleep", "posix_timers"], {"rtcpie": "build failed"})
    assert ksft._pick(tb, ["posix_timers"]) == (["posix_timers"], {})
    with pytest.raises(UserError, match="no test nope"):
        ksft._pick(tb, ["nope"])


def test_a_cells_command_line_name_is_a_name():
    assert cmdline_name(()) == "default"
    assert cmdline_name(("pti=on",)) == "pti_on"
    assert cmdline_name(("a/b", "../c")) == "a_b_.._c".replace("..", "..")


# ---------------------------------------------------------------- logs from lab guests

def test_a_real_x86_64_run_of_proc_and_x86_gives_40_rows_and_labels_the_emulation_failures():
    rows = testrows.rows(ktap.parse(read("real-kselftest-proc-x86-x86_64.log")), 1,
                         arch="x86_64", accel="tcg")
    assert len(rows) == 40 and sum(r.name.startswith("x86.") for r in rows) == 19
    not_passed = {r.name: r for r in rows if r.status is not P}
    assert set(not_passed) == {"x86.mov_ss_trap_64", "x86.amx_64"}
    assert all(r.status is S and r.message.startswith("xfail (emulation: ")
               for r in not_passed.values())
    raw = testrows.rows(ktap.parse(read("real-kselftest-proc-x86-x86_64.log")), 1, known=[])
    assert {r.name: r.status for r in raw if r.status is not P} == {
        "x86.mov_ss_trap_64": F, "x86.amx_64": F}


def test_a_real_aarch64_console_log_reads_as_the_step_output_does():
    lines = read("real-console-kselftest-proc-aarch64.log").splitlines()
    rows = testrows.rows(ktap.parse(lines), 1, arch="aarch64", accel="tcg")
    assert len(rows) == 20 and testrows.faults_by_row(lines, 1) == {}   # 20 built
    assert {r.name for r in rows if r.status is S} == {"proc.proc-pid-vm"}
    assert all(consolelog.is_kernel(x) for x in lines if " kernel | " in x)


@pytest.mark.parametrize("args, message", [
    (["kselftest", "--arch", "x86_64", "../etc"], "expected TARGET or TARGET:TEST"),
    (["kselftest", "--arch", "x86_64", "--kernel", "nokpt", "proc"], "unknown kernel variant"),
    (["kselftest", "proc"], "required: --arch"),
    (["kunit", "--arch", "x86_64", "nonesuch"], "no KUnit suite nonesuch"),
    (["kunit", "--arch", "sparc", "example"], "invalid choice: 'sparc'"),
])
def test_bad_suite_input_exits_2_with_one_line(args, message):
    from tests.unit.inprocess import lab
    result = lab(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr + result.stdout


def test_the_step_writes_its_own_list_of_what_built_before_it_runs_it():
    step = Kselftest(name="k", line=1, targets=("proc",))
    built = ksft.SuiteBuild((), ("proc:read", "proc:self"), ("proc.read", "proc.self"),
                            {"proc.x": "build failed"})
    assert step.command(built) == (
        "printf '%s\\n' proc:read proc:self > /opt/kselftest/kselftest-list.txt && "
        "cd /opt/kselftest && ./run_kselftest.sh")
    assert step.command(ksft.SuiteBuild((), (), (), {"proc.x": "no"})) == "true"


