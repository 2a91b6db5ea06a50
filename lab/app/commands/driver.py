"""lab driver: the driver loop (build a module, boot, load it, run its scenario),
or with --check the kernel's pre-submission checks on its sources."""

from __future__ import annotations

import time
from pathlib import Path

from lab.app import checks, driverloop, htmlreport, report
from lab.app.commands.options import (
    allow_put_from,
    builds,
    exit_code,
    kernel_src_arg,
    run_scenarios,
    writable,
)
from lab.artifacts import build
from lab.core.errors import UserError
from lab.core.paths import ROOT
from lab.core.results import Status
from lab.run import runner


def cmd_driver(args) -> int:
    if not args.driver_dir.is_dir():
        raise UserError(f"DRIVER_DIR {args.driver_dir}: not a directory")
    driver = args.driver_dir.resolve()
    if args.check:
        return _driver_check(args, driver)
    target = driverloop.driver_scenario(driver, args.arch, args.kernel, args.scenario,
                                        tuple(args.allow_put_from), debug=args.debug)
    writable("--out", args.out)
    opts = runner.Options(out=args.out, jobs=1, drivers=(driver,), stop_on_fail=True,
                          kernel_src=args.kernel_src)
    ran = run_scenarios([target], opts)
    report.driver_verdict(ran.results, args.out)
    ran.end(args.out, failures=False)    # the verdict above shows the first failure
    return exit_code(ran.results)


def _driver_check(args, driver: Path) -> int:
    """lab driver --check: the pre-submission checks, no boot. 0 when every check that
    ran is clean, 1 when one has findings or could not run (a missing coccinelle is
    reported, not counted)."""
    if args.scenario:
        raise UserError("--check runs the source checks, no scenario: drop --scenario")
    driverloop.kbuild_modules(driver)                  # a module directory, or exit 2
    kernel = driverloop.kernel_for(args.kernel, args.debug) or driverloop.DEFAULT_KERNEL
    ((arch, variant),) = builds(args.arch, kernel)
    out = writable("--out", args.out)
    with report.build_progress(f"{arch.name}/{variant.name}") as progress:
        kbuild = build.build_kernel(arch, variant, source=args.kernel_src, progress=progress)
    with report.build_progress(f"lab driver --check {driver.name}", done="checked") as progress:
        run = checks.run_checks(kbuild, driver, out, progress)
    report.write_checks(run, out)
    report.checks_table(run, out)
    try:
        report.wrote_report(htmlreport.write_checks(out))
    except OSError as exc:
        report.warning(f"{out / htmlreport.FILE}: not written: {exc.strerror or exc}")
    return 0 if run.status is Status.PASS else 1


def register(sub) -> None:
    dv = sub.add_parser("driver", help="the driver loop: build a module, boot, load it, "
                                       "run its scenario; or, with --check, the kernel's "
                                       "pre-submission checks on its sources")
    dv.add_argument("driver_dir", nargs="?", type=Path, default=ROOT / "drivers" / "pl011-lab",
                    metavar="DRIVER_DIR",
                    help="an out-of-tree module directory (default drivers/pl011-lab)")
    dv.add_argument("--arch", default="aarch64", help="default aarch64")
    dv.add_argument("--kernel", help="a kernel variant or fragment (default: the scenario's; "
                                     "with --check, nokpti, or debug with --debug)")
    dv.add_argument("--debug", action="store_true",
                    help="on the debug kernel (KASAN, UBSAN, lockdep, atomic sleep, kmemleak, "
                         "debugobjects), with a kmemleak scan after the scenario: a report "
                         "fails the step that caused it, a leak of the driver's fails the scan")
    kernel_src_arg(dv)
    dv.add_argument("--scenario", type=Path,
                    help="default DRIVER_DIR/lab.yaml, else a smoke test of every module "
                         "DRIVER_DIR/Kbuild builds")
    dv.add_argument("--out", type=Path,
                    default=Path("out") / ("driver-" + time.strftime("%Y%m%d-%H%M%S")))
    dv.add_argument("--check", action="store_true",
                    help="boot nothing: run the kernel's pre-submission checks on the sources "
                         "(checkpatch.pl --strict, W=1, sparse, coccicheck) against the "
                         "kernel (default nokpti); exit 1 on any finding")
    allow_put_from(dv)
    dv.set_defaults(func=cmd_driver)
