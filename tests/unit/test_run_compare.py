"""A scenario's compare: (what lab run compares once its cells ran): the key's checks,
and the comparisons it makes of a run's results (analysis.compare.planned)."""

from __future__ import annotations

import pytest

from lab.analysis import compare
from lab.core.errors import UserError
from lab.core.model import CompareSpec
from lab.core.results import Status, TestResult
from lab.scenario import scenario
from tests.unit.factories import boot, cell, run, step

MATRIX = "name: a\nmatrix: {arch: [aarch64], kernel: [kpti, nokpti]}\n"
STEPS = "steps:\n  - {run: 'syscost', metrics: [{name: getppid_ns, unit: ns}]}\n"


def _load(tmp_path, text: str):
    path = tmp_path / "a.yaml"
    path.write_text(MATRIX + text + STEPS)
    return scenario.load(path)


def test_compare_names_a_baseline_of_the_matrix_and_its_metrics(tmp_path):
    s = _load(tmp_path, "compare: {baseline: kernel=nokpti, metrics: [getppid_ns], "
                        "margin: 0.1}\n")
    assert s.compare == CompareSpec(("kernel", "nokpti"), ("getppid_ns",), 0.1)
    assert s.compare.to_json() == {"baseline": "kernel=nokpti", "metrics": ["getppid_ns"],
                                   "margin": 0.1}
    assert _load(tmp_path, "").compare is None


@pytest.mark.parametrize("text, said", [
    ("compare: {baseline: nokpti}\n",
     "3: compare.baseline: 'nokpti': expected KEY=VALUE, KEY one of arch, kernel, cmdline"),
    ("compare: {baseline: kernel=debug}\n",
     "3: compare.baseline: no cell has kernel='debug' (the matrix's kernel: kpti, nokpti)"),
    ("compare: {baseline: kernel=nokpti, metrics: [tcp_rtt_ns]}\n",
     "3: compare.metrics[0]: metric 'tcp_rtt_ns' is not defined by any step"),
    ("compare: {baseline: kernel=nokpti, margin: 5}\n", "3: compare.margin: must be at most"),
    ("compare: {baseline: kernel=nokpti, verdict: yes}\n", "3: compare.verdict: unknown key"),
])
def test_a_bad_compare_is_one_line_naming_the_file_line_and_key(tmp_path, text, said):
    with pytest.raises(UserError) as err:
        _load(tmp_path, text)
    assert said in str(err.value) and str(err.value).startswith(str(tmp_path / "a.yaml"))


def _boots(samples: list[list[float]]):
    return [boot(i, step("measure"), samples={"getppid_ns": s}) for i, s in enumerate(samples)]


def _run(spec: dict | None):
    r = run(cell("aarch64", "kpti", "on", *_boots([[10.0, 11, 12], [11, 12, 13], [10, 12, 11]]),
                 units={"getppid_ns": "ns"}),
            cell("aarch64", "nokpti", "default", *_boots([[1.0, 1.1, 1.2], [1.1, 1.2, 1.0],
                                                          [1.0, 1.1, 1.1]])))
    r.scenarios = [dict(r.scenarios[0], **({"compare": spec} if spec else {}))]
    return r


def test_planned_compares_what_a_scenario_names():
    (plan,) = compare.planned(_run({"baseline": "kernel=nokpti"}))
    assert plan.problem == "" and plan.comparison is not None
    (row,) = [r for r in plan.comparison.metrics["getppid_ns"] if r.ratio]
    assert row.ratio.verdict == "higher" and 8 < row.ratio.value < 12
    assert compare.planned(_run(None)) == []
    (fallback,) = compare.planned(_run(None), "kernel=nokpti")      # lab compare was run
    assert fallback.comparison is not None


def test_planned_says_why_it_compares_nothing():
    (plan,) = compare.planned(_run({"baseline": "cmdline=nosuch"}))
    assert plan.comparison is None
    assert plan.problem == "no cell with cmdline=nosuch and metric getppid_ns for aarch64"
    big = _run({"baseline": "kernel=nokpti"})
    big.cells[0].boots[0].samples["getppid_ns"] = [1.0] * (compare.MAX_COMPARED_SAMPLES + 1)
    (plan,) = compare.planned(big)
    assert "more than 20,000 samples" in plan.problem


def test_planned_sets_tests_against_the_baseline_cell():
    def tested(kernel: str, status: Status):
        s = step("kselftest proc", status, kind="kselftest")
        s = type(s)(s.name, s.kind, 0, status, tests=(TestResult("proc.read", status),))
        return cell("aarch64", kernel, "default", boot(0, s))
    r = run(tested("nokpti", Status.PASS), tested("kpti", Status.FAIL))
    r.scenarios = [dict(r.scenarios[0], compare={"baseline": "kernel=nokpti"})]
    (plan,) = compare.planned(r)
    (diff,) = plan.tests
    assert [c.name for c in diff.regressions] == ["proc.read"] and plan.comparison is None
