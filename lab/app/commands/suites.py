"""lab kselftest and lab kunit: the kernel's own tests in guests."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lab.analysis import testdiff
from lab.app import report, suites
from lab.app.commands.options import (
    KERNEL_HELP,
    exit_code,
    int_in,
    kernel_src_arg,
    run_scenarios,
    seconds,
    writable,
)
from lab.arches import ARCHES
from lab.core import inputs
from lab.run import runner
from lab.scenario.steps.kunit import suite_names


def _suite_run(target, args) -> int:
    """lab kselftest / lab kunit: run the scenario, print every test, and with more
    than one kernel, the regressions and fixes against the first."""
    writable("--out", args.out)
    opts = runner.Options(out=args.out, jobs=args.jobs, accel=args.accel,
                          kernel_src=args.kernel_src)
    ran = run_scenarios([target], opts)
    results = ran.results
    report.tests_table(results)
    kernels = list(dict.fromkeys(c.cell.kernel for c in results.cells))
    if len(kernels) > 1:
        diffs = testdiff.diff(results, ("kernel", kernels[0]))
        report.testdiff_table(diffs)
        report.write_testdiff(diffs, args.out)
    ran.end(args.out, failures=False)    # the table above has every test
    return exit_code(results)


def cmd_kselftest(args) -> int:
    target = suites.kselftest_scenario(
        args.arch, args.kernel or [suites.DEFAULT_KERNEL], tuple(args.cmdline.split()),
        args.targets, with_suite_config=args.with_suite_config, source=args.kernel_src,
        timeout=args.timeout)
    return _suite_run(target, args)


def cmd_kunit(args) -> int:
    target = suites.kunit_scenario(args.arch, args.kernel or suites.DEFAULT_KERNEL,
                                   tuple(args.cmdline.split()), args.suites, args.timeout)
    return _suite_run(target, args)


def _suite_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--arch", action="append", required=True, choices=list(ARCHES),
                   help="a guest arch (repeatable)")
    p.add_argument("--cmdline", default="", help="extra kernel command-line words for every "
                                                 "cell, e.g. 'pti=on'")
    kernel_src_arg(p)
    p.add_argument("--out", type=Path, default=Path("out") / f"{what}-"
                   f"{time.strftime('%Y%m%d-%H%M%S')}", help="results directory")
    p.add_argument("-j", "--jobs", type=int_in("--jobs", 1, inputs.MAX_JOBS), default=1,
                   help="cells run in parallel (default 1)")
    p.add_argument("--accel", choices=("tcg", "kvm"), help="override the accelerator")
    p.add_argument("--timeout", type=seconds("--timeout"), default=suites.STEP_TIMEOUT_S,
                   help=f"deadline of the suites' run in each guest, in seconds "
                        f"(default {suites.STEP_TIMEOUT_S:g})")


def register(sub) -> None:
    k = sub.add_parser("kselftest", help="build and run the kernel's selftests "
                                         "(tools/testing/selftests) in guests")
    _suite_args(k, "kselftest")
    k.add_argument("--kernel", action="append", help=KERNEL_HELP + " (repeatable: with "
                   "several, the regressions and fixes against the first; default nokpti)")
    k.add_argument("--with-suite-config", action="store_true",
                   help="merge each TARGET's own config fragment into the kernel "
                        "(a KERNEL-ksft variant, built once)")
    k.add_argument("targets", nargs="+", metavar="TARGET[:TEST]")
    k.set_defaults(func=cmd_kselftest)

    u = sub.add_parser("kunit", help="boot a kernel, load the chosen KUnit suites' modules, "
                                     "report their tests")
    _suite_args(u, "kunit")
    u.add_argument("--kernel", help=KERNEL_HELP + " (default nokpti; every lab kernel has "
                   "the suites as modules)")
    u.add_argument("suites", nargs="+", metavar="SUITE",
                   help=f"one of {', '.join(suite_names())}")
    u.set_defaults(func=cmd_kunit)
