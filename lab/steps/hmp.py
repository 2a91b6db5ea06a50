"""`hmp:` a human-monitor command (e.g. `xp /1wx 0x9000030`), its answer matched
and read for metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lab.model import Metric, Step
from lab.schema import Fields
from lab.steps.base import Context, check_output, extract


@dataclass(frozen=True, kw_only=True)
class Hmp(Step):
    kind = "hmp"
    command: str
    match: str | None = None
    metrics: tuple[Metric, ...] = ()

    @classmethod
    def parse(cls, f: Fields, **common: Any) -> Hmp:
        command = f.take("hmp", str)
        return cls(name=common.pop("name") or f"hmp: {command}", command=command,
                   match=f.regex("match"), metrics=f.metrics(), **common)

    def defines(self) -> tuple[Metric, ...]:
        return self.metrics

    def execute(self, ctx: Context) -> list[str]:
        answer = ctx.guest.hmp(self.command)
        return check_output(self.match, None, answer) + extract(self.metrics, answer, ctx)
