"""lab bisect's placing of one step: the ends, a step's samples against them, boots
added while it is weak, --icount's exact values, pass/fail with a flaky failure,
and bad input (lab/analysis/bisect.py)."""

from __future__ import annotations

import math
import random

import pytest

from lab.analysis import bisect
from lab.analysis.bisect import LIKE_BAD, LIKE_GOOD, SKIP, WEAK, Flaky, Measured, Policy
from lab.core.errors import UserError


def boots(center: float, n: int, seed: int, per_boot: int = 8, noise: float = 0.02,
          between: float = 0.01) -> list[list[float]]:
    """n boots of per_boot samples around center: each boot has its own offset."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        offset = 1 + rng.gauss(0, between)
        out.append([center * offset * (1 + rng.gauss(0, noise)) for _ in range(per_boot)])
    return out


@pytest.fixture(scope="module")
def slower():
    """The bad end is 30% higher (a time that grew)."""
    return bisect.ends(boots(100, 8, 1), boots(130, 8, 2))


def one_line_user_error(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert exc.value.exit_code == 2 and "\n" not in text and text
    return text


# ---------------------------------------------------------------- the ends

def test_ends_that_differ_say_so_in_lab_compares_words(slower):
    assert slower.toward == "higher"
    assert slower.sentence.startswith("the bad end is higher than the good end: 1.29×")
    assert "8 boots against 8" in slower.sentence


def test_ends_that_do_not_differ_are_refused_with_the_sentence():
    with pytest.raises(UserError) as exc:
        bisect.ends(boots(100, 8, 1), boots(100, 8, 2))
    text = one_line_user_error(exc)
    assert text.startswith("the ends do not differ: the bad end")
    assert "equivalent" in text or "inconclusive" in text


def test_a_real_difference_smaller_than_the_margin_is_refused():
    good, bad = boots(100, 8, 1, noise=0.001, between=0.0005), \
        boots(102, 8, 2, noise=0.001, between=0.0005)
    assert bisect.ends(good, bad, Policy(margin=0.01)).toward == "higher"
    with pytest.raises(UserError) as exc:
        bisect.ends(good, bad, Policy(margin=0.05))
    assert "less than the margin of ±5%" in one_line_user_error(exc)


def test_an_end_without_samples_is_refused():
    with pytest.raises(UserError, match="bad end recorded no samples"):
        bisect.ends(boots(100, 4, 1), [[], []])


# ---------------------------------------------------------------- one step

def test_a_step_like_either_end_is_placed_and_one_between_is_weak(slower):
    assert bisect.place(slower, boots(100, 4, 3)).outcome == LIKE_GOOD
    assert bisect.place(slower, boots(130, 4, 4)).outcome == LIKE_BAD
    assert bisect.place(slower, boots(99, 4, 5)).outcome == LIKE_GOOD    # beyond good too
    assert bisect.place(slower, boots(150, 4, 6)).outcome == LIKE_BAD    # beyond bad too
    half = bisect.place(slower, boots(115, 16, 7))
    assert half.outcome == WEAK and half.note.startswith("between the ends")


def test_one_boot_is_never_enough_to_place_a_step(slower):
    p = bisect.place(slower, boots(100, 1, 3, per_boot=50))
    assert p.outcome == WEAK and "one boot" in p.note
    assert bisect.place(slower, []).outcome == WEAK


def test_a_metric_that_fell_bisects_the_same_way():
    faster = bisect.ends(boots(500, 8, 1), boots(350, 8, 2))    # a rate that fell
    assert faster.toward == "lower"
    assert bisect.place(faster, boots(500, 4, 3)).outcome == LIKE_GOOD
    assert bisect.place(faster, boots(350, 4, 4)).outcome == LIKE_BAD


def test_counts_that_reach_zero_are_placed_on_the_linear_scale():
    zero = [[0.0] * 5 for _ in range(6)]
    e = bisect.ends(zero, [[5.0, 6, 5, 7, 5] for _ in range(6)])
    assert e.toward == "higher"
    assert bisect.place(e, [[0.0] * 5] * 3).outcome == LIKE_GOOD
    assert bisect.place(e, [[5.0, 6, 6, 5, 7]] * 3).outcome == LIKE_BAD


def test_a_step_that_places_at_once_takes_the_first_boots_only(slower):
    asked = []

    def more(n):
        asked.append(n)
        return boots(130, n, 10 + len(asked))

    m = bisect.measure_step(slower, more, Policy())
    assert m.outcome == LIKE_BAD and asked == [4] and m.boots == 4
    assert m.median == pytest.approx(130, rel=0.03)


def test_a_weak_step_gets_more_boots_then_is_skipped(slower):
    asked = []

    def more(n):
        asked.append(n)
        return boots(115, n, 20 + len(asked))

    m = bisect.measure_step(slower, more, Policy(boots=4, more=4, max_boots=10))
    assert asked == [4, 4, 2] and m.outcome == SKIP and m.boots == 10
    assert m.note.startswith("still weak after 10 boots, skipped")


def test_boots_that_return_no_samples_still_end_in_a_skip(slower):
    m = bisect.measure_step(slower, lambda n: [[]] * n, Policy(max_boots=8))
    assert m.outcome == SKIP and m.boots == 0


def test_a_step_weak_at_first_is_placed_by_the_boots_added(slower):
    """Four boots that disagree leave a step weak; the boots added place it."""
    calls = []

    def more(n):
        calls.append(n)
        if len(calls) == 1:
            return [[m] * 8 for m in (100.0, 131.0, 96.0, 120.0)]
        return boots(100, n, 60 + len(calls))

    first = bisect.place(slower, more(4))
    calls.clear()
    m = bisect.measure_step(slower, more, Policy())
    assert first.outcome == WEAK and m.outcome == LIKE_GOOD
    assert calls[0] == 4 and len(calls) > 1 and m.boots == sum(calls)


# ---------------------------------------------------------------- --icount

def test_icount_one_exact_value_per_boot_equality_decides():
    e = bisect.ends([[1000.0, 900, 900]] * 2, [[1200.0, 1100, 1100]] * 2, Policy.exact())
    assert e.icount and e.toward == "higher" and "exactly 1100" in e.sentence
    assert bisect.place(e, [[1000.0, 900, 900]]).outcome == LIKE_GOOD
    p = bisect.place(e, [[1100.0, 1100]])
    assert p.outcome == LIKE_BAD and "the bad end's value" in p.note
    near = bisect.place(e, [[910.0]])
    assert near.outcome == LIKE_GOOD and "neither end's value: nearer the good end" in near.note
    assert bisect.place(e, [[1000.0]]).outcome == WEAK                   # half way
    m = bisect.measure_step(e, lambda n: [[1000.0]] * n, Policy.exact())
    assert m.outcome == SKIP and m.boots == 1                            # never a second


def test_icount_refuses_ends_that_do_not_repeat_or_are_equal():
    with pytest.raises(UserError) as exc:
        bisect.ends([[900.0], [901.0]], [[1100.0], [1100.0]], Policy.exact())
    assert "not exact under --icount" in one_line_user_error(exc)
    with pytest.raises(UserError) as exc:
        bisect.ends([[900.0], [900.0]], [[900.0]], Policy.exact())
    assert "both give exactly 900" in one_line_user_error(exc)


def test_policy_exact_is_one_boot_a_step():
    p = Policy.exact()
    assert (p.boots, p.max_boots, p.icount) == (1, 1, True)


# ---------------------------------------------------------------- the culprit's check

def test_the_culprit_check_holds_or_says_which_part_did_not(slower):
    held = bisect.confirm(slower, boots(130, 8, 51), boots(100, 8, 52), boots(100, 8, 53))
    assert held.parent_held and held.revert_held and held.confirmed
    no_revert = bisect.confirm(slower, boots(130, 8, 51), boots(100, 8, 52))
    assert no_revert.revert_held is None and no_revert.confirmed
    partial = bisect.confirm(slower, boots(130, 8, 51), boots(100, 8, 52), boots(130, 8, 54))
    assert partial.parent_held and partial.revert_held is False and not partial.confirmed
    wrong = bisect.confirm(slower, boots(130, 8, 51), boots(130, 8, 55))
    assert not wrong.parent_held and not wrong.confirmed


# ---------------------------------------------------------------- pass/fail

def test_runs_needed_for_a_one_in_three_failure_is_twelve():
    n = bisect.runs_needed(1 / 3, 0.01)
    assert n == bisect.RUNS == 12
    assert (2 / 3) ** n < 0.01 <= (2 / 3) ** (n - 1)
    assert Flaky().miss(1 / 3) == pytest.approx((2 / 3) ** 12)
    assert bisect.runs_needed(1.0, 0.01) == 1
    assert bisect.runs_needed(0.5, 0.01) == 7


def test_a_step_is_bad_at_its_first_failure_and_good_after_all_runs_pass():
    seq = iter([True, True, False, True])
    m = bisect.judge_runs(lambda: next(seq))
    assert m.outcome == LIKE_BAD and m.runs == (True, True, False)
    calls = []
    m = bisect.judge_runs(lambda: calls.append(1) or True)
    assert m.outcome == LIKE_GOOD and len(calls) == 12 and m.boots == 12
    m = bisect.judge_runs(lambda: None)
    assert m.outcome == SKIP


def test_the_every_run_fails_rule_stops_at_the_first_pass():
    rule = Flaky(runs=5, failures=5)
    seq = iter([False, False, True])
    assert bisect.judge_runs(lambda: next(seq), rule).outcome == LIKE_GOOD
    assert bisect.judge_runs(lambda: False, rule).runs == (False,) * 5
    assert rule.miss(0.9) == pytest.approx(1 - 0.9 ** 5)


def _flaky_bisect(rng: random.Random, culprit: int, rule: Flaky, n: int = 16) -> str | None:
    """A 16-commit range whose commits from culprit on fail 1 run in 3."""
    commits = [f"c{i:02d}" for i in range(n)]

    def measure(c: str) -> Measured:
        bad = int(c[1:]) >= culprit
        return bisect.judge_runs(lambda: not (bad and rng.random() < 1 / 3), rule)

    return bisect.bisect_commits(commits, lambda c: c, measure).culprit


def test_a_one_in_three_failure_is_found_almost_always_with_twelve_runs():
    rng = random.Random(7)
    culprits = [rng.randrange(16) for _ in range(200)]
    found = sum(_flaky_bisect(rng, c, Flaky()) == f"c{c:02d}" for c in culprits)
    assert found >= 194                         # at most 3.1% wrong, by the docstring
    three = sum(_flaky_bisect(rng, c, Flaky(runs=3)) == f"c{c:02d}" for c in culprits)
    assert three < 170                          # why not 3: a bad step passes 30% of times


def test_pass_fail_ends_must_be_good_and_bad():
    good = Measured(LIKE_GOOD, runs=(True,) * 12)
    bad = Measured(LIKE_BAD, runs=(True, False), note="failed 1 of 2 runs")
    bisect.passfail_ends(good, bad)
    with pytest.raises(UserError) as exc:
        bisect.passfail_ends(Measured(LIKE_BAD, note="failed 1 of 4 runs"), bad)
    assert one_line_user_error(exc).startswith("the good end is not good (failed 1 of 4")
    with pytest.raises(UserError) as exc:
        bisect.passfail_ends(good, Measured(LIKE_GOOD, note="passed 12 of 12 runs"))
    assert "the bad end is not bad (passed 12 of 12 runs)" in one_line_user_error(exc)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("margin, said", [
    (math.nan, "finite"), (-0.05, "positive"), (0, "positive"), (1e308, "at most 0.99"),
    (math.inf, "finite"), (10**400, "at most 0.99"), ("5%", "not a number"),
    (True, "not a number")])
def test_a_bad_margin_is_one_line_exit_2(margin, said):
    with pytest.raises(UserError) as exc:
        bisect.check_margin(margin)
    assert said in one_line_user_error(exc)
    with pytest.raises(UserError):
        Policy(margin=margin)


def test_a_good_margin_passes():
    assert bisect.check_margin(0.05) == 0.05 and bisect.check_margin(0.99) == 0.99


def test_good_equal_to_bad_is_bad_input():
    bisect.check_ends_named("nokpti", "kpti")
    with pytest.raises(UserError) as exc:
        bisect.check_ends_named("nokpti", "nokpti")
    assert "both 'nokpti'" in one_line_user_error(exc)


def test_identical_configs_are_bad_input_and_a_diff_names_unset_options_n():
    good = {"CONFIG_A": "y", "CONFIG_B": "m", "CONFIG_C": "1"}
    assert bisect.config_diff(good, {**good, "CONFIG_C": "2", "CONFIG_D": "y"}) == \
        {"CONFIG_C": ("1", "2"), "CONFIG_D": ("n", "y")}
    with pytest.raises(UserError) as exc:
        bisect.config_diff(good, dict(good), ("nokpti", "nokpti.config"))
    assert "nokpti and nokpti.config give the same .config" in one_line_user_error(exc)
    with pytest.raises(UserError):
        bisect.config_diff({"CONFIG_A": "n"}, {})        # "n" is unset


def test_a_metric_the_scenario_does_not_record_is_bad_input():
    bisect.check_metric("getppid_ns", {"getppid_ns", "fork_us"})
    with pytest.raises(UserError) as exc:
        bisect.check_metric("getpid\nns", {"getppid_ns", "fork_us"}, "scenarios/kpti.yaml")
    text = one_line_user_error(exc)
    assert "scenarios/kpti.yaml records no such metric; it records: fork_us, getppid_ns" in text


@pytest.mark.parametrize("kw, said", [
    (dict(boots=0), "boots: must be at least 1"), (dict(max_boots=2), "below boots"),
    (dict(boots=10**6, max_boots=10**6), "at most 1000"), (dict(more=0), "more: must be"),
    (dict(boots=math.nan), "finite")])
def test_a_bad_policy_is_refused(kw, said):
    with pytest.raises(UserError) as exc:
        Policy(**kw)
    assert said in one_line_user_error(exc)


@pytest.mark.parametrize("kw", [dict(runs=0), dict(runs=3, failures=4), dict(failures=0)])
def test_a_bad_flaky_rule_is_refused(kw):
    with pytest.raises(UserError):
        Flaky(**kw)
