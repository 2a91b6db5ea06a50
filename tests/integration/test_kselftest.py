"""The kernel's own tests on real guests: kselftest on both arches, the same
suites on kpti (forced on) against nokpti, and KUnit suites loaded into the
standard nokpti kernel on both arches."""

import json

import pytest
from junitparser import JUnitXml

from tests.conftest import ROOT, lab

pytestmark = pytest.mark.qemu


def _tests(results: dict, cell_id: str) -> dict[str, dict]:
    (cell,) = [c for c in results["cells"] if c["id"] == cell_id]
    return {t["name"]: t for s in cell["steps"] for t in s["tests"]}


def _ok(tests: dict[str, dict], prefix: str) -> int:
    return sum(t["status"] == "pass" for n, t in tests.items() if n.startswith(prefix))


@pytest.fixture(scope="module")
def kselftest(tmp_path_factory):
    """`lab kselftest` on both arches: proc, and x86 (which has nothing for aarch64)."""
    out = tmp_path_factory.mktemp("kselftest")
    result = lab("kselftest", "--arch", "aarch64", "--arch", "x86_64", "--kernel", "nokpti",
                 "--out", str(out), "proc", "x86", env={"COLUMNS": "200"})
    return out, result, json.loads((out / "results.json").read_text())


def test_kselftest_runs_end_to_end_with_a_row_per_test(kselftest):
    out, result, results = kselftest
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    x86, arm = _tests(results, "x86_64-nokpti-default"), _tests(results, "aarch64-nokpti-default")
    assert sum(n.startswith("proc.") for n in x86) == 21
    assert sum(n.startswith("proc.") for n in arm) == 21
    assert _ok(x86, "proc.") >= 18 and _ok(arm, "proc.") >= 16
    assert _ok(x86, "x86.") >= 16 and not any(n.startswith("x86.") for n in arm)
    for name, t in x86.items():    # each x86 test passes, or is a listed one, labelled
        if name.startswith("x86.") and t["status"] != "pass":
            assert name in ("x86.mov_ss_trap_64", "x86.amx_64", "x86.fsgsbase_64"), t
            assert t["status"] == "skip" and t["message"].startswith("xfail (emulation: ")
    assert "proc.read" in result.stdout and "ok of" in result.stdout


def test_kselftest_writes_one_junit_case_per_test(kselftest):
    out, _, results = kselftest
    cases = [case.name for suite in JUnitXml.fromfile(str(out / "junit.xml")) for case in suite]
    tests = [t["name"] for c in results["cells"] for s in c["steps"] for t in s["tests"]]
    assert sorted(cases) == sorted(["boot", "boot", *tests])


def test_kpti_forced_on_against_nokpti_reports_no_regressions(tmp_path):
    out = tmp_path / "run"
    result = lab("run", str(ROOT / "scenarios" / "kernel-tests" / "kselftest-kpti.yaml"),
                 "--out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    compared = lab("compare", str(out), "--baseline", "kernel=nokpti", env={"COLUMNS": "200"})
    assert compared.returncode == 0, compared.stderr
    diffs = json.loads((out / "testdiff.json").read_text())["cells"]
    assert {d["arch"] for d in diffs} == {"aarch64", "x86_64"}
    for d in diffs:
        assert d["regressions"] == [] and d["fixes"] == [], d
        assert d["only_baseline"] == [] and d["only_other"] == [], d
        assert d["unchanged"] >= 21
    assert "0 regression(s)" in compared.stdout


def test_a_kunit_suite_passes_on_both_arches(tmp_path):
    result = lab("kunit", "--arch", "aarch64", "--arch", "x86_64", "--out", str(tmp_path),
                 "example", "list-kunit-test", env={"COLUMNS": "200"}, timeout=3600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    for cell in ("aarch64-nokpti-default", "x86_64-nokpti-default"):
        tests = _tests(results, cell)
        lists = {n: t for n, t in tests.items() if n.startswith("list-kunit-test.")}
        assert len(lists) >= 30 and {t["status"] for t in lists.values()} == {"pass"}
        assert tests["example.example_simple_test"]["status"] == "pass"
        assert tests["example.example_skip_test"]["status"] == "skip"
        assert not [n for n, t in tests.items() if t["status"] in ("fail", "error")]
