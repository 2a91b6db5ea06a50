"""`lab bisect`'s pure core: where a commit, or a set of config options, falls between
a good end and a bad end, when the thing measured is noisy. No git, no builds, no
boots here: callers hand in samples, or callbacks that measure (lab.artifacts.gitrange
is the git side). Everything here is a function of what it is given.

A step's outcome is LIKE_GOOD, LIKE_BAD, WEAK (cannot be placed yet) or SKIP (cannot
be placed at all: the build failed, or it stayed weak, as `git bisect skip`).

Metrics (the boot is the unit, as in lab.analysis.stats)
---------------------------------------------------------
First both ends are measured, `Policy.end_boots` boots each, and `ends()` refuses
to go on unless `lab compare`'s verdict on them is "higher" or "lower" and the
difference is not within ±margin (the margin says how small a change is not worth a
bisection). Its sentence says why, in `lab compare`'s words.

A step is then set against each end with stats.difference, the verdict `lab
compare` gives, on one scale for all three (log unless a sample is 0 or less).
Say the bad end is higher than the good one ("toward" = higher, "away" = lower):

- LIKE_GOOD: the step is lower than the bad end, and not higher than the good end;
- LIKE_BAD: the step is higher than the good end, and not lower than the bad end;
- WEAK otherwise: the intervals are too wide to tell (more boots will), or the step
  differs from both ends, so lies between them (a change made of several commits:
  more boots will not place it, and it ends as a skip).

A step with one boot is always WEAK: its interval covers the noise within that
boot only (stats.difference gives no verdict on it). `measure_step()` boots a
step `Policy.boots` times, adds `Policy.more` boots while it is weak, and skips it
once it has `Policy.max_boots`. The defaults (4, +4, up to 16; 8 per end) keep a
placed step at 4 boots, a few seconds with the lab's sub-second boots, and let a
step near the noise take up to 16 before it is skipped.

Boots restored from one snapshot template are one boot (CellResult.boot_samples:
clones of a boot share its page placement and its translation cache). So a metric
taken after boot needs a cold boot (a template) per boot counted here; restores
from that template add samples within the boot, not boots.

Under --icount (`Policy.exact()`) the guest's instruction count is repeatable, so
one boot is one exact value (its median, so that a first sample that takes the page
faults does not count against it). Each end must give one value in every boot (else
the metric is not exact and the bisection refuses), and the two must differ. A
step equal to an end's value is that end's; a value that is neither is placed by
the nearer end (its note says so), and one exactly between them is a skip: more
samples would repeat it.

Pass/fail, and a flaky failure
------------------------------
The failure to find fails some runs only: the acceptance's planted one fails 1 run
in 3 on every commit from the culprit on, and never before it. So a step is bad when
it fails at least once in N runs, and good when all N pass (`Flaky`); runs stop at
the first failure, so a bad step costs about 3 runs, a good one N.

A bad step that passes all N runs is judged good by mistake with probability
(2/3)^N: 0.30 for N = 3, 0.039 for 8, 0.017 for 10, 0.0077 for N = 12, the default
(`runs_needed(1/3, 0.01)`: the smallest N below 1%). A 16-commit range takes 4
steps, at most 4 of them bad: a wrong answer at most 1 - (1 - 0.0077)^4 = 3.1% of
the time, before the culprit's check re-runs it. N = 3 would miss in 30% of bad
steps; the test suite bisects a planted 1-in-3 failure 200 times to show the
difference. A test that instead flakes on good commits and always fails on bad
ones wants the other rule, "bad only when it fails every time":
Flaky(runs=N, failures=N), which stops at the first pass.

Commits and config options
--------------------------
`CommitBisect` is git bisect's search as a state machine over a list of commits
(oldest first, good end excluded, bad end included); a step whose kernel image is
one already measured reuses that result. `bisect_config()` halves the options by
which two .configs differ, every set it tries closed under the options' needs,
down to the smallest set that moves the metric, a pair that acts only together
included.
"""

from __future__ import annotations

import enum
import functools
import math
import statistics
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.analysis import compare, stats
from lab.core import inputs
from lab.core.errors import UserError


class Outcome(enum.StrEnum):
    LIKE_GOOD = "good"
    LIKE_BAD = "bad"
    WEAK = "weak"
    SKIP = "skip"


LIKE_GOOD, LIKE_BAD, WEAK, SKIP = Outcome.LIKE_GOOD, Outcome.LIKE_BAD, Outcome.WEAK, Outcome.SKIP

Samples = tuple[tuple[float, ...], ...]


def frozen(boots: stats.Boots) -> Samples:
    """Boots' samples as tuples, boots without samples left out."""
    return tuple(tuple(float(x) for x in b) for b in boots if b)


# ---------------------------------------------------------------- bad input

def check_margin(margin: float) -> float:
    """--margin as a fraction: a finite number above 0 and at most inputs.MAX_MARGIN."""
    if isinstance(margin, bool) or not isinstance(margin, int | float):
        raise UserError(f"--margin {margin!r}: not a number")
    if problem := inputs.range_problem(margin, 0, inputs.MAX_MARGIN, above=True):
        raise UserError(f"--margin: {problem}")
    return float(margin)


def check_ends_named(good: str, bad: str) -> None:
    """--good and --bad must name two things (a git REV is also checked once resolved,
    lab.artifacts.gitrange)."""
    if good == bad:
        raise UserError(f"--good and --bad are both {good!r}: nothing to bisect")


def config_diff(good: Mapping[str, str], bad: Mapping[str, str],
                names: tuple[str, str] = ("--good", "--bad")) -> dict[str, tuple[str, str]]:
    """The options by which two .configs differ: name -> (good value, bad value), an
    option one of them does not set being "n". Identical configs are bad input."""
    diff = {o: (good.get(o, "n"), bad.get(o, "n")) for o in sorted({*good, *bad})}
    diff = {o: v for o, v in diff.items() if v[0] != v[1]}
    if not diff:
        raise UserError(f"{names[0]} and {names[1]} give the same .config: no option differs, "
                        "nothing to bisect")
    return diff


def check_metric(metric: str, recorded: Collection[str], where: str = "the scenario") -> None:
    """The metric must be one the scenario (or command) records."""
    if metric not in recorded:
        have = ", ".join(sorted(recorded)) or "none"
        raise UserError(f"--metric {metric!r}: {where} records no such metric; it records: "
                        f"{have}")


# ---------------------------------------------------------------- policy

@dataclass(frozen=True)
class Policy:
    """How many boots place a step (see the module's docstring)."""

    boots: int = 4                 # a step's first boots
    more: int = 4                  # added at a time while it is weak
    max_boots: int = 16            # then it is skipped
    end_boots: int = 8             # each end, interleaved, before anything else
    margin: float = stats.MARGIN
    icount: bool = False           # one exact value per boot

    def __post_init__(self) -> None:
        check_margin(self.margin)
        for name, lo in (("boots", 1), ("more", 0), ("max_boots", 1), ("end_boots", 1)):
            value = getattr(self, name)
            if problem := inputs.range_problem(value, lo, inputs.MAX_REPEAT):
                raise UserError(f"bisect {name}: {problem}")
        if self.max_boots < self.boots:
            raise UserError(f"bisect max_boots ({self.max_boots}) is below boots ({self.boots})")
        if self.more == 0 and self.max_boots > self.boots:
            raise UserError("bisect more: must be at least 1 when max_boots is above boots")

    @classmethod
    def exact(cls, margin: float = stats.MARGIN) -> Policy:
        """--icount: one boot per step; two per end, to see that the value repeats."""
        return cls(boots=1, more=0, max_boots=1, end_boots=2, margin=margin, icount=True)


# ---------------------------------------------------------------- the ends

@dataclass(frozen=True)
class Ends:
    """The two ends' samples, and what tells them apart."""

    good: Samples
    bad: Samples
    toward: str                    # the bad end against the good one: "higher" or "lower"
    sentence: str                  # lab compare's, or the exact values under --icount
    margin: float
    icount: bool
    diff: stats.Difference | None = None     # None under --icount

    def to_json(self) -> dict[str, Any]:
        return {"good": [list(b) for b in self.good], "bad": [list(b) for b in self.bad],
                "toward": self.toward, "sentence": self.sentence, "margin": self.margin,
                "icount": self.icount, "difference": self.diff.to_json() if self.diff else None}


def _exact_value(samples: Samples, what: str) -> float:
    """The one value an end gives under --icount (each boot's median)."""
    values = sorted({statistics.median(b) for b in samples})
    if len(values) != 1:
        shown = ", ".join(f"{v:g}" for v in values[:4])
        raise UserError(f"--icount: {what} gave different values in its boots ({shown}): "
                        "this metric is not exact under --icount; bisect without it")
    return values[0]


def _log_scale(*sides: Samples) -> bool:
    return all(x > 0 for side in sides for b in side for x in b)


@functools.lru_cache(maxsize=16)
def _estimate(samples: Samples, log: bool) -> stats.Estimate:
    """An end's estimate, made once per scale (every step is set against it)."""
    return stats.estimate(samples, log=log)


def ends(good: stats.Boots, bad: stats.Boots, policy: Policy = Policy()) -> Ends:
    """The two ends, or a UserError saying, in lab compare's words, why they do not
    differ enough to bisect."""
    g, b = frozen(good), frozen(bad)
    if not g or not b:
        raise UserError(f"the {'good' if not g else 'bad'} end recorded no samples of the "
                        "metric: nothing to bisect")
    if policy.icount:
        vg, vb = _exact_value(g, "the good end"), _exact_value(b, "the bad end")
        if vg == vb:
            raise UserError(f"the ends do not differ: both give exactly {vg:g} under --icount")
        toward = "higher" if vb > vg else "lower"
        return Ends(g, b, toward, f"the bad end gives exactly {vb:g}, the good end {vg:g} "
                    "(--icount: one sample per step)", policy.margin, True)
    log = _log_scale(g, b)
    d = stats.difference(_estimate(b, log), _estimate(g, log), policy.margin)
    said = compare.sentence("the bad end", "the good end", d)
    if d.verdict not in ("higher", "lower"):
        raise UserError(f"the ends do not differ: {said}")
    if d.within_margin:
        raise UserError(f"the ends differ by less than the margin of ±{policy.margin:.0%}, "
                        f"nothing worth bisecting (a smaller --margin bisects it): {said}")
    return Ends(g, b, d.verdict, said, policy.margin, False, d)


# ---------------------------------------------------------------- one step

_AWAY = {"higher": "lower", "lower": "higher"}


@dataclass(frozen=True)
class Placement:
    """Where one step's samples fall, and why, in words."""

    outcome: Outcome
    note: str
    vs_good: stats.Difference | None = None
    vs_bad: stats.Difference | None = None


def _place_exact(e: Ends, step: Samples) -> Placement:
    values = {statistics.median(b) for b in step}
    if len(values) != 1:
        return Placement(WEAK, "--icount: its boots gave different values")
    v = values.pop()
    vg, vb = statistics.median(e.good[0]), statistics.median(e.bad[0])
    if v in (vg, vb):
        return Placement(LIKE_GOOD if v == vg else LIKE_BAD,
                         f"exactly {v:g}, the {'good' if v == vg else 'bad'} end's value")
    if abs(v - vg) == abs(v - vb):
        return Placement(WEAK, f"exactly {v:g}, half way between the ends")
    nearer = LIKE_GOOD if abs(v - vg) < abs(v - vb) else LIKE_BAD
    return Placement(nearer, f"exactly {v:g}, neither end's value: nearer the {nearer} end")


def place(e: Ends, step: stats.Boots) -> Placement:
    """Whether a step's samples are like the good end, like the bad end, or cannot be
    placed (WEAK); see the module's docstring."""
    s = frozen(step)
    if not s:
        return Placement(WEAK, "no samples")
    if e.icount:
        return _place_exact(e, s)
    if len(s) < 2:
        return Placement(WEAK, "one boot: its interval covers the noise within a boot only")
    log = _log_scale(e.good, e.bad, s)
    mine = stats.estimate(s, log=log)
    vs_good = stats.difference(mine, _estimate(e.good, log), e.margin)
    vs_bad = stats.difference(mine, _estimate(e.bad, log), e.margin)
    toward, away = e.toward, _AWAY[e.toward]
    words = (f"{compare.sentence('the step', 'the good end', vs_good)}; "
             f"{compare.sentence('the step', 'the bad end', vs_bad)}")
    if vs_bad.verdict == away and vs_good.verdict != toward:
        return Placement(LIKE_GOOD, words, vs_good, vs_bad)
    if vs_good.verdict == toward and vs_bad.verdict != away:
        return Placement(LIKE_BAD, words, vs_good, vs_bad)
    if vs_good.verdict == toward and vs_bad.verdict == away:
        words = f"between the ends (part of the change only): {words}"
    return Placement(WEAK, words, vs_good, vs_bad)


@dataclass(frozen=True)
class Measured:
    """What measuring one step gave: its outcome, and the samples (per boot) or the
    runs (pass/fail) that decided it."""

    outcome: Outcome
    samples: Samples = ()
    runs: tuple[bool, ...] = ()          # pass/fail: each run passed?
    note: str = ""

    @property
    def boots(self) -> int:
        return len(self.samples) or len(self.runs)

    @property
    def median(self) -> float | None:
        """The median of the boots' medians (None: no samples)."""
        if not self.samples:
            return None
        return statistics.median(statistics.median(b) for b in self.samples)

    def to_json(self) -> dict[str, Any]:
        return {"outcome": str(self.outcome), "boots": self.boots, "median": self.median,
                "samples": [list(b) for b in self.samples], "runs": list(self.runs),
                "note": self.note}


def measure_step(e: Ends, more: Callable[[int], stats.Boots],
                 policy: Policy = Policy()) -> Measured:
    """Boot a step (more(n) boots it n more times and returns their samples) until it
    is placed, or skip it once it has policy.max_boots boots and is still weak."""
    samples: list[tuple[float, ...]] = []
    asked = 0
    want = policy.boots
    while True:
        samples += frozen(more(want))
        asked += want
        p = place(e, samples)
        if p.outcome != WEAK:
            return Measured(p.outcome, tuple(samples), note=p.note)
        if asked >= policy.max_boots:
            return Measured(SKIP, tuple(samples),
                            note=f"still weak after {asked} boots, skipped: {p.note}")
        want = min(policy.more, policy.max_boots - asked)


# ---------------------------------------------------------------- pass/fail

#: Runs that decide a pass/fail step: runs_needed(1/3, 0.01) (the module's docstring).
RUNS = 12


def runs_needed(fail_rate: float, miss: float) -> int:
    """The fewest runs N in which a step that fails a share fail_rate of its runs
    passes all N with probability below miss: (1 - fail_rate)^N < miss."""
    for name, value in (("fail rate", fail_rate), ("miss", miss)):
        if problem := inputs.range_problem(value, 0, 1, above=True):
            raise UserError(f"{name}: {problem}")
    if fail_rate == 1:
        return 1
    n = math.ceil(math.log(miss) / math.log1p(-fail_rate))
    return n + 1 if (1 - fail_rate) ** n >= miss else n


@dataclass(frozen=True)
class Flaky:
    """A pass/fail step is bad once it fails `failures` times, good once it has
    passed more than runs - failures times (so it never takes more than `runs`)."""

    runs: int = RUNS
    failures: int = 1

    def __post_init__(self) -> None:
        if problem := inputs.range_problem(self.runs, 1, inputs.MAX_REPEAT):
            raise UserError(f"bisect runs: {problem}")
        if problem := inputs.range_problem(self.failures, 1, self.runs):
            raise UserError(f"bisect failures: {problem}")

    def miss(self, fail_rate: float) -> float:
        """The chance that a bad step failing a share fail_rate of its runs is judged
        good: fewer than `failures` failures in `runs` runs (binomial)."""
        return sum(math.comb(self.runs, k) * fail_rate ** k * (1 - fail_rate) ** (self.runs - k)
                   for k in range(self.failures))


def judge_runs(run: Callable[[], bool | None], rule: Flaky = Flaky()) -> Measured:
    """Run a step (run() -> passed, or None when it could not be tested) until rule
    decides it; a run that cannot be tested makes the step a skip."""
    results: list[bool] = []
    while True:
        passed = run()
        if passed is None:
            return Measured(SKIP, runs=tuple(results), note="a run could not be tested")
        results.append(bool(passed))
        fails = results.count(False)
        if fails >= rule.failures:
            return Measured(LIKE_BAD, runs=tuple(results),
                            note=f"failed {fails} of {len(results)} runs")
        if len(results) - fails > rule.runs - rule.failures:
            return Measured(LIKE_GOOD, runs=tuple(results),
                            note=f"passed {len(results) - fails} of {len(results)} runs")


def passfail_ends(good: Measured, bad: Measured, rule: Flaky = Flaky()) -> None:
    """The ends of a pass/fail bisection, judged by judge_runs: the good end must be
    good and the bad end bad, else UserError saying which is not."""
    if good.outcome != LIKE_GOOD:
        raise UserError(f"the good end is not good ({good.note or good.outcome}): a test "
                        "that fails there says nothing of the change (a test that flakes "
                        f"everywhere wants failures={rule.runs}: bad when every run fails)")
    if bad.outcome != LIKE_BAD:
        raise UserError(f"the bad end is not bad ({bad.note or bad.outcome}): a failure "
                        f"rarer than 1 run in {rule.runs} is not found this way")


# ---------------------------------------------------------------- checking the culprit

@dataclass(frozen=True)
class Confirmation:
    """The culprit's check: against its parent (held: it is like bad and its parent
    like good, with more boots), and the bad end with it reverted (held: like good;
    None: the revert did not apply, or was not tried)."""

    culprit: Placement
    parent: Placement
    reverted: Placement | None

    @property
    def parent_held(self) -> bool:
        return self.culprit.outcome == LIKE_BAD and self.parent.outcome == LIKE_GOOD

    @property
    def revert_held(self) -> bool | None:
        return None if self.reverted is None else self.reverted.outcome == LIKE_GOOD

    @property
    def confirmed(self) -> bool:
        return self.parent_held and self.revert_held is not False

    def to_json(self) -> dict[str, Any]:
        return {"parent_held": self.parent_held, "revert_held": self.revert_held,
                "confirmed": self.confirmed, "culprit": self.culprit.note,
                "parent": self.parent.note,
                "reverted": self.reverted.note if self.reverted else None}


def confirm(e: Ends, culprit: stats.Boots, parent: stats.Boots,
            reverted: stats.Boots | None = None) -> Confirmation:
    """Check a culprit found by the bisection on new boots (more than a step had)."""
    return Confirmation(place(e, culprit), place(e, parent),
                        None if reverted is None else place(e, reverted))


# ---------------------------------------------------------------- over commits

@dataclass(frozen=True)
class StepRecord:
    """One row of the steps table."""

    commit: str
    measured: Measured
    image: str | None = None         # the kernel image's key (None: the build failed)
    reused: str | None = None        # the commit whose result this is, same image

    @property
    def outcome(self) -> Outcome:
        return self.measured.outcome

    def to_json(self) -> dict[str, Any]:
        return {"commit": self.commit, "image": self.image, "reused_from": self.reused,
                **self.measured.to_json()}


class CommitBisect:
    """git bisect's search over commits (oldest first, the good end excluded, the bad
    end included and known bad), as a state machine: next() names the commit to test,
    record() takes its outcome, until next() is None. Each step halves the commits
    that can still be the first bad one; a skipped commit is passed over for the one
    nearest the middle that is not skipped. When only skipped commits are left
    between the last good and the first bad, the answer is that set (candidates).

    images seeds the image -> (commit, outcome) map with the ends' kernel images, so
    that a step whose image is one of theirs (a comment-only commit) is not measured.
    """

    def __init__(self, commits: Sequence[str], good: str = "",
                 images: Mapping[str, tuple[str, Outcome]] | None = None):
        if not commits:
            raise ValueError("no commits to bisect")
        if len(set(commits)) != len(commits):
            raise ValueError("a commit appears twice in the range")
        self.commits = tuple(commits)
        self.good = good
        self._index = {c: i for i, c in enumerate(self.commits)}
        self._lo, self._hi = -1, len(self.commits) - 1    # last good, first bad
        self._skipped: set[int] = set()
        self.images: dict[str, tuple[str, Outcome]] = dict(images or {})
        self.steps: list[StepRecord] = []
        self.log = [f"git bisect start {self.commits[-1]} {good}".rstrip()]

    def _open(self) -> list[int]:
        return [i for i in range(self._lo + 1, self._hi) if i not in self._skipped]

    def next(self) -> str | None:
        """The commit to test next: the one nearest the middle of those that can still
        be the first bad one, skipped ones left out (None: the search is over)."""
        middle = (self._lo + self._hi) / 2
        left = self._open()
        return self.commits[min(left, key=lambda i: (abs(i - middle), i))] if left else None

    def record(self, commit: str, measured: Measured, image: str | None = None,
               reused: str | None = None) -> StepRecord:
        """A tested commit's outcome: LIKE_GOOD, LIKE_BAD or SKIP."""
        i = self._index.get(commit)
        if i is None or i not in self._open():
            raise ValueError(f"{commit} is not one of the commits left to test")
        if measured.outcome == WEAK:
            raise ValueError("a step is recorded once placed or skipped, never weak")
        if measured.outcome == LIKE_GOOD:
            self._lo = i
        elif measured.outcome == LIKE_BAD:
            self._hi = i
        else:
            self._skipped.add(i)
        step = StepRecord(commit, measured, image, reused)
        self.steps.append(step)
        if reused:
            self.log.append(f"# {commit}: the same kernel image as {reused}, whose result "
                            "is reused")
        elif measured.note:
            self.log.append(f"# {commit}: {measured.note}")
        self.log.append(f"git bisect {measured.outcome} {commit}")
        if image is not None:
            self.images.setdefault(image, (commit, measured.outcome))
        return step

    def test(self, commit: str, image: Callable[[str], str | None],
             measure: Callable[[str], Measured]) -> StepRecord:
        """One step: image(commit) builds the commit and names its kernel image (None:
        the build failed, a skip); a known image reuses its result; else measure."""
        key = image(commit)
        if key is None:
            return self.record(commit, Measured(SKIP, note="the build failed"))
        if key in self.images:
            first, outcome = self.images[key]
            return self.record(commit, Measured(outcome, note=f"reused from {first}"), key,
                               reused=first)
        return self.record(commit, measure(commit), key)

    @property
    def done(self) -> bool:
        return not self._open()

    @property
    def candidates(self) -> tuple[str, ...]:
        """The commits that can still be the first bad one."""
        return self.commits[self._lo + 1:self._hi + 1]

    @property
    def culprit(self) -> str | None:
        """The first bad commit, once the search is over and skips left no doubt."""
        left = self.candidates
        return left[0] if self.done and len(left) == 1 else None

    def conclusion(self) -> str:
        """The search's answer in words (also the git log's last line)."""
        if not self.done:
            return f"{len(self.candidates)} commits left to test"
        if self.culprit:
            return f"the first bad commit is {self.culprit}"
        return ("only skipped commits are left; the first bad commit is one of: "
                + " ".join(self.candidates))

    def to_json(self) -> dict[str, Any]:
        return {"good": self.good, "bad": self.commits[-1], "commits": len(self.commits),
                "culprit": self.culprit, "candidates": list(self.candidates),
                "conclusion": self.conclusion(), "steps": [s.to_json() for s in self.steps],
                "git_log": self.git_log()}

    def git_log(self) -> list[str]:
        """What `git bisect log` would say, for `git bisect replay` by hand."""
        return [*self.log, f"# {self.conclusion()}"]


def bisect_commits(commits: Sequence[str], image: Callable[[str], str | None],
                   measure: Callable[[str], Measured], good: str = "",
                   images: Mapping[str, tuple[str, Outcome]] | None = None) -> CommitBisect:
    """Run CommitBisect to its end (CommitBisect.test says what the callbacks do)."""
    b = CommitBisect(commits, good, images)
    while (commit := b.next()) is not None:
        b.test(commit, image, measure)
    return b


# ---------------------------------------------------------------- over config options

@dataclass(frozen=True)
class ConfigStep:
    applied: frozenset[str]         # options taken from the bad config
    outcome: Outcome

    def to_json(self) -> dict[str, Any]:
        return {"applied": sorted(self.applied), "outcome": str(self.outcome)}


@dataclass(frozen=True)
class ConfigResult:
    """The smallest set of options found that moves the metric (or breaks the test),
    with the options they need, and each step. exact is False when skips left a
    larger set than needed: the answer is then somewhere in `options`."""

    options: frozenset[str]
    applied: frozenset[str]         # options with everything they need
    exact: bool
    steps: tuple[ConfigStep, ...]
    diff: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    #: What each option needs (moves with it): bisect_config's `needs`.
    needs: Mapping[str, Collection[str]] = field(default_factory=dict)

    @property
    def together(self) -> bool:
        """Several options that act only together (not one and its needs)."""
        return self.exact and len(self.options) > 1

    def conclusion(self) -> str:
        def shown(o: str) -> str:
            g, b = self.diff.get(o, ("?", "?"))
            return f"{o} ({g} -> {b})"
        names = ", ".join(shown(o) for o in sorted(self.options))
        needs = sorted(self.applied - self.options)
        tail = f", with what it needs: {', '.join(needs)}" if needs else ""
        if not self.exact:
            return f"skips left a set, the answer is among: {names}{tail}"
        if self.together:
            return f"these options act only together: {names}{tail}"
        return f"the option is {names}{tail}"

    def to_json(self) -> dict[str, Any]:
        return {"options": sorted(self.options), "applied": sorted(self.applied),
                "exact": self.exact, "together": self.together,
                "conclusion": self.conclusion(), "steps": [s.to_json() for s in self.steps],
                "needs": {o: sorted(n) for o, n in sorted(self.needs.items()) if n}}


def closure(options: Collection[str], needs: Mapping[str, Collection[str]],
            within: Collection[str]) -> frozenset[str]:
    """options with everything they need, transitively, among `within` (an option
    outside it has the same value in both configs, so it never moves)."""
    out, todo = set(options), list(options)
    while todo:
        for dep in needs.get(todo.pop(), ()):
            if dep in within and dep not in out:
                out.add(dep)
                todo.append(dep)
    return frozenset(out)


def _order(options: Collection[str], needs: Mapping[str, Collection[str]]) -> list[str]:
    """The options, each group linked by needs together, and within a group an option
    after what it needs (fewer needs first): a half then tends to hold an option's
    needs with it, and the first half tried holds the needed option alone."""
    group = {o: o for o in options}

    def root(o: str) -> str:
        while group[o] != o:
            o = group[o]
        return o

    for o in options:
        for dep in needs.get(o, ()):
            if dep in group:
                a, b = sorted((root(o), root(dep)))
                group[b] = a
    size = {o: len(closure([o], needs, group)) for o in options}
    return sorted(options, key=lambda o: (root(o), size[o], o))


class _ConfigSearch:
    def __init__(self, diff: Mapping[str, tuple[str, str]],
                 needs: Mapping[str, Collection[str]],
                 predicate: Callable[[frozenset[str]], Outcome]):
        self.within = frozenset(diff)
        self.needs = needs
        self.predicate = predicate
        self.tried: dict[frozenset[str], Outcome] = {}
        self.steps: list[ConfigStep] = []
        self.exact = True

    def test(self, options: Collection[str]) -> Outcome:
        """The predicate on options and their needs, each set tried once."""
        applied = closure(options, self.needs, self.within)
        if applied not in self.tried:
            outcome = self.predicate(applied)
            self.tried[applied] = outcome if outcome in (LIKE_GOOD, LIKE_BAD) else SKIP
            self.steps.append(ConfigStep(applied, self.tried[applied]))
        return self.tried[applied]

    @staticmethod
    def splits(cands: tuple[str, ...]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """Two ways to halve: in order (groups kept together), then alternating."""
        mid = len(cands) // 2
        ways = [(cands[:mid], cands[mid:])]
        if len(cands) > 2:
            ways.append((cands[0::2], cands[1::2]))
        return ways

    def narrow(self, cands: tuple[str, ...], base: frozenset[str]) -> frozenset[str]:
        """A smallest part M of cands with base + M bad, given that base + cands is bad
        and base is good."""
        while len(cands) > 1:
            halves = None           # a half that skipped, and the other, good
            for a, b in self.splits(cands):
                ra = self.test(base | set(a))
                if ra == LIKE_BAD:
                    cands = a
                    break
                rb = self.test(base | set(b))
                if rb == LIKE_BAD:
                    cands = b
                    break
                if ra == rb == LIKE_GOOD:
                    return self.together(a, b, base)
                halves = halves or ((a, b) if rb == LIKE_GOOD else (b, a) if ra == LIKE_GOOD
                                    else None)
            else:
                if halves:          # the good half's other is needed, with it or alone
                    return self.together(*halves, base)
                self.exact = False  # skips on every way to halve: cands it is
                return frozenset(cands)
        return frozenset(cands)

    def together(self, a: tuple[str, ...], b: tuple[str, ...],
                 base: frozenset[str]) -> frozenset[str]:
        """base + b is good, base + a + b bad: the part of a needed given all of b, then
        (unless that part moves it alone) the part of b needed given it. Both halves
        good: a pair, or more, that acts only together."""
        part_a = self.narrow(a, base | set(b))
        alone = self.test(base | part_a)
        if alone == LIKE_BAD:
            return self.narrow(tuple(sorted(part_a)), base)
        if alone == SKIP:           # part_a's own effect unknown: the set holds the answer
            self.exact = False
        return part_a | self.narrow(b, base | part_a)


def bisect_config(diff: Mapping[str, tuple[str, str]], needs: Mapping[str, Collection[str]],
                  predicate: Callable[[frozenset[str]], Outcome]) -> ConfigResult:
    """The smallest set of options (from config_diff) that moves the metric.

    predicate(applied) builds the good config with the options in applied taken from
    the bad one and says LIKE_GOOD, LIKE_BAD or SKIP (the kernel refused a value, the
    build failed, the step stayed weak). needs maps an option to the options it needs
    (its `depends on`), which always move with it: every set handed to predicate is
    closed under needs. The ends (no option applied: good; all: bad) are known, not
    tested. When neither half of a set moves the metric but both together do, the
    search finds the part of each that is needed: the answer can be a pair.
    """
    if not diff:
        raise UserError("no option differs between the two configs: nothing to bisect")
    search = _ConfigSearch(diff, needs, predicate)
    found = search.narrow(tuple(_order(diff, needs)), frozenset())
    return ConfigResult(found, closure(found, needs, search.within), search.exact,
                        tuple(search.steps), dict(diff), dict(needs))
