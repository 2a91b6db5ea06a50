"""lab bisect against the host's drift: a search step still weak against the ends
measured when the search began is booted again in turn with both ends, and placed
against those (lab/app/bisecting.py: place). No kernel, no QEMU: the boots are
samples drawn around each kernel's level, times the host's speed of the moment."""

from __future__ import annotations

import itertools

from lab.analysis import bisect
from lab.analysis.bisect import LIKE_BAD, SKIP, Policy
from lab.app import bisecting
from tests.unit.test_bisect_steps import boots

LEVEL = {"good": 100.0, "bad": 130.0}


class Drifting:
    """Bisection's boots, fake: each kernel at its level, times the host's speed."""

    policy = Policy()

    def __init__(self, levels: dict[str, float]):
        self.levels = levels
        self.speed = 1.0
        self.seeds = itertools.count(1)
        self.booted: list[str] = []

    def samples(self, kbuild, n, label):
        self.booted += [kbuild] * n
        return boots(self.levels[kbuild] * self.speed, n, next(self.seeds))

    def measure(self, e, kbuild, label):
        return bisect.measure_step(e, lambda n: self.samples(kbuild, n, label), self.policy)


def search_step(levels: dict[str, float]) -> tuple[Drifting, bisect.Ends]:
    b = Drifting(levels)
    e = bisect.ends(b.samples("good", 8, "good"), b.samples("bad", 8, "bad"), b.policy)
    return b, e


def test_a_step_the_drift_put_between_the_ends_is_placed_beside_fresh_ends():
    b, e = search_step({**LEVEL, "step": 130.0})     # the step is the bad end's kernel
    b.speed = 0.85                                    # ... and the host slowed since
    assert b.measure(e, "step", "step").outcome is SKIP     # still weak against the first ends
    step = bisecting.Step("c0ffee", "commit 4", "step")
    ends = bisecting.EndsBuilt("good", "bad", {})   # type: ignore[arg-type]
    placed = bisecting.place(b, e, ends, step, "step", "step")   # type: ignore[arg-type]
    assert placed.outcome is LIKE_BAD
    assert "booted again in turn with both ends" in placed.note
    assert {"good", "bad"} <= set(b.booted[-3:])      # the ends were booted beside it


def test_a_step_truly_between_the_ends_stays_a_skip():
    b, e = search_step({**LEVEL, "step": 115.0})
    step = bisecting.Step("c0ffee", "commit 4", "step")
    ends = bisecting.EndsBuilt("good", "bad", {})   # type: ignore[arg-type]
    placed = bisecting.place(b, e, ends, step, "step", "step")   # type: ignore[arg-type]
    assert placed.outcome is SKIP and "booted again in turn with both ends" in placed.note


def test_a_step_placed_at_once_boots_no_end_again():
    b, e = search_step({**LEVEL, "step": 130.0})
    booted = len(b.booted)
    step = bisecting.Step("c0ffee", "commit 4", "step")
    ends = bisecting.EndsBuilt("good", "bad", {})   # type: ignore[arg-type]
    placed = bisecting.place(b, e, ends, step, "step", "step")   # type: ignore[arg-type]
    assert placed.outcome is LIKE_BAD and set(b.booted[booted:]) == {"step"}
