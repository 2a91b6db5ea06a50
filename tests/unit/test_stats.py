"""lab.stats: the numbers `lab compare` and ratio asserts give verdicts from."""

import math
import random

import pytest

from lab import stats

# ---------------------------------------------------------------- quantile

@pytest.mark.parametrize("values, q, expected", [
    ([1, 2, 3, 4], 0.0, 1),
    ([1, 2, 3, 4], 1.0, 4),
    ([1, 2, 3, 4], 0.5, 2.5),          # halfway between the two middle values
    ([0, 10], 0.25, 2.5),
    ([0, 10, 20], 0.75, 15),
    ([1, 2, 3, 4, 5], 0.5, 3),
    ([7], 0.0, 7), ([7], 0.5, 7), ([7], 1.0, 7),
])
def test_quantile_interpolates_linearly_between_neighbours(values, q, expected):
    assert stats.quantile(values, q) == pytest.approx(expected)


def test_quantile_of_nothing_raises():
    with pytest.raises(ValueError):
        stats.quantile([], 0.5)


def test_quantile_at_an_infinite_end_is_infinite_not_nan():
    """Bootstrap ratios are infinite where a resampled baseline median is 0."""
    assert stats.quantile([1.0, math.inf, math.inf], 0.9) == math.inf
    assert stats.quantile([1.0, math.inf], 0.5) == math.inf
    assert stats.quantile([1.0, 2.0, math.inf], 0.25) == pytest.approx(1.5)


# ---------------------------------------------------------------- summarize

def test_summarize_gives_median_quartiles_and_minimum():
    s = stats.summarize([5, 1, 4, 2, 3])          # unsorted on purpose
    assert (s.n, s.median, s.min, s.q1, s.q3) == (5, 3, 1, 2, 4)
    assert s.to_json() == {"n": 5, "median": 3, "min": 1, "q1": 2, "q3": 4,
                           "ci95": list(s.ci)}


def test_the_bootstrap_interval_holds_the_median_and_is_reproducible():
    rng = random.Random(1)
    samples = [rng.gauss(100, 10) for _ in range(40)]
    s = stats.summarize(samples)
    lo, hi = s.ci
    assert lo < s.median < hi
    assert min(samples) < lo and hi < max(samples)       # an interval, not the range
    assert stats.summarize(samples).ci == s.ci            # seeded: the same every time
    assert stats.summarize(list(reversed(samples))).ci == s.ci   # order does not matter


def test_a_constant_sample_has_a_zero_width_interval():
    s = stats.summarize([4.0] * 10)
    assert s.ci == (4.0, 4.0) and s.q1 == s.q3 == 4.0


# ---------------------------------------------------------------- ratio

def _noisy(center: float, n: int = 30, seed: int = 0, spread: float = 0.05) -> list[float]:
    rng = random.Random(seed)
    return [center * (1 + rng.uniform(-spread, spread)) for _ in range(n)]


def test_identical_distributions_give_no_clear_difference():
    samples = _noisy(100)
    r = stats.ratio(samples, list(samples))
    assert r.value == 1.0
    assert r.ci[0] < 1 < r.ci[1]
    assert r.verdict == "no clear difference"


def test_a_clear_doubling_is_higher_with_an_interval_around_2():
    r = stats.ratio(_noisy(200, seed=1), _noisy(100, seed=2))
    assert r.verdict == "higher"
    assert 1.9 < r.ci[0] <= r.value <= r.ci[1] < 2.1
    assert r.to_json() == {"ratio": r.value, "ci95": list(r.ci), "verdict": "higher"}


def test_a_clear_halving_is_lower():
    r = stats.ratio(_noisy(50, seed=3), _noisy(100, seed=4))
    assert r.verdict == "lower"
    assert 0.45 < r.ci[0] <= r.ci[1] < 0.55


def test_a_higher_median_inside_the_noise_is_no_clear_difference():
    """The ratio of medians is above 1, but the interval straddles 1: no verdict."""
    samples, baseline = _noisy(103, spread=0.5, seed=5), _noisy(100, spread=0.5, seed=6)
    r = stats.ratio(samples, baseline)
    assert r.value > 1
    assert r.ci[0] < 1 < r.ci[1]
    assert r.verdict == "no clear difference"


@pytest.mark.parametrize("seed", range(6))
def test_the_verdict_follows_the_whole_interval(seed):
    rng = random.Random(seed)
    samples = _noisy(rng.choice([80, 97, 100, 103, 120]), n=8, spread=0.2, seed=seed)
    r = stats.ratio(samples, _noisy(100, n=8, spread=0.2, seed=seed + 100))
    lo, hi = r.ci
    assert lo <= hi
    assert r.verdict == ("higher" if lo > 1 else "lower" if hi < 1 else "no clear difference")
    assert stats.ratio(samples, _noisy(100, n=8, spread=0.2, seed=seed + 100)) == r


def test_a_zero_baseline_median_is_an_infinite_ratio_not_a_crash():
    """Counts can be 0 (fork-cow's faults, a cleared register): compare must not
    die on them."""
    r = stats.ratio([5, 6, 7, 5, 6], [0, 0, 0, 0, 0])
    assert r.value == math.inf and r.verdict == "higher"
    both = stats.ratio([0, 0, 0], [0, 0, 0])
    assert both.value == 1.0 and both.verdict == "no clear difference"


def test_zeros_in_the_baseline_do_not_turn_the_interval_into_nan():
    r = stats.ratio([1, 1, 1, 2, 1], [0, 0, 1, 1, 1])
    assert not any(math.isnan(x) for x in r.ci)
    assert r.ci[1] == math.inf and r.verdict == "no clear difference"
    mostly_zero = stats.ratio([0] * 9 + [1], [1] * 9 + [0])
    assert mostly_zero.value == 0 and mostly_zero.verdict == "lower"
