"""Test results across kernels: regressions, fixes, and tests only one side ran.

What KernelCI's users ask for most is regressions, not failures: a test that
fails on both kernels says nothing about the change between them. Per arch,
each cell that reported tests is set against its baseline cell (the one with
KEY=VALUE that shares most other cell keys, as `lab compare` picks it), test by
test, by name. Pure logic over results; report.py prints it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab.core.errors import UserError
from lab.core.model import CELL_KEYS
from lab.core.results import CellResult, RunResult, Status

#: Statuses that count as "it does not work".
BROKEN = (Status.FAIL, Status.ERROR)


@dataclass(frozen=True)
class Change:
    name: str
    baseline: Status
    other: Status

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "baseline": self.baseline.value, "other": self.other.value}


@dataclass
class CellDiff:
    """One cell's tests against its baseline cell's."""

    arch: str
    baseline: str                  # cell ids
    other: str
    regressions: list[Change] = field(default_factory=list)   # pass -> fail/error
    fixes: list[Change] = field(default_factory=list)         # fail/error -> pass
    changed: list[Change] = field(default_factory=list)       # any other change (skips)
    only_baseline: list[str] = field(default_factory=list)
    only_other: list[str] = field(default_factory=list)
    unchanged: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"arch": self.arch, "baseline": self.baseline, "other": self.other,
                "regressions": [c.to_json() for c in self.regressions],
                "fixes": [c.to_json() for c in self.fixes],
                "changed": [c.to_json() for c in self.changed],
                "only_baseline": self.only_baseline, "only_other": self.only_other,
                "unchanged": self.unchanged}


def statuses(cell: CellResult) -> dict[str, Status]:
    """A cell's tests by name; a test reported more than once (several boots) keeps
    its worst status."""
    found: dict[str, Status] = {}
    for t in cell.tests:
        found[t.name] = Status.worst([found[t.name], t.status]) if t.name in found else t.status
    return found


def outcomes(cell: CellResult) -> dict[str, Status]:
    """Everything a cell ran, by name, as JUnit counts it: the boot, each step that
    reported no tests, each test a step reported; the worst status over its boots.
    A step that erred is there too (a crash ended it), and a cell that never ran
    is its boot's error."""
    found: dict[str, Status] = {
        "boot": Status.ERROR if cell.failed_to_boot or not cell.boots else Status.PASS}
    for s in cell.steps:
        rows = [(t.name, t.status) for t in s.tests]
        if not s.tests or s.status is Status.ERROR:
            rows.insert(0, (s.name, s.status))
        for name, status in rows:
            found[name] = Status.worst([found[name], status]) if name in found else status
    return found


def diff_cells(base: CellResult, other: CellResult,
               of: Callable[[CellResult], dict[str, Status]] = statuses) -> CellDiff:
    a, b = of(base), of(other)
    out = CellDiff(other.cell.arch, base.id, other.id,
                   only_baseline=[n for n in a if n not in b],
                   only_other=[n for n in b if n not in a])
    for name in (n for n in a if n in b):
        change = Change(name, a[name], b[name])
        if a[name] is b[name]:
            out.unchanged += 1
        elif a[name] is Status.PASS and b[name] in BROKEN:
            out.regressions.append(change)
        elif a[name] in BROKEN and b[name] is Status.PASS:
            out.fixes.append(change)
        else:
            out.changed.append(change)
    return out


def _baseline_for(cell: CellResult, bases: list[CellResult]) -> CellResult:
    return max(bases, key=lambda b: sum(b.cell.key()[k] == cell.cell.key()[k]
                                        for k in CELL_KEYS))


def diff(results: RunResult, baseline: tuple[str, str]) -> list[CellDiff]:
    """Every cell with tests against its arch's baseline cell; [] when no cell
    reported tests. A UserError when an arch with tests has no baseline cell."""
    key, value = baseline
    if key not in CELL_KEYS:
        raise UserError(f"--baseline {key}=...: the keys are {', '.join(CELL_KEYS)}")
    cells = [c for c in results.cells if c.tests]
    out = []
    for arch in sorted({c.cell.arch for c in cells}):
        group = [c for c in cells if c.cell.arch == arch]
        bases = [c for c in group if c.cell.key()[key] == value]
        if not bases:
            raise UserError(f"no {arch} cell with {key}={value} reported tests, so there is "
                            "no baseline to compare the others with")
        out += [diff_cells(_baseline_for(c, bases), c) for c in group if c not in bases]
    return out


@dataclass
class RunDiff:
    """One run (B) against another (A), cell by cell (same scenario and id)."""

    cells: list[CellDiff]
    #: "scenario/id" of the cells only one run has.
    only_a: list[str]
    only_b: list[str]

    @property
    def regressions(self) -> int:
        return sum(len(d.regressions) for d in self.cells)

    @property
    def fixes(self) -> int:
        return sum(len(d.fixes) for d in self.cells)


def diff_runs(a: RunResult, b: RunResult) -> RunDiff:
    """B against A: for each cell both ran, what passed in A and fails in B
    (regressions), the reverse (fixes), other changes, and what only one of them ran
    (outcomes: steps and tests alike)."""
    cells_a = {f"{c.scenario}/{c.id}": c for c in a.cells}
    cells_b = {f"{c.scenario}/{c.id}": c for c in b.cells}
    both = [k for k in cells_b if k in cells_a]
    diffs = []
    for k in both:
        d = diff_cells(cells_a[k], cells_b[k], outcomes)
        d.baseline = d.other = k
        diffs.append(d)
    return RunDiff(diffs, [k for k in cells_a if k not in cells_b],
                   [k for k in cells_b if k not in cells_a])
