"""`run:` a shell command in the guest; checks its exit code and output, reads metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lab.core.model import Metric, Step
from lab.scenario.schema import Fields
from lab.scenario.steps.base import (
    Context,
    check_output,
    expectation,
    extract,
    output_expectation,
)

#: How much of a failing command's output its result message quotes.
OUTPUT_TAIL = 2000


@dataclass(frozen=True, kw_only=True)
class Run(Step):
    kind = "run"
    command: str
    expect_exit: int | None = 0       # None: any exit code
    match: str | None = None
    no_match: str | None = None
    metrics: tuple[Metric, ...] = ()

    @classmethod
    def parse(cls, f: Fields, **common: Any) -> Run:
        command = f.take("run", str)
        return cls(name=common.pop("name") or f"run: {command[:50]}", command=command,
                   expect_exit=f.exit_code("expect_exit"),
                   match=f.regex("match"), no_match=f.regex("no_match"),
                   metrics=f.metrics(), **common)

    def defines(self) -> tuple[Metric, ...]:
        return self.metrics

    def shown(self) -> tuple[str, str]:
        exit_ = "any exit code" if self.expect_exit is None else f"exit {self.expect_exit}"
        found = [f"a sample of {m.name}" for m in self.metrics]
        return self.command, expectation(exit_, output_expectation(self.match, self.no_match),
                                         *found)

    def execute(self, ctx: Context) -> list[str]:
        r = ctx.guest.run(self.command, ctx.timeout, ctx.output_file)
        ctx.exit_code = r.exit_code
        if r.shell_reset:
            ctx.notes.append(SHELL_RESET.format(code=r.exit_code))
        problems = []
        if self.expect_exit is not None and r.exit_code != self.expect_exit:
            problems.append(f"exit code {r.exit_code}, expected {self.expect_exit}")
        problems += check_output(self.match, self.no_match, r.output)
        problems += extract(self.metrics, r.output, ctx)
        if problems:
            problems.append(excerpt(r.output, ctx.output_label))
        return problems


#: What a step result says when its command ended the lab's shell.
SHELL_RESET = ("the command ended the lab's shell (exit status {code}); a new shell runs "
               "the next step, so the working directory and variables were reset")


def excerpt(output: str, label: str) -> str:
    """The tail of an output for a result message, saying where all of it is."""
    if len(output) <= OUTPUT_TAIL:
        return "output:\n" + output
    where = f"; all of it in {label}" if label else ""
    return f"output (last {OUTPUT_TAIL} of {len(output)} characters{where}):\n" \
        + output[-OUTPUT_TAIL:]
