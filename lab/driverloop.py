"""The driver loop's use case: which scenario tests a driver directory, on which cells."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lab import kconfig
from lab.arches import get_arch
from lab.errors import UserError
from lab.model import Scenario
from lab.paths import ROOT

DEFAULT_SCENARIO = ROOT / "scenarios" / "pl011-driver.yaml"


def driver_scenario(driver: Path) -> Path:
    """A driver's own scenario (DRIVER_DIR/lab.yaml), else the PL011 driver's."""
    own = driver / "lab.yaml"
    return own if own.is_file() else DEFAULT_SCENARIO


def retarget(scenario: Scenario, arch: str, kernel: str | None) -> Scenario:
    """The scenario's cells for one arch, all on kernel if one is given."""
    cells = [c for c in scenario.cells if c.arch == arch]
    if not cells:
        raise UserError(f"{scenario.path}: the scenario has no {arch} cells")
    if kernel:
        if "/" in kernel:
            kernel = str(Path(kernel).resolve())
        variant = kconfig.resolve_variant(get_arch(arch), kernel)   # an unknown one fails here
        cells = list({c.cmdline: replace(c, kernel=variant.name, variant=variant)
                      for c in cells}.values())
    return replace(scenario, cells=tuple(cells))
