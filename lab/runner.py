"""Running scenarios: select cells, ensure kernels, schedule cells, collect results.

Orchestration only: steps execute themselves (lab/steps/), guests own their
wires (lab/guest.py), an Executor decides where cells run. Prints nothing.
A test failure is a result (fail); a guest that panics, hangs or loses QEMU
is a result too (error), and the other cells go on.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from lab import __version__, build, hostfacts, qemu
from lab.build import cache
from lab.deadline import Deadline
from lab.errors import GuestTimeout, LabError, UserError
from lab.guest import Guest
from lab.model import Cell, GuestFile, KernelBuild, KernelVariant, Scenario, Selector, Step
from lab.results import BootResult, CellResult, RunResult, Status, StepResult
from lab.steps.base import Context

Event = Callable[..., None]
T = TypeVar("T")
R = TypeVar("R")
LOGS = ("console", "qemu", "qmp")


@dataclass(frozen=True)
class Options:
    out: Path
    jobs: int = os.cpu_count() or 1
    only: Selector = Selector()
    repeat: int | None = None
    icount: bool = False
    accel: str | None = None
    #: Module directories to put in the guest image besides drivers/*.
    drivers: tuple[Path, ...] = ()
    #: Stop a cell at its first failed step (the driver loop wants the first failure).
    stop_on_fail: bool = False
    #: A kernel tree to build instead of Debian's linux-source (None: Debian's).
    kernel_src: Path | None = None


# ---------------------------------------------------------------- executors

class Executor(Protocol):
    """Where cells run. The local pool is the default; a cluster can replace it."""

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """fn over items; results as they finish. On any exception, pending work is
        cancelled before the exception leaves."""
        ...


class LocalPool:
    """Threads on this machine, at most `jobs` cells at a time."""

    def __init__(self, jobs: int):
        self.jobs = max(1, jobs)

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="cell")
        futures: list[Future[R]] = [pool.submit(fn, item) for item in items]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            # Ctrl-C: do not wait here for running cells; the caller stops their QEMUs.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


# ---------------------------------------------------------------- kernels

def select_cells(scenario: Scenario, only: Selector) -> list[Cell]:
    return [c for c in scenario.cells if only.matches(c)]


def ensure_kernels(cells: Iterable[Cell], progress_for: Callable,
                   drivers: tuple[Path, ...] = (), source: Path | None = None
                   ) -> dict[tuple[str, KernelVariant], KernelBuild]:
    """Every kernel the cells need, built once each (in order: each build uses -j)."""
    built: dict[tuple[str, KernelVariant], KernelBuild] = {}
    for cell in cells:
        assert cell.variant is not None, "cells come from the scenario loader"
        key = (cell.arch, cell.variant)
        if key not in built:
            with progress_for(f"{cell.arch}/{cell.variant.name}") as progress:
                built[key] = build.ensure_kernel(cell.arch, cell.variant, source=source,
                                                 progress=progress, extra_drivers=drivers)
    return built


def _cell_files(s: Scenario, cell: Cell, kbuild: KernelBuild,
                progress: build.Progress) -> tuple[GuestFile, ...]:
    """The scenario's files: for the cell's arch, then what its steps need (built now)."""
    files = [f for f in s.files if f.arch in ("", cell.arch)]
    for step in s.steps:
        if step.applies(cell):
            files += step.guest_files(kbuild, progress)
    return tuple(dict.fromkeys(files))


def guest_images(pairs: list[tuple[Scenario, Cell]],
                 builds: dict[tuple[str, KernelVariant], KernelBuild],
                 progress_for: Callable) -> list[KernelBuild]:
    """Each cell's kernel, booting an initramfs with its scenario's files: for its arch
    and what its steps bring (Step.guest_files); cells that need the same files share
    one image."""
    made: dict[tuple, KernelBuild] = {}
    images = []
    for s, cell in pairs:
        assert cell.variant is not None
        kbuild = builds[(cell.arch, cell.variant)]
        if not s.files and not any(st.builds_files and st.applies(cell) for st in s.steps):
            images.append(kbuild)
            continue
        with progress_for(f"{cell.arch}/{cell.variant.name} + files") as progress:
            files = _cell_files(s, cell, kbuild, progress)
            key = (kbuild.hash, files)
            if key not in made:
                made[key] = build.with_files(kbuild, files, progress)
        images.append(made[key])
    return images


# ---------------------------------------------------------------- cells and their steps

def _skip(boot: BootResult, steps: list[Step]) -> None:
    boot.steps += [StepResult(s.name, s.kind, boot.index, Status.SKIP) for s in steps]


def _fail_boot(boot: BootResult, step: Step, rest: list[Step], seconds: float, ctx: Context,
               exc: BaseException) -> None:
    """The step that ended its boot is an error; the steps after it are skipped."""
    boot.steps.append(StepResult(step.name, step.kind, boot.index, Status.ERROR, seconds,
                                 ctx.exit_code, str(exc) or repr(exc), ctx.kept_output(),
                                 tuple(ctx.tests)))
    _skip(boot, rest)


#: How long a post-mortem step may wait for the console log (it is complete by then).
POST_MORTEM_S = 1.0
#: Beyond its boots' and steps' own deadlines, what a cell's default deadline allows
#: each boot for shutting its guest down.
SHUTDOWN_S = 10.0


def cell_dir(out: Path, scenario: str, cell: Cell) -> Path:
    """Where a cell's result.json and logs live."""
    return out / scenario / cell.id


def cell_seconds(scenario: Scenario, cell: Cell, repeat: int) -> float:
    """The cell's deadline: timeouts.cell, else every boot's and step's own deadline."""
    if scenario.cell_timeout:
        return scenario.cell_timeout
    steps = sum(s.timeout or scenario.step_timeout for s in scenario.steps if s.applies(cell))
    return repeat * (scenario.boot_timeout + steps + SHUTDOWN_S)


@dataclass
class _CellRun:
    """One cell under way: its boots share its units, its options and its deadline."""

    scenario: Scenario
    cell: Cell
    kbuild: KernelBuild
    opts: Options
    event: Event
    result: CellResult
    repeat: int
    deadline: Deadline

    def within(self, seconds: float) -> Deadline:
        """A deadline of seconds, cut short by the cell's; past the cell's, an error."""
        if self.deadline.expired():
            raise GuestTimeout(f"the cell's deadline of {self.deadline.seconds:g} s passed")
        return self.deadline.within(seconds)

    def boot(self, n: int) -> BootResult:
        """One boot of the cell's guest, its steps, and what it left behind."""
        s, cell = self.scenario, self.cell
        cdir = cell_dir(self.opts.out, s.name, cell)
        logdir = cdir / f"boot-{n}" if self.repeat > 1 else cdir
        boot = BootResult(n, logs={name: str((logdir / f"{name}.log").relative_to(self.opts.out))
                                   for name in LOGS})
        self.event(cell, phase=f"boot {n + 1}/{self.repeat}" if self.repeat > 1 else "boot")
        guest = None
        try:
            guest = Guest(self.kbuild, cell.cmdline_words, logdir=logdir, accel=self.opts.accel,
                          memory_mb=s.memory_mb, icount=self.opts.icount, sysctls=s.sysctls,
                          boot_deadline_s=self.within(s.boot_timeout).remaining())
            with guest:
                boot.facts = guest.facts
                self.steps(guest, boot)
                boot.tainted = guest.tainted()
                boot.faults = guest.faults()
        except (LabError, OSError) as exc:
            boot.error = str(exc) or repr(exc)
        except Exception as exc:   # a bug in the lab: this cell errs, the run goes on
            boot.error = _internal_error(exc, logdir)
        if boot.error and guest is not None:
            boot.faults = guest.faults()
            if boot.facts is None:
                self.post_mortem(guest, boot)
        return boot

    def post_mortem(self, guest: Guest, boot: BootResult) -> None:
        """A guest that never reached its shell: the steps that read only the boot log
        (Step.reads_boot_log: the KUnit suites a crash cut short) report from it, as
        errors; the others never ran."""
        steps = [s for s in self.scenario.steps if s.applies(self.cell)]
        for i, step in enumerate(steps):
            if not step.reads_boot_log:
                continue
            ctx = self.context(guest, boot, i)
            ctx.deadline = Deadline(POST_MORTEM_S)
            try:
                step.execute(ctx)
            except Exception as exc:   # what it could not read is said, the boot's error stays
                ctx.notes.append(f"reading the boot log failed: {exc}")
            boot.steps.append(StepResult(
                step.name, step.kind, boot.index, Status.ERROR, 0.0, None,
                "; ".join([f"the guest never reached its shell: {boot.error}", *ctx.notes]),
                None, tuple(ctx.tests)))

    def context(self, guest: Guest, boot: BootResult, i: int) -> Context:
        """Step i's view of its boot; its output file is step-<i+1>.out in the boot's logs."""
        output = guest.logdir / f"step-{i + 1:02d}.out"
        return Context(guest, Deadline(0), boot.samples, self.result.units, arch=self.cell.arch,
                       output_file=output, output_label=str(output.relative_to(self.opts.out)),
                       console_log=guest.logdir / "console.log", kernel=self.kbuild)

    def steps(self, guest: Guest, boot: BootResult) -> None:
        """The cell's steps in order; an error (not a failure) ends the boot, and
        propagates. Each step's deadline is its own, cut short by the cell's."""
        steps = [s for s in self.scenario.steps if s.applies(self.cell)]
        for i, step in enumerate(steps):
            self.event(self.cell, phase=f"step {i + 1}/{len(steps)}: {step.name}")
            before = len(guest.faults())
            started = time.monotonic()
            ctx = self.context(guest, boot, i)
            try:
                ctx.deadline = self.within(step.timeout or self.scenario.step_timeout)
                problems = step.execute(ctx)
            except Exception as exc:
                # The lab's machinery failed (a guest gone, a monitor with no answer, a
                # UART that would not connect, OSError from a socket whose QEMU died, the
                # cell's deadline) or a bug in the lab: an error, never a test failure,
                # and the boot ends. What a step can judge it returns as a problem.
                _fail_boot(boot, step, steps[i + 1:], time.monotonic() - started, ctx, exc)
                raise
            new_faults = guest.faults()[before:]
            if new_faults and not step.allow_faults:
                problems += [f"kernel {f.kind}: {f.text.splitlines()[0]}" for f in new_faults]
            boot.steps.append(StepResult(step.name, step.kind, boot.index,
                                         Status.FAIL if problems else Status.PASS,
                                         time.monotonic() - started, ctx.exit_code,
                                         "; ".join(ctx.notes + problems),
                                         ctx.kept_output(), tuple(ctx.tests)))
            if problems and self.opts.stop_on_fail:
                _skip(boot, steps[i + 1:])
                return


def _internal_error(exc: Exception, logdir: Path) -> str:
    """The message of a lab bug that ended a boot; the traceback goes to the cell's logs."""
    logdir.mkdir(parents=True, exist_ok=True)
    path = logdir / "internal-error.txt"
    path.write_text("".join(traceback.format_exception(exc)))
    return f"internal error in the lab: {type(exc).__name__}: {exc} (traceback in {path})"


def run_cell(scenario: Scenario, cell: Cell, kbuild: KernelBuild, opts: Options,
             event: Event) -> CellResult:
    """Every boot of a cell (repeat), stopping at the first boot that errs, all
    within the cell's deadline. Writes the cell's result.json as soon as it ends."""
    started = time.monotonic()
    result = CellResult(cell, scenario.name, timing="icount" if opts.icount else "wallclock",
                        config=build.kernel_meta(kbuild).get("options", {}))
    repeat = opts.repeat or scenario.repeat
    run = _CellRun(scenario, cell, kbuild, opts, event, result, repeat,
                   Deadline(cell_seconds(scenario, cell, repeat)))
    for n in range(repeat):
        boot = run.boot(n)
        result.boots.append(boot)
        if boot.error:
            break
    result.duration_s = time.monotonic() - started
    cache.write_json(cell_dir(opts.out, scenario.name, cell) / "result.json", result.to_json())
    event(cell, phase="done", status=result.status.value)
    return result


# ---------------------------------------------------------------- runs

LOCK_NAME = ".lab-run.lock"


@contextlib.contextmanager
def claim_out(out: Path) -> Iterator[None]:
    """One lab run writes a results directory at a time: a second one is refused
    (never interleaved logs, never overwritten results). A directory that only
    this claim made is removed again if nothing was written into it."""
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK_NAME, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "?"
            raise UserError(f"--out {out}: another lab run (pid {owner}) is writing there; "
                            "give this one another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        try:
            yield
        finally:
            if made and [p.name for p in out.iterdir()] == [LOCK_NAME]:
                shutil.rmtree(out, ignore_errors=True)

#: After a signal: how long the cells already running get to end (their QEMUs are killed).
DRAIN_S = 15.0


def run(scenarios: list[Scenario], opts: Options, event: Event, progress_for: Callable,
        executor: Executor | None = None) -> RunResult:
    """Runs every selected cell of every scenario; returns the run's results.

    A signal (KeyboardInterrupt, errors.Interrupted) stops the run: every QEMU is
    killed, the cells already running get DRAIN_S to end, and the results come back
    with every unfinished cell marked interrupted, for the caller to write.
    """
    pairs = [(s, c) for s in scenarios for c in select_cells(s, opts.only)]
    if not pairs:
        raise UserError(f"no cell matches --only {opts.only}")
    started = time.monotonic()
    done: dict[int, CellResult] = {}
    running: set[int] = set()
    stopped, in_flight = "", set()
    try:
        builds = ensure_kernels((c for _, c in pairs), progress_for, opts.drivers,
                                opts.kernel_src)
        images = guest_images(pairs, builds, progress_for)
        opts.out.mkdir(parents=True, exist_ok=True)

        def task(i: int) -> None:
            s, c = pairs[i]
            assert c.variant is not None
            running.add(i)
            try:
                done[i] = run_cell(s, c, images[i], opts, event)
            finally:
                running.discard(i)

        for _ in (executor or LocalPool(opts.jobs)).map_unordered(task, range(len(pairs))):
            pass
    except KeyboardInterrupt as exc:
        stopped, in_flight = getattr(exc, "name", "SIGINT"), set(running)
        qemu.kill_all()
        _drain(running)
    cells = [done.get(i) or CellResult(c, s.name, error=f"not run: interrupted by {stopped}")
             for i, (s, c) in enumerate(pairs)]
    for i, cell in enumerate(cells):
        if stopped and (i in in_flight or i not in done):
            cell.interrupted = stopped   # its errors are the kill's, not the guest's
            cache.write_json(cell_dir(opts.out, cell.scenario, cell.cell) / "result.json",
                        cell.to_json())
    return RunResult(
        scenarios=[{"name": s.name, "description": s.description, "path": str(s.path)}
                   for s in scenarios],
        host=host_facts(), jobs=opts.jobs, timing="icount" if opts.icount else "wallclock",
        cells=cells, duration_s=time.monotonic() - started, lab_version=__version__,
        interrupted=stopped)


def _drain(running: set[int]) -> None:
    """Waits (bounded) for the running cells to end; a second signal stops the wait."""
    deadline = Deadline(DRAIN_S)
    try:
        while running and not deadline.expired():
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass


def host_facts() -> dict:
    """The host part of results.json (a seam for tests)."""
    return hostfacts.summary()
