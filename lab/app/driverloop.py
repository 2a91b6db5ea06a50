"""The driver loop's use case: which scenario tests a driver directory, on which cells.

A directory with its own `lab.yaml` is tested by that scenario. One without gets a
smoke test of every module its Kbuild builds: load it, see it in /proc/modules,
unload it, see it gone, and no kernel fault at any step. It never falls back to
another driver's scenario, so a verdict is always about the user's own modules.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from lab.arches import get_arch
from lab.artifacts import kconfig
from lab.core.errors import UserError
from lab.core.model import Cell, Scenario, Step
from lab.scenario import scenario
from lab.scenario.steps.kmemleak import Kmemleak
from lab.scenario.steps.module import Module
from lab.scenario.steps.run import Run

DEFAULT_KERNEL = "nokpti"
#: The kernel of `lab driver --debug` (kernel-configs/variants/debug*.config).
DEBUG_KERNEL = "debug"
#: The boot deadline on the debug kernel, at least: instrumented (KASAN, lockdep,
#: kmemleak), it took 44-52 s to its shell under TCG on a loaded 2-core CI machine,
#: and once 60 s (the default) was not enough.
DEBUG_BOOT_S = 180.0
#: obj-m += a.o b.o, obj-$(CONFIG_X) := c.o (what kbuild builds as modules here)
_OBJ = re.compile(r"^\s*obj-(?:m|\$\(CONFIG_[A-Za-z0-9_]+\))\s*[:+]?=\s*(.*?)\s*(?:#.*)?$")


def kbuild_modules(driver: Path) -> list[str]:
    """The module names a directory's Kbuild (or Makefile) builds, as /proc/modules
    spells them."""
    kbuild = driver / "Kbuild"
    if not kbuild.is_file():
        raise UserError(f"{driver}: not an out-of-tree module directory (no Kbuild file)")
    try:
        text = kbuild.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{kbuild}: cannot read it: {exc}") from None
    names: list[str] = []
    for line in text.replace("\\\n", " ").splitlines():
        if m := _OBJ.match(line):
            names += [w[:-2].replace("-", "_") for w in m.group(1).split() if w.endswith(".o")]
    if not names:
        raise UserError(f"{kbuild}: builds no module (no obj-m line naming a .o)")
    return list(dict.fromkeys(names))


def _smoke_steps(module: str) -> list[Step]:
    listed = f"grep -q '^{module} ' /proc/modules"
    return [Module(name=f"load {module}", line=0, load=module),
            Run(name=f"{module} is in /proc/modules", line=0, command=listed),
            Module(name=f"unload {module}", line=0, unload=module),
            Run(name=f"{module} is gone from /proc/modules", line=0, command=f"! {listed}")]


def smoke_scenario(driver: Path, arch: str, kernel: str | None) -> Scenario:
    """Load, list, unload and list again each module the directory builds, on one cell."""
    modules = kbuild_modules(driver)
    spec = kernel or DEFAULT_KERNEL
    variant = kconfig.resolve_variant(get_arch(arch), spec)
    name = "driver-" + re.sub(r"[^A-Za-z0-9_.-]", "_", driver.name).lstrip(".")
    steps = tuple(s for m in modules for s in _smoke_steps(m))
    return Scenario(name=name, description=f"smoke test of {', '.join(modules)}: loaded, "
                    "listed in /proc/modules, unloaded, no kernel fault",
                    path=driver / "Kbuild", cells=(Cell(arch, variant.name, "default", (),
                                                        variant),), steps=steps)


def kernel_for(kernel: str | None, debug: bool) -> str | None:
    """The kernel the driver loop asks for: --kernel, or the debug one with --debug
    (both at once is a user error)."""
    if debug and kernel:
        raise UserError(f"--debug runs on the {DEBUG_KERNEL} kernel; --kernel {kernel} asks "
                        "for another")
    return DEBUG_KERNEL if debug else kernel


def driver_scenario(driver: Path, arch: str, kernel: str | None,
                    path: Path | None = None, allow: tuple[Path, ...] = (),
                    debug: bool = False) -> Scenario:
    """What `lab driver DIR` runs: --scenario, else DIR/lab.yaml, else the smoke test;
    with debug, on the debug kernel and followed by a kmemleak scan."""
    kernel = kernel_for(kernel, debug)
    own = path or driver / "lab.yaml"
    if path is None and not own.is_file():
        target = smoke_scenario(driver, arch, kernel)
    else:
        target = retarget(scenario.load(own, allow), arch, kernel)
    if not debug:
        return target
    scan = Kmemleak(name="kmemleak scan: no leak of " + ", ".join(kbuild_modules(driver)),
                    line=0, modules=tuple(kbuild_modules(driver)))
    return replace(target, steps=(*target.steps, scan),
                   boot_timeout=max(target.boot_timeout, DEBUG_BOOT_S))


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
