"""lab bisect: the commit that moved a metric or broke a test, on noisy guests."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import time
from pathlib import Path

from lab.analysis import bisect
from lab.app import bisecting, report
from lab.app.commands.options import builds, int_in, margin_arg, writable
from lab.artifacts import gitrange, kconfig
from lab.core.errors import UserError
from lab.core.model import ArchProfile, KernelVariant, Scenario
from lab.guest import qemu
from lab.run import runner
from lab.scenario import scenario as scenarios

#: The file a `-- CMD` bisection's scenario is written to, in --out.
COMMAND_SCENARIO = "bisect-command.yaml"


def _command_scenario(out: Path, arch: str, kernel: str, cmdline: str,
                      command: list[str], metric: str | None) -> Path:
    """`-- CMD` as a scenario of one cell and one step (its metric read by the guest
    tools' convention, METRIC <name> <value> <unit>)."""
    step = {"name": "command", "run": shlex.join(command), "timeout": 600,
            **({"metrics": [{"name": metric}]} if metric else {})}
    text = scenarios.dump({
        "name": "bisect",
        "matrix": {"arch": [arch], "kernel": [kernel],
                   **({"cmdline": {"asked": cmdline}} if cmdline.strip() else {})},
        "steps": [step]})
    path = out / COMMAND_SCENARIO
    path.write_text(text)
    return path


def _target(s: Scenario, arch: str, kernel: str, metric: str | None) -> bisecting.Target:
    cells = runner.select_cells(s, bisecting.selector(arch, kernel))
    if len(cells) != 1:
        raise UserError(f"{s.path}: {len(cells) or 'no'} cells for --arch {arch} --kernel "
                        f"{kernel}; lab bisect runs one (give the scenario one command-line "
                        "set for it)")
    if metric is not None:
        recorded = {m.name for step in s.steps for m in step.defines()}
        bisect.check_metric(metric, recorded, str(s.path))
    return bisecting.Target(s, cells[0], metric)


def _show(step: bisecting.Step) -> None:
    m = step.measured
    median = m.median if m else None
    report.bisect_step(step.label[:12], step.subject, step.kind, step.compiled,
                       m.boots if m else 0, len(m.runs) if m else 0, median,
                       (step.reused and f"same image as {step.reused[:12]}")
                       or (m.outcome.value if m else "skip"), (m.note if m else step.error))


@dataclasses.dataclass(frozen=True)
class _Checked:
    """lab bisect's arguments, every one checked before anything is built."""

    command: list[str] | None
    arch: ArchProfile
    kernel: str
    policy: bisect.Policy
    rule: bisect.Flaky
    rng: gitrange.Range | None = None                      # over commits
    variants: tuple[KernelVariant, KernelVariant] | None = None   # --config
    asked: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)


def _checked(args) -> _Checked:
    command = args.target[1:] if args.target[:1] == ["--"] else None
    if command is not None and not command:
        raise UserError("lab bisect: no command after --")
    if command is None and len(args.target) != 1:
        raise UserError("lab bisect: give one SCENARIO, or -- CMD ...")
    if args.margin is not None and not args.metric:
        raise UserError("--margin: only with --metric (a pass/fail bisection has no margin)")
    ((arch, variant),) = builds(args.arch, args.kernel)
    bisect.check_ends_named(args.good, args.bad)
    margin = bisect.check_margin(args.margin) if args.margin is not None else None
    margin = margin or bisect.Policy().margin
    policy = bisect.Policy.exact(margin) if args.icount else bisect.Policy(margin=margin)
    c = _Checked(command, arch, variant.name, policy, bisect.Flaky(runs=args.runs))
    if args.config:
        good, bad = (kconfig.resolve_variant(arch, v) for v in (args.good, args.bad))
        c = dataclasses.replace(c, variants=(good, bad),
                                asked=bisecting.asked_diff(arch, good, bad))
    elif args.kernel_src is None:
        raise UserError("lab bisect: --kernel-src TREE is needed (a git tree of the kernel), "
                        "or --config")
    else:
        c = dataclasses.replace(c, rng=gitrange.commit_range(args.kernel_src, args.good,
                                                             args.bad))
    writable("--out", args.out)
    return c


def cmd_bisect(args) -> int:
    c = _checked(args)
    out = args.out
    if c.command is None:
        target = _target(scenarios.load(args.target[0]), c.arch.name, c.kernel, args.metric)
    with runner.claim_out(out):
        if c.command is not None:
            path = _command_scenario(out, c.arch.name, c.kernel, args.cmdline, c.command,
                                     args.metric)
            target = _target(scenarios.load(path), c.arch.name, c.kernel, args.metric)
        wt = gitrange.worktree(c.rng.tree, c.rng.bad) if c.rng else None
        b = bisecting.Bisection(c.rng, wt, target, out, c.policy, c.rule,
                                report.build_progress, _quiet, {"icount": args.icount})
        data: dict = {"metric": args.metric, "policy": dataclasses.asdict(c.policy),
                      "runs": c.rule.runs}
        if c.rng and wt:
            report.err.print(f"lab bisect: {len(c.rng.commits)} commits, "
                             f"{c.rng.good[:12]}..{c.rng.bad[:12]}, built in the lab's "
                             f"worktree {wt.path} (your checkout is not touched)")
            data |= {"range": c.rng.to_json(), "worktree": str(wt.path)}
        report.bisect_header(args.metric)

        def write(state: str) -> None:
            bisecting.write_json(out, data | {"steps": [s.to_json() for s in b.steps],
                                              "state": state})

        def on_step(step: bisecting.Step) -> None:
            _show(step)
            write("running")

        try:
            if c.variants:
                return _config(c, b, args, on_step, data)
            found = bisecting.run(b, on_step)
        except KeyboardInterrupt:
            qemu.kill_all()
            write("interrupted")
            raise
        finally:
            if c.rng and wt:
                wt.checkout(c.rng.bad)
        _written(found, data, target, out, c)
        report.bisect_end(found, c.rng, out)
    return 0 if found.confirmed else 1


def _config(c: _Checked, b: bisecting.Bisection, args, on_step, data: dict) -> int:
    """lab bisect --config: the options, halved; exit 0 when one set is left exactly."""
    assert c.variants
    good, bad = c.variants
    cb = bisecting.ConfigBisection(b, c.arch, good, args.kernel_src,
                                   args.out / "bisect-step.config")
    result, ends = bisecting.run_config(cb, bad, c.asked, on_step, report.bisect_needs)
    data |= {"config": result.to_json(), "ends": ends.to_json() if ends else None,
             "steps": [s.to_json() for s in b.steps], "state": "done"}
    bisecting.write_json(args.out, data)
    report.bisect_plot(bisecting.Found(None, ends, {}, b.steps), args.metric or "",
                       args.out / "bisect.png")
    report.bisect_config_end(result, args.out)
    return 0 if result.exact else 1


def _written(found: bisecting.Found, data: dict, target: bisecting.Target, out: Path,
             c: _Checked) -> None:
    """bisect.json, bisect.log, bisect.png and reproduce.sh."""
    assert c.rng and found.search
    bisecting.write_json(out, data | found.to_json() | {"state": "done"})
    (out / "bisect.log").write_text("\n".join(found.search.git_log()) + "\n")
    report.bisect_plot(found, data["metric"] or "", out / "bisect.png")
    if found.culprit:
        script = out / "reproduce.sh"
        script.write_text(bisecting.reproduce_script(
            c.rng.tree, found.culprit, target, Path(target.scenario.path).resolve(),
            c.policy.end_boots))
        script.chmod(0o755)


def _quiet(*args, **kw) -> None:
    """No live table: lab bisect prints a line per step."""


def register(sub) -> None:
    b = sub.add_parser("bisect", help="find the commit that moved a metric (--metric) or "
                                      "broke a test, booting each step as often as the "
                                      "noise needs",
                       description="lab bisect --kernel-src TREE --good REV --bad REV "
                                   "--arch A (SCENARIO | -- CMD ...)")
    b.add_argument("--kernel-src", type=Path, metavar="TREE",
                   help="your kernel's git tree (never checked out: the lab builds in a "
                        "worktree of its own)")
    b.add_argument("--good", required=True, metavar="REV",
                   help="a commit that is good (with --config: a variant or fragment)")
    b.add_argument("--bad", required=True, metavar="REV",
                   help="a commit that is bad (with --config: a variant or fragment)")
    b.add_argument("--config", action="store_true",
                   help="bisect the options by which the --good and --bad configs differ, "
                        "every step built over --good in one build tree")
    b.add_argument("--arch", required=True)
    b.add_argument("--kernel", default="nokpti", help="the variant each commit is built as "
                                                      "(default nokpti)")
    b.add_argument("--cmdline", default="", help="kernel command-line words (with -- CMD)")
    b.add_argument("--metric", help="bisect on this metric of the scenario (or of CMD's "
                                    "METRIC lines); without it, on pass or fail")
    b.add_argument("--margin", type=margin_arg, help="with --metric: a change smaller than "
                   "this is not worth bisecting (default 5%%)")
    b.add_argument("--icount", action="store_true",
                   help="deterministic instruction counting: one boot per step")
    b.add_argument("--runs", type=int_in("--runs", 1, 100), default=bisect.RUNS,
                   help=f"pass/fail: runs that decide a step (default {bisect.RUNS}: a test "
                        "that fails 1 run in 3 passes them all in under 1%% of bad steps)")
    b.add_argument("--out", type=Path,
                   default=Path("out") / f"bisect-{time.strftime('%Y%m%d-%H%M%S')}",
                   help="where bisect.json, bisect.log, bisect.png, reproduce.sh and each "
                        "step's results go")
    b.add_argument("target", nargs=argparse.REMAINDER, metavar="SCENARIO | -- CMD",
                   help="a scenario (its cell for --arch/--kernel), or a command")
    b.set_defaults(func=cmd_bisect)

