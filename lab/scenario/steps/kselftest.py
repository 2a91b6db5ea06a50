"""`kselftest:` run the kernel's selftests in the guest, one result row per test.

    - kselftest: [proc, "x86:sigreturn_64"]     # TARGET or TARGET:TEST
      timeout: 600

The programs are built for the cell's kernel (lab.artifacts.kselftest) and reach the
guest in its initramfs (Step.guest_files), never over the console. kselftest's
own run_kselftest.sh runs them; its TAP becomes one row per program
(`proc.read`), with the kernel faults seen while each ran (read from the boot's
console.log, where kernel lines interleave the programs' output) and the
known failures labelled (lab/data/known-failures.txt). A program that did not
build is a row of its own.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from lab.artifacts import kselftest as ksft
from lab.core.errors import GuestError, UserError
from lab.core.model import GuestFile, KernelBuild, Step, accel_name
from lab.core.results import Status, TestResult
from lab.parse import ktap
from lab.scenario.schema import Fields
from lab.scenario.steps import testrows
from lab.scenario.steps.base import Context


@dataclass(frozen=True, kw_only=True)
class Kselftest(Step):
    kind = "kselftest"
    builds_files = True
    #: TARGET or TARGET:TEST, in order.
    targets: tuple[str, ...]

    @classmethod
    def parse(cls, f: Fields, **common: Any) -> Kselftest:
        targets = []
        for text, line in f.strings("kselftest"):
            try:
                ksft.parse_selection([text])
            except UserError as exc:   # said with the scenario's file:line
                f.ctx.fail(line, f.path("kselftest"), str(exc))
            targets.append(text)
        return cls(name=common.pop("name") or f"kselftest {' '.join(targets)}",
                   targets=tuple(targets), **common)

    def shown(self) -> tuple[str, str]:
        return f"run_kselftest.sh: {' '.join(self.targets)}", "every test passes or skips"

    def guest_files(self, kbuild: KernelBuild, progress: Any) -> tuple[GuestFile, ...]:
        return ksft.suite(kbuild, self.targets, progress).files

    def command(self, built: ksft.SuiteBuild | None) -> str:
        """Write this step's list of tests (what built of its selection), run them."""
        run = f"cd {ksft.GUEST_ROOT} && ./run_kselftest.sh"
        if built is None:
            return run
        if not built.selected:
            return "true"   # nothing built: the rows are the build failures
        listing = " ".join(shlex.quote(t) for t in built.selected)
        return f"printf '%s\\n' {listing} > {ksft.GUEST_ROOT}/kselftest-list.txt && {run}"

    def execute(self, ctx: Context) -> list[str]:
        # The build is cached by now (guest_files made it): this only reads it.
        built = ksft.suite(ctx.kernel, self.targets) if ctx.kernel is not None else None
        ctx.notes += list(built.notes) if built else []
        start = testrows.size(ctx.console_log)
        try:
            r = ctx.guest.run(self.command(built), ctx.timeout, ctx.output_file)
        except GuestError:
            ctx.tests += self._rows(ctx, start, built)   # a crash: the tests so far, its row
            raise
        ctx.exit_code = r.exit_code
        ctx.tests += self._rows(ctx, start, built,
                                r.output if r.output_file is None else None)
        problems = testrows.problems(ctx.tests, "kselftest")
        if r.exit_code != 0:
            problems.append(f"run_kselftest.sh: exit code {r.exit_code}")
        return problems

    def _rows(self, ctx: Context, start: int, built: ksft.SuiteBuild | None,
              output: str | None = None) -> list[TestResult]:
        """The rows of the runner's TAP (from output, else the step's output file), with
        each test's kernel faults from the console log; then what did not build."""
        if output is None:
            output = ctx.output_file.read_text(errors="replace") \
                if ctx.output_file and ctx.output_file.exists() else ""
        facts = ctx.guest.facts
        accel = accel_name(facts.accel) if facts else ""
        seen = testrows.faults_by_row(testrows.read_from(ctx.console_log, start), 1)
        found = testrows.rows(ktap.parse(output), 1, arch=ctx.arch, accel=accel, seen=seen)
        failed = [TestResult(name, Status.ERROR, why)
                  for name, why in (built.failed if built else {}).items()]
        return found + testrows.labelled(failed, ctx.arch, accel)
