"""`dmesg:` the guest kernel's log matches a regex (waiting for it, up to the step's
deadline: a driver's messages can trail the command that caused them) and/or
does not match another. Reads the kernel's ring buffer with `dmesg` in the guest,
so it sees what `quiet` kept off the console."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from lab.core.model import Step
from lab.scenario.schema import Fields
from lab.scenario.steps.base import Context, check_output, output_expectation

#: Between two reads of the ring buffer while waiting for `match`.
POLL_S = 0.2


@dataclass(frozen=True, kw_only=True)
class Dmesg(Step):
    kind = "dmesg"
    match: str | None = None
    no_match: str | None = None

    @classmethod
    def parse(cls, f: Fields, **common: Any) -> Dmesg:
        p = f.sub("dmesg")
        match, no_match = p.regex("match"), p.regex("no_match")
        if match is None and no_match is None:
            p.fail(None, "needs match, no_match or both")
        p.done()
        return cls(name=common.pop("name") or f"dmesg: {match or no_match}", match=match,
                   no_match=no_match, **common)

    def shown(self) -> tuple[str, str]:
        return "dmesg", output_expectation(self.match, self.no_match)

    def execute(self, ctx: Context) -> list[str]:
        while True:
            r = ctx.guest.run("dmesg", ctx.timeout)
            if r.exit_code != 0:
                return [f"dmesg failed (exit code {r.exit_code}): {r.output.strip()[-500:]}"]
            problems = check_output(self.match, self.no_match, r.output)
            if not problems or ctx.deadline.remaining() < POLL_S or \
                    check_output(None, self.no_match, r.output):
                return problems
            time.sleep(POLL_S)
