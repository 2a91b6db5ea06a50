"""`kunit:` load KUnit suites into the booted guest, one result row per test.

    - kunit: [example, list-kunit-test]     # or `all`: every suite in kernel-configs/kunit/suites

Every lab kernel has KUnit built in and each suite of kernel-configs/kunit/suites/
as a module (kconfig.fragments_for), so no kernel is built for this step. It loads
each suite's module (the `# module:` line of SUITE.config) with modprobe: the
module runs its suites as it loads and prints their KTAP to the kernel log. The
step then reads that KTAP from the ring buffer (`dmesg`, after a marker of its
own), or, when that is not whole (the guest died mid-suite), from the kernel
console's lines in console.log, where the step sends the kernel's messages while
it runs. One row per test (`suite.test`, `suite.test.param`), with the kernel
faults printed while each ran. A suite asked for that did not run is an error row.
Each module is unloaded afterwards, so a later step can run it again.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.core.errors import GuestError, UserError
from lab.core.model import Step, accel_name
from lab.core.paths import KERNEL_CONFIGS
from lab.core.results import Status, TestResult
from lab.parse import consolelog, ktap
from lab.parse.ktap import KtapTest
from lab.scenario.schema import Fields
from lab.scenario.steps import testrows
from lab.scenario.steps.base import Context

SUITES_DIR = KERNEL_CONFIGS / "kunit" / "suites"
#: Between two reads of console.log while KUnit's output is incomplete.
POLL_S = 0.2
#: How long the output may stay incomplete without growing before it is taken as is.
STALL_S = 3.0
_MODULE_LINE = re.compile(r"^#\s*module:\s*([A-Za-z0-9_-]+)\s*$")


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.config"))


def suite_module(suite: str, suites_dir: Path = SUITES_DIR) -> str:
    """The module a suite's fragment names (`# module: NAME`)."""
    path = suites_dir / f"{suite}.config"
    if not path.is_file():
        raise UserError(f"no KUnit suite {suite} in {suites_dir}; there are: "
                        f"{', '.join(suite_names())} (add a SUITE.config there for another)")
    for line in path.read_text(errors="replace").splitlines():
        if m := _MODULE_LINE.match(line.strip()):
            return m.group(1)
    raise UserError(f"{path}: no '# module: NAME' line naming the module that holds the "
                    f"suite {suite}")


@dataclass(frozen=True, kw_only=True)
class Kunit(Step):
    kind = "kunit"
    #: The suites to run (empty: every suite in kernel-configs/kunit/suites).
    suites: tuple[str, ...] = ()

    @classmethod
    def parse(cls, f: Fields, **common: Any) -> Kunit:
        names = []
        for text, line in f.strings("kunit"):
            if text != "all":
                try:
                    suite_module(text)
                except UserError as exc:   # said with the scenario's file:line
                    f.ctx.fail(line, f.path("kunit"), str(exc))
            names.append(text)
        suites = () if names == ["all"] else tuple(names)
        return cls(name=common.pop("name") or f"kunit {' '.join(names)}", suites=suites,
                   **common)

    def wanted(self) -> list[str]:
        return list(self.suites) or suite_names()

    def command(self, marker: str) -> str:
        """Mark the log, send kernel messages to the console meanwhile (a crash keeps the
        KTAP so far), load and unload each suite's module, then print the log."""
        mods = " ".join(dict.fromkeys(suite_module(s) for s in self.wanted()))
        return (f"echo {marker} > /dev/kmsg; lvl=$(cut -f1 /proc/sys/kernel/printk); "
                f"dmesg -n 8; for m in {mods}; do modprobe $m || echo \"modprobe $m: $?\"; "
                f"modprobe -r $m; done; dmesg -n $lvl; dmesg")

    def shown(self) -> tuple[str, str]:
        return (f"load the KUnit suites {' '.join(self.suites) or '(all)'}",
                "every test passes or skips")

    def execute(self, ctx: Context) -> list[str]:
        marker = f"lab-kunit-{secrets.token_hex(6)}"
        start = testrows.size(ctx.console_log)
        root: KtapTest | None = None
        try:
            r = ctx.guest.run(self.command(marker), ctx.timeout, ctx.output_file)
            ctx.exit_code = r.exit_code
            text = r.output_file.read_text(errors="replace") \
                if r.output_file is not None else r.output
            root = ktap.parse(_after(text.splitlines(), marker))
        except GuestError:
            ctx.tests += self._rows(ctx, self._wait(ctx, start, marker))
            raise
        if not _whole(root):
            root = _fuller(root, self._wait(ctx, start, marker))
        ctx.tests += self._rows(ctx, root)
        return testrows.problems(ctx.tests, "kunit")

    def _rows(self, ctx: Context, root: KtapTest) -> list[TestResult]:
        facts = ctx.guest.facts
        accel = accel_name(facts.accel) if facts else ""
        return self._select(testrows.rows(root, None, arch=ctx.arch, accel=accel), root)

    def _wait(self, ctx: Context, start: int, marker: str) -> KtapTest:
        """The KTAP tree of the kernel's lines in console.log since the step began, once
        it is whole (every planned suite reported), it stops growing, or the deadline
        comes."""
        seen, since = -1, time.monotonic()
        while True:
            lines = _after([line for line in testrows.read_from(ctx.console_log, start)
                            if consolelog.is_kernel(line)], marker)
            root = ktap.parse(lines)
            if len(lines) != seen:
                seen, since = len(lines), time.monotonic()
            if _whole(root) or time.monotonic() - since > STALL_S \
                    or ctx.deadline.remaining() < POLL_S:
                return root
            time.sleep(POLL_S)

    def _select(self, found: list[TestResult], root: KtapTest) -> list[TestResult]:
        """The rows of the suites asked for, in the order asked; a suite that did not
        run is an error row of its own."""
        picked = []
        for suite in self.wanted():
            rows = [r for r in found if r.name == suite or r.name.startswith(f"{suite}.")]
            ran = [t.name for t in root.subtests]
            picked += rows or [TestResult(suite, Status.ERROR, "the suite did not run (its "
                                          f"module {suite_module(suite)} did not load?); "
                                          f"it ran: {', '.join(ran) or 'none'}")]
        return picked


def _after(lines: list[str], marker: str) -> list[str]:
    """The lines after the last one that holds the marker (all of them without one)."""
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].rstrip().endswith(marker):
            return lines[i + 1:]
    return lines


def _fuller(a: KtapTest | None, b: KtapTest) -> KtapTest:
    """Of two readings of one run's KTAP, the whole one, else the one with more results."""
    if a is None or _whole(b):
        return b
    if _whole(a):
        return a
    return max((a, b), key=lambda t: sum(x.status is not ktap.KtapStatus.ERROR
                                         for _, x in ktap.flatten(t)))


def _whole(root: KtapTest) -> bool:
    """Every test the output announced has its result line."""
    return bool(root.subtests) and not any(
        t.status is ktap.KtapStatus.ERROR and t.directive_reason.startswith("no result line")
        for _, t in ktap.flatten(root))
