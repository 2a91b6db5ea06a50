"""Honest statistics for comparisons: medians, spreads and bootstrap intervals.

Pure functions; the random generator is seeded, so a report is reproducible.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass

RESAMPLES = 2000
LEVEL = 0.95


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile of already sorted values."""
    if not sorted_values:
        raise ValueError("no values")
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    a, b = sorted_values[lo], sorted_values[hi]
    if a == b:   # also inf == inf, where the interpolation below would give nan
        return a
    return a + (b - a) * (pos - lo)


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    min: float
    q1: float
    q3: float
    ci: tuple[float, float]     # bootstrap interval of the median

    def to_json(self) -> dict:
        return {"n": self.n, "median": self.median, "min": self.min, "q1": self.q1,
                "q3": self.q3, "ci95": list(self.ci)}


def _interval(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    alpha = (1 - LEVEL) / 2
    return quantile(values, alpha), quantile(values, 1 - alpha)


def summarize(samples: list[float], seed: int = 0) -> Summary:
    s = sorted(samples)
    rng = random.Random(seed)
    medians = [statistics.median(rng.choices(s, k=len(s))) for _ in range(RESAMPLES)]
    return Summary(len(s), statistics.median(s), s[0], quantile(s, 0.25), quantile(s, 0.75),
                   _interval(medians))


def _divide(a: float, b: float) -> float:
    """a / b for medians that can be 0 (counts): x/0 is infinite, 0/0 is no difference."""
    if b:
        return a / b
    return math.inf if a else 1.0


@dataclass(frozen=True)
class Ratio:
    value: float                 # median(samples) / median(baseline)
    ci: tuple[float, float]      # bootstrap interval of that ratio
    verdict: str                 # "higher", "lower", or "no clear difference"

    def to_json(self) -> dict:
        return {"ratio": self.value, "ci95": list(self.ci), "verdict": self.verdict}


def ratio(samples: list[float], baseline: list[float], seed: int = 0) -> Ratio:
    """The ratio of medians, with an interval from resampling both sides.

    A verdict is given only when the interval excludes 1.
    """
    rng = random.Random(seed)
    ratios = []
    for _ in range(RESAMPLES):
        b = statistics.median(rng.choices(baseline, k=len(baseline)))
        a = statistics.median(rng.choices(samples, k=len(samples)))
        ratios.append(_divide(a, b))
    value = _divide(statistics.median(samples), statistics.median(baseline))
    lo, hi = _interval(ratios)
    verdict = "higher" if lo > 1 else "lower" if hi < 1 else "no clear difference"
    return Ratio(value, (lo, hi), verdict)
