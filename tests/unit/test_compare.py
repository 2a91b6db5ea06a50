"""lab.analysis.compare on results built by hand: baselines, ratios, units, flags and the
user errors; and loading results.json files, old and broken ones included."""

import json
from dataclasses import replace

import pytest

from lab.analysis import compare
from lab.core import results
from lab.core.errors import UserError
from lab.core.results import Status
from tests.unit.factories import boot, cell, run

#: KPTI-like costs: kpti is about 10x nokpti on both arches.
FAST, SLOW = [100.0, 101.0, 99.0, 102.0, 98.0, 100.5], [1000.0, 1010.0, 990.0, 1005.0, 995.0]


def _boots(samples: list[float], k: int = 3, accel: str = "tcg") -> list[results.BootResult]:
    """The samples cut into k boots, in order (the boot is the unit of a verdict)."""
    n = len(samples)
    return [boot(i, samples={"getppid_ns": samples[i * n // k:(i + 1) * n // k]}, accel=accel)
            for i in range(k)]


def _kpti_run(accel: str = "tcg", **over) -> results.RunResult:
    return run(
        cell("aarch64", "kpti", "forced-on", *_boots(SLOW, accel=accel), accel=accel, **over),
        cell("aarch64", "nokpti", "default", *_boots(FAST, accel=accel), accel=accel, **over),
        cell("x86_64", "kpti", "forced-on", *_boots(SLOW, accel=accel), accel=accel, **over),
        cell("x86_64", "nokpti", "default", *_boots(FAST, accel=accel), accel=accel, **over),
    )


def _rows(comparison, metric="getppid_ns") -> dict:
    return {r.result.id: r for r in comparison.metrics[metric]}


def test_each_cell_is_compared_with_the_baseline_of_its_own_arch():
    rows = _rows(compare.compare(_kpti_run(), ("kernel", "nokpti")))
    assert {i: r.baseline.id for i, r in rows.items()} == {
        "aarch64-kpti-forced-on": "aarch64-nokpti-default",
        "aarch64-nokpti-default": "aarch64-nokpti-default",
        "x86_64-kpti-forced-on": "x86_64-nokpti-default",
        "x86_64-nokpti-default": "x86_64-nokpti-default",
    }
    base = rows["x86_64-nokpti-default"]
    assert base.is_baseline and base.ratio is None
    kpti = rows["x86_64-kpti-forced-on"]
    assert not kpti.is_baseline and kpti.label == "kpti/forced-on"
    assert kpti.samples == SLOW and kpti.summary.n == len(SLOW)
    assert kpti.ratio.verdict == "higher" and 9 < kpti.ratio.ci[0] < kpti.ratio.ci[1] < 11


def test_the_baseline_is_the_one_that_shares_most_other_keys():
    """Baseline cmdline=off: kpti/on against kpti/off, nokpti/on against nokpti/off."""
    r = run(cell("aarch64", "kpti", "on", metrics={"m": [40.0, 41, 39]}),
            cell("aarch64", "nokpti", "off", metrics={"m": [10.0, 11, 9]}),
            cell("aarch64", "kpti", "off", metrics={"m": [20.0, 21, 19]}),
            cell("aarch64", "nokpti", "on", metrics={"m": [10.0, 10, 10]}))
    rows = _rows(compare.compare(r, ("cmdline", "off")), "m")
    assert rows["aarch64-kpti-on"].baseline.id == "aarch64-kpti-off"
    assert rows["aarch64-nokpti-on"].baseline.id == "aarch64-nokpti-off"
    assert rows["aarch64-kpti-on"].ratio.value == 2.0
    assert rows["aarch64-nokpti-on"].ratio.value == 1.0
    assert rows["aarch64-kpti-off"].is_baseline and rows["aarch64-nokpti-off"].is_baseline


def test_rows_pool_every_boot_and_leave_out_cells_without_the_metric():
    two_boots = cell("aarch64", "kpti", "on", boot(0, samples={"m": [4.0, 4.2]}),
                     boot(1, samples={"m": [3.8]}))
    r = run(two_boots, cell("aarch64", "nokpti", "on", metrics={"m": [2.0, 2.1, 1.9]}),
            cell("aarch64", "kpti", "other", metrics={"n": [1.0]}),
            cell("aarch64", "kpti", "empty", metrics={"m": []}))
    rows = compare.compare(r, ("kernel", "nokpti"), "m").metrics["m"]
    assert [row.result.id for row in rows] == ["aarch64-kpti-on", "aarch64-nokpti-on"]
    assert rows[0].samples == [4.0, 4.2, 3.8]


def test_a_metric_only_one_arch_has_is_compared_on_that_arch_alone():
    """A run of several scenarios: the UART scenario measures on aarch64 only."""
    r = _kpti_run()
    r.cells += [cell("aarch64", "nokpti", "uart", metrics={"kib_s": [50.0, 52.0]}),
                cell("aarch64", "kpti", "uart", metrics={"kib_s": [49.0, 51.0]})]
    c = compare.compare(r, ("kernel", "nokpti"))
    assert list(c.metrics) == ["getppid_ns", "kib_s"]
    assert {row.result.cell.arch for row in c.metrics["kib_s"]} == {"aarch64"}


def test_units_come_from_any_cell_that_has_one():
    r = _kpti_run()
    r.cells[2].units = {"getppid_ns": "ns"}
    assert compare.compare(r, ("kernel", "nokpti")).units == {"getppid_ns": "ns"}
    assert compare.compare(_kpti_run(), ("kernel", "nokpti")).units == {"getppid_ns": ""}


@pytest.mark.parametrize("accel, timing, flags", [
    ("tcg", "wallclock", [compare.TCG]),
    ("kvm", "wallclock", []),
    ("tcg", "icount", [compare.TCG, compare.ICOUNT]),
    ("kvm", "icount", [compare.ICOUNT]),
])
def test_flags_say_emulation_and_instruction_counting(accel, timing, flags):
    assert compare.compare(_kpti_run(accel=accel, timing=timing),
                           ("kernel", "nokpti")).flags == flags


def test_one_tcg_cell_is_enough_for_the_tcg_flag():
    r = _kpti_run(accel="kvm")
    r.cells[3] = cell("x86_64", "nokpti", "default", metrics={"getppid_ns": FAST}, accel="tcg")
    assert compare.compare(r, ("kernel", "nokpti")).flags == [compare.TCG]


@pytest.mark.parametrize("baseline, metric, message", [
    (("variant", "nokpti"), None, "the keys are arch, kernel, cmdline"),
    (("kernel", "nokpti"), "rtt_ns", "no metric 'rtt_ns' in these results; there are: "
                                     "getppid_ns"),
    (("kernel", "lts"), None, "no cell with kernel=lts and metric getppid_ns for aarch64"),
])
def test_bad_requests_are_user_errors(baseline, metric, message):
    with pytest.raises(UserError, match=message):
        compare.compare(_kpti_run(), baseline, metric)


def test_an_arch_without_a_baseline_cell_is_a_user_error():
    r = _kpti_run()
    del r.cells[3]                       # x86_64-nokpti-default
    with pytest.raises(UserError, match="no cell with kernel=nokpti and metric getppid_ns "
                                        "for x86_64"):
        compare.compare(r, ("kernel", "nokpti"))


def test_results_without_metrics_are_a_user_error():
    r = run(cell("aarch64", "kpti", "on", metrics={}), cell("aarch64", "nokpti", "on"))
    with pytest.raises(UserError, match="no metrics to compare"):
        compare.compare(r, ("kernel", "nokpti"))
    with pytest.raises(UserError, match="there are: none"):
        compare.compare(r, ("kernel", "nokpti"), "m")


def test_comparison_json_has_what_reports_and_tests_read():
    c = compare.compare(_kpti_run(), ("kernel", "nokpti"), "getppid_ns")
    data = json.loads(json.dumps(c.to_json()))
    assert data["baseline"] == "kernel=nokpti" and data["flags"] == ["tcg"]
    rows = {r["id"]: r for r in data["metrics"]["getppid_ns"]}
    on, base = rows["aarch64-kpti-forced-on"], rows["aarch64-nokpti-default"]
    assert set(on["ratio"]) == {"ratio", "ci95", "verdict", "boots", "margin", "within_margin",
                                "within_boot_only", "boots_needed"}
    assert on["ratio"]["boots"] == [3, 3] and on["estimate"]["boots"] == 3
    assert on["ratio"]["verdict"] == "higher" and on["ratio"]["ci95"][0] > 1
    assert len(on["ratio"]["ci95"]) == 2
    assert on["baseline"] is False and base["baseline"] is True and "ratio" not in base
    assert on["baseline_id"] == "aarch64-nokpti-default"
    assert (on["arch"], on["cell"], on["accel"], on["timing"]) == ("aarch64", "kpti/forced-on",
                                                                   "tcg", "wallclock")
    assert on["samples"] == SLOW and on["summary"]["n"] == len(SLOW)


def test_a_zero_baseline_compares_without_a_traceback():
    r = run(cell("aarch64", "kpti", "on", *(boot(i, samples={"faults": [3.0, 4.0, 3.0]})
                                            for i in range(3))),
            cell("aarch64", "nokpti", "on", *(boot(i, samples={"faults": [0.0, 0.0, 0.0]})
                                              for i in range(3))))
    row = _rows(compare.compare(r, ("kernel", "nokpti")), "faults")["aarch64-kpti-on"]
    assert row.ratio.verdict == "higher" and not row.estimate.log


# ---------------------------------------------------------------- load_results

def test_load_results_reads_a_directory_or_a_file(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(_kpti_run().to_json()))
    assert len(compare.load_results(tmp_path).cells) == 4
    assert compare.load_results(tmp_path / "results.json").cells[0].id == "aarch64-kpti-forced-on"


@pytest.mark.parametrize("content, message", [
    (None, "cannot read results"),
    ("{ not json", "not a results.json"),
    ("", "not a results.json"),
    ("[1, 2, 3]", "not a results.json"),
    ('"a string"', "not a results.json"),
    ('{"cells": [{"arch": "aarch64"}]}', "not a results.json"),
    ('{"cells": 5}', "not a results.json"),
    ('{"cells": [5]}', "not a results.json"),
    ('{"format": 99, "cells": []}', "newer than this lab"),
])
def test_a_file_that_is_no_results_json_is_a_user_error(tmp_path, content, message):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message) as err:
        compare.load_results(path)
    assert str(path) in str(err.value)


def test_a_format_1_results_json_loads_and_compares(tmp_path):
    """Written by the lab before results were versioned: no "format", no "boots"."""
    def old_cell(kernel, cmdline, samples, status="pass"):
        return {"id": f"x86_64-{kernel}-{cmdline}", "scenario": "kpti", "arch": "x86_64",
                "kernel": kernel, "cmdline": cmdline, "cmdline_words": [], "accel": "tcg",
                "timing": "wallclock", "status": status, "error": "", "kpti_active": None,
                "kernel_release": "6.1.0", "config": {}, "boot_s": 1.0, "boots_s": [1.0],
                "metrics": {"getppid_ns": samples}, "units": {"getppid_ns": "ns"},
                "steps": [{"name": "m", "kind": "run", "boot": 0, "status": status,
                           "duration_s": 1.0, "exit_code": 0, "message": ""}],
                "faults": [], "tainted": 0, "logs": {}, "duration_s": 2.0}
    (tmp_path / "results.json").write_text(json.dumps({
        "scenario": "kpti", "lab_version": "0.1.0", "host": {}, "jobs": 1,
        "timing": "wallclock", "duration_s": 5.0,
        "cells": [old_cell("kpti", "forced-on", SLOW, "fail"),
                  old_cell("nokpti", "default", FAST)]}))
    r = compare.load_results(tmp_path)
    assert [c.status for c in r.cells] == [Status.FAIL, Status.PASS]
    assert r.cells[0].metrics == {"getppid_ns": SLOW}
    c = compare.compare(r, ("kernel", "nokpti"))
    assert c.units == {"getppid_ns": "ns"}
    # one boot per cell (format 1 kept no boots): a ratio, and no verdict from it
    ratio = _rows(c)["x86_64-kpti-forced-on"].ratio
    assert ratio.verdict == "inconclusive" and ratio.within_only and ratio.ci[0] > 9


# ---------------------------------------------------------------- verdicts in words and rows

def test_compare_json_has_one_flat_row_per_compared_cell_and_metric():
    data = json.loads(json.dumps(compare.compare(_kpti_run(), ("kernel", "nokpti")).to_json()))
    assert [(r["metric"], r["id"], r["verdict"], r["boots"]) for r in data["rows"]] == [
        ("getppid_ns", "aarch64-kpti-forced-on", "higher", [3, 3]),
        ("getppid_ns", "x86_64-kpti-forced-on", "higher", [3, 3])]
    row = data["rows"][0]
    assert row["ci95"][0] > 1 and row["baseline_id"] == "aarch64-nokpti-default"
    assert row["sentence"].startswith("aarch64 kpti/forced-on is higher than nokpti/default: ")
    assert data["margin"] == 0.05


def _strict(text: str):
    """JSON as other tools read it: NaN and Infinity are not JSON."""
    def reject(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=reject)


def test_a_ratio_against_a_zero_baseline_is_valid_json_in_compare_json(tmp_path):
    """A count that is 0 on the baseline (faults, retries) makes the ratio infinite:
    compare.json holds null there, and stays JSON."""
    counts = run(cell("aarch64", "kpti", "on", *_boots([3.0, 4, 5, 3, 4, 5])),
                 cell("aarch64", "nokpti", "on", *_boots([0.0] * 6)))
    (tmp_path / "results.json").write_text(json.dumps(counts.to_json()))
    assert _main("compare", tmp_path) == 0
    (row,) = _strict((tmp_path / "compare.json").read_text())["rows"]
    assert row["ratio"] is None and row["id"] == "aarch64-kpti-on"


def test_lab_prints_strict_json_too(capsys):
    from lab.app import report
    report.print_json({"ratio": float("inf"), "rows": [float("nan"), 1.5]})
    assert _strict(capsys.readouterr().out) == {"ratio": None, "rows": [None, 1.5]}


def test_one_boot_per_cell_says_so_in_words():
    r = run(cell("aarch64", "kpti", "on", metrics={"m": SLOW}),
            cell("aarch64", "nokpti", "on", metrics={"m": FAST}))
    row = _rows(compare.compare(r, ("kernel", "nokpti")), "m")["aarch64-kpti-on"]
    assert row.ratio.verdict == "inconclusive"
    assert "no verdict: with one boot on a side the interval covers the noise within a " \
           "boot only" in row.sentence


# ---------------------------------------------------------------- run against run

def _aa(seed: int, effect: float = 1.0, boots: int = 4, **over) -> results.RunResult:
    import random
    rng = random.Random(seed)

    def cell_of(arch, kernel, cmdline, scale):
        levels = [rng.gauss(0, 0.03) for _ in range(boots)]
        bs = [boot(i, samples={"getppid_ns": [scale * (1 + lv + rng.gauss(0, 0.05))
                                               for _ in range(10)]})
              for i, lv in enumerate(levels)]
        return cell(arch, kernel, cmdline, *bs, units={"getppid_ns": "ns"}, **over)
    return run(cell_of("aarch64", "kpti", "on", 1000 * effect),
               cell_of("aarch64", "nokpti", "off", 100.0))


def test_run_against_run_matches_cells_by_id_and_finds_a_regression():
    c = compare.compare_runs(_aa(1), _aa(2, effect=1.5))
    verdicts = {(p.id, p.metric): (p.diff.verdict, p.change) for p in c.rows}
    assert verdicts[("aarch64-kpti-on", "getppid_ns")] == ("higher", "regression")
    assert verdicts[("aarch64-nokpti-off", "getppid_ns")][0] != "lower"
    assert c.only_a == c.only_b == []
    row = c.to_json()["rows"][0]
    assert {"verdict", "ratio", "ci95", "boots", "change", "sentence"} <= set(row)


@pytest.mark.parametrize("seed", range(5))
def test_an_a_a_pair_of_runs_calls_nothing_higher_or_lower(seed):
    c = compare.compare_runs(_aa(seed), _aa(seed + 100))
    assert {p.diff.verdict for p in c.rows} <= {"equivalent", "inconclusive"}


def test_cells_in_only_one_run_are_listed():
    a, b = _aa(1), _aa(2)
    b.cells[0] = cell("x86_64", "kpti", "on", *b.cells[0].boots, units={"getppid_ns": "ns"})
    c = compare.compare_runs(a, b)
    assert c.only_a == ["s/aarch64-kpti-on"] and c.only_b == ["s/x86_64-kpti-on"]
    assert [p.id for p in c.rows] == ["aarch64-nokpti-off"]


@pytest.mark.parametrize("change, message", [
    (lambda r: [setattr(b, "facts", replace(b.facts, accel="kvm"))
                for c in r.cells for b in c.boots],
     "different accelerators: tcg against kvm"),
    (lambda r: setattr(r, "timing", "icount"), "different timing modes: wallclock against icount"),
    (lambda r: [b.samples.update(other=[1.0]) for b in r.cells[0].boots],
     "different metrics: other in only one of them"),
])
def test_runs_that_cannot_be_compared_are_refused_in_one_line(change, message):
    b = _aa(2)
    change(b)
    with pytest.raises(UserError, match=f"^cannot compare A with B: {message}$"):
        compare.compare_runs(_aa(1), b)


@pytest.mark.parametrize("verdict, unit, word", [
    ("higher", "ns", "regression"), ("lower", "ns", "improvement"),
    ("higher", "KiB/s", "improvement"), ("lower", "KiB/s", "regression"),
    ("higher", "faults/MiB", "higher"), ("equivalent", "ns", "equivalent")])
def test_a_change_is_named_by_its_unit(verdict, unit, word):
    assert compare.change(verdict, unit) == word


# ---------------------------------------------------------------- lab compare RUN_A RUN_B

def _main(*argv) -> int:
    from lab.app import cli
    with pytest.raises(SystemExit) as exit_:
        cli.main([str(a) for a in argv])
    return exit_.value.code


def test_lab_compare_of_two_runs_writes_its_rows_into_run_b(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for path, r in ((a, _aa(1)), (b, _aa(2, effect=1.5))):
        path.mkdir()
        (path / "results.json").write_text(json.dumps(r.to_json()))
    assert _main("compare", a, b) == 0
    printed = capsys.readouterr().out
    assert "regression: 1" in printed and "aarch64-kpti-on getppid_ns in B is higher" in printed
    data = json.loads((b / "compare.json").read_text())
    assert {(r["id"], r["change"]) for r in data["rows"]} >= {("aarch64-kpti-on", "regression")}
    assert (b / "compare.png").read_bytes().startswith(b"\x89PNG")
    assert _main("compare", a, b, "--out", tmp_path / "elsewhere", "--margin", "10%") == 0
    assert json.loads((tmp_path / "elsewhere" / "compare.json").read_text())["margin"] == 0.1


def test_lab_compare_refuses_runs_that_differ_in_one_line_and_exit_2(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    other = _aa(2)
    other.timing = "icount"
    for path, r in ((a, _aa(1)), (b, other)):
        path.mkdir()
        (path / "results.json").write_text(json.dumps(r.to_json()))
    assert _main("compare", a, b) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"lab: error: cannot compare {a} with {b}: different timing modes: "
                   "wallclock against icount")
    assert not (b / "compare.json").exists()
