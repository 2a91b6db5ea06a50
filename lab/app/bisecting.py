"""lab bisect's two searches, driving builds and boots for lab.analysis.bisect.

Over commits: each step built in the lab's own worktree of the user's tree
(lab.artifacts.gitrange), booted cold as one cell of a scenario
(lab.run.runner.run_cell), and placed against the two ends. Over config options
(--config): each step the good variant with a fragment of the options taken from the
bad one, always under one variant name, so one build tree is reconfigured in place.

The ends are measured first, their boots alternating good, bad, good, ... so that
the host's drift falls on both. Every step's kernel is built incrementally in the
one worktree; a step whose kernel image has the same bytes as one already measured
(a comment-only commit) reuses that result, and one whose build fails is a skip.
Once one commit is left, it is checked: against its parent with the ends' number of
boots, and the bad end with it reverted (where the revert applies cleanly), which
must be like the good end.

Every boot is cold: clones of one snapshot template are one boot (the unit of
replication, lab.analysis.stats), so restores would add samples but no evidence.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lab.analysis import bisect, stats
from lab.arches import get_arch
from lab.artifacts import build, gitrange, kconfig
from lab.core.errors import BuildError, UserError
from lab.core.model import ArchProfile, Cell, KernelBuild, KernelVariant, Scenario, Selector
from lab.core.results import CellResult, Status
from lab.host import cache
from lab.run import runner


@dataclass(frozen=True)
class Target:
    """What a step runs: one cell of a scenario, and the metric it is judged by (None:
    pass or fail)."""

    scenario: Scenario
    cell: Cell
    metric: str | None


@dataclass
class Step:
    """One built commit (or the bad end with the culprit reverted) and what its boots
    said."""

    label: str                       # a commit's sha, or "revert"
    subject: str
    kind: str                        # "good end", "bad end", "step", "parent", "culprit", ...
    compiled: int | None = None      # objects kbuild compiled for it
    image: str | None = None         # its kernel image's sha256 (None: the build failed)
    measured: bisect.Measured | None = None
    reused: str | None = None
    error: str = ""                  # why it was not built

    @property
    def samples(self) -> tuple[tuple[float, ...], ...]:
        return self.measured.samples if self.measured else ()

    def to_json(self) -> dict[str, Any]:
        return {"commit": self.label, "subject": self.subject, "kind": self.kind,
                "compiled": self.compiled, "image": self.image, "reused": self.reused,
                **(self.measured.to_json() if self.measured else
                   {"outcome": "skip", "note": self.error or "not measured"})}


@dataclass
class Bisection:
    """One lab bisect over commits: its worktree, target, policy and the steps so far."""

    rng: gitrange.Range | None          # over commits (None: --config)
    wt: gitrange.Worktree | None
    target: Target
    out: Path
    policy: bisect.Policy
    rule: bisect.Flaky
    progress_for: Callable
    event: runner.Event
    opts: dict[str, Any] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    _runs: int = 0

    # -- building

    def build(self, commit: str, kind: str, revert: str | None = None) -> tuple[
            Step, KernelBuild | None]:
        """commit built in the worktree (with revert reverted on it, when given)."""
        assert self.rng and self.wt
        subject = self.rng.subject(commit)
        if revert:
            if not self.wt.revert_applies(revert, commit):
                return Step("revert", f"revert {revert[:12]}", kind,
                            error="the revert does not apply cleanly"), None
            subject = f"{commit[:12]} with {revert[:12]} reverted"
        else:
            self.wt.checkout(commit)
        step = Step("revert" if revert else commit, subject, kind)
        cell = self.target.cell
        assert cell.variant is not None
        return step, self.built(step, get_arch(cell.arch), cell.variant, self.wt.path,
                                f"{cell.arch}/{cell.variant.name} at {step.label[:12]}")

    def built(self, step: Step, arch: ArchProfile, variant: KernelVariant,
              source: Path | None, label: str) -> KernelBuild | None:
        """variant built from source with the target's guest image, step's compiled
        objects and image hash filled in; None, and step.error, when the build failed
        or (a UserError) an option did not take."""
        cell = self.target.cell
        assert cell.variant is not None
        try:
            with self.progress_for(label) as p:
                kbuild = build.ensure_kernel(arch, variant, source=source, progress=p)
                (kbuild,) = runner.guest_images([(self.target.scenario, cell)],
                                                {(cell.arch, cell.variant): kbuild},
                                                self.progress_for)
        except (BuildError, UserError) as exc:
            step.error = " ".join(str(exc).split())[:500] or "the build failed"
            return None
        step.compiled = build.kernel_meta(kbuild).get("compiled")
        step.image = cache.file_sha(kbuild.image)
        return kbuild

    # -- booting

    def boots(self, kbuild: KernelBuild, n: int, label: str) -> CellResult:
        """n cold boots of the target's cell on kbuild; results under steps/."""
        self._runs += 1
        opts = runner.Options(out=self.out / "steps" / f"{self._runs:03d}-{label[:12]}",
                              repeat=n, cold=True, **self.opts)
        return runner.run_cell(self.target.scenario, self.target.cell, kbuild, opts,
                               self.event)

    def samples(self, kbuild: KernelBuild, n: int, label: str) -> stats.Boots:
        assert self.target.metric
        return self.boots(kbuild, n, label).boot_samples(self.target.metric)

    def one_run(self, kbuild: KernelBuild, label: str) -> bool | None:
        """One cold boot: passed (True), failed (False: a step failed, or the kernel
        oopsed or panicked), or None (the lab could not run it)."""
        boots = self.boots(kbuild, 1, label).boots
        if not boots:
            return None
        boot = boots[0]
        if boot.status is Status.PASS:
            return True
        if boot.status is Status.FAIL or boot.faults:
            return False
        return None

    def measure(self, e: bisect.Ends | None, kbuild: KernelBuild, label: str
                ) -> bisect.Measured:
        if e is None:
            return bisect.judge_runs(lambda: self.one_run(kbuild, label), self.rule)
        return bisect.measure_step(e, lambda n: self.samples(kbuild, n, label), self.policy)

    def alternate(self, a: KernelBuild, b: KernelBuild, boots: int,
                  labels: tuple[str, str]) -> tuple[stats.Boots, stats.Boots]:
        """boots boots of each, alternating a, b, a, b: the host's drift falls on both."""
        sa: list[list[float]] = []
        sb: list[list[float]] = []
        for _ in range(boots):
            sa += [list(x) for x in self.samples(a, 1, labels[0])]
            sb += [list(x) for x in self.samples(b, 1, labels[1])]
        return sa, sb


# ---------------------------------------------------------------- the search

@dataclass
class Found:
    """What lab bisect found, and whether the checks held."""

    search: bisect.CommitBisect | None          # None: --config
    ends: bisect.Ends | None
    confirmation: dict[str, Any]
    steps: list[Step]

    @property
    def culprit(self) -> str | None:
        return self.search.culprit if self.search else None

    @property
    def confirmed(self) -> bool:
        return bool(self.culprit) and bool(self.confirmation.get("confirmed"))

    def to_json(self) -> dict[str, Any]:
        return {"search": self.search.to_json() if self.search else None,
                "culprit": self.culprit,
                "confirmed": self.confirmed, "confirmation": self.confirmation,
                "ends": self.ends.to_json() if self.ends else None,
                "steps": [s.to_json() for s in self.steps]}


def run(b: Bisection, on_step: Callable[[Step], None]) -> Found:
    """The whole bisection: ends, search, checks. on_step hears of each step as it ends
    (the command prints it, and rewrites bisect.json)."""
    assert b.rng
    good, bad = b.rng.good, b.rng.commits[-1].sha
    gstep, gbuild = b.build(good, "good end")
    bstep, bbuild = b.build(bad, "bad end")
    if gbuild is None or bbuild is None:
        end = gstep if gbuild is None else bstep
        raise UserError(f"the {end.kind} does not build, nothing to bisect: {end.error}")
    e = _judge_ends(b, gstep, gbuild, bstep, bbuild)
    for s in (gstep, bstep):
        b.steps.append(s)
        on_step(s)
    images = {k: v for k, v in ((gstep.image, (good, bisect.LIKE_GOOD)),
                                (bstep.image, (bad, bisect.LIKE_BAD))) if k}
    search = bisect.CommitBisect(b.rng.shas, good, images)
    current: dict[str, Any] = {}

    def image(commit: str) -> str | None:
        step, kbuild = b.build(commit, "step")
        current.update(step=step, kbuild=kbuild)
        return step.image

    built = EndsBuilt(gbuild, bbuild, {k: v[1] for k, v in images.items()})

    def measure(commit: str) -> bisect.Measured:
        return place(b, e, built, current["step"], current["kbuild"], commit)

    while (commit := search.next()) is not None:
        record = search.test(commit, image, measure)
        step = current["step"]
        step.measured, step.reused = record.measured, record.reused
        b.steps.append(step)
        on_step(step)
    confirmation = check(b, search, e, built, on_step) if search.culprit else {}
    return Found(search, e, confirmation, b.steps)


@dataclass(frozen=True)
class EndsBuilt:
    """The two ends' kernels, and their images' hashes."""

    good: KernelBuild
    bad: KernelBuild
    images: dict[str, bisect.Outcome]


def check(b: Bisection, search: bisect.CommitBisect, e: bisect.Ends | None, ends: EndsBuilt,
          on_step: Callable[[Step], None]) -> dict[str, Any]:
    """The culprit must be like bad, its parent like good, and the bad end with the
    culprit reverted (where that applies cleanly) like good.

    A kernel image byte for byte an end's takes that end's verdict: nothing of the
    kernel differs. The rest are judged on new evidence: with a metric, booted
    alternately with both ends again (good, bad, then each in turn, round after
    round) and placed against those fresh ends, so that the host's drift since the
    search began cannot pass for a difference, with rounds added while one is weak,
    as a step gets boots; pass/fail, run as a step is."""
    culprit = search.culprit
    assert culprit is not None and b.rng and b.wt
    parent = b.rng.parent(culprit)
    bad = b.rng.commits[-1].sha
    cstep, cbuild = b.build(culprit, "culprit")
    pstep, pbuild = b.build(parent, "culprit's parent")
    rstep, rbuild = b.build(bad, "bad end, culprit reverted", revert=culprit)
    checked: dict[str, Any] = {"parent": parent,
                               "revert": "applied" if rbuild else "did not apply cleanly"}
    if cbuild is None or pbuild is None:
        return checked | {"confirmed": False,
                          "why": "the culprit or its parent no longer builds"}
    judged = [(cstep, cbuild), (pstep, pbuild)] + ([(rstep, rbuild)] if rbuild else [])
    for step, _ in judged:
        if step.image in ends.images:
            outcome = ends.images[step.image]
            end = "good" if outcome == bisect.LIKE_GOOD else "bad"
            step.measured = bisect.Measured(outcome, note=f"the {end} end's kernel image, "
                                            "byte for byte: its verdict, without a boot")
    left = [(step, kbuild) for step, kbuild in judged if step.measured is None]
    if left and e is not None:
        why = _remeasure(b, ends, left)
        if why:
            return checked | {"confirmed": False, "why": why}
    for step, kbuild in left if e is None else []:
        step.measured = b.measure(None, kbuild, step.label)
    for s in (cstep, pstep, rstep):
        b.steps.append(s)
        on_step(s)
    b.wt.checkout(bad)
    placed = {s.kind: bisect.Placement(s.measured.outcome, s.measured.note)
              for s in (cstep, pstep, rstep) if s.measured}
    if cstep.kind not in placed or pstep.kind not in placed:
        return checked | {"confirmed": False, "why": "the culprit or its parent could not "
                          "be judged"}
    held = bisect.Confirmation(placed[cstep.kind], placed[pstep.kind], placed.get(rstep.kind))
    return checked | held.to_json()


def place(b: Bisection, e: bisect.Ends | None, ends: EndsBuilt, step: Step,
          kbuild: KernelBuild, label: str) -> bisect.Measured:
    """A search step measured against the ends. With a metric, one still weak against
    the ends measured when the search began is booted again in turn with both ends and
    placed against those, as the checks are: the host may have drifted since (for
    minutes, on a shared machine), and drift must not pass for a step between the
    ends. Still weak then, it is weak (a skip)."""
    first = b.measure(e, kbuild, label)
    if e is None or first.outcome is not bisect.SKIP or not first.samples:
        return first                  # placed, pass/fail, or no boot gave a sample
    why = _remeasure(b, ends, [(step, kbuild)])
    if why or step.measured is None:
        return replace(first, note=f"{first.note}; {why}" if why else first.note)
    again = step.measured
    return replace(again, outcome=bisect.SKIP if again.outcome is bisect.WEAK else again.outcome,
                   note=f"{first.note}; booted again in turn with both ends, "
                        f"{again.boots} boots: {again.note}")


def _remeasure(b: Bisection, ends: EndsBuilt, left: list[tuple[Step, KernelBuild]]) -> str:
    """left booted in turn with both ends, policy.end_boots rounds, and placed against
    those fresh ends; while one is still weak, policy.more rounds more, up to
    policy.max_boots (as a step gets). Why not, when the ends no longer differ."""
    runs = [("good", ends.good), ("bad", ends.bad), *((s.label, k) for s, k in left)]
    samples: dict[str, list[list[float]]] = {label: [] for label, _ in runs}
    rounds, want = 0, b.policy.end_boots
    while True:
        for _ in range(want):
            for label, kbuild in runs:
                samples[label] += [list(x) for x in b.samples(kbuild, 1, label)]
        rounds += want
        try:
            fresh = bisect.ends(samples["good"], samples["bad"], b.policy)
        except UserError as exc:
            return f"measured again beside the culprit, the ends no longer differ: {exc}"
        placed = {s.label: bisect.place(fresh, samples[s.label]) for s, _ in left}
        weak = any(p.outcome == bisect.WEAK for p in placed.values())
        if not weak or rounds >= max(b.policy.max_boots, b.policy.end_boots):
            break
        want = min(b.policy.more, b.policy.max_boots - rounds)
    for step, _ in left:
        p = placed[step.label]
        step.measured = bisect.Measured(p.outcome, bisect.frozen(samples[step.label]),
                                        note=p.note)
    return ""


def reproduce_script(tree: Path, culprit: str, target: Target, scenario_path: Path,
                     boots: int) -> str:
    """reproduce.sh: the culprit built from a worktree of its own, and the target's cell
    booted cold, by hand."""
    cell = target.cell
    assert cell.variant is not None
    q = shlex.quote
    wt = f"/tmp/lab-reproduce-{culprit[:12]}"
    return "\n".join([
        "#!/bin/sh",
        f"# lab bisect's culprit, {culprit}, built and run as the bisection ran it.",
        "set -eu",
        f"git -C {q(str(tree))} worktree add --detach {q(wt)} {culprit}",
        f"lab run {q(str(scenario_path))} --kernel-src {q(wt)} --cold --repeat {boots} "
        f"--only arch={cell.arch} --only kernel={q(cell.variant.name)}"
        + (f" --only cmdline={q(cell.cmdline)}" if cell.cmdline else ""),
        "",
    ])


def selector(arch: str, kernel: str) -> Selector:
    return Selector((("arch", (arch,)), ("kernel", (kernel,))))


def write_json(out: Path, data: dict[str, Any]) -> None:
    cache.write_json(out / "bisect.json", data)


# ---------------------------------------------------------------- over config options

def requested(arch: ArchProfile, variant: KernelVariant) -> dict[str, str]:
    """The options a variant's fragments (with base and arch) ask for: CONFIG_X -> value."""
    wanted = kconfig.effective_requests(kconfig.fragments_for(arch, variant))
    return {f"CONFIG_{name}": req.value for name, req in wanted.items()}


def asked_diff(arch: ArchProfile, good: KernelVariant, bad: KernelVariant
               ) -> dict[str, tuple[str, str]]:
    """What the two variants ask for differently: identical requests are bad input,
    found before anything is built."""
    return bisect.config_diff(requested(arch, good), requested(arch, bad))


def final_diff(asked: dict[str, tuple[str, str]], good: KernelBuild, bad: KernelBuild
               ) -> dict[str, tuple[str, str]]:
    """The options asked for differently, with their values in the two final .configs
    (the options Kconfig derives from them move with them, and are not bisected)."""
    g, b = (kconfig.parse_config(k.config) for k in (good, bad))
    diff = {o: (g.get(o.removeprefix("CONFIG_"), "n"), b.get(o.removeprefix("CONFIG_"), "n"))
            for o in asked}
    return {o: v for o, v in diff.items() if v[0] != v[1]}


def step_fragment(path: Path, diff: dict[str, tuple[str, str]], applied: frozenset[str]) -> None:
    """The options applied, at their bad values, as a fragment over the good variant's."""
    lines = [f"# CONFIG_{o.removeprefix('CONFIG_')} is not set" if diff[o][1] == "n"
             else f"{o}={diff[o][1]}" for o in sorted(applied)]
    path.write_text("# lab bisect --config: this step's options, from --bad\n"
                    + "".join(line + "\n" for line in lines))


@dataclass
class ConfigBisection:
    """lab bisect --config: every step configured over the good variant in one build
    tree (one variant name, reconfigured in place), so kbuild compiles what the
    changed options touch."""

    b: Bisection
    arch: ArchProfile
    good: KernelVariant
    source: Path | None
    fragment: Path

    def variant(self) -> KernelVariant:
        return KernelVariant(f"{self.good.name}-bisect", (*self.good.fragments, self.fragment))

    def build(self, variant: KernelVariant, kind: str, label: str) -> tuple[Step,
                                                                            KernelBuild | None]:
        step = Step(label, "", kind)
        return step, self.b.built(step, self.arch, variant, self.source,
                                  f"{self.arch.name}/{label[:40]}")


def run_config(c: ConfigBisection, bad: KernelVariant, asked: dict[str, tuple[str, str]],
               on_step: Callable[[Step], None],
               on_needs: Callable[[dict[str, frozenset[str]]], None] = lambda needs: None,
               ) -> tuple[bisect.ConfigResult, bisect.Ends | None]:
    """The ends, what each option they differ by needs (asked of kbuild), then
    bisect.bisect_config over those options, each moved with what it needs."""
    b = c.b
    gstep, gbuild = c.build(c.good, "good end", c.good.name)
    bstep, bbuild = c.build(bad, "bad end", bad.name)
    gstep.subject, bstep.subject = (" ".join(str(f) for f in v.fragments) for v in (c.good, bad))
    if gbuild is None or bbuild is None:
        end = gstep if gbuild is None else bstep
        raise UserError(f"the {end.kind} does not build, nothing to bisect: {end.error}")
    diff = final_diff(asked, gbuild, bbuild)
    if not diff:
        raise UserError("the two final .configs agree on every option the variants ask for "
                        "differently: nothing to bisect")
    e = _judge_ends(b, gstep, gbuild, bstep, bbuild)
    for s in (gstep, bstep):
        b.steps.append(s)
        on_step(s)
    scratch = c.fragment.parent / "kconfig-needs"
    try:
        needs = build.option_needs(gbuild, {o: v[1] for o, v in diff.items()}, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    on_needs(needs)

    def predicate(applied: frozenset[str]) -> bisect.Outcome:
        step_fragment(c.fragment, diff, applied)
        step, kbuild = c.build(c.variant(), "step", f"{len(applied)} of {len(diff)}")
        step.subject = " ".join(sorted(applied))
        if kbuild is not None:
            step.measured = place(b, e, EndsBuilt(gbuild, bbuild, {}), step, kbuild, "config")
        b.steps.append(step)
        on_step(step)
        return step.measured.outcome if step.measured else bisect.SKIP

    return bisect.bisect_config(diff, needs, predicate), e


def _judge_ends(b: Bisection, gstep: Step, gbuild: KernelBuild, bstep: Step,
                bbuild: KernelBuild) -> bisect.Ends | None:
    """The ends measured (a metric: alternating boots) or judged (pass/fail); a UserError
    when they do not differ."""
    if b.target.metric:
        sg, sb = b.alternate(gbuild, bbuild, b.policy.end_boots, ("good", "bad"))
        e = bisect.ends(sg, sb, b.policy)
        gstep.measured = bisect.Measured(bisect.LIKE_GOOD, bisect.frozen(sg), note="the good end")
        bstep.measured = bisect.Measured(bisect.LIKE_BAD, bisect.frozen(sb), note="the bad end")
        return e
    gstep.measured = b.measure(None, gbuild, "good")
    bstep.measured = b.measure(None, bbuild, "bad")
    bisect.passfail_ends(gstep.measured, bstep.measured, b.rule)
    return None
