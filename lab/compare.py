"""lab compare: per metric and arch, each cell against a baseline, with intervals."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab import inputs, stats
from lab.errors import UserError
from lab.model import CELL_KEYS
from lab.results import CellResult, RunResult

#: Printed beside the numbers (report.TCG_NOTE, report.ICOUNT_NOTE).
TCG, ICOUNT = "tcg", "icount"


def load_results(path: Path) -> RunResult:
    file = path / "results.json" if path.is_dir() else path
    text = inputs.read_text(file, inputs.MAX_RESULTS_BYTES, "results")
    try:
        return RunResult.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:   # any shape of JSON
        raise UserError(f"{file}: not a results.json: {exc}") from None


@dataclass(frozen=True)
class Row:
    """One cell's samples of one metric, and its ratio to its baseline cell."""

    result: CellResult
    baseline: CellResult
    samples: list[float]
    summary: stats.Summary
    ratio: stats.Ratio | None      # None for the baseline cell itself

    @property
    def is_baseline(self) -> bool:
        return self.result is self.baseline

    @property
    def label(self) -> str:
        return f"{self.result.cell.kernel}/{self.result.cell.cmdline}"

    def to_json(self) -> dict[str, Any]:
        r = self.result
        out = {"arch": r.cell.arch, "cell": self.label, "id": r.id, "accel": r.accel,
               "timing": r.timing, "kpti_active": r.kpti_active, "baseline": self.is_baseline,
               "baseline_id": self.baseline.id, "samples": self.samples,
               "summary": self.summary.to_json()}
        if self.ratio:
            out["ratio"] = self.ratio.to_json()
        return out


@dataclass(frozen=True)
class Comparison:
    baseline: str                                   # KEY=VALUE
    metrics: dict[str, list[Row]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)  # TCG, ICOUNT

    def to_json(self) -> dict[str, Any]:
        return {"baseline": self.baseline,
                "metrics": {m: [r.to_json() for r in rows] for m, rows in self.metrics.items()},
                "units": self.units, "flags": self.flags}


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


def _rows(cells: list[CellResult], name: str, key: str, value: str) -> list[Row]:
    rows = []
    for arch in sorted({c.cell.arch for c in cells}):
        group = [c for c in cells if c.cell.arch == arch and c.metrics.get(name)]
        if not group:   # a metric of another arch's scenario only
            continue
        bases = [c for c in group if c.cell.key()[key] == value]
        if not bases:
            raise UserError(f"no cell with {key}={value} and metric {name} for {arch}")
        for c in group:
            # the baseline that shares most other keys with this cell
            base = max(bases, key=lambda b: sum(b.cell.key()[k] == c.cell.key()[k]
                                                for k in CELL_KEYS))
            samples = c.metrics[name]
            rows.append(Row(c, base, samples, stats.summarize(samples),
                            None if c is base else stats.ratio(samples, base.metrics[name])))
    return rows


def compare(results: RunResult, baseline: tuple[str, str], metric: str | None = None
            ) -> Comparison:
    """Rows per metric: every cell with samples, its summary, and its ratio to the
    baseline cell of the same arch (the one that also shares most other keys)."""
    key, value = baseline
    if key not in CELL_KEYS:
        raise UserError(f"--baseline {key}=...: the keys are {', '.join(CELL_KEYS)}")
    cells = [c for c in results.cells if c.metrics]
    out = Comparison(f"{key}={value}")
    for name in _metric_names(cells, metric):
        out.metrics[name] = _rows(cells, name, key, value)
        out.units[name] = next((c.units[name] for c in cells if c.units.get(name)), "")
    if any(c.accel == "tcg" for c in cells):
        out.flags.append(TCG)
    if any(c.timing == "icount" for c in cells):
        out.flags.append(ICOUNT)
    return out
