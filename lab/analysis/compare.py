"""lab compare: per metric and arch, each cell against a baseline; or one run against
another, cell by cell. The boot is the unit (lab/analysis/stats.py says why), and every
verdict comes with the sentence that reports and docs print."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.analysis import stats
from lab.core import inputs
from lab.core.errors import UserError
from lab.core.model import CELL_KEYS, ICOUNT
from lab.core.results import CellResult, RunResult

#: Printed beside the numbers (report.TCG_NOTE, report.ICOUNT_NOTE).
TCG = "tcg"


def load_results(path: Path) -> RunResult:
    """A results.json (or the one in a directory), whatever lab wrote it; any other
    file, however hostile, is a UserError naming it."""
    file = path / "results.json" if path.is_dir() else path
    text = inputs.read_text(file, inputs.MAX_RESULTS_BYTES, "results")
    try:
        data = inputs.strict_json(text)
        if problem := inputs.long_string(data, inputs.MAX_RESULT_STRING):
            raise ValueError(problem)
        return RunResult.from_json(data)
    except RecursionError:
        raise UserError(f"{file}: not a results.json: nested too deeply") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:   # any shape of JSON
        raise UserError(f"{file}: not a results.json: {exc}") from None


@dataclass(frozen=True)
class Row:
    """One cell's samples of one metric, and its ratio to its baseline cell."""

    result: CellResult
    baseline: CellResult
    samples: list[float]
    summary: stats.Summary         # median: the boots' typical median; ci: its interval
    estimate: stats.Estimate
    ratio: stats.Difference | None     # None for the baseline cell itself

    @property
    def is_baseline(self) -> bool:
        return self.result is self.baseline

    @property
    def label(self) -> str:
        return _label(self.result)

    @property
    def sentence(self) -> str:
        if self.ratio is None:
            return f"{self.result.cell.arch} {self.label} is the baseline"
        return sentence(f"{self.result.cell.arch} {self.label}", _label(self.baseline),
                        self.ratio)

    def to_json(self) -> dict[str, Any]:
        r = self.result
        out = {"arch": r.cell.arch, "cell": self.label, "id": r.id, "accel": r.accel,
               "timing": r.timing, "kpti_active": r.kpti_active, "baseline": self.is_baseline,
               "baseline_id": self.baseline.id, "samples": self.samples,
               "summary": self.summary.to_json(), "estimate": self.estimate.to_json()}
        if self.ratio:
            out["ratio"] = self.ratio.to_json()
            out["sentence"] = self.sentence
        return out


def _label(c: CellResult) -> str:
    return f"{c.cell.kernel}/{c.cell.cmdline}"


def _x(value: float) -> str:
    return f"{value:.3g}×" if value < 10 else f"{value:.1f}×"


def sentence(label: str, base: str, d: stats.Difference) -> str:
    """What `lab compare` says of one row, in words (docs/experiments.md prints these)."""
    span = f"{_x(d.value)} (95% interval {_x(d.ci[0])}–{_x(d.ci[1])})"
    boots = f"{d.boots[0]} boots against {d.boots[1]}"
    if d.within_only:
        return (f"{label} against {base}: {span}, no verdict: with one boot on a side the "
                f"interval covers the noise within a boot only (run with --repeat 3 or more)")
    if d.verdict in ("higher", "lower"):
        inside = f", a difference within ±{d.margin:.0%}" if d.within_margin else ""
        return f"{label} is {d.verdict} than {base}: {span}, {boots}{inside}"
    if d.verdict == "equivalent":
        return f"{label} is equivalent to {base} within ±{d.margin:.0%}: {span}, {boots}"
    more = (f"about {d.needed} boots per cell would likely decide it" if d.needed
            else "the boots needed to decide it cannot be estimated from these")
    return f"{label} against {base}: inconclusive, {span}, {boots}; {more}"


@dataclass(frozen=True)
class Comparison:
    baseline: str                                   # KEY=VALUE
    metrics: dict[str, list[Row]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)  # TCG, ICOUNT
    margin: float = stats.MARGIN

    def to_json(self) -> dict[str, Any]:
        rows = [dict(_flat(r.ratio), metric=m, id=r.result.id, baseline_id=r.baseline.id,
                     sentence=r.sentence)
                for m, rs in self.metrics.items() for r in rs if r.ratio]
        return {"baseline": self.baseline, "margin": self.margin,
                "metrics": {m: [r.to_json() for r in rows] for m, rows in self.metrics.items()},
                "rows": rows, "units": self.units, "flags": self.flags}


def _flat(d: stats.Difference) -> dict[str, Any]:
    """A compare.json row's verdict fields."""
    return {"verdict": d.verdict, "ratio": d.value, "ci95": list(d.ci),
            "boots": list(d.boots), "within_boot_only": d.within_only,
            "boots_needed": d.needed}


def _metric_names(cells: list[CellResult], metric: str | None) -> list[str]:
    names = sorted({m for c in cells for m, v in c.metrics.items() if v})
    if metric:
        if metric not in names:
            raise UserError(f"no metric {metric!r} in these results; there are: "
                            f"{', '.join(names) or 'none'}")
        return [metric]
    if not names:
        raise UserError("these results have no metrics to compare")
    return names


def _estimates(cells: list[CellResult], name: str) -> dict[str, stats.Estimate]:
    """Each cell's estimate, all on one scale: log unless some sample is 0 or less."""
    log = all(x > 0 for c in cells for x in c.metrics[name])
    return {c.id: stats.estimate(c.boot_samples(name), log=log) for c in cells}


def _summary(samples: list[float], e: stats.Estimate) -> stats.Summary:
    s = sorted(samples)
    return stats.Summary(len(s), e.value, s[0], stats.quantile(s, 0.25),
                         stats.quantile(s, 0.75), e.ci)


def _rows(cells: list[CellResult], name: str, key: str, value: str,
          margin: float) -> list[Row]:
    rows = []
    for arch in sorted({c.cell.arch for c in cells}):
        group = [c for c in cells if c.cell.arch == arch and c.metrics.get(name)]
        if not group:   # a metric of another arch's scenario only
            continue
        bases = [c for c in group if c.cell.key()[key] == value]
        if not bases:
            raise UserError(f"no cell with {key}={value} and metric {name} for {arch}")
        est = _estimates(group, name)
        for c in group:
            # the baseline that shares most other keys with this cell
            base = max(bases, key=lambda b: sum(b.cell.key()[k] == c.cell.key()[k]
                                                for k in CELL_KEYS))
            samples, e = c.metrics[name], est[c.id]
            rows.append(Row(c, base, samples, _summary(samples, e), e,
                            None if c is base else stats.difference(e, est[base.id], margin)))
    return rows


def _flags(cells: list[CellResult]) -> list[str]:
    flags = []
    if any(c.accel == "tcg" for c in cells):
        flags.append(TCG)
    if any(c.timing == ICOUNT for c in cells):
        flags.append(ICOUNT)
    return flags


def compare(results: RunResult, baseline: tuple[str, str], metric: str | None = None,
            margin: float = stats.MARGIN) -> Comparison:
    """Rows per metric: every cell with samples, its summary, and its ratio to the
    baseline cell of the same arch (the one that also shares most other keys)."""
    key, value = baseline
    if key not in CELL_KEYS:
        raise UserError(f"--baseline {key}=...: the keys are {', '.join(CELL_KEYS)}")
    cells = [c for c in results.cells if c.metrics]
    out = Comparison(f"{key}={value}", flags=_flags(cells), margin=margin)
    for name in _metric_names(cells, metric):
        out.metrics[name] = _rows(cells, name, key, value, margin)
        out.units[name] = next((c.units[name] for c in cells if c.units.get(name)), "")
    return out


# ---------------------------------------------------------------- run against run

#: Units where less is better (a time); a unit that ends in "/s" is a rate.
TIME_UNITS = {"ns", "us", "µs", "ms", "s"}


def change(verdict: str, unit: str) -> str:
    """A run-against-run verdict in the words of a patch's author."""
    if verdict not in ("higher", "lower"):
        return verdict
    if unit in TIME_UNITS:
        return "regression" if verdict == "higher" else "improvement"
    if unit.endswith("/s"):
        return "improvement" if verdict == "higher" else "regression"
    return verdict


@dataclass(frozen=True)
class Pair:
    """One cell and metric in both runs: B (after) against A (before)."""

    scenario: str
    id: str
    metric: str
    unit: str
    before: stats.Estimate
    after: stats.Estimate
    diff: stats.Difference

    @property
    def change(self) -> str:
        return change(self.diff.verdict, self.unit)

    @property
    def sentence(self) -> str:
        return sentence(f"{self.id} {self.metric} in B", "A", self.diff)

    def to_json(self) -> dict[str, Any]:
        return dict(_flat(self.diff), scenario=self.scenario, id=self.id, metric=self.metric,
                    unit=self.unit, change=self.change, sentence=self.sentence,
                    a=self.before.to_json(), b=self.after.to_json())


@dataclass(frozen=True)
class RunComparison:
    a: str
    b: str
    rows: list[Pair]
    only_a: list[str]
    only_b: list[str]
    flags: list[str]
    margin: float = stats.MARGIN

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "margin": self.margin, "flags": self.flags,
                "rows": [r.to_json() for r in self.rows],
                "only_in_a": self.only_a, "only_in_b": self.only_b}


def _metrics_of(run: RunResult) -> dict[str, str]:
    return {m: c.units.get(m, "") for c in run.cells for m, v in c.metrics.items() if v}


def _refusal(a: RunResult, b: RunResult) -> str:
    """Why two runs cannot be compared ("" if they can)."""
    accel = [sorted({c.accel for c in r.cells if c.accel}) for r in (a, b)]
    if accel[0] != accel[1]:
        return f"different accelerators: {'/'.join(accel[0])} against {'/'.join(accel[1])}"
    if a.timing != b.timing:
        return f"different timing modes: {a.timing} against {b.timing}"
    ma, mb = _metrics_of(a), _metrics_of(b)
    if set(ma) != set(mb):
        only = sorted(set(ma) ^ set(mb))
        return f"different metrics: {', '.join(only)} in only one of them"
    if ma != mb:
        return f"different units: {ma} against {mb}"
    return ""


def compare_runs(a: RunResult, b: RunResult, names: tuple[str, str] = ("A", "B"),
                 metric: str | None = None, margin: float = stats.MARGIN) -> RunComparison:
    """Every cell present in both runs (by scenario and id), metric by metric: B against A."""
    if problem := _refusal(a, b):
        raise UserError(f"cannot compare {names[0]} with {names[1]}: {problem}")
    cells_a = {(c.scenario, c.id): c for c in a.cells if c.metrics}
    cells_b = {(c.scenario, c.id): c for c in b.cells if c.metrics}
    both = [k for k in cells_b if k in cells_a]
    units = _metrics_of(a)
    rows = []
    for name in _metric_names([cells_a[k] for k in both] or list(cells_a.values()), metric):
        pairs = [(cells_a[k], cells_b[k]) for k in both
                 if cells_a[k].metrics.get(name) and cells_b[k].metrics.get(name)]
        log = all(x > 0 for p in pairs for c in p for x in c.metrics[name])
        for ca, cb in pairs:
            ea, eb = (stats.estimate(c.boot_samples(name), log=log) for c in (ca, cb))
            rows.append(Pair(ca.scenario, ca.id, name, units.get(name, ""), ea, eb,
                             stats.difference(eb, ea, margin)))
    only = [sorted(f"{s}/{i}" for s, i in x.keys() - y.keys())
            for x, y in ((cells_a, cells_b), (cells_b, cells_a))]
    return RunComparison(names[0], names[1], rows, only[0], only[1],
                         _flags(a.cells + b.cells), margin)


# ---------------------------------------------------------------- what a run asked for

#: Samples of one metric in one cell beyond which the report and `lab run` compare
#: nothing (the bootstrap resamples each boot: its cost grows with them). Real runs
#: take tens; a results.json anyone can write may hold millions.
MAX_COMPARED_SAMPLES = 20_000


@dataclass
class Planned:
    """The comparison a scenario's compare: asks for, made on a run's cells of it:
    its metrics (None: none recorded) and its tests' regressions and fixes, or why
    there is none (problem)."""

    scenario: str
    baseline: tuple[str, str]
    margin: float
    comparison: Comparison | None = None
    tests: list[Any] = field(default_factory=list)   # testdiff.CellDiff
    problem: str = ""


def _spec(entry: dict[str, Any], fallback: str) -> tuple[tuple[str, str], list[str], float] | None:
    spec = entry.get("compare") or ({"baseline": fallback} if fallback else None)
    if not spec:
        return None
    key, _, value = str(spec.get("baseline", "")).partition("=")
    metrics = [str(m) for m in spec.get("metrics") or []]
    margin: Any = spec.get("margin")
    ok = isinstance(margin, int | float) and not isinstance(margin, bool) and 0 < margin < 1
    return (key, value), metrics, float(margin) if ok else stats.MARGIN


def planned(results: RunResult, fallback: str = "") -> list[Planned]:
    """Each scenario's comparison, as its compare: names it (fallback: a KEY=VALUE
    baseline for scenarios that name none, as `lab compare DIR --baseline` was given).
    A comparison that cannot be made (no baseline cell, no samples) says why."""
    from lab.analysis import testdiff
    out = []
    for entry in results.scenarios:
        spec = _spec(entry, fallback)
        if spec is None:
            continue
        (key, value), metrics, margin = spec
        name = str(entry.get("name", ""))
        cells = [c for c in results.cells if c.scenario == name]
        run = RunResult(results.scenarios, results.host, results.jobs, results.timing, cells)
        plan = Planned(name, (key, value), margin)
        try:
            if any(len(v) > MAX_COMPARED_SAMPLES for c in cells for v in c.metrics.values()):
                raise UserError(f"a cell has more than {MAX_COMPARED_SAMPLES:,} samples of a "
                                "metric: not compared here (lab compare DIR compares them)")
            plan.tests = testdiff.diff(run, (key, value))
            if any(c.metrics for c in cells):
                plan.comparison = compare_metrics(run, (key, value), metrics, margin)
        except (UserError, ArithmeticError, ValueError) as exc:
            plan.problem = str(exc)
        out.append(plan)
    return out


def compare_metrics(run: RunResult, baseline: tuple[str, str], metrics: list[str],
                    margin: float) -> Comparison:
    """compare() over several metrics (all of them when metrics is empty)."""
    if len(metrics) <= 1:
        return compare(run, baseline, metrics[0] if metrics else None, margin)
    parts = [compare(run, baseline, m, margin) for m in metrics]
    first = parts[0]
    for part in parts[1:]:
        first.metrics.update(part.metrics)
        first.units.update(part.units)
    return first
