"""Running scenarios: select cells, ensure kernels, schedule cells, collect results.

Orchestration only: steps execute themselves (lab/scenario/steps/), guests own their
wires (lab/guest/guest.py), an Executor decides where cells run. Prints nothing.
A test failure is a result (fail); a guest that panics, hangs or loses QEMU
is a result too (error), and the other cells go on.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import random
import shutil
import socket
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from lab import __version__
from lab.artifacts import build
from lab.core import inputs
from lab.core.deadline import Deadline
from lab.core.errors import GuestTimeout, LabError, UserError
from lab.core.model import (
    Cell,
    GuestFile,
    HostFacts,
    KernelBuild,
    KernelVariant,
    Scenario,
    Selector,
    Step,
    timing,
)
from lab.core.paths import KERNEL_CONFIGS
from lab.core.results import BootResult, CellResult, RunResult, Status, StepResult
from lab.guest import qemu
from lab.guest.guest import Guest
from lab.host import cache, facts
from lab.parse import faults
from lab.scenario.steps.base import Context

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
    #: The seed of the interleaved schedule (None: a fresh one, recorded in results.json).
    seed: int | None = None
    #: Boot every guest cold, never from a snapshot template (lab run --cold).
    cold: bool = False


# ---------------------------------------------------------------- executors

class Executor(Protocol):
    """Where boots run. The local pool is the default; a cluster (lab.run.cluster) can
    replace it. The runner hands over a module-level function and picklable items
    (BootTask), so an executor may run them in another process or machine."""

    def map_unordered(self, fn: Callable[[BootTask], BootOutcome],
                      items: Iterable[BootTask]) -> Iterator[BootOutcome]:
        """fn over items; results as they finish. Items are taken from the iterable
        only as capacity frees up (so the runner can still skip the later boots of a
        cell that erred). On any exception, pending work is cancelled before the
        exception leaves."""
        ...

    def drain(self, seconds: float) -> list[BootOutcome]:
        """After map_unordered was stopped by an exception: what the work that was
        running returns within seconds (a second signal ends the wait)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Where the boots ran, for results.json: {"kind": ..., "jobs": guest slots, ...}."""
        ...


class LocalPool:
    """Threads on this machine, at most `jobs` boots at a time."""

    def __init__(self, jobs: int):
        self.jobs = max(1, jobs)
        self._running: set[Future] = set()

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="cell")
        todo = iter(items)
        self._running = {pool.submit(fn, item) for item in itertools.islice(todo, self.jobs)}
        try:
            while self._running:
                finished, _ = wait(self._running, return_when=FIRST_COMPLETED)
                for future in finished:
                    self._running.discard(future)
                    yield future.result()
                    self._running |= {pool.submit(fn, item) for item in itertools.islice(todo, 1)}
        except BaseException:
            # Ctrl-C: do not wait here for running boots; the caller stops their QEMUs.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    def drain(self, seconds: float) -> list[Any]:
        try:
            finished, _ = wait(self._running, timeout=seconds)
        except KeyboardInterrupt:
            finished = {f for f in self._running if f.done()}
        return [f.result() for f in finished if not f.cancelled() and f.exception() is None]

    def describe(self) -> dict[str, Any]:
        return {"kind": "local", "jobs": self.jobs}


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


# ---------------------------------------------------------------- cold boots or restores

def boot_policy(scenario: Scenario, cold: bool) -> tuple[bool, str]:
    """(restore, why): whether a cell's guests restore from a snapshot template
    (lab/guest/snapshot.py) instead of booting, and the sentence its result carries.

    The boot is the unit of replication (lab/analysis/stats.py), and clones of one template
    are not independent boots. A cell that records metrics may be compared, with
    another cell of this run or later against another run (lab compare RUN_A RUN_B),
    so it boots cold; a cell that records none restores. Restored boots that did
    take samples still count as one boot in a comparison (CellResult.boot_samples)."""
    if cold:
        return False, "cold: --cold"
    if scenario.metrics():
        return False, ("cold: it records metrics, which may be compared (in this run or "
                       "against another), and clones of one snapshot are not independent "
                       "boots")
    return True, "restored from a snapshot template: it records no metrics"


# ---------------------------------------------------------------- cells and their steps

def _skip(boot: BootResult, steps: list[Step]) -> None:
    boot.steps += [StepResult(s.name, s.kind, boot.index, Status.SKIP,
                              command=s.shown()[0], expected=s.shown()[1]) for s in steps]


def _fail_boot(boot: BootResult, step: Step, rest: list[Step], seconds: float, ctx: Context,
               exc: BaseException, start_s: float) -> None:
    """The step that ended its boot is an error; the steps after it are skipped."""
    boot.steps.append(StepResult(step.name, step.kind, boot.index, Status.ERROR, seconds,
                                 ctx.exit_code, str(exc) or repr(exc), ctx.kept_output(),
                                 tuple(ctx.tests), *step.shown(), start_s))
    _skip(boot, rest)


#: Beyond its boots' and steps' own deadlines, what a cell's default deadline allows
#: each boot for shutting its guest down.
SHUTDOWN_S = 10.0


def cell_dir(out: Path, scenario: str, cell: Cell) -> Path:
    """Where a cell's result.json and logs live."""
    return out / scenario / cell.id


def cell_seconds(scenario: Scenario, cell: Cell, repeat: int) -> float:
    """The cell's deadline: timeouts.cell, else every boot's and step's own deadline.
    Its boots share it evenly (boot_seconds): other cells' boots run between them."""
    if scenario.cell_timeout:
        return scenario.cell_timeout
    steps = sum(s.timeout or scenario.step_timeout for s in scenario.steps if s.applies(cell))
    return repeat * (scenario.boot_timeout + steps + SHUTDOWN_S)


def schedule(repeats: list[int], seed: int | None) -> list[tuple[int, int]]:
    """(cell, boot) pairs in the order the boots start. Randomized blocks: round r
    holds boot r of every cell that has one, in an order shuffled by seed (None: the
    cells' order), so that drift over the run hits every cell alike. A round never
    starts with the cell the round before ended with: boots next to each other in
    time, or side by side with -j2, belong to different cells where there are any."""
    rng, order = random.Random(seed), list[tuple[int, int]]()
    for r in range(max(repeats, default=0)):
        block = [i for i, n in enumerate(repeats) if n > r]
        if seed is not None:
            rng.shuffle(block)
            if order and len(block) > 1 and block[0] == order[-1][0]:
                block[0], block[-1] = block[-1], block[0]
        order += [(i, r) for i in block]
    return order


def _quiet(cell: Cell, **kw: Any) -> None:
    """The events of a boot that runs away from the client: nobody listens there."""


@dataclass(frozen=True)
class BootTask:
    """One boot of a cell: everything a guest needs to run it, in this process or on a
    cluster's worker. Picklable; its event callback stays behind (see __getstate__).
    It writes its logs under opts.out (a worker's own directory on a cluster) and
    returns a BootOutcome; a boot that fails or errs is a result, never an exception."""

    scenario: Scenario
    cell: Cell
    kbuild: KernelBuild
    opts: Options
    #: The boot's index in its cell, the cell's boots, and its place in the schedule.
    n: int
    repeat: int
    position: int
    #: time.time() when the run started (start_s is measured against it).
    since: float
    event: Event = _quiet
    #: The guest restores from a snapshot template (boot_policy).
    restore: bool = False

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "event": _quiet}

    @property
    def cell_s(self) -> float:
        return cell_seconds(self.scenario, self.cell, self.repeat)

    @property
    def logdir(self) -> Path:
        cdir = cell_dir(self.opts.out, self.scenario.name, self.cell)
        return cdir / f"boot-{self.n}" if self.repeat > 1 else cdir

    def within(self, seconds: float, deadline: Deadline) -> Deadline:
        """A deadline of seconds, cut short by the boot's share of the cell's; past
        it, an error."""
        if deadline.expired():
            share = (f" ({deadline.seconds:g} s for each of its {self.repeat} boots)"
                     if self.repeat > 1 else "")
            raise GuestTimeout(f"the cell's deadline of {self.cell_s:g} s{share} passed")
        return deadline.within(seconds)


@dataclass
class BootOutcome:
    """What a boot brings back: its result and the units its steps recorded."""

    position: int
    boot: BootResult
    units: dict[str, str] = field(default_factory=dict)


def run_boot_task(task: BootTask) -> BootOutcome:
    """One boot of the cell's guest, its steps, and what it left behind."""
    s, logdir = task.scenario, task.logdir
    started = time.monotonic()
    boot = BootResult(task.n, logs={name: str((logdir / f"{name}.log").relative_to(task.opts.out))
                                    for name in LOGS},
                      position=task.position, start_s=time.time() - task.since,
                      host_load=round(os.getloadavg()[0], 2),
                      worker={"host": socket.gethostname()})
    outcome = BootOutcome(task.position, boot)
    deadline = Deadline(task.cell_s / task.repeat)
    guest = None
    try:
        guest = Guest(task.kbuild, task.cell.cmdline_words, logdir=logdir, accel=task.opts.accel,
                      memory_mb=s.memory_mb, icount=task.opts.icount, sysctls=s.sysctls,
                      boot_deadline_s=task.within(s.boot_timeout, deadline).remaining(),
                      restore=task.restore)
        with guest:
            boot.facts = guest.facts
            _steps(task, guest, outcome, deadline)
            boot.tainted = guest.tainted()
            boot.faults = guest.faults()
    except (LabError, OSError) as exc:
        boot.error = str(exc) or repr(exc)
    except Exception as exc:   # a bug in the lab: this cell errs, the run goes on
        boot.error = _internal_error(exc, logdir)
    if boot.error and guest is not None:
        boot.faults = guest.faults()
    if guest is not None and guest.core is not None:
        boot.logs["vmcore"] = str(guest.core.relative_to(task.opts.out))
    boot.duration_s = time.monotonic() - started
    return outcome


def _context(task: BootTask, guest: Guest, outcome: BootOutcome, i: int) -> Context:
    """Step i's view of its boot; its output file is step-<i+1>.out in the boot's logs."""
    output = guest.logdir / f"step-{i + 1:02d}.out"
    return Context(guest, Deadline(0), outcome.boot.samples, outcome.units, arch=task.cell.arch,
                   output_file=output, output_label=str(output.relative_to(task.opts.out)),
                   console_log=guest.logdir / "console.log", kernel=task.kbuild)


def _steps(task: BootTask, guest: Guest, outcome: BootOutcome, deadline: Deadline) -> None:
    """The cell's steps in order; an error (not a failure) ends the boot, and
    propagates. Each step's deadline is its own, cut short by the boot's."""
    boot, steps = outcome.boot, [s for s in task.scenario.steps if s.applies(task.cell)]
    for i, step in enumerate(steps):
        task.event(task.cell, phase=f"step {i + 1}/{len(steps)}: {step.name}")
        before = len(guest.faults())
        started, start_s = time.monotonic(), time.time() - task.since
        ctx = _context(task, guest, outcome, i)
        try:
            ctx.deadline = task.within(step.timeout or task.scenario.step_timeout, deadline)
            problems = step.execute(ctx)
        except Exception as exc:
            # The lab's machinery failed (a guest gone, a monitor with no answer, a
            # UART that would not connect, OSError from a socket whose QEMU died, the
            # cell's deadline) or a bug in the lab: an error, never a test failure,
            # and the boot ends. What a step can judge it returns as a problem.
            _fail_boot(boot, step, steps[i + 1:], time.monotonic() - started, ctx, exc,
                       start_s)
            raise
        new_faults = guest.faults()[before:]
        if new_faults and not step.allow_faults:
            problems += [f"kernel {f.kind}: {faults.message(f.text.splitlines()[0])}"
                         for f in new_faults]
        boot.steps.append(StepResult(step.name, step.kind, boot.index,
                                     Status.FAIL if problems else Status.PASS,
                                     time.monotonic() - started, ctx.exit_code,
                                     "; ".join(ctx.notes + problems), ctx.kept_output(),
                                     tuple(ctx.tests), *step.shown(), start_s))
        if problems and task.opts.stop_on_fail:
            _skip(boot, steps[i + 1:])
            return


def _internal_error(exc: Exception, logdir: Path) -> str:
    """The message of a lab bug that ended a boot; the traceback goes to the cell's logs."""
    logdir.mkdir(parents=True, exist_ok=True)
    path = logdir / "internal-error.txt"
    path.write_text("".join(traceback.format_exception(exc)))
    return f"internal error in the lab: {type(exc).__name__}: {exc} (traceback in {path})"


def lost_boot(task: BootTask, error: str) -> BootOutcome:
    """The outcome of a boot that brought nothing back (an executor lost it): an error."""
    return BootOutcome(task.position, BootResult(task.n, error=error, position=task.position))


@dataclass
class _CellRun:
    """One cell under way, on the client: its boots run as BootTasks, anywhere, and
    come back here in any order. A cell ends when its last scheduled boot has come
    back, or been skipped because an earlier boot of it erred."""

    scenario: Scenario
    cell: Cell
    kbuild: KernelBuild
    opts: Options
    event: Event
    result: CellResult
    repeat: int
    #: Its guests restore from a snapshot template (boot_policy).
    restore: bool = False

    def __post_init__(self) -> None:
        self.left = self.repeat
        self.erred = False

    def task(self, n: int, position: int, since: float) -> BootTask:
        self.event(self.cell, phase=f"boot {n + 1}/{self.repeat}" if self.repeat > 1 else "boot")
        return BootTask(self.scenario, self.cell, self.kbuild, self.opts, n, self.repeat,
                        position, since, self.event, self.restore)

    def record(self, outcome: BootOutcome | None) -> CellResult | None:
        """A boot that came back (None: one skipped); the finished cell when this was
        its last boot, else None."""
        self.left -= 1
        if outcome is not None:
            boot = outcome.boot
            self.result.boots.append(boot)
            self.result.duration_s += boot.duration_s
            for name, unit in outcome.units.items():
                if unit or name not in self.result.units:
                    self.result.units[name] = unit
            self.erred = self.erred or bool(boot.error)
        return None if self.left else self.finish()

    def finish(self) -> CellResult:
        self.result.boots.sort(key=lambda b: b.index)
        cache.write_json(cell_dir(self.opts.out, self.scenario.name, self.cell) / "result.json",
                         self.result.to_json())
        self.event(self.cell, phase="done", status=self.result.status.value)
        return self.result


def _cell_run(scenario: Scenario, cell: Cell, kbuild: KernelBuild, opts: Options,
              event: Event) -> _CellRun:
    restore, why = boot_policy(scenario, opts.cold)
    meta = build.kernel_meta(kbuild)
    result = CellResult(cell, scenario.name, timing=timing(opts.icount),
                        config=meta.get("options", {}), kernel_source=meta.get("source_info", {}),
                        boot_policy=why, kernel={"hash": kbuild.hash,
                                                 "fragments": _fragments(meta)})
    return _CellRun(scenario, cell, kbuild, opts, event, result,
                    opts.repeat or scenario.repeat, restore)


def _fragments(meta: dict) -> list[str]:
    """The kernel's Kconfig fragments as results show them: relative to the lab's
    kernel-configs/ when they are the lab's own, else as they were given."""
    shown = []
    for path in meta.get("fragments", []):
        try:
            shown.append(str(Path(path).relative_to(KERNEL_CONFIGS)))
        except ValueError:
            shown.append(str(path))
    return shown


def run_cell(scenario: Scenario, cell: Cell, kbuild: KernelBuild, opts: Options,
             event: Event) -> CellResult:
    """Every boot of one cell (repeat) in a row, here, stopping at the first boot
    that errs. Writes the cell's result.json as soon as it ends."""
    run = _cell_run(scenario, cell, kbuild, opts, event)
    since = time.time()
    for n in range(run.repeat):
        outcome = None if run.erred else run_boot_task(run.task(n, n, since))
        if (done := run.record(outcome)) is not None:
            return done
    raise AssertionError("a cell ends with its last boot")


class _Schedule:
    """The run's boots, handed to the executor lazily and in schedule order, so that
    the later boots of a cell that erred are skipped; what comes back goes to its cell."""

    def __init__(self, runs: list[_CellRun], slots: list[tuple[int, int]], since: float):
        self.runs, self.slots, self.since = runs, slots, since
        self.done: dict[int, CellResult] = {}
        #: Boots handed out and not back yet: position -> cell.
        self.out: dict[int, int] = {}

    def tasks(self) -> Iterator[BootTask]:
        for position, (i, n) in enumerate(self.slots):
            if self.runs[i].erred:
                self._ended(i, self.runs[i].record(None))
                continue
            self.out[position] = i
            yield self.runs[i].task(n, position, self.since)

    def record(self, outcome: BootOutcome) -> None:
        i = self.out.pop(outcome.position)
        self._ended(i, self.runs[i].record(outcome))

    def _ended(self, i: int, cell: CellResult | None) -> None:
        if cell is not None:
            self.done[i] = cell


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


def _seed(opts: Options, repeats: list[int]) -> int | None:
    """The schedule's seed: the run's, else a fresh one where boots interleave."""
    if len(repeats) < 2 or max(repeats) < 2:
        return None
    return opts.seed if opts.seed is not None else random.SystemRandom().randrange(2**31)


def run(scenarios: list[Scenario], opts: Options, event: Event, progress_for: Callable,
        executor: Executor | None = None) -> RunResult:
    """Runs every selected cell of every scenario; returns the run's results.

    The executor runs boots, not cells: with repeat >= 2 the boots of the cells
    interleave (schedule), and each cell ends with its last boot.
    A signal (KeyboardInterrupt, errors.Interrupted) stops the run: every QEMU is
    killed, the boots already running get DRAIN_S to end, and the results come back
    with every unfinished cell marked interrupted, for the caller to write.
    """
    pairs = [(s, c) for s in scenarios for c in select_cells(s, opts.only)]
    if not pairs:
        raise UserError(f"no cell matches --only {opts.only}")
    if problem := inputs.kernels_problem(len({(c.arch, c.kernel) for _, c in pairs})):
        raise UserError(f"this run {problem} into several runs")
    repeats = [opts.repeat or s.repeat for s, _ in pairs]
    seed = _seed(opts, repeats)
    started, since = time.monotonic(), time.time()
    executor = executor or LocalPool(opts.jobs)
    sched: _Schedule | None = None
    stopped, in_flight = "", set[int]()
    made: list[dict[str, Any]] = []
    timed = _timed(progress_for, since, made)
    try:
        builds = ensure_kernels((c for _, c in pairs), timed, opts.drivers, opts.kernel_src)
        images = guest_images(pairs, builds, timed)
        opts.out.mkdir(parents=True, exist_ok=True)
        sched = _Schedule([_cell_run(s, c, images[i], opts, event)
                           for i, (s, c) in enumerate(pairs)], schedule(repeats, seed), since)
        for outcome in executor.map_unordered(run_boot_task, sched.tasks()):
            sched.record(outcome)
    except KeyboardInterrupt as exc:
        stopped = getattr(exc, "name", "SIGINT")
        qemu.kill_all()
        if sched is not None:
            in_flight = set(sched.out.values())
            for outcome in executor.drain(DRAIN_S):
                sched.record(outcome)
    cells = _cells(pairs, sched, stopped, in_flight, opts.out)
    where = executor.describe()
    return RunResult(
        scenarios=[{"name": s.name, "description": s.description, "path": str(s.path),
                    **({"compare": s.compare.to_json()} if s.compare else {}),
                    **({"drivers": [str(d) for d in opts.drivers]} if opts.drivers else {})}
                   for s in scenarios],
        host=host_facts(), jobs=where["jobs"], executor=where,
        timing=timing(opts.icount),
        cells=cells, duration_s=time.monotonic() - started, lab_version=__version__,
        interrupted=stopped, builds=made,
        schedule={"order": "interleaved" if seed is not None else "in order", "seed": seed})


def _timed(progress_for: Callable, since: float, made: list[dict[str, Any]]) -> Callable:
    """progress_for, recording each kernel or image made ready in made: what, when
    (seconds after since), for how long, and whether anything was built."""
    @contextlib.contextmanager
    def timed(label: str) -> Iterator[build.Progress]:
        started, built = time.time(), [False]
        with progress_for(label) as progress:
            def said(phase: str, detail: str) -> None:
                built[0] = True
                progress(phase, detail)
            yield said
        made.append({"what": label, "start_s": round(started - since, 3),
                     "duration_s": round(time.time() - started, 3), "built": built[0]})
    return timed


def _cells(pairs: list[tuple[Scenario, Cell]], sched: _Schedule | None, stopped: str,
           in_flight: set[int], out: Path) -> list[CellResult]:
    """Every cell's result, in the scenarios' order; after a signal, the cells it
    stopped say so, in results.json and in their own result.json."""
    done = sched.done if sched is not None else {}
    cells = [done.get(i) or _unfinished(sched.runs[i] if sched else None, s, c, stopped)
             for i, (s, c) in enumerate(pairs)]
    for i, cell in enumerate(cells):
        if stopped and (i in in_flight or i not in done):
            cell.interrupted = stopped   # its errors are the kill's, not the guest's
            cache.write_json(cell_dir(out, cell.scenario, cell.cell) / "result.json",
                             cell.to_json())
    return cells


def _unfinished(run: _CellRun | None, s: Scenario, c: Cell, stopped: str) -> CellResult:
    """A cell the signal stopped: the boots it had, else why it has none."""
    if run is not None and run.result.boots:
        run.result.boots.sort(key=lambda b: b.index)
        return run.result
    return CellResult(c, s.name, error=f"not run: interrupted by {stopped}")


def host_facts() -> HostFacts:
    """The host part of results.json (a seam for tests)."""
    return facts.summary()
