"""lab compare: a run's metrics against a baseline, or one run against another."""

from __future__ import annotations

from pathlib import Path

from lab.analysis import compare, testdiff
from lab.app import report
from lab.app.commands.options import margin_arg, writable
from lab.core.errors import UserError


def cmd_compare(args) -> int:
    if args.dir_b is not None:
        return _compare_runs(args)
    key, sep, value = (args.baseline or "kernel=nokpti").partition("=")
    if not sep:
        raise UserError(f"--baseline {args.baseline!r}: expected KEY=VALUE")
    results = compare.load_results(args.dir)
    outdir = writable("--out", args.out or (args.dir if args.dir.is_dir() else args.dir.parent))
    diffs = testdiff.diff(results, (key, value))     # tests that steps reported one by one
    if diffs:
        report.testdiff_table(diffs)
        report.write_testdiff(diffs, outdir)
    if diffs and not args.metric and not any(c.metrics for c in results.cells):
        return 0
    comparison = compare.compare(results, (key, value), args.metric, args.margin)
    report.compare_table(comparison)
    outdir.mkdir(parents=True, exist_ok=True)
    report.write_compare(comparison, outdir)
    return 0


def _compare_runs(args) -> int:
    """lab compare RUN_A RUN_B: B (after) against A (before), cell by cell."""
    if args.baseline:
        raise UserError("--baseline compares cells within one run; with two runs, "
                        "each cell is compared with itself in the other run")
    a, b = compare.load_results(args.dir), compare.load_results(args.dir_b)
    default = args.dir_b if args.dir_b.is_dir() else args.dir_b.parent
    outdir = writable("--out", args.out or default)
    comparison = compare.compare_runs(a, b, (str(args.dir), str(args.dir_b)), args.metric,
                                      args.margin)
    report.compare_runs_table(comparison)
    outdir.mkdir(parents=True, exist_ok=True)
    report.write_compare_runs(comparison, outdir)
    return 0


def register(sub) -> None:
    c = sub.add_parser("compare", help="compare the metrics of a run against a baseline, "
                                       "or of one run against another")
    c.add_argument("dir", type=Path, metavar="DIR", help="a lab run's --out directory (RUN_A)")
    c.add_argument("dir_b", type=Path, nargs="?", metavar="RUN_B",
                   help="another run: compare it against DIR, cell by cell")
    c.add_argument("--baseline", help="KEY=VALUE, within one run (default kernel=nokpti)")
    c.add_argument("--metric", help="only this metric")
    c.add_argument("--margin", type=margin_arg, default=0.05,
                   help="'equivalent' means the ratio's 95%% interval lies within ±MARGIN "
                        "(default 5%%)")
    c.add_argument("--out", type=Path,
                   help="where compare.json and compare.png go (default: DIR, or RUN_B)")
    c.set_defaults(func=cmd_compare)
