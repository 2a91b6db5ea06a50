"""report.junit read back by junitparser, as CI reads it: suites, cases, counts,
result types and messages agree with the RunResult they came from."""

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from lab.app import report
from lab.core.results import RunResult, Status
from tests.unit.factories import boot, cell, run, step

P, F, E, S = Status.PASS, Status.FAIL, Status.ERROR, Status.SKIP


def _run() -> RunResult:
    failing = cell("aarch64", "kpti", "on",
                   boot(0, step("load", kind="module"),
                        step("measure", F, message="exit code 1, expected 0"),
                        step("check", S), boot_s=0.5))
    panicking = cell("x86_64", "nokpti", "default",
                     boot(0, step("load"), step("measure"), boot_s=1.0),
                     boot(1, step("load", boot=1),
                          step("measure", E, boot=1, message="Kernel panic - not syncing"),
                          error="Kernel panic - not syncing", boot_s=1.5))
    panicking.boots[1].steps.append(step("check", S, boot=1))
    no_boot = cell("aarch64", "nokpti", "default",
                   boot(0, error="no ready marker within 60 s"), scenario="mmio")
    never_ran = cell("aarch64", "kpti", "default", error="kernel build failed",
                     scenario="mmio")
    passing = cell("x86_64", "kpti", "on", boot(0, step("measure")), scenario="mmio")
    for c in (failing, panicking):
        c.scenario = "kpti"
    return run(failing, panicking, no_boot, never_ran, passing)


def _parse(result: RunResult) -> dict:
    xml = JUnitXml.fromstring(report.junit(result))
    return {suite.name: suite for suite in xml}


def _cases(suite) -> dict:
    return {(case.classname, case.name): case for case in suite}


def test_one_suite_per_scenario_with_counts_that_agree_with_the_result():
    result = _run()
    suites = _parse(result)
    assert list(suites) == ["kpti", "mmio"]
    for name, suite in suites.items():
        cells = [c for c in result.cells if c.scenario == name]
        steps = [s for c in cells for s in c.steps]
        assert suite.tests == len(cells) + len(steps) == len(list(suite))
        assert suite.failures == sum(s.status is F for s in steps)
        assert suite.errors == (sum(s.status is E for s in steps)
                                + sum(c.failed_to_boot for c in cells))
        assert suite.skipped == sum(s.status is S for s in steps)
    assert (suites["kpti"].failures, suites["kpti"].errors, suites["kpti"].skipped) == (1, 1, 2)
    assert (suites["mmio"].failures, suites["mmio"].errors, suites["mmio"].skipped) == (0, 2, 0)


def test_a_boot_case_per_cell_and_a_case_per_step_with_the_boot_number_after_the_first():
    cases = _cases(_parse(_run())["kpti"])
    assert list(cases) == [
        ("kpti.aarch64-kpti-on", "boot"), ("kpti.aarch64-kpti-on", "load"),
        ("kpti.aarch64-kpti-on", "measure"), ("kpti.aarch64-kpti-on", "check"),
        ("kpti.x86_64-nokpti-default", "boot"), ("kpti.x86_64-nokpti-default", "load"),
        ("kpti.x86_64-nokpti-default", "measure"),
        ("kpti.x86_64-nokpti-default", "load [boot 1]"),
        ("kpti.x86_64-nokpti-default", "measure [boot 1]"),
        ("kpti.x86_64-nokpti-default", "check [boot 1]"),
    ]


def _only(case):
    results = case.result
    assert len(results) <= 1
    return results[0] if results else None


def test_each_case_has_the_result_type_of_its_status_and_carries_its_message():
    cases = _cases(_parse(_run())["kpti"])
    failure = _only(cases["kpti.aarch64-kpti-on", "measure"])
    assert isinstance(failure, Failure) and failure.message == "exit code 1, expected 0"
    assert failure.text == "exit code 1, expected 0"
    assert isinstance(_only(cases["kpti.aarch64-kpti-on", "check"]), Skipped)
    error = _only(cases["kpti.x86_64-nokpti-default", "measure [boot 1]"])
    assert isinstance(error, Error) and error.message == "Kernel panic - not syncing"
    assert _only(cases["kpti.aarch64-kpti-on", "load"]) is None
    assert cases["kpti.aarch64-kpti-on", "load"].is_passed


def test_the_boot_case_is_an_error_only_when_the_cell_failed_to_boot():
    cases = {**_cases(_parse(_run())["kpti"]), **_cases(_parse(_run())["mmio"])}
    assert _only(cases["kpti.aarch64-kpti-on", "boot"]) is None           # a step failed
    assert _only(cases["kpti.x86_64-nokpti-default", "boot"]) is None     # a step panicked
    assert _only(cases["mmio.x86_64-kpti-on", "boot"]) is None
    no_boot = _only(cases["mmio.aarch64-nokpti-default", "boot"])
    assert isinstance(no_boot, Error) and no_boot.message == "no ready marker within 60 s"
    never_ran = _only(cases["mmio.aarch64-kpti-default", "boot"])
    assert isinstance(never_ran, Error) and never_ran.message == "kernel build failed"


def test_case_and_suite_times_are_the_boot_and_step_seconds():
    suite = _parse(_run())["kpti"]
    cases = _cases(suite)
    assert cases["kpti.x86_64-nokpti-default", "boot"].time == pytest.approx(2.5)
    assert cases["kpti.aarch64-kpti-on", "measure"].time == pytest.approx(0.25)
    assert suite.time == pytest.approx(0.5 + 2.5 + 0.25 * 8)


def test_a_long_message_is_cut_in_the_attribute_but_whole_in_the_text():
    long = "output:\n" + "x" * 3000
    r = run(cell("aarch64", "kpti", "on", boot(0, step("measure", F, message=long))))
    failure = _only(_cases(_parse(r)["s"])["s.aarch64-kpti-on", "measure"])
    assert failure.message == long[:500] and failure.text == long


def test_guest_output_with_control_characters_still_makes_valid_xml():
    """A failing command's output tail can hold colours and bells; XML 1.0 allows none."""
    tail = "output:\n\x1b[31mFAIL\x1b[0m <&> \x07\x00 done"
    r = run(cell("aarch64", "kpti", "on", boot(0, step("measure\x1b", F, message=tail))))
    suite = _parse(r)["s"]
    (case,) = [c for c in suite if c.name != "boot"]
    failure = _only(case)
    assert isinstance(failure, Failure)
    assert "FAIL" in failure.text and "<&>" in failure.text and " done" in failure.text
    assert "\\x1b[31m" in failure.text            # shown, not lost
    assert case.name.startswith("measure")


def test_a_skipped_case_does_not_claim_an_error_when_a_failure_stopped_the_boot():
    """stop_on_fail (the driver loop) skips after a plain failure."""
    cases = _cases(_parse(_run())["kpti"])
    skipped = _only(cases["kpti.aarch64-kpti-on", "check"])     # after a FAIL, no error
    assert skipped.message == "not run: an earlier step failed or errored"
