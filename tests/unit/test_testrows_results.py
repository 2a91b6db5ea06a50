"""Tests that steps report one by one, through results.json, JUnit, the runner and
the comparison across kernels (lab.analysis.testdiff)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from lab.analysis import testdiff
from lab.app import report
from lab.core.errors import UserError
from lab.core.model import KernelMessage
from lab.core.results import RunResult, Status, StepResult, TestResult
from tests.unit.factories import boot, cell, run, step
from tests.unit.test_runner import lab  # noqa: F401  (the fixture)

P, F, E, S = Status.PASS, Status.FAIL, Status.ERROR, Status.SKIP


def with_tests(*tests: tuple[str, Status], status: Status = Status.FAIL,
               kind: str = "kselftest") -> StepResult:
    return replace(step("kselftest proc", status, kind=kind),
                   tests=tuple(TestResult(n, s, f"said {n}") for n, s in tests))


def suite_cell(kernel: str, *tests: tuple[str, Status], arch: str = "x86_64"):
    return cell(arch, kernel, "default", boot(0, with_tests(*tests)), scenario="kselftest")


def test_tests_go_through_results_json_with_their_faults():
    fault = KernelMessage("oops", False, "Oops: 1\nCall trace:")
    st = replace(with_tests(("proc.read", P)),
                 tests=(TestResult("proc.read", F, "exit=1", (fault,)),))
    data = run(suite_cell("k", ("proc.read", P))).to_json()
    back = RunResult.from_json(json.loads(json.dumps(data)))
    assert back.cells[0].tests[0].name == "proc.read"
    back = RunResult.from_json(json.loads(json.dumps(
        run(cell("x86_64", "k", "default", boot(0, st))).to_json())))
    assert back.cells[0].tests == [TestResult("proc.read", F, "exit=1", (fault,))]


def test_results_written_before_tests_existed_still_load():
    data = run(cell("x86_64", "k", "default", boot(0, step("a")))).to_json()
    for s in data["cells"][0]["steps"]:
        del s["tests"]
    assert RunResult.from_json(data).cells[0].steps[0].tests == ()


def test_junit_has_a_case_per_test_named_suite_dot_test(tmp_path):
    c = suite_cell("nokpti", ("proc.read", P), ("proc.self", F), ("x86.amx_64", S))
    path = tmp_path / "junit.xml"
    path.write_text(report.junit(run(c)))
    cases = {case.name: case for suite in JUnitXml.fromfile(str(path)) for case in suite}
    assert set(cases) == {"boot", "proc.read", "proc.self", "x86.amx_64"}
    assert isinstance(cases["proc.self"].result[0], Failure)
    assert isinstance(cases["x86.amx_64"].result[0], Skipped)
    assert cases["x86.amx_64"].result[0].message == "said x86.amx_64"


def test_a_step_that_erred_is_a_case_beside_its_tests(tmp_path):
    st = replace(with_tests(("proc.read", P), status=E), message="Kernel panic")
    path = tmp_path / "junit.xml"
    path.write_text(report.junit(run(cell("aarch64", "k", "default", boot(0, st)))))
    cases = {case.name: case for suite in JUnitXml.fromfile(str(path)) for case in suite}
    assert set(cases) == {"boot", "kselftest proc", "proc.read"}
    assert isinstance(cases["kselftest proc"].result[0], Error)


def test_regressions_fixes_and_tests_only_one_kernel_ran():
    base = suite_cell("nokpti", ("a", P), ("b", F), ("c", P), ("d", S), ("gone", P))
    other = suite_cell("kpti", ("a", F), ("b", P), ("c", P), ("d", P), ("new", E))
    (d,) = testdiff.diff(run(base, other), ("kernel", "nokpti"))
    assert (d.baseline, d.other) == (base.id, other.id)
    assert [c.name for c in d.regressions] == ["a"]
    assert [c.name for c in d.fixes] == ["b"]
    assert [c.name for c in d.changed] == ["d"]
    assert (d.only_baseline, d.only_other, d.unchanged) == (["gone"], ["new"], 1)
    assert d.to_json()["regressions"] == [{"name": "a", "baseline": "pass", "other": "fail"}]


def test_the_diff_is_per_arch_and_needs_a_baseline_with_tests():
    cells = [suite_cell("nokpti", ("a", P), arch="x86_64"),
             suite_cell("kpti", ("a", P), arch="x86_64"),
             suite_cell("nokpti", ("a", P), arch="aarch64"),
             suite_cell("kpti", ("a", F), arch="aarch64")]
    diffs = testdiff.diff(run(*cells), ("kernel", "nokpti"))
    assert [(d.arch, len(d.regressions)) for d in diffs] == [("aarch64", 1), ("x86_64", 0)]
    assert testdiff.diff(run(cell("x86_64", "k", "default", boot(0, step("a")))),
                         ("kernel", "k")) == []
    with pytest.raises(UserError, match="no x86_64 cell with kernel=other"):
        testdiff.diff(run(*cells[:2]), ("kernel", "other"))


def test_lab_compare_shows_the_test_diff_of_results_without_metrics(tmp_path, capsys):
    from lab.app import cli
    base, other = suite_cell("nokpti", ("a", P)), suite_cell("kpti", ("a", F))
    (tmp_path / "results.json").write_text(json.dumps(run(base, other).to_json()))
    with pytest.raises(SystemExit) as done:
        cli.main(["compare", str(tmp_path)])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    assert "1 regression(s)" in shown and "regression" in shown
    data = json.loads((tmp_path / "testdiff.json").read_text())
    assert data["cells"][0]["regressions"][0]["name"] == "a"


def test_a_count_per_cell_and_a_row_per_test_are_printed(capsys):
    c = suite_cell("nokpti", ("proc.read", P), ("x86.amx_64", S))
    c.boots[0].steps[0] = replace(c.boots[0].steps[0], tests=(
        TestResult("proc.read", P), TestResult("x86.amx_64", S, "xfail (emulation: no AMX)")))
    report.tests_table(run(c))
    shown = capsys.readouterr().out
    assert "1 ok of 2: 0 fail, 0 error, 1 skip (1 of them xfail)" in shown
    assert "x86.amx_64" in shown and "xfail (emulation: no AMX)" in shown


def test_the_runner_builds_each_steps_guest_files_into_the_cells_image(monkeypatch, tmp_path):
    from lab.artifacts import build
    from lab.core.model import Cell, GuestFile, KernelBuild, KernelVariant, Scenario, Step
    from lab.run import runner

    class Brings(Step):
        kind = "brings"
        builds_files = True

        def guest_files(self, kbuild, progress):
            return (GuestFile(Path("/x"), f"/opt/{kbuild.arch}"),)

    kb = KernelBuild("x86_64", "k", "0" * 64, Path("/i"), Path("/c"), Path("/o"), "6.1")
    v = KernelVariant("k", ())
    added = []
    monkeypatch.setattr(build, "with_files", lambda k, files, p: added.append(files) or k)
    s = Scenario("s", "", Path("s.yaml"), (Cell("x86_64", "k", "default", (), v),),
                 (Brings(name="b", line=1),))
    images = runner.guest_images([(s, s.cells[0])] * 2, {("x86_64", v): kb},
                                 lambda label: _NullProgress())
    assert images == [kb, kb] and added == [(GuestFile(Path("/x"), "/opt/x86_64"),)]


class _NullProgress:
    def __enter__(self):
        return lambda phase, detail: None

    def __exit__(self, *exc):
        return False


def test_a_kunit_suite_that_crashes_the_kernel_keeps_its_rows_in_the_result(lab, tmp_path,  # noqa: F811
                                                                          monkeypatch):
    """The kunit step's module oopses the kernel mid-suite: the step is an error that
    quotes the panic, and the rows read from the console so far stay in the result."""
    from lab.core.errors import GuestPanic
    from lab.scenario.steps import kunit
    from lab.scenario.steps.kunit import Kunit
    from tests.unit import test_runner as tr
    monkeypatch.setattr(kunit, "STALL_S", 0.3)    # the console stopped growing: no wait
    console = (Path(__file__).parent.parent / "data" / "ktap"
               / "real-console-kunit-modules-aarch64.log").read_text().splitlines()
    upto = next(i for i, x in enumerate(console) if x.endswith(" list_test_list_splice"))

    def crash(guest):
        marker = guest.ran[-1][0].split("echo ", 1)[1].split(" ", 1)[0]
        with open(guest.logdir / "console.log", "a") as fh:
            fh.write("".join(f"{x}\n" for x in console[:upto])
                     .replace("lab-kunit-21fb5f94b3ed", marker))
        raise GuestPanic("Kernel panic - not syncing: Oops")
    lab.commands = {"modprobe": crash}
    s = tr.scenario(tr.run("true"), Kunit(name="kunit", line=2,
                                          suites=("example", "list-kunit-test")))
    result = tr.run_cell(s, tmp_path)
    st = result.steps[-1]
    assert st.kind == "kunit" and st.status is E and "Kernel panic" in st.message
    by = {t.name: t.status for t in st.tests}
    assert by["example.example_simple_test"] is P
    assert by["list-kunit-test.list_test_list_init"] is P
    assert result.status is E
