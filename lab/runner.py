"""Running scenarios: matrix cells in parallel, steps, results. Prints nothing.

A test failure is a result (status "fail"); a guest that panics, hangs or
loses QEMU is a result too (status "error"), and the other cells go on.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from lab import __version__, build, hostfacts, kconfig, qemu, stats
from lab.arches import get_arch
from lab.deadline import Deadline
from lab.errors import GuestError, InfraError, LabError, UserError
from lab.guest import Guest
from lab.model import Cell, KernelBuild, Scenario, Step
from lab.paths import ROOT
from lab.scenario import resolve_kernel

Event = Callable[..., None]


@dataclass
class StepResult:
    name: str
    kind: str
    boot: int
    status: str = "pass"          # pass, fail, error, skip
    duration_s: float = 0.0
    exit_code: int | None = None
    message: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "boot": self.boot, "status": self.status,
                "duration_s": round(self.duration_s, 4), "exit_code": self.exit_code,
                "message": self.message}


@dataclass
class CellResult:
    cell: Cell
    scenario: str
    accel: str = ""
    timing: str = "wallclock"
    status: str = "pass"          # pass, fail, error
    error: str = ""
    kpti_active: bool | None = None
    kernel_release: str = ""
    config: dict = field(default_factory=dict)
    boot_s: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    faults: list[dict] = field(default_factory=list)
    tainted: int | None = None
    logs: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0

    def to_json(self) -> dict:
        c = self.cell
        return {
            "id": c.id, "scenario": self.scenario, "arch": c.arch, "kernel": c.kernel,
            "cmdline": c.cmdline, "cmdline_words": list(c.cmdline_words),
            "accel": self.accel, "timing": self.timing, "status": self.status,
            "error": self.error, "kpti_active": self.kpti_active,
            "kernel_release": self.kernel_release, "config": self.config,
            "boot_s": round(statistics.median(self.boot_s), 3) if self.boot_s else None,
            "boots_s": [round(b, 3) for b in self.boot_s],
            "metrics": self.metrics, "units": self.units,
            "steps": [s.to_json() for s in self.steps], "faults": self.faults,
            "tainted": self.tainted, "logs": self.logs, "duration_s": round(self.duration_s, 2),
        }


@dataclass(frozen=True)
class Options:
    out: Path
    jobs: int = os.cpu_count() or 1
    only: tuple[tuple[str, str], ...] = ()
    repeat: int | None = None
    icount: bool = False
    accel: str | None = None
    #: Module directories to put in the guest image besides drivers/*.
    drivers: tuple[Path, ...] = ()
    #: Stop a cell at its first failed step (the driver loop wants the first failure).
    stop_on_fail: bool = False


def select_cells(scenario: Scenario, only: tuple[tuple[str, str], ...]) -> list[Cell]:
    for key, _ in only:
        if key not in ("arch", "kernel", "cmdline"):
            raise UserError(f"--only {key}=...: the keys are arch, kernel and cmdline")
    return [c for c in scenario.cells if all(c.key()[k] == v for k, v in only)]


def build_kernels(pairs: list[tuple[Scenario, Cell]], progress_for,
                  drivers: tuple[Path, ...] = ()) -> dict:
    """Every kernel the cells need, built once each (in order, each build uses -j)."""
    built: dict[tuple[str, str], KernelBuild] = {}
    for scenario, cell in pairs:
        kernel_spec = resolve_kernel(scenario, cell.kernel)
        key = (cell.arch, kernel_spec)
        if key not in built:
            arch = get_arch(cell.arch)
            variant = kconfig.resolve_variant(arch, kernel_spec)
            with progress_for(f"{cell.arch}/{variant.name}") as progress:
                built[key] = build.ensure(arch, variant, progress, extra_drivers=drivers)
    return built


# ---------------------------------------------------------------- steps

class _Boot:
    """What the steps of one boot share: the guest and its samples."""

    def __init__(self, guest: Guest, result: CellResult):
        self.guest = guest
        self.result = result
        self.samples: dict[str, list[float]] = {}


def _check_output(step: Step, output: str) -> list[str]:
    problems = []
    if step.match is not None and not re.search(step.match, output, re.M):
        problems.append(f"output does not match {step.match!r}")
    if step.no_match is not None and (m := re.search(step.no_match, output, re.M)):
        problems.append(f"output matches {step.no_match!r}: {m.group(0)!r}")
    return problems


def _show(value: float) -> str:
    return f"{value:g} ({int(value):#x})" if float(value).is_integer() else f"{value:g}"


def _compare(value, step: Step) -> list[str]:
    problems = []
    if step.equals is not None and value != step.equals:
        problems.append(f"is {value!r}, expected {step.equals!r}")
    if step.min is not None and (value is None or value < step.min):
        problems.append(f"is {value!r}, expected at least {step.min}")
    if step.max is not None and (value is None or value > step.max):
        problems.append(f"is {value!r}, expected at most {step.max}")
    return problems


def _run_step(step: Step, boot: _Boot, timeout: float, res: StepResult) -> list[str]:
    """Runs one step; returns what went wrong (empty: pass). Guest errors propagate."""
    guest = boot.guest
    if step.kind == "run":
        r = guest.run(step.command, timeout)
        res.exit_code = r.exit_code
        problems = []
        if step.expect_exit is not None and r.exit_code != step.expect_exit:
            problems.append(f"exit code {r.exit_code}, expected {step.expect_exit}")
        problems += _check_output(step, r.output) + _extract(step, boot, r.output)
        if problems:
            problems.append("output:\n" + r.output[-2000:])
        return problems
    if step.kind == "put":
        guest.put_file(Path(step.src).read_bytes(), step.dest, step.mode)
        return []
    if step.kind == "module":
        if step.load:
            verb = "insmod" if step.load.endswith(".ko") else "modprobe"
            r = guest.run(f"{verb} {step.load} {step.args}".strip(), timeout)
        else:
            r = guest.run(f"rmmod {step.unload}", timeout)
        res.exit_code = r.exit_code
        return [] if r.exit_code == 0 else [f"exit code {r.exit_code}: {r.output.strip()}"]
    if step.kind == "uart":
        return _uart(step, boot, timeout)
    if step.kind == "qmp":
        reply = guest.qmp(step.qmp_command, **dict(step.qmp_args))
        return [f"{k}: got {reply.get(k) if isinstance(reply, dict) else reply!r}, expected {v!r}"
                for k, v in step.qmp_expect
                if not isinstance(reply, dict) or reply.get(k) != v]
    if step.kind == "hmp":
        answer = guest.hmp(step.hmp)
        return _check_output(step, answer) + _extract(step, boot, answer)
    # assert
    if step.fact:
        facts = guest.facts.to_json()
        value = guest.tainted() if step.fact == "tainted" else facts.get(step.fact)
        return [f"{step.fact} {p}" for p in _compare(value, step)]
    for name in filter(None, (step.metric, step.ratio_to, step.equals_metric)):
        if not boot.samples.get(name):
            return [f"metric {name} has no samples yet in this boot"]
    samples = boot.samples[step.metric]
    if step.equals_metric:
        a, b = statistics.median(samples), statistics.median(boot.samples[step.equals_metric])
        if a != b:
            return [f"{step.metric} is {_show(a)} but {step.equals_metric} is {_show(b)}"]
    if step.ratio_to:
        # Fails only when the whole 95% interval of the ratio is past a bound:
        # a real regression fails it, the noise of a shared machine does not.
        r = stats.ratio(samples, boot.samples[step.ratio_to])
        lo, hi = r.ci
        what = (f"median {step.metric} / median {step.ratio_to} = {r.value:.3f} "
                f"(95% interval {lo:.3f}-{hi:.3f})")
        problems = []
        if step.min is not None and hi < step.min:
            problems.append(f"{what}, entirely below {step.min}")
        if step.max is not None and lo > step.max:
            problems.append(f"{what}, entirely above {step.max}")
        return problems
    return [f"median of {step.metric} {p}" for p in _compare(statistics.median(samples), step)]


def _number(text: str) -> float:
    """A sample: decimal, or hex with 0x (register values)."""
    return float(int(text, 16)) if text.lower().startswith("0x") else float(text)


def _extract(step: Step, boot: _Boot, output: str) -> list[str]:
    """Every metric's samples from a step's output; a metric with none is a problem."""
    problems = []
    for metric in step.metrics:
        found = [m.group(1) for m in re.finditer(metric.regex, output, re.M)]
        if not found:
            problems.append(f"metric {metric.name}: no sample in the output")
        for text in found:
            try:
                value = _number(text)
            except ValueError:
                problems.append(f"metric {metric.name}: {text!r} is not a number")
                continue
            _sample(boot, metric.name, value, metric.unit or _unit(metric.name, output))
    return problems


def _unit(name: str, output: str) -> str:
    m = re.search(rf"^METRIC {name} \S+ (\S+)", output, re.M)
    return m.group(1) if m else ""


def _sample(boot: _Boot, name: str, value: float, unit: str) -> None:
    boot.samples.setdefault(name, []).append(value)
    boot.result.metrics.setdefault(name, []).append(value)
    boot.result.units[name] = unit


def _transfer(step: Step, boot: _Boot, timeout: float) -> list[str]:
    """Random bytes through the UART, checksummed on both ends; KiB/s as a metric."""
    uart = boot.guest.uart()
    move = uart.transfer_out if step.transfer == "guest-to-host" else uart.transfer_in
    problems = []
    for i in range(step.count):
        moved = move(step.device, step.nbytes, Deadline(timeout))
        if moved.ok:
            _sample(boot, step.metric_name, moved.kib_s, "KiB/s")
        else:
            problems.append(f"transfer {i + 1}: {moved.detail}")
    return problems


def _uart(step: Step, boot: _Boot, timeout: float) -> list[str]:
    if step.transfer:
        return _transfer(step, boot, timeout)
    uart = boot.guest.uart()
    deadline = Deadline(timeout)
    if step.send:
        uart.send(step.send.encode(), deadline)
    if step.match is not None and uart.expect(step.match, deadline) is None:
        return [f"the UART did not send {step.match!r} within {timeout:g} s "
                f"(got {uart.tail!r})"]
    return []


# ---------------------------------------------------------------- cells

def run_cell(scenario: Scenario, cell: Cell, kbuild: KernelBuild, opts: Options,
             event: Event) -> CellResult:
    started = time.monotonic()
    cdir = opts.out / scenario.name / cell.id
    cdir.mkdir(parents=True, exist_ok=True)
    result = CellResult(cell, scenario.name, timing="icount" if opts.icount else "wallclock")
    result.config = build.kernel_meta(kbuild).get("options", {})
    repeat = opts.repeat or scenario.repeat
    for n in range(repeat):
        logdir = cdir / f"boot-{n}" if repeat > 1 else cdir
        result.logs.update({f"{name}" + (f"-{n}" if repeat > 1 else ""):
                            str((logdir / f"{name}.log").relative_to(opts.out))
                            for name in ("console", "qemu", "qmp")})
        event(cell, phase=f"boot {n + 1}/{repeat}" if repeat > 1 else "boot")
        guest = Guest(kbuild, cell.cmdline_words, logdir=logdir, accel=opts.accel,
                      memory_mb=scenario.memory_mb, icount=opts.icount,
                      boot_deadline_s=scenario.boot_timeout)
        try:
            with guest:
                facts = guest.facts
                result.accel = guest.accel
                result.boot_s.append(facts.boot_s)
                result.kernel_release = facts.kernel_release
                if result.kpti_active is None:
                    result.kpti_active = facts.kpti_active
                boot = _Boot(guest, result)
                _run_steps(scenario, cell, boot, n, result, event, opts.stop_on_fail)
                if result.status != "error":
                    result.tainted = guest.tainted()
                result.faults += [f.__dict__ for f in guest.faults()]
        except (LabError, OSError) as exc:
            result.status, result.error = "error", str(exc) or repr(exc)
            if guest.kernel:
                result.faults += [f.__dict__ for f in guest.faults()]
        if result.status == "error":
            break
    result.duration_s = time.monotonic() - started
    event(cell, phase="done", status=result.status)
    return result


def _run_steps(scenario: Scenario, cell: Cell, boot: _Boot, n: int, result: CellResult,
               event: Event, stop_on_fail: bool = False) -> None:
    steps = [s for s in scenario.steps if s.applies(cell)]
    for i, step in enumerate(steps):
        res = StepResult(step.name, step.kind, n)
        result.steps.append(res)
        event(cell, phase=f"step {i + 1}/{len(steps)}: {step.name}")
        before = len(boot.guest.faults())
        started = time.monotonic()
        try:
            problems = _run_step(step, boot, step.timeout or scenario.step_timeout, res)
        except (GuestError, OSError) as exc:   # OSError: a file a put step could not read
            res.status, res.message = "error", str(exc) or repr(exc)
            res.duration_s = time.monotonic() - started
            _skip(result, steps[i + 1:], n)
            raise
        except InfraError as exc:   # a QMP command the machine refused, for example
            problems = [str(exc)]
        res.duration_s = time.monotonic() - started
        new_faults = boot.guest.faults()[before:]
        if new_faults and not step.allow_faults:
            problems += [f"kernel {f.kind}: {f.text.splitlines()[0]}" for f in new_faults]
        if problems:
            res.status, res.message = "fail", "; ".join(problems)
            if result.status == "pass":
                result.status = "fail"
            if stop_on_fail:
                _skip(result, steps[i + 1:], n)
                return


def _skip(result: CellResult, steps: list[Step], boot: int) -> None:
    result.steps += [StepResult(s.name, s.kind, boot, "skip") for s in steps]


def run(scenarios: list[Scenario], opts: Options, event: Event, progress_for) -> dict:
    """Runs every selected cell of every scenario; returns the results document."""
    pairs = [(s, c) for s in scenarios for c in select_cells(s, opts.only)]
    if not pairs:
        raise UserError("no cell matches --only " + " ".join(f"{k}={v}" for k, v in opts.only))
    builds = build_kernels(pairs, progress_for, opts.drivers)
    opts.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: list[CellResult] = []
    with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
        futures = [pool.submit(run_cell, s, c, builds[(c.arch, resolve_kernel(s, c.kernel))],
                               opts, event) for s, c in pairs]
        try:
            for f in futures:
                results.append(f.result())
        except KeyboardInterrupt:
            for f in futures:
                f.cancel()
            qemu.kill_all()
            raise
    return {
        "scenario": ", ".join(s.name for s in scenarios),
        "scenarios": [{"name": s.name, "description": s.description, "path": str(s.path)}
                      for s in scenarios],
        "lab_version": __version__,
        "host": hostfacts.summary(),
        "jobs": opts.jobs, "timing": "icount" if opts.icount else "wallclock",
        "duration_s": round(time.monotonic() - started, 2),
        "cells": [r.to_json() for r in results],
    }


def exit_code(results: dict) -> int:
    statuses = {c["status"] for c in results["cells"]}
    return 2 if "error" in statuses else 1 if "fail" in statuses else 0


def driver_scenario(driver: Path) -> Path:
    """A driver's own scenario (DRIVER_DIR/lab.yaml), else the PL011 driver's."""
    own = driver / "lab.yaml"
    return own if own.is_file() else ROOT / "scenarios" / "pl011-driver.yaml"


def retarget(scenario: Scenario, arch: str, kernel: str | None) -> Scenario:
    """The scenario's cells for one arch, all on kernel if one is given."""
    cells = [c for c in scenario.cells if c.arch == arch]
    if not cells:
        raise UserError(f"{scenario.path}: the scenario has no {arch} cells")
    if kernel:
        kconfig.resolve_variant(get_arch(arch), kernel)   # an unknown one fails here
        if "/" in kernel:
            kernel = str(Path(kernel).resolve())
        cells = list({c.cmdline: replace(c, kernel=kernel) for c in cells}.values())
    return replace(scenario, cells=tuple(cells))


def with_only(opts: Options, only: list[str]) -> Options:
    pairs = []
    for item in only:
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise UserError(f"--only {item!r}: expected KEY=VALUE")
        pairs.append((key, value))
    return replace(opts, only=tuple(pairs))
