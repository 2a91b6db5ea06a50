"""Command-line interface: parsing and exit codes only. The one sys.exit."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from lab.analysis import compare, testdiff
from lab.app import checks, driverloop, report, suites
from lab.arches import ARCHES, get_arch
from lab.artifacts import build, kconfig
from lab.core import inputs
from lab.core.errors import GuestError, Interrupted, LabError, OutputLost, UserError
from lab.core.model import CELL_KEYS, ArchProfile, GuestFile, KernelBuild, KernelVariant, Selector
from lab.core.paths import ROOT, cache_dir
from lab.core.results import RunResult, Status
from lab.guest.guest import Guest
from lab.host import facts, packages
from lab.run import runner
from lab.scenario import scenario
from lab.scenario.steps.kunit import suite_names

KERNEL_HELP = "a variant name from kernel-configs/variants/, or a path to a .config fragment"

DEFAULT_VARIANTS = ("kpti", "nokpti")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # bad usage is bad input: exit 2, one line
        raise UserError(f"{self.prog}: {message} (see {self.prog} --help)")


# ---------------------------------------------------------------- checked options
# Each option is checked as argparse reads it, before any work: a type that
# raises UserError ends the run with `lab: error: --opt VALUE: ...` and exit 2.

def _int_in(option: str, lo: int, hi: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise UserError(f"{option} {text!r}: not an integer") from None
        if problem := inputs.range_problem(value, lo, hi):
            raise UserError(f"{option} {inputs.show(value)}: {problem}")
        return value
    return parse


def _seconds(option: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise UserError(f"{option} {text!r}: not a number of seconds") from None
        if problem := inputs.range_problem(value, 0, inputs.MAX_SECONDS, above=True):
            raise UserError(f"{option} {text}: {problem}")
        return value
    return parse


def _directory(option: str):
    """An existing directory (resolved)."""
    def parse(text: str) -> Path:
        path = Path(text)
        if not path.is_dir():
            raise UserError(f"{option} {text}: not a directory")
        return path.resolve()
    return parse


def _writable(option: str, path: Path) -> Path:
    """A directory the lab may create or write: checked before anything boots or builds."""
    if problem := inputs.dir_problem(path):
        raise UserError(f"{option} {path}: {problem}")
    return path


def _builds(arch: str | None, kernel: str | None) -> list[tuple]:
    """(arch profile, variant) pairs for --arch/--kernel, validated before any work."""
    arches = [get_arch(arch)] if arch else list(ARCHES.values())
    kernels = [kernel] if kernel else list(DEFAULT_VARIANTS)
    return [(a, kconfig.resolve_variant(a, k)) for a in arches for k in kernels]


def _kernel_src_arg(p: argparse.ArgumentParser) -> None:
    """--kernel-src DIR, $LAB_KERNEL_SRC by default (None: Debian's linux-source)."""
    # Checked where it is used (build.kernel_source), after the scenarios.
    value = os.environ.get("LAB_KERNEL_SRC")
    p.add_argument("--kernel-src", type=Path, metavar="DIR", default=Path(value) if value else None,
                   help="build your kernel tree instead of Debian's linux-source 6.1 "
                        "(default $LAB_KERNEL_SRC)")


def _ensure(arch: ArchProfile, variant: KernelVariant, jobs: int | None = None,
            source: Path | None = None, files: tuple[GuestFile, ...] = ()) -> KernelBuild:
    """A cached or freshly built kernel + initramfs (with files added), with progress
    on stderr."""
    with report.build_progress(f"{arch.name}/{variant.name}") as progress:
        kbuild = build.ensure_kernel(arch, variant, source=source, progress=progress, jobs=jobs)
        return build.with_files(kbuild, files, progress)


def cmd_build(args) -> int:
    for arch, variant in _builds(args.arch, args.kernel):
        result = _ensure(arch, variant, args.jobs, args.kernel_src)
        assert result.initramfs is not None   # ensure_kernel builds it
        report.out.print(f"{result.arch}/{result.kernel}: {result.image}  "
                         f"initramfs {result.initramfs.name}")
    return 0


def cmd_kernels(args) -> int:
    builds = build.list_kernels(
        on_corrupt=lambda bad: report.warning(f"corrupt, not listed (its next use rebuilds "
                                              f"it): {bad}"))
    if args.kernel_src is not None:
        builds = [b for b in builds if b.source_path == str(args.kernel_src)]
    if args.json:
        report.print_json([b.to_json() for b in builds])
    else:
        report.kernels_table(builds)
    return 0


def cmd_doctor(args) -> int:
    if args.install:
        with report.build_progress("doctor --install") as progress:
            packages.install(packages.missing(), progress)
    src = None
    if args.strict and packages.KERNEL_TARBALL.exists():
        with report.build_progress("doctor --strict") as progress:
            src, _ = build.kernel_source(progress=progress)    # checkpatch.pl's tree
    rows = packages.status(args.strict, src)
    accel = facts.accel_status(probe=True)
    report.doctor_table([(d.what, d.package, why) for d, why in rows], accel)
    return 0 if not any(why for _, why in rows) else 2


def _guest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", required=True, help=f"one of {', '.join(ARCHES)}")
    p.add_argument("--kernel", required=True, help=KERNEL_HELP)
    p.add_argument("--cmdline", default="", help="extra kernel command-line words, e.g. 'kpti=1'")
    _kernel_src_arg(p)
    p.add_argument("--accel", choices=("tcg", "kvm"),
                   help="override the accelerator (default: KVM only where the probe passed)")
    p.add_argument("--logs", type=Path, help="keep the guest's logs here "
                                             "(default: a new directory under $LAB_CACHE/logs)")
    p.add_argument("--memory", type=_int_in("--memory", *inputs.MEMORY_MB), metavar="MB",
                   help=f"guest memory in MiB, {inputs.MEMORY_MB[0]} to {inputs.MEMORY_MB[1]} "
                        "(default: the arch's)")
    p.add_argument("--add", action="append", default=[], metavar="SRC[:DEST]", type=_guest_file,
                   help="a host file or directory the guest has at DEST (default /root/NAME) "
                        "from boot, in its initramfs (repeatable; cached by content)")
    p.add_argument("--sysctl", action="append", default=[], metavar="NAME=VALUE", type=_sysctl,
                   help="set a sysctl once the guest is up, e.g. vm.overcommit_memory=1 "
                        "(repeatable)")
    p.add_argument("--cold", action="store_true",
                   help="boot the kernel; by default the guest is restored from a snapshot "
                        "template of the same kernel, initramfs, command line and machine "
                        "(made by a cold boot the first time)")


def _guest_file(text: str) -> GuestFile:
    f = build.guest_file(text)
    if not f.src.exists():
        raise UserError(f"--add {text}: no such file or directory: {f.src}")
    return f


def _sysctl(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if problem := inputs.sysctl_problem(name, value) if sep else "not NAME=VALUE":
        raise UserError(f"--sysctl {text!r}: {problem}")
    return name, value


def _logdir(args, what: str) -> Path:
    if args.logs:
        return _writable("--logs", args.logs)
    logdir = cache_dir() / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{what}-{os.getpid()}"
    build.hold(logdir)            # in the cache: gc leaves it while this lab runs
    return logdir


def _guest(args, what: str, **kw) -> Guest:
    ((arch, variant),) = _builds(args.arch, args.kernel)
    logdir = _logdir(args, what)            # checked before the build
    kbuild = _ensure(arch, variant, source=args.kernel_src, files=tuple(args.add))
    return Guest(kbuild, tuple(args.cmdline.split()), logdir=logdir, accel=args.accel,
                 memory_mb=args.memory, sysctls=tuple(args.sysctl), restore=not args.cold, **kw)


def cmd_exec(args) -> int:
    command = args.command_argv[1:] if args.command_argv[:1] == ["--"] else args.command_argv
    if not command:
        raise UserError("lab exec: no command given (lab exec --arch A --kernel K -- CMD ...)")
    guest = _guest(args, "exec")
    try:
        with guest:
            result = guest.run(shlex.join(command), args.timeout)
    except LabError:
        report.err.print(f"logs: {guest.logdir}")   # report's consoles print text as it is
        raise
    if args.json:
        assert guest.facts is not None   # set by the boot
        report.print_json({"exit_code": result.exit_code, "output": result.output,
                           "output_file": str(result.output_file) if result.output_file else None,
                           "boot": guest.facts.to_json(), "logs": str(guest.logdir),
                           "faults": [f.__dict__ for f in result.faults]})
    elif result.output_file:                   # the whole output, not its head in memory
        sys.stdout.flush()
        with open(result.output_file, "rb") as spilled:
            shutil.copyfileobj(spilled, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(result.output)
        for fault in result.faults:
            report.error(f"kernel {fault.kind} during the command:\n{fault.text}")
    return result.exit_code


def cmd_shell(args) -> int:
    guest = _guest(args, "shell",
                   echo_kernel=lambda text: (sys.stdout.write(text), sys.stdout.flush()))
    with guest:
        assert guest.shell is not None   # set by the boot
        report.shell_banner(f"{args.arch}/{args.kernel}", guest.facts, guest.logdir)
        guest.shell.interact()
    report.err.print("\nguest shut down")
    return 0


#: The exit-code policy: 0 pass, 1 a test failed, 2 an error (infrastructure or input).
EXIT_CODES = {Status.PASS: 0, Status.FAIL: 1, Status.ERROR: 2}


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


def _run(scenarios: list, opts: runner.Options, cluster: str | None = None) -> RunResult:
    """Runs with a live table; writes results.json and junit.xml; prints the summary.
    With cluster, the boots run on that Dask cluster (lab.run.cluster) instead of here."""
    with runner.claim_out(opts.out), _executor(cluster) as executor:
        with report.CellsLive() as live:
            results = runner.run(scenarios, opts, live.event, report.build_progress,
                                 executor=executor)
        report.write_results(results, opts.out)
    report.run_summary(results, opts.out)
    return results


@contextlib.contextmanager
def _executor(cluster: str | None) -> Iterator[runner.Executor | None]:
    """None (the runner's local pool), or an executor on the cluster at that address.
    lab.run.cluster, and Dask with it, is imported only when a run asks for a cluster."""
    if not cluster:
        yield None
        return
    try:
        from lab.run import cluster as dask_cluster
    except ImportError as exc:
        if exc.name not in ("dask", "distributed"):
            raise
        raise UserError(f"--cluster {cluster}: Dask distributed is not installed; "
                        "install the lab with its cluster extra: pip install -e '.[cluster]'"
                        ) from None
    with dask_cluster.connect(cluster) as executor:
        yield executor


def _check_repeat(scenarios: list, repeat: int | None) -> None:
    """--repeat times each scenario's steps stays within the steps bound."""
    for s in scenarios:
        if repeat and (problem := inputs.steps_problem(len(s.steps), repeat)):
            raise UserError(f"--repeat {repeat}: {s.path}: {problem}")


def _tests_summary(results: RunResult) -> None:
    """After lab run: the tests steps reported that did not pass, and a count per cell."""
    if any(c.tests for c in results.cells):
        report.tests_table(results, passed=False)


def cmd_run(args) -> int:
    # Everything is checked before any build or boot: the scenarios, then the options.
    scenarios = scenario.load_all(args.scenarios, tuple(args.allow_put_from))
    _check_repeat(scenarios, args.repeat)
    _writable("--out", args.out)
    opts = runner.Options(out=args.out, jobs=args.jobs, only=_only(args.only),
                          repeat=args.repeat, icount=args.icount, accel=args.accel,
                          kernel_src=args.kernel_src, cold=args.cold)
    results = _run(scenarios, opts, args.cluster)
    _tests_summary(results)
    return _exit_code(results)


def _margin(text: str) -> float:
    """--margin: a percentage (5, 5%) or a fraction below 1 (0.05)."""
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise UserError(f"--margin {text!r}: not a number") from None
    value = value / 100 if text.endswith("%") or value >= 1 else value
    if not 0 < value < 1:
        raise UserError(f"--margin {text}: a percentage above 0 and below 100")
    return value


def cmd_compare(args) -> int:
    if args.dir_b is not None:
        return _compare_runs(args)
    key, sep, value = (args.baseline or "kernel=nokpti").partition("=")
    if not sep:
        raise UserError(f"--baseline {args.baseline!r}: expected KEY=VALUE")
    results = compare.load_results(args.dir)
    outdir = _writable("--out", args.out or (args.dir if args.dir.is_dir() else args.dir.parent))
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
    outdir = _writable("--out", args.out or default)
    comparison = compare.compare_runs(a, b, (str(args.dir), str(args.dir_b)), args.metric,
                                      args.margin)
    report.compare_runs_table(comparison)
    outdir.mkdir(parents=True, exist_ok=True)
    report.write_compare_runs(comparison, outdir)
    return 0


def _suite_run(target, args) -> int:
    """lab kselftest / lab kunit: run the scenario, print every test, and with more
    than one kernel, the regressions and fixes against the first."""
    _writable("--out", args.out)
    opts = runner.Options(out=args.out, jobs=args.jobs, accel=args.accel,
                          kernel_src=args.kernel_src)
    results = _run([target], opts)
    report.tests_table(results)
    kernels = list(dict.fromkeys(c.cell.kernel for c in results.cells))
    if len(kernels) > 1:
        diffs = testdiff.diff(results, ("kernel", kernels[0]))
        report.testdiff_table(diffs)
        report.write_testdiff(diffs, args.out)
    return _exit_code(results)


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


def cmd_driver(args) -> int:
    if not args.driver_dir.is_dir():
        raise UserError(f"DRIVER_DIR {args.driver_dir}: not a directory")
    driver = args.driver_dir.resolve()
    if args.check:
        return _driver_check(args, driver)
    target = driverloop.driver_scenario(driver, args.arch, args.kernel, args.scenario,
                                        tuple(args.allow_put_from), debug=args.debug)
    _writable("--out", args.out)
    opts = runner.Options(out=args.out, jobs=1, drivers=(driver,), stop_on_fail=True,
                          kernel_src=args.kernel_src)
    results = _run([target], opts)
    report.driver_verdict(results, args.out)
    return _exit_code(results)


def _driver_check(args, driver: Path) -> int:
    """lab driver --check: the pre-submission checks, no boot. 0 when every check that
    ran is clean, 1 when one has findings or could not run (a missing coccinelle is
    reported, not counted)."""
    if args.scenario:
        raise UserError("--check runs the source checks, no scenario: drop --scenario")
    driverloop.kbuild_modules(driver)                  # a module directory, or exit 2
    kernel = driverloop.kernel_for(args.kernel, args.debug) or driverloop.DEFAULT_KERNEL
    ((arch, variant),) = _builds(args.arch, kernel)
    out = _writable("--out", args.out)
    with report.build_progress(f"{arch.name}/{variant.name}") as progress:
        kbuild = build.build_kernel(arch, variant, source=args.kernel_src, progress=progress)
    with report.build_progress(f"lab driver --check {driver.name}", done="checked") as progress:
        run = checks.run_checks(kbuild, driver, out, progress)
    report.write_checks(run, out)
    report.checks_table(run, out)
    return 0 if run.status is Status.PASS else 1


def cmd_cache(args) -> int:
    if args.cache_command == "gc":
        bound = build.gc.parse_size(args.max_size) if args.max_size else build.gc.default_bound()
        removed, left = build.gc.collect(bound)
        report.cache_gc(removed, left, bound)
        return 0
    units = build.gc.units()
    if args.json:
        report.print_json([{"name": u.name, "bytes": u.size, "last_use": u.last_use,
                            "in_use": u.held} for u in units])
    else:
        report.cache_table(units, build.gc.default_bound())
    return 0


def _cache_parsers(sub) -> None:
    c = sub.add_parser("cache", help="what the cache holds (sizes, last use); "
                                     "`lab cache gc` bounds it")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=cmd_cache, cache_command=None)
    g = c.add_subparsers(dest="cache_command", metavar="gc").add_parser(
        "gc", help="remove the least recently used entries until the cache fits")
    g.add_argument("--max-size", metavar="SIZE",
                   help="the bound, e.g. 1G or 500M (default $LAB_CACHE_MAX_SIZE, else 20G); "
                        "what a running lab uses is never removed")


def _build_parsers(sub) -> None:
    b = sub.add_parser("build", help="build kernels and guest images "
                                     "(default: every arch x {kpti, nokpti})")
    b.add_argument("--arch", help=f"one of {', '.join(ARCHES)}")
    b.add_argument("--kernel", help=KERNEL_HELP)
    b.add_argument("-j", "--jobs", type=_int_in("--jobs", 1, inputs.MAX_JOBS),
                   help=f"parallel make jobs, 1 to {inputs.MAX_JOBS} (default: CPU count)")
    _kernel_src_arg(b)
    b.set_defaults(func=cmd_build)

    k = sub.add_parser("kernels", help="list built kernels")
    k.add_argument("--json", action="store_true", help="print JSON")
    k.add_argument("--kernel-src", type=_directory("--kernel-src"), metavar="DIR",
                   help="only the kernels built from this tree")
    k.set_defaults(func=cmd_kernels)

    d = sub.add_parser("doctor", help="check host dependencies and the accelerator")
    d.add_argument("--install", action="store_true", help="install what is missing with apt")
    d.add_argument("--strict", action="store_true",
                   help="also run each tool as the lab runs it, on a tiny input (a program "
                        "per ABI, spatch with an OCaml and a Python script, sparse, "
                        "checkpatch, QEMU's aarch64 board), and fail naming the package of "
                        "any that fails")
    d.set_defaults(func=cmd_doctor)


def _guest_parsers(sub) -> None:
    e = sub.add_parser("exec", help="boot a guest, run one command, shut down; "
                                    "exits with its exit code")
    _guest_args(e)
    e.add_argument("--json", action="store_true",
                   help="print one JSON object: exit_code, output, boot")
    e.add_argument("--bisect", action="store_true",
                   help="exit as `git bisect run` expects: 0 good, 1 to 124 bad (a panic or "
                        "hang too), 125 skip (the kernel does not build, any other lab "
                        "error), never 126 or more")
    e.add_argument("--timeout", type=_seconds("--timeout"), default=300.0,
                   help=f"deadline of the command in seconds (default 300: 20 MB of output take "
                        f"50 s on x86_64; at most {inputs.MAX_SECONDS})")
    e.add_argument("command_argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    e.set_defaults(func=cmd_exec)

    s = sub.add_parser("shell", help="an interactive shell in a guest (Ctrl-] leaves)")
    _guest_args(s)
    s.set_defaults(func=cmd_shell)


def _allow_put_from(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-put-from", action="append", default=[], metavar="DIR",
                   type=_directory("--allow-put-from"),
                   help="let put steps copy files from under DIR, outside the scenario's "
                        "directory (repeatable)")


def _cluster_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", metavar="ADDRESS", default=os.environ.get("LAB_CLUSTER") or None,
                   help="run the boots on the Dask scheduler at ADDRESS (tcp://host:8786), or "
                        "on an in-process cluster of N workers with local[:N] (default "
                        "$LAB_CLUSTER; see docs/cluster.md). -j does not apply then: each "
                        "worker's qemu=N resource says how many guests it runs")


def _run_parsers(sub) -> None:
    r = sub.add_parser("run", help="run YAML scenarios (files or directories)")
    r.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    r.add_argument("--out", type=Path, default=Path("out") / time.strftime("%Y%m%d-%H%M%S"),
                   help="results directory (default: out/<date-time>)")
    r.add_argument("-j", "--jobs", type=_int_in("--jobs", 1, inputs.MAX_JOBS),
                   default=os.cpu_count() or 1,
                   help=f"cells run in parallel, 1 to {inputs.MAX_JOBS} (default: CPU count)")
    r.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                   help="run only cells with arch, kernel or cmdline = VALUE (repeatable)")
    r.add_argument("--repeat", type=_int_in("--repeat", 1, inputs.MAX_REPEAT),
                   help=f"boots per cell, 1 to {inputs.MAX_REPEAT} (overrides the scenario)")
    r.add_argument("--icount", action="store_true",
                   help="deterministic TCG instruction counting (-icount shift=0); results say so")
    r.add_argument("--accel", choices=("tcg", "kvm"), help="override the accelerator")
    _kernel_src_arg(r)
    r.add_argument("--cold", action="store_true",
                   help="boot every guest; by default the boots of a cell whose metrics no "
                        "other cell is compared with restore from a snapshot template")
    _cluster_arg(r)
    _allow_put_from(r)
    r.set_defaults(func=cmd_run)

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
    _kernel_src_arg(dv)
    dv.add_argument("--scenario", type=Path,
                    help="default DRIVER_DIR/lab.yaml, else a smoke test of every module "
                         "DRIVER_DIR/Kbuild builds")
    dv.add_argument("--out", type=Path,
                    default=Path("out") / ("driver-" + time.strftime("%Y%m%d-%H%M%S")))
    dv.add_argument("--check", action="store_true",
                    help="boot nothing: run the kernel's pre-submission checks on the sources "
                         "(checkpatch.pl --strict, W=1, sparse, coccicheck) against the "
                         "kernel (default nokpti); exit 1 on any finding")
    _allow_put_from(dv)
    dv.set_defaults(func=cmd_driver)


def _compare_parsers(sub) -> None:
    c = sub.add_parser("compare", help="compare the metrics of a run against a baseline, "
                                       "or of one run against another")
    c.add_argument("dir", type=Path, metavar="DIR", help="a lab run's --out directory (RUN_A)")
    c.add_argument("dir_b", type=Path, nargs="?", metavar="RUN_B",
                   help="another run: compare it against DIR, cell by cell")
    c.add_argument("--baseline", help="KEY=VALUE, within one run (default kernel=nokpti)")
    c.add_argument("--metric", help="only this metric")
    c.add_argument("--margin", type=_margin, default=0.05,
                   help="'equivalent' means the ratio's 95%% interval lies within ±MARGIN "
                        "(default 5%%)")
    c.add_argument("--out", type=Path,
                   help="where compare.json and compare.png go (default: DIR, or RUN_B)")
    c.set_defaults(func=cmd_compare)


def _suite_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--arch", action="append", required=True, choices=list(ARCHES),
                   help="a guest arch (repeatable)")
    p.add_argument("--cmdline", default="", help="extra kernel command-line words for every "
                                                 "cell, e.g. 'pti=on'")
    _kernel_src_arg(p)
    p.add_argument("--out", type=Path, default=Path("out") / f"{what}-"
                   f"{time.strftime('%Y%m%d-%H%M%S')}", help="results directory")
    p.add_argument("-j", "--jobs", type=_int_in("--jobs", 1, inputs.MAX_JOBS), default=1,
                   help="cells run in parallel (default 1)")
    p.add_argument("--accel", choices=("tcg", "kvm"), help="override the accelerator")
    p.add_argument("--timeout", type=_seconds("--timeout"), default=suites.STEP_TIMEOUT_S,
                   help=f"deadline of the suites' run in each guest, in seconds "
                        f"(default {suites.STEP_TIMEOUT_S:g})")


def _suite_parsers(sub) -> None:
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


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lab", description="A QEMU hardware lab for kernel and driver developers.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _build_parsers(sub)
    _cache_parsers(sub)
    _guest_parsers(sub)
    _run_parsers(sub)
    _compare_parsers(sub)
    _suite_parsers(sub)
    return p


#: Signals that stop the lab; each exits with 128 + its number, after cleanup.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum, signal.Signals(signum).name)


def _exit_code(results: RunResult) -> int:
    if results.interrupted:
        return 128 + signal.Signals[results.interrupted].value
    return EXIT_CODES[results.status]


#: git bisect run's codes: good, bad, and "this commit cannot be tested".
GOOD, BAD, SKIP = 0, 1, 125


def bisect_code(code: int | None, exc: BaseException | None = None) -> int:
    """`lab exec --bisect`'s exit code, by git bisect run's convention (never 126 or
    more, which would abort the bisect). The command's own 0 is good, 1-124 bad,
    125 skip, and 126-255 (not found, a signal) bad. A kernel that panics, hangs
    or loses its machine is bad; anything else that stops the lab (a build that
    fails, an option that does not take effect, QEMU missing, output lost, a
    usage error, Ctrl-C) means this commit could not be tested: skip."""
    if exc is not None:
        lost_output = isinstance(exc, OutputLost)
        return BAD if isinstance(exc, GuestError) and not lost_output else SKIP
    assert code is not None
    return code if code <= SKIP else BAD


def _bisecting(argv: list[str]) -> bool:
    """Whether this is `lab exec --bisect` (known before the arguments are parsed,
    so that a usage error, too, exits with a code git bisect run understands)."""
    words = argv[:argv.index("--")] if "--" in argv else argv
    return "exec" in words and "--bisect" in words


def main(argv: list[str] | None = None) -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_interrupted)
    argv = sys.argv[1:] if argv is None else argv
    bisect = _bisecting(argv)
    error: BaseException | None = None
    try:
        args = parser().parse_args(argv)
        code = args.func(args)
    except LabError as exc:
        report.error(str(exc))
        code, error = exc.exit_code, exc
    except KeyboardInterrupt as exc:   # errors.Interrupted too
        name = getattr(exc, "name", "SIGINT")
        report.error(f"interrupted by {name}")
        code, error = 128 + signal.Signals[name].value, exc
    if bisect:
        code = bisect_code(code, error)
        verdict = "good" if code == GOOD else "skip" if code == SKIP else "bad"
        report.err.print(f"lab exec --bisect: exit {code} ({verdict})")
    sys.exit(code)
