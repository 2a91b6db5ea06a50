"""Options and helpers that more than one command uses: checked argument types
(each raises UserError as argparse reads it, so bad input ends with one line and
exit 2 before any work), kernels to build, runs with a live table, exit codes."""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lab.analysis import compare
from lab.app import htmlreport, report
from lab.arches import ARCHES, get_arch
from lab.artifacts import build, kconfig
from lab.core import inputs
from lab.core.errors import UserError
from lab.core.model import ArchProfile, GuestFile, KernelBuild, KernelVariant
from lab.core.paths import cache_dir
from lab.core.results import RunResult
from lab.run import runner

KERNEL_HELP = "a variant name from kernel-configs/variants/, or a path to a .config fragment"


DEFAULT_VARIANTS = ("kpti", "nokpti")


def int_in(option: str, lo: int, hi: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise UserError(f"{option} {text!r}: not an integer") from None
        if problem := inputs.range_problem(value, lo, hi):
            raise UserError(f"{option} {inputs.show(value)}: {problem}")
        return value
    return parse


def margin_arg(text: str) -> float:
    """--margin: a percentage (5, 5%) or a fraction below 1 (0.05)."""
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise UserError(f"--margin {text!r}: not a number") from None
    value = value / 100 if text.endswith("%") or value >= 1 else value
    if not 0 < value < 1:
        raise UserError(f"--margin {text}: a percentage above 0 and below 100")
    return value


def seconds(option: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise UserError(f"{option} {text!r}: not a number of seconds") from None
        if problem := inputs.range_problem(value, 0, inputs.MAX_SECONDS, above=True):
            raise UserError(f"{option} {text}: {problem}")
        return value
    return parse


def directory(option: str):
    """An existing directory (resolved)."""
    def parse(text: str) -> Path:
        path = Path(text)
        if not path.is_dir():
            raise UserError(f"{option} {text}: not a directory")
        return path.resolve()
    return parse


def writable(option: str, path: Path) -> Path:
    """A directory the lab may create or write: checked before anything boots or builds."""
    if problem := inputs.dir_problem(path):
        raise UserError(f"{option} {path}: {problem}")
    return path


def builds(arch: str | None, kernel: str | None) -> list[tuple]:
    """(arch profile, variant) pairs for --arch/--kernel, validated before any work."""
    arches = [get_arch(arch)] if arch else list(ARCHES.values())
    kernels = [kernel] if kernel else list(DEFAULT_VARIANTS)
    return [(a, kconfig.resolve_variant(a, k)) for a in arches for k in kernels]


def kernel_src_arg(p: argparse.ArgumentParser) -> None:
    """--kernel-src DIR, $LAB_KERNEL_SRC by default (None: Debian's linux-source)."""
    # Checked where it is used (build.kernel_source), after the scenarios.
    value = os.environ.get("LAB_KERNEL_SRC")
    p.add_argument("--kernel-src", type=Path, metavar="DIR", default=Path(value) if value else None,
                   help="build your kernel tree instead of Debian's linux-source 6.1 "
                        "(default $LAB_KERNEL_SRC)")


def ensure(arch: ArchProfile, variant: KernelVariant, jobs: int | None = None,
            source: Path | None = None, files: tuple[GuestFile, ...] = ()) -> KernelBuild:
    """A cached or freshly built kernel + initramfs (with files added), with progress
    on stderr."""
    with report.build_progress(f"{arch.name}/{variant.name}") as progress:
        kbuild = build.ensure_kernel(arch, variant, source=source, progress=progress, jobs=jobs)
        return build.with_files(kbuild, files, progress)


def exit_code(results: RunResult) -> int:
    """0 pass, 1 a test failed, 2 an error (infrastructure or input), 128 + N a signal
    stopped the run: the policy and its words are htmlreport.exit_code's."""
    return htmlreport.exit_code(results)[0]


@dataclass
class Ran:
    """A run's results, what its scenarios asked to compare, and its report.html."""

    results: RunResult
    plans: list[compare.Planned]
    page: Path | None

    def end(self, out: Path, failures: bool = True) -> None:
        """The run's last words: its failures (unless the command shows its own), the
        comparisons, where the results and the page are."""
        report.run_end(self.results, out, self.page, self.plans,
                       htmlreport.failures(self.results) if failures else None)


def run_scenarios(scenarios: list, opts: runner.Options, cluster: str | None = None) -> Ran:
    """Runs with a live table at a terminal; writes results.json, junit.xml, what the
    scenarios' compare: asks for and report.html; prints the cells and metrics.
    With cluster, the boots run on that Dask cluster (lab.run.cluster) instead of here."""
    with runner.claim_out(opts.out), executor_for(cluster) as executor:
        with report.CellsLive() as live:
            results = runner.run(scenarios, opts, live.event, report.build_progress,
                                 executor=executor)
        report.write_results(results, opts.out)
        plans = compare.planned(results)
        for plan in plans:
            report.write_planned(plan, opts.out / plan.scenario)
        page = write_page(results, opts.out)
    report.run_summary(results, opts.out)
    return Ran(results, plans, page)


def write_page(results: RunResult, out: Path) -> Path | None:
    """report.html beside the results; a page that cannot be written is a warning,
    never the run's end (its results are written already)."""
    try:
        return htmlreport.write(htmlreport.Source(out.absolute(), results, out.absolute()))
    except OSError as exc:
        report.warning(f"{out / htmlreport.FILE}: not written: {exc.strerror or exc}")
        return None


@contextlib.contextmanager


def executor_for(cluster: str | None) -> Iterator[runner.Executor | None]:
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


def allow_put_from(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-put-from", action="append", default=[], metavar="DIR",
                   type=directory("--allow-put-from"),
                   help="let put steps copy files from under DIR, outside the scenario's "
                        "directory (repeatable)")


def cluster_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", metavar="ADDRESS", default=os.environ.get("LAB_CLUSTER") or None,
                   help="run the boots on the Dask scheduler at ADDRESS (tcp://host:8786), or "
                        "on an in-process cluster of N workers with local[:N] (default "
                        "$LAB_CLUSTER; see docs/cluster.md). -j does not apply then: each "
                        "worker's qemu=N resource says how many guests it runs")


def logs_dir(args, what: str) -> Path:
    """--logs DIR (checked), else a new directory under $LAB_CACHE/logs that gc leaves
    alone while this lab runs."""
    if args.logs:
        return writable("--logs", args.logs)
    logdir = cache_dir() / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{what}-{os.getpid()}"
    build.hold(logdir)            # in the cache: gc leaves it while this lab runs
    return logdir
