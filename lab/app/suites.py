"""The kernel's own tests as lab runs: the scenarios `lab kselftest` and `lab kunit`
build, and the kernel variants they need.

- kselftest runs on the kernel asked for. With --with-suite-config, each TARGET's
  own `config` fragment (tools/testing/selftests/TARGET/config, what `make
  kselftest-merge` merges) is merged into it: a variant named KERNEL-ksft, checked
  like every other fragment, so an option that cannot take effect is named. It is
  off by default: the standard kernels already have what the lab's CI suites need
  (kernel-configs/base.config: namespaces, System V IPC), and each distinct set of
  suites would otherwise be a kernel build of its own.
- kunit runs on the kernel asked for, too: every lab kernel has KUnit built in
  and the suites of kernel-configs/kunit/suites/ as modules, which the `kunit:`
  step loads in the booted (or restored) guest.
"""

from __future__ import annotations

import re
from pathlib import Path

from lab.arches import get_arch
from lab.artifacts import kconfig
from lab.artifacts import kselftest as ksft
from lab.artifacts.source import kernel_source
from lab.core import inputs
from lab.core.model import Cell, KernelVariant, Scenario
from lab.scenario.steps.kselftest import Kselftest
from lab.scenario.steps.kunit import Kunit, suite_module

DEFAULT_KERNEL = "nokpti"
#: The deadline of a kselftest or kunit step (the suites' own per-test timeouts
#: are inside it: kselftest's 45 s default, a TARGET's settings file).
STEP_TIMEOUT_S = 1800.0


def suite_config_variant(base: KernelVariant, targets: list[str],
                         source: Path | None) -> KernelVariant:
    """base with each TARGET's own config fragment merged in (those that have one)."""
    src, _ = kernel_source(source)
    frags = [p for t in targets if (p := ksft.selftests_dir(src) / t / "config").is_file()]
    for frag in frags:
        kconfig.parse_fragment(frag)       # a line the lab does not take fails now
    return KernelVariant(f"{base.name}-ksft", (*base.fragments, *frags)) if frags else base


def cmdline_name(words: tuple[str, ...]) -> str:
    """A cell's name for its extra command-line words ("default" for none)."""
    if not words:
        return "default"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(words)).strip("_.-") or "custom"
    return name[:inputs.MAX_NAME]


def _cells(arches: list[str], variants: dict[str, list[KernelVariant]],
           words: tuple[str, ...], extra: tuple[str, ...] = ()) -> tuple[Cell, ...]:
    """Every arch x variant, booted with words (which name the cell) and extra."""
    return tuple(Cell(arch, v.name, cmdline_name(words), (*extra, *words), variant=v)
                 for arch in arches for v in variants[arch])


def kselftest_scenario(arches: list[str], kernels: list[str], words: tuple[str, ...],
                       targets: list[str], *, with_suite_config: bool = False,
                       source: Path | None = None, timeout: float = STEP_TIMEOUT_S
                       ) -> Scenario:
    """Every kernel on every arch running the selected kselftests in one step."""
    chosen = ksft.parse_selection(targets)
    ksft.check_targets(kernel_source(source)[0], list(chosen))   # before any build
    variants: dict[str, list[KernelVariant]] = {}
    for arch in arches:
        variants[arch] = [kconfig.resolve_variant(get_arch(arch), k) for k in kernels]
        if with_suite_config:
            variants[arch] = [suite_config_variant(v, list(chosen), source)
                              for v in variants[arch]]
    step = Kselftest(name=f"kselftest {' '.join(targets)}", line=0, targets=tuple(targets),
                     timeout=timeout)
    return Scenario("kselftest", f"kselftest {' '.join(targets)}", Path("kselftest"),
                    _cells(arches, variants, words), (step,), step_timeout=timeout)


def kunit_scenario(arches: list[str], kernel: str, words: tuple[str, ...], suites: list[str],
                   timeout: float = STEP_TIMEOUT_S) -> Scenario:
    """The kernel asked for on each arch, booted once; its suites' modules loaded."""
    for suite in suites:
        suite_module(suite)                 # an unknown suite fails before any boot
    variants = {arch: [kconfig.resolve_variant(get_arch(arch), kernel)] for arch in arches}
    step = Kunit(name=f"kunit {' '.join(suites)}", line=0, suites=tuple(suites),
                 timeout=timeout)
    return Scenario("kunit", f"KUnit {' '.join(suites)}", Path("kunit"),
                    _cells(arches, variants, words), (step,), step_timeout=timeout)
