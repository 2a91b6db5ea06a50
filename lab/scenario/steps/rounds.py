"""`rounds: N` with `steps:` repeats its own steps N times in order, so that
measurements to be compared alternate instead of running in blocks. It is
expanded when the scenario loads; nothing of it runs by itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from lab.core import inputs
from lab.core.model import Step
from lab.scenario.schema import Fields, Node

StepsParser = Callable[[Node, Fields, str], list[Step]]


def expand(f: Fields, parse_steps: StepsParser) -> list[Step]:
    times = f.positive("rounds", ..., integer=True, most=inputs.MAX_STEPS)
    steps_node = f.node_of("steps")
    assert steps_node is not None
    inner = parse_steps(steps_node, f, f.path("steps"))
    f.done()
    if times * len(inner) > inputs.MAX_STEPS:    # counted before anything is expanded
        f.fail("rounds", f"{times:,} rounds of {len(inner):,} step(s) make "
                         f"{times * len(inner):,} steps, over the bound of {inputs.MAX_STEPS:,}")
    return [replace(s, name=f"{s.name} (round {r + 1}/{times})")
            for r in range(times) for s in inner]
