"""`kunit:` the KUnit suites the kernel ran at boot, one result row per test.

    - kunit: [example, list-kunit-test]     # or `all`: every suite the kernel ran

A KUnit kernel (lab kunit builds one: kernel-configs/kunit/) runs its built-in
suites before /init and prints KTAP to the kernel's log. This step reads it from
the ring buffer (`dmesg`), or, when that is not whole (or the guest never reached
its shell), from the kernel console's lines in console.log (waiting, within its
deadline, for what the console reader has not written yet): one row per test
(`suite.test`, `suite.test.param`), with the kernel faults printed while each ran.
A suite asked for that the kernel did not run is an error row.
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
        root = self._from_ring_buffer(ctx) if ctx.guest.facts is not None else None
        if root is None or not _whole(root):
            root = _fuller(root, self._wait(ctx))
        facts = ctx.guest.facts
        accel = facts.accel.split(" ")[0] if facts else ""
        found = testrows.rows(root, None, arch=ctx.arch, accel=accel)
        ctx.tests += self._select(found, root)
        return testrows.problems(ctx.tests, "kunit")

    def _from_ring_buffer(self, ctx: Context) -> KtapTest:
        """The KTAP tree of the kernel's ring buffer (`dmesg`, into the step's output).
        The console may have lost lines: aarch64's virtio console drops what it is sent
        before the host end reads it, which at loglevel=7 is the start of the boot."""
        r = ctx.guest.run("dmesg", ctx.timeout, ctx.output_file)
        ctx.exit_code = r.exit_code
        text = r.output_file.read_text(errors="replace") \
            if r.output_file is not None else r.output
        return ktap.parse(text)

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


def _fuller(a: KtapTest | None, b: KtapTest) -> KtapTest:
    """Of two readings of one boot's KTAP, the whole one, else the one with more results."""
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
