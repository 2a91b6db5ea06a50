"""Results built by hand, for the fast tests of results, compare and the JUnit output."""

from __future__ import annotations

from lab.core.model import BootFacts, Cell, HostFacts
from lab.core.results import BootResult, CellResult, RunResult, Status, StepResult


def facts(boot_s: float = 0.5, accel: str = "tcg", kpti: bool | None = None) -> BootFacts:
    return BootFacts("6.1.0-lab", accel, "console=hvc0 quiet", boot_s, kpti)


def step(name: str, status: Status = Status.PASS, boot: int = 0, message: str = "",
         kind: str = "run") -> StepResult:
    return StepResult(name, kind, boot, status, 0.25, 0 if kind == "run" else None, message)


def boot(index: int = 0, *steps: StepResult, samples: dict | None = None, error: str = "",
         boot_s: float = 0.5, accel: str = "tcg") -> BootResult:
    return BootResult(index, facts(boot_s, accel), list(steps), dict(samples or {}),
                      error=error)


def cell(arch: str = "aarch64", kernel: str = "kpti", cmdline: str = "default",
         *boots: BootResult, scenario: str = "s", metrics: dict | None = None,
         units: dict | None = None, timing: str = "wallclock", accel: str = "tcg",
         error: str = "") -> CellResult:
    """A cell; `metrics` is a shortcut for one passing boot with those samples."""
    if metrics is not None:
        boots = (boot(0, step("measure"), samples=metrics, accel=accel),)
    return CellResult(Cell(arch, kernel, cmdline, ()), scenario, timing, boots=list(boots),
                      units=dict(units or {}), error=error)


def run(*cells: CellResult) -> RunResult:
    names = list(dict.fromkeys(c.scenario for c in cells))
    return RunResult([{"name": n} for n in names], HostFacts(cores=2), 2, "wallclock", list(cells))
