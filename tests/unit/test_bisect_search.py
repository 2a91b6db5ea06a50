"""lab bisect's searches: over commits as git bisect does it (skips, reused kernel
images, the git log), and over config options with their needs, a pair that only
acts together, and skips (lab/analysis/bisect.py)."""

from __future__ import annotations

import math

import pytest

from lab.analysis import bisect
from lab.analysis.bisect import LIKE_BAD, LIKE_GOOD, SKIP, WEAK, CommitBisect, Measured
from lab.core.errors import UserError

COMMITS = [f"c{i:02d}" for i in range(16)]


def planted(culprit: str, broken: tuple[str, ...] = (), same: dict[str, str] | None = None):
    """image and measure callbacks for a range whose commits from culprit on are bad,
    whose `broken` commits do not build, and where same maps a commit to the commit
    whose kernel image it builds (a comment-only change)."""
    measured: list[str] = []

    def image(c: str) -> str | None:
        return None if c in broken else f"img-{(same or {}).get(c, c)}"

    def measure(c: str) -> Measured:
        measured.append(c)
        return Measured(LIKE_BAD if c >= culprit else LIKE_GOOD, ((1.0, 2.0),))

    return image, measure, measured


# ---------------------------------------------------------------- over commits

@pytest.mark.parametrize("culprit", COMMITS)
def test_every_position_is_found_in_log2_steps(culprit):
    image, measure, measured = planted(culprit)
    b = bisect.bisect_commits(COMMITS, image, measure, good="c-good")
    assert b.culprit == culprit and b.done
    assert len(measured) <= math.ceil(math.log2(len(COMMITS)))
    assert [s.commit for s in b.steps] == measured


def test_the_first_step_is_the_middle():
    b = CommitBisect(COMMITS)
    assert b.next() == "c07"       # 8 candidates either way
    b.record("c07", Measured(LIKE_GOOD))
    assert b.next() == "c11" and b.candidates == tuple(COMMITS[8:])


def test_one_commit_is_its_own_culprit_without_a_step():
    b = bisect.bisect_commits(["only"], lambda c: c, lambda c: pytest.fail("measured"))
    assert b.culprit == "only" and not b.steps


def test_a_build_failure_is_skipped_for_a_neighbour():
    """The benchmark's range: a commit breaks the build, the next one fixes it."""
    image, measure, measured = planted("c11", broken=("c07",))
    b = bisect.bisect_commits(COMMITS, image, measure)
    assert b.culprit == "c11"
    assert b.steps[0].commit == "c07" and b.steps[0].outcome == SKIP
    assert b.steps[0].measured.note == "the build failed"
    assert b.steps[1].commit == "c06"              # the nearest to the middle, older first


def test_skips_next_to_the_culprit_leave_a_candidate_set():
    image, measure, _ = planted("c08", broken=("c07",))
    b = bisect.bisect_commits(COMMITS, image, measure)
    assert b.culprit is None and b.candidates == ("c07", "c08")
    assert b.conclusion() == ("only skipped commits are left; the first bad commit is one "
                              "of: c07 c08")


def test_a_step_with_the_image_of_one_measured_reuses_its_result():
    same = {"c08": "c07", "c00": "good"}       # comment-only changes
    image, measure, measured = planted("c09", same=same)
    b = bisect.bisect_commits(COMMITS, image, measure, good="good",
                              images={"img-good": ("good", LIKE_GOOD)})
    assert b.culprit == "c09"
    reused = [s for s in b.steps if s.reused]
    assert [(s.commit, s.reused, s.outcome) for s in reused] == [("c08", "c07", LIKE_GOOD)]
    assert "c08" not in measured
    assert "# c08: the same kernel image as c07, whose result is reused" in b.git_log()


def test_the_good_ends_image_is_reused_too():
    image, measure, measured = planted("c01", same={"c00": "good"})
    b = bisect.bisect_commits(COMMITS, image, measure, good="good",
                              images={"img-good": ("good", LIKE_GOOD)})
    assert b.culprit == "c01" and "c00" not in measured
    assert any(s.commit == "c00" and s.reused == "good" for s in b.steps)


def test_the_git_log_replays_with_git_bisect():
    image, measure, _ = planted("c05", broken=("c03",))
    b = bisect.bisect_commits(COMMITS, image, measure, good="g0")
    log = b.git_log()
    assert log[0] == "git bisect start c15 g0"
    commands = [line.split() for line in log if line.startswith("git bisect ")][1:]
    assert [(w[2], w[3]) for w in commands] == [(str(s.outcome), s.commit) for s in b.steps]
    assert ("skip", "c03") in [(w[2], w[3]) for w in commands]
    assert log[-1] == "# the first bad commit is c05"
    assert b.to_json()["culprit"] == "c05" and b.to_json()["steps"][0]["commit"] == "c07"


def test_weak_and_strangers_cannot_be_recorded():
    b = CommitBisect(COMMITS)
    with pytest.raises(ValueError, match="never weak"):
        b.record("c07", Measured(WEAK))
    with pytest.raises(ValueError, match="not one of the commits left"):
        b.record("c15", Measured(LIKE_BAD))            # the bad end is known bad
    with pytest.raises(ValueError):
        CommitBisect([])
    with pytest.raises(ValueError):
        CommitBisect(["a", "a"])


# ---------------------------------------------------------------- over config options

OPTIONS = {f"CONFIG_OPT{i:02d}": ("n", "y") for i in range(40)}


def predicate(bad_when, needs=None, skip_when=lambda s: False):
    """A predicate that records the sets it was given and checks each is closed."""
    seen: list[frozenset[str]] = []

    def judge(applied: frozenset[str]):
        assert applied not in seen, "a set was tried twice"
        for o in applied:
            assert set((needs or {}).get(o, ())) & set(OPTIONS) <= applied, f"{o} without needs"
        seen.append(applied)
        return SKIP if skip_when(applied) else LIKE_BAD if bad_when(applied) else LIKE_GOOD

    return judge, seen


def test_one_culprit_among_forty():
    judge, seen = predicate(lambda s: "CONFIG_OPT17" in s)
    r = bisect.bisect_config(OPTIONS, {}, judge)
    assert r.options == {"CONFIG_OPT17"} and r.exact and not r.together
    assert len(seen) <= 2 * math.ceil(math.log2(40))
    assert r.conclusion() == "the option is CONFIG_OPT17 (n -> y)"


def test_a_culprit_moves_with_the_option_it_needs():
    needs = {"CONFIG_OPT30": ["CONFIG_OPT02", "CONFIG_NOT_IN_DIFF"]}
    judge, seen = predicate(lambda s: "CONFIG_OPT30" in s, needs)
    r = bisect.bisect_config(OPTIONS, needs, judge)
    assert r.options == {"CONFIG_OPT30"} and r.applied == {"CONFIG_OPT30", "CONFIG_OPT02"}
    assert r.conclusion().endswith("with what it needs: CONFIG_OPT02")


def test_an_option_needed_by_the_culprit_and_guilty_itself_is_the_answer():
    needs = {"CONFIG_OPT30": ["CONFIG_OPT02"]}
    judge, _ = predicate(lambda s: "CONFIG_OPT02" in s, needs)
    assert bisect.bisect_config(OPTIONS, needs, judge).options == {"CONFIG_OPT02"}


def test_a_pair_that_acts_only_together_is_reported_as_a_set():
    judge, seen = predicate(lambda s: {"CONFIG_OPT03", "CONFIG_OPT31"} <= s)
    r = bisect.bisect_config(OPTIONS, {}, judge)
    assert r.options == {"CONFIG_OPT03", "CONFIG_OPT31"} and r.exact and r.together
    assert r.conclusion().startswith("these options act only together: CONFIG_OPT03 (n -> y)")
    assert len(seen) <= 4 * math.ceil(math.log2(40))


def test_three_that_act_only_together():
    trio = {"CONFIG_OPT01", "CONFIG_OPT20", "CONFIG_OPT39"}
    judge, _ = predicate(lambda s: trio <= s)
    assert bisect.bisect_config(OPTIONS, {}, judge).options == trio


def test_sets_that_skip_are_gone_around():
    """A set with OPT05 does not build: the search takes the other half, or splits
    another way."""
    judge, seen = predicate(lambda s: "CONFIG_OPT30" in s, skip_when=lambda s: "CONFIG_OPT05" in s)
    r = bisect.bisect_config(OPTIONS, {}, judge)
    assert r.options == {"CONFIG_OPT30"} and r.exact
    assert any("CONFIG_OPT05" in s for s in seen)


def test_skips_that_hide_the_answer_leave_a_set_that_holds_it():
    judge, _ = predicate(lambda s: "CONFIG_OPT30" in s,
                         skip_when=lambda s: "CONFIG_OPT30" in s and len(s) < 10)
    r = bisect.bisect_config(OPTIONS, {}, judge)
    assert not r.exact and "CONFIG_OPT30" in r.options and 1 < len(r.options) < 20
    assert r.conclusion().startswith("skips left a set, the answer is among:")


def test_a_half_that_skips_beside_a_good_one_is_searched_with_it():
    """OPT30 builds only with OPT00, which the needs map does not say: every set with
    OPT30 alone skips. The answer is the pair, said to be a set that holds it."""
    judge, _ = predicate(lambda s: "CONFIG_OPT30" in s,
                         skip_when=lambda s: "CONFIG_OPT30" in s and "CONFIG_OPT00" not in s)
    r = bisect.bisect_config(OPTIONS, {}, judge)
    assert r.options == {"CONFIG_OPT00", "CONFIG_OPT30"} and not r.exact and not r.together


def test_a_weak_answer_counts_as_a_skip_and_one_option_needs_no_step():
    r = bisect.bisect_config({"CONFIG_A": ("y", "n")}, {}, lambda s: pytest.fail("tested"))
    assert r.options == {"CONFIG_A"} and r.exact and not r.steps
    r = bisect.bisect_config({"CONFIG_A": ("y", "n"), "CONFIG_B": ("n", "y")}, {},
                             lambda s: WEAK)
    assert not r.exact and r.steps[0].outcome == SKIP
    with pytest.raises(UserError):
        bisect.bisect_config({}, {}, lambda s: LIKE_GOOD)


def test_closure_follows_needs_transitively_within_the_diff_and_survives_loops():
    needs = {"A": ["B"], "B": ["C", "X"], "C": ["A"]}
    assert bisect.closure(["A"], needs, {"A", "B", "C", "D"}) == {"A", "B", "C"}
    assert bisect.closure(["D"], needs, {"A", "B", "C", "D"}) == {"D"}
