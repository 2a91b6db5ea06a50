"""`kunit:` the KUnit suites the kernel ran at boot, one result row per test.

    - kunit: [example, list-kunit-test]     # or `all`: every suite the kernel ran

A KUnit kernel (lab kunit builds one: kernel-configs/kunit/) runs its built-in
suites before /init and prints KTAP on the kernel console, which console.log
holds. This step reads it there (it waits, within its deadline, for output the
console reader has not written yet), one row per test (`suite.test`,
`suite.test.param`), with the kernel faults printed while each ran. A suite
asked for that the kernel did not run is an error row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from lab import ktap
from lab.ktap import KtapTest
from lab.model import Step
from lab.results import Status, TestResult
from lab.schema import Fields
from lab.steps import testrows
from lab.steps.base import Context

#: Between two reads of console.log while KUnit's output is incomplete.
POLL_S = 0.2
#: How long the output may stay incomplete without growing before it is taken as is.
STALL_S = 3.0


@dataclass(frozen=True, kw_only=True)
class Kunit(Step):
    kind = "kunit"
    reads_boot_log = True
    #: The suites to report (empty: every suite the kernel ran).
    suites: tuple[str, ...] = ()

    @classmethod
    def parse(cls, f: Fields, **common: Any) -> Kunit:
        names = tuple(text for text, _ in f.strings("kunit"))
        suites = () if names == ("all",) else names
        return cls(name=common.pop("name") or f"kunit {' '.join(names)}", suites=suites,
                   **common)

    def execute(self, ctx: Context) -> list[str]:
        root = self._wait(ctx)
        facts = ctx.guest.facts
        accel = facts.accel.split(" ")[0] if facts else ""
        found = testrows.rows(root, None, arch=ctx.arch, accel=accel)
        ctx.tests += self._select(found, root)
        return testrows.problems(ctx.tests, "kunit")

    def _wait(self, ctx: Context) -> KtapTest:
        """The KTAP tree of the kernel's lines in console.log, once it is whole (every
        planned suite reported), it stops growing, or the deadline comes."""
        seen, since = -1, time.monotonic()
        while True:
            lines = [line for line in testrows.read_from(ctx.console_log, 0)
                     if testrows.is_kernel_line(line)]
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
        if not self.suites:
            return found
        picked = []
        for suite in self.suites:
            rows = [r for r in found if r.name == suite or r.name.startswith(f"{suite}.")]
            ran = [t.name for t in root.subtests]
            picked += rows or [TestResult(suite, Status.ERROR, "the kernel did not run this "
                                          f"suite (is it built in?); it ran: "
                                          f"{', '.join(ran) or 'none'}")]
        return picked


def _whole(root: KtapTest) -> bool:
    """Every test the output announced has its result line."""
    return bool(root.subtests) and not any(
        t.status is ktap.KtapStatus.ERROR and t.directive_reason.startswith("no result line")
        for _, t in ktap.flatten(root))
