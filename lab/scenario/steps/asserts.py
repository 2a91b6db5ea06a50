"""`assert:` a fact of the boot, or a metric's median (against bounds, another
metric, or as a ratio to another metric with a bootstrap interval)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from lab.analysis import stats
from lab.core.model import Step
from lab.scenario.schema import TEXT_LINE, Fields
from lab.scenario.steps.base import Context

FACTS = ("kpti_active", "boot_s", "kernel_release", "accel", "tainted")


def _show(value: float) -> str:
    return f"{value:g} ({int(value):#x})" if float(value).is_integer() else f"{value:g}"


def compare(value: Any, equals: Any, lo: float | None, hi: float | None) -> list[str]:
    """What is wrong with value against equals, min and max (None: not asked)."""
    problems = []
    if equals is not None and value != equals:
        problems.append(f"is {value!r}, expected {equals!r}")
    if lo is not None and (value is None or value < lo):
        problems.append(f"is {value!r}, expected at least {lo}")
    if hi is not None and (value is None or value > hi):
        problems.append(f"is {value!r}, expected at most {hi}")
    return problems


@dataclass(frozen=True, kw_only=True)
class _Bounded(Step):
    """What both asserts compare against: equals, min and max (None: not asked)."""

    kind = "assert"
    equals: Any = None
    min: float | None = None
    max: float | None = None

    def expected(self) -> str:
        """equals, min and max in words."""
        return "; ".join(w for w in (
            f"equals {self.equals!r}" if self.equals is not None else "",
            f"at least {self.min:g}" if self.min is not None else "",
            f"at most {self.max:g}" if self.max is not None else "") if w)

    def bounds(self, value: Any) -> list[str]:
        return compare(value, self.equals, self.min, self.max)


@dataclass(frozen=True, kw_only=True)
class FactAssert(_Bounded):
    fact: str

    def shown(self) -> tuple[str, str]:
        return f"the boot fact {self.fact}", self.expected()

    def execute(self, ctx: Context) -> list[str]:
        if self.fact == "tainted":
            value: Any = ctx.guest.tainted()
        else:
            assert ctx.guest.facts is not None
            value = ctx.guest.facts.to_json().get(self.fact)
        return [f"{self.fact} {p}" for p in self.bounds(value)]


@dataclass(frozen=True, kw_only=True)
class MetricAssert(_Bounded):
    metric: str
    ratio_to: str = ""                # median(metric) / median(ratio_to)
    equals_metric: str = ""           # median(metric) == median(equals_metric)

    def shown(self) -> tuple[str, str]:
        if self.equals_metric:
            return f"median {self.metric}", f"equals median {self.equals_metric}"
        if self.ratio_to:
            return (f"median {self.metric} / median {self.ratio_to}",
                    f"95% interval not entirely outside [{self.min}, {self.max}]")
        return f"median {self.metric}", self.expected()

    def execute(self, ctx: Context) -> list[str]:
        for name in filter(None, (self.metric, self.ratio_to, self.equals_metric)):
            if not ctx.samples.get(name):
                return [f"metric {name} has no samples yet in this boot"]
        samples = ctx.samples[self.metric]
        if self.equals_metric:
            a = statistics.median(samples)
            b = statistics.median(ctx.samples[self.equals_metric])
            if a != b:
                return [f"{self.metric} is {_show(a)} but {self.equals_metric} is {_show(b)}"]
        if self.ratio_to:
            return self._ratio(samples, ctx.samples[self.ratio_to])
        return [f"median of {self.metric} {p}" for p in self.bounds(statistics.median(samples))]

    def _ratio(self, samples: list[float], base: list[float]) -> list[str]:
        """Fails only when the whole 95% interval of the ratio is past a bound:
        a real regression fails it, the noise of a shared machine does not."""
        r = stats.ratio(samples, base)
        lo, hi = r.ci
        what = (f"median {self.metric} / median {self.ratio_to} = {r.value:.3f} "
                f"(95% interval {lo:.3f}-{hi:.3f})")
        problems = []
        if self.min is not None and hi < self.min:
            problems.append(f"{what}, entirely below {self.min}")
        if self.max is not None and lo > self.max:
            problems.append(f"{what}, entirely above {self.max}")
        return problems


def parse(f: Fields, **common: Any) -> Step:
    """One `assert:` key, two kinds: a fact, or a metric."""
    p = f.sub("assert")
    fact = p.take("fact", str, "", text=TEXT_LINE)
    metric = p.take("metric", str, "", text=TEXT_LINE)
    if bool(fact) == bool(metric):
        p.fail(None, "exactly one of fact, metric")
    if fact and fact not in FACTS:
        p.fail("fact", f"unknown fact {fact!r}; known: {', '.join(FACTS)}")
    ratio_to = p.take("ratio_to", str, "", text=TEXT_LINE)
    equals_metric = p.take("equals_metric", str, "", text=TEXT_LINE)
    for k, v in (("ratio_to", ratio_to), ("equals_metric", equals_metric)):
        if v and not metric:
            p.fail(k, "goes with metric, not fact")
    equals = p.finite("equals", (bool, int, float, str))
    lo, hi = p.finite("min"), p.finite("max")
    if ratio_to and equals is not None:
        p.fail("equals", "a ratio takes min or max")
    if equals is None and lo is None and hi is None and not equals_metric:
        p.fail(None, "needs equals, equals_metric, min or max")
    p.done()
    name = common.pop("name") or f"assert {fact or metric}"
    if fact:
        return FactAssert(name=name, fact=fact, equals=equals, min=lo, max=hi, **common)
    return MetricAssert(name=name, metric=metric, equals=equals, min=lo, max=hi,
                        ratio_to=ratio_to, equals_metric=equals_metric, **common)
