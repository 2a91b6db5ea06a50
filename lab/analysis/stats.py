"""Honest statistics for comparisons: medians, spreads and bootstrap intervals.

Pure functions; the random generator is seeded, so a report is reproducible.
"""

from __future__ import annotations

import functools
import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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


def _interval(values: list[float], level: float = LEVEL) -> tuple[float, float]:
    values = sorted(values)
    alpha = (1 - level) / 2
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


def ratio(samples: list[float], baseline: list[float], seed: int = 0,
          resamples: int = RESAMPLES) -> Ratio:
    """The ratio of medians, with an interval from resampling both sides.

    A verdict is given only when the interval excludes 1.
    """
    rng = random.Random(seed)
    ratios = []
    for _ in range(resamples):
        b = statistics.median(rng.choices(baseline, k=len(baseline)))
        a = statistics.median(rng.choices(samples, k=len(samples)))
        ratios.append(_divide(a, b))
    value = _divide(statistics.median(samples), statistics.median(baseline))
    lo, hi = _interval(ratios)
    verdict = "higher" if lo > 1 else "lower" if hi < 1 else "no clear difference"
    return Ratio(value, (lo, hi), verdict)


# ---------------------------------------------------------------- the boot as the unit
#
# Samples taken in one boot of one guest are not independent: they share that boot's
# page placement, host load and TCG translation cache. The unit of replication is the
# boot (Kalibera & Jones, "Rigorous Benchmarking in Reasonable Time", ISMM 2013).
# A cell's value is the geometric mean of its boots' medians; its uncertainty comes
# from a two-level bootstrap (boots with replacement, then samples within each chosen
# boot), scaled by k/(k-1) for the bootstrap's small-sample shrinkage and read with
# Student's t on the boot count. Metrics that can be 0 (counts) are handled on the
# linear scale with a plain percentile interval.

#: Resamples of the two-level bootstrap: it gives a variance, not far tail quantiles.
HIER_RESAMPLES = 1000
#: `lab compare --margin`: "equivalent" means the ratio's interval lies in [1/(1+M), 1+M].
MARGIN = 0.05
#: Boots per side beyond which the estimate of boots needed says "more than".
MAX_BOOTS = 200
#: Resampled medians kept per boot for the inner level of the bootstrap.
WITHIN_POOL = 100

Boots = Sequence[Sequence[float]]


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for aa in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                   -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def _betai(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_tail(t: float, df: float) -> float:
    """P(T > t) for Student's t with df degrees of freedom (t >= 0)."""
    return 0.5 * _betai(df / 2, 0.5, df / (df + t * t))


@functools.lru_cache(maxsize=512)
def t_quantile(tail: float, df: float) -> float:
    """The t with P(T > t) = tail (0 < tail < 0.5): bisection, to 1e-9."""
    if math.isinf(df):
        return statistics.NormalDist().inv_cdf(1 - tail)
    lo, hi = 0.0, 1.0
    while t_tail(hi, df) > tail:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_tail(mid, df) > tail else (lo, mid)
        if hi - lo < 1e-9:
            break
    return (lo + hi) / 2


@dataclass(frozen=True)
class Estimate:
    """One cell's metric with the boot as the unit."""

    value: float                      # geometric (linear: arithmetic) mean of boot medians
    ci: tuple[float, float]           # two-level bootstrap interval of that value
    boots: int
    boot_medians: tuple[float, ...]
    #: The share of one sample's variance that lies between boots (None with one boot).
    between: float | None
    log: bool                         # False: the metric reached 0 and is on a linear scale
    center: float                     # mean of the boots' transformed medians
    se2: float                        # its variance, corrected for k boots
    draws: tuple[float, ...] = field(repr=False, compare=False, default=())

    @property
    def within_only(self) -> bool:
        """One boot: the interval covers the noise within that boot and nothing else."""
        return self.boots < 2

    def to_json(self) -> dict:
        return {"value": self.value, "ci95": list(self.ci), "boots": self.boots,
                "boot_medians": list(self.boot_medians), "between_share": self.between,
                "within_boot_only": self.within_only}


def _draws(boots: Boots, f: Callable[[float], float], rng: random.Random,
           resamples: int) -> list[float]:
    """Boots with replacement, then samples with replacement within each chosen boot;
    each draw is the mean of f(median) over the chosen boots. The inner level is
    drawn from a pool of WITHIN_POOL resampled medians per boot, made once: the same
    two-level bootstrap at a tenth of the cost (pure Python, no numpy here)."""
    pools = [[f(statistics.median(rng.choices(b, k=len(b)))) for _ in range(WITHIN_POOL)]
             for b in boots]
    k, pick, out = len(boots), rng.randrange, []
    for _ in range(resamples):
        out.append(sum(pools[pick(k)][pick(WITHIN_POOL)] for _ in range(k)) / k)
    return out


def _between_share(boots: Boots, f: Callable[[float], float]) -> float | None:
    """One-way random-effects split of one sample's variance (on the f scale)."""
    multi = [[f(x) for x in b] for b in boots if len(b) > 1]
    if len(boots) < 2 or not multi:
        return None
    within = statistics.fmean(statistics.variance(b) for b in multi)
    means = [statistics.fmean(f(x) for x in b) for b in boots]
    size = statistics.fmean(len(b) for b in boots)
    between = max(0.0, statistics.variance(means) - within / size)
    return between / (between + within) if between + within > 0 else None


def estimate(boots: Boots, level: float = LEVEL, seed: int = 0,
             resamples: int = HIER_RESAMPLES, log: bool | None = None) -> Estimate:
    """A cell's value and interval from its boots' samples (boots without samples are
    left out). log: None chooses the log scale when every sample is positive."""
    boots = [list(b) for b in boots if b]
    if not boots:
        raise ValueError("no samples")
    if log is None:
        log = all(x > 0 for b in boots for x in b)
    f, inv = (math.log, math.exp) if log else (float, float)
    k = len(boots)
    medians = tuple(statistics.median(b) for b in boots)
    center = statistics.fmean(f(m) for m in medians)
    draws = _draws(boots, f, random.Random(f"{seed}:{boots!r}"), resamples)
    se2 = statistics.pvariance(draws) * (k / (k - 1) if k > 1 else 1.0)
    half = t_quantile((1 - level) / 2, k - 1 if k > 1 else math.inf) * math.sqrt(se2)
    return Estimate(inv(center), (inv(center - half), inv(center + half)), k, medians,
                    _between_share(boots, f), log, center, se2, tuple(draws))


@dataclass(frozen=True)
class Difference:
    """A cell against its baseline, the boot as the unit: the ratio of their values,
    its interval, and a verdict that can also say "the same"."""

    value: float
    ci: tuple[float, float]
    verdict: str                      # higher, lower, equivalent, inconclusive
    boots: tuple[int, int]            # (this side, baseline)
    margin: float
    #: Boots per side that would likely decide an inconclusive verdict, if the ratio
    #: and the spread seen hold (None: not estimable, or already decided).
    needed: int | None = None

    @property
    def within_only(self) -> bool:
        return min(self.boots) < 2

    @property
    def within_margin(self) -> bool:
        lo, hi = self.ci
        return 1 / (1 + self.margin) <= lo and hi <= 1 + self.margin

    def to_json(self) -> dict:
        return {"ratio": self.value, "ci95": list(self.ci), "verdict": self.verdict,
                "boots": list(self.boots), "margin": self.margin,
                "within_margin": self.within_margin, "within_boot_only": self.within_only,
                "boots_needed": self.needed}


def _verdict(lo: float, hi: float, margin: float) -> str:
    if lo > 1:
        return "higher"
    if hi < 1:
        return "lower"
    if 1 / (1 + margin) <= lo and hi <= 1 + margin:
        return "equivalent"
    return "inconclusive"


def _welch_df(u: float, v: float, ku: int, kv: int) -> float:
    """Welch-Satterthwaite degrees of freedom of a difference of two means."""
    den = u * u / (ku - 1) + v * v / (kv - 1)
    return (u + v) ** 2 / den if den > 0 else math.inf


def _needed(a: Estimate, b: Estimate, level: float, margin: float) -> int | None:
    """Boots per side at which the interval would exclude 1 or fit in the margin,
    if the log ratio and each side's boot-to-boot variance stay what they are now."""
    d = abs(a.center - b.center)
    sa, sb = a.se2 * a.boots, b.se2 * b.boots      # one boot's variance, each side
    targets = [t for t in (d, math.log1p(margin) - d) if t > 0]
    if not targets or sa + sb <= 0:
        return None
    target = max(targets)

    def decides(k: int) -> bool:   # the half-width only shrinks as k grows
        df = round(_welch_df(sa / k, sb / k, k, k))
        return t_quantile((1 - level) / 2, df) * math.sqrt((sa + sb) / k) < target

    lo, hi = max(a.boots, b.boots), MAX_BOOTS
    if not decides(hi):
        return None
    while hi - lo > 1:                 # decides(hi) holds; decides(lo) is not known to
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if decides(mid) else (mid, hi)
    return hi


def difference(a: Estimate, b: Estimate, margin: float = MARGIN,
               level: float = LEVEL) -> Difference:
    """a against b. On the log scale: the difference of the mean log medians, its
    variance the sum of both sides', read with Welch's t. On the linear scale
    (metrics that reach 0): the percentile interval of the ratio of the draws.
    With one boot on either side no verdict but inconclusive is given: nothing
    says how much boots differ."""
    if a.log != b.log:
        raise ValueError("both sides must be on the same scale")
    if a.log:
        d = a.center - b.center
        df = _welch_df(a.se2, b.se2, a.boots, b.boots) if not (a.within_only or
                                                               b.within_only) else math.inf
        half = t_quantile((1 - level) / 2, df) * math.sqrt(a.se2 + b.se2)
        value, ci = math.exp(d), (math.exp(d - half), math.exp(d + half))
    else:
        value = _divide(a.value, b.value)
        ci = _interval([_divide(x, y) for x, y in zip(a.draws, b.draws, strict=True)], level)
    if a.within_only or b.within_only:
        return Difference(value, ci, "inconclusive", (a.boots, b.boots), margin)
    verdict = _verdict(*ci, margin)
    needed = _needed(a, b, level, margin) if verdict == "inconclusive" and a.log else None
    return Difference(value, ci, verdict, (a.boots, b.boots), margin, needed)
