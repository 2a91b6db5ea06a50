"""lab run: YAML scenarios, a matrix of cells, results and exit codes."""

from __future__ import annotations

import os
import time
from pathlib import Path

from lab.app import report
from lab.app.commands.options import (
    allow_put_from,
    cluster_arg,
    exit_code,
    int_in,
    kernel_src_arg,
    run_scenarios,
    writable,
)
from lab.core import inputs
from lab.core.errors import UserError
from lab.core.model import CELL_KEYS, Selector
from lab.core.results import RunResult
from lab.run import runner
from lab.scenario import scenario


def _only(items: list[str]) -> Selector:
    """--only KEY=VALUE (repeatable): a cell matches when each KEY has one of its VALUEs."""
    terms: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise UserError(f"--only {item!r}: expected KEY=VALUE")
        if key not in CELL_KEYS:
            raise UserError(f"--only {key}=...: the keys are arch, kernel and cmdline")
        terms.setdefault(key, []).append(value)
    return Selector(tuple((k, tuple(v)) for k, v in terms.items()))


def _check_repeat(scenarios: list, repeat: int | None) -> None:
    """--repeat times each scenario's steps stays within the steps bound."""
    for s in scenarios:
        if repeat and (problem := inputs.steps_problem(len(s.steps), repeat)):
            raise UserError(f"--repeat {repeat}: {s.path}: {problem}")


def _tests_summary(results: RunResult) -> None:
    """After lab run: a count of the tests steps reported, per cell (the failing ones
    are among the failures the run ends with)."""
    for c in results.cells:
        if c.tests:
            report.out.print(f"{c.scenario}/{c.id}: {report.test_counts(c.tests)}")


def cmd_run(args) -> int:
    # Everything is checked before any build or boot: the scenarios, then the options.
    scenarios = scenario.load_all(args.scenarios, tuple(args.allow_put_from))
    _check_repeat(scenarios, args.repeat)
    writable("--out", args.out)
    opts = runner.Options(out=args.out, jobs=args.jobs, only=_only(args.only),
                          repeat=args.repeat, seed=args.seed, icount=args.icount,
                          accel=args.accel,
                          kernel_src=args.kernel_src, cold=args.cold)
    ran = run_scenarios(scenarios, opts, args.cluster)
    _tests_summary(ran.results)
    ran.end(args.out)
    return exit_code(ran.results)


def register(sub) -> None:
    r = sub.add_parser("run", help="run YAML scenarios (files or directories)")
    r.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    r.add_argument("--out", type=Path, default=Path("out") / time.strftime("%Y%m%d-%H%M%S"),
                   help="results directory (default: out/<date-time>)")
    r.add_argument("-j", "--jobs", type=int_in("--jobs", 1, inputs.MAX_JOBS),
                   default=os.cpu_count() or 1,
                   help=f"cells run in parallel, 1 to {inputs.MAX_JOBS} (default: CPU count)")
    r.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                   help="run only cells with arch, kernel or cmdline = VALUE (repeatable)")
    r.add_argument("--repeat", type=int_in("--repeat", 1, inputs.MAX_REPEAT),
                   help=f"boots per cell, 1 to {inputs.MAX_REPEAT} (overrides the scenario)")
    r.add_argument("--seed", type=int_in("--seed", 0, inputs.MAX_SEED), metavar="N",
                   help="the seed of the interleaved order of repeated boots (default: a new "
                        "one; results.json records it under schedule, so --seed N runs a "
                        "run's schedule again)")
    r.add_argument("--icount", action="store_true",
                   help="deterministic TCG instruction counting (-icount shift=0); results say so")
    r.add_argument("--accel", choices=("tcg", "kvm"), help="override the accelerator")
    kernel_src_arg(r)
    r.add_argument("--cold", action="store_true",
                   help="boot every guest; by default the boots of a cell whose metrics no "
                        "other cell is compared with restore from a snapshot template")
    cluster_arg(r)
    allow_put_from(r)
    r.set_defaults(func=cmd_run)
