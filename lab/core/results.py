"""Typed results: a run holds cells, a cell holds boots, a boot holds steps.

Status is derived from the children (kunit's TestCounts.get_status()), never
assigned in several places: a boot is an error when an infrastructure error
ended it, else the worst of its steps; a cell is the worst of its boots.
to_json/from_json sit beside the types. The results.json format is versioned
(FORMAT); files written before the version existed (format 1: no "boots")
still load, and so do format 2 files (boots without their place in the schedule),
and files written before steps reported tests (no "tests").
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from lab.core.model import BootFacts, Cell, HostFacts, KernelMessage, accel_name

FORMAT = 3
#: What names a boot's worker (its "worker" may say more: what it fetched).
WORKER_KEYS = ("name", "address", "host")


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"
    #: The run was stopped (a signal) before or while this ran.
    INTERRUPTED = "interrupted"

    @staticmethod
    def worst(statuses: Iterable[Status]) -> Status:
        """ERROR over INTERRUPTED over FAIL over PASS; a skipped step changes nothing."""
        found = set(statuses)
        for status in (Status.ERROR, Status.INTERRUPTED, Status.FAIL):
            if status in found:
                return status
        return Status.PASS


@dataclass(frozen=True)
class TestResult:
    """One row a step reports besides itself: a test of a suite it ran (kselftest's
    `proc.read`, KUnit's `list-kunit-test.list_test_list_init`). Any step kind may
    report them (Context.tests); reports show each as its own row and JUnit case."""

    __test__: ClassVar[bool] = False   # not a test class, whatever pytest thinks of the name
    name: str
    status: Status
    message: str = ""
    #: Kernel faults seen while this test ran.
    faults: tuple[KernelMessage, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "message": self.message,
                "faults": [_fault_json(f) for f in self.faults]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TestResult:
        return cls(d["name"], Status(d["status"]), d.get("message", ""),
                   tuple(_fault(x) for x in d.get("faults", [])))


@dataclass(frozen=True)
class StepResult:
    name: str
    kind: str
    boot: int
    status: Status
    duration_s: float = 0.0
    exit_code: int | None = None
    message: str = ""
    #: The file with the step's whole output, relative to the run's --out directory.
    output: str | None = None
    #: The tests the step ran and reported one by one (kselftest, kunit), in order.
    tests: tuple[TestResult, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "boot": self.boot,
                "status": self.status.value, "duration_s": round(self.duration_s, 4),
                "exit_code": self.exit_code, "message": self.message, "output": self.output,
                "tests": [t.to_json() for t in self.tests]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StepResult:
        return cls(d["name"], d["kind"], d.get("boot", 0), Status(d["status"]),
                   d.get("duration_s", 0.0), d.get("exit_code"), d.get("message", ""),
                   d.get("output"), tuple(TestResult.from_json(t) for t in d.get("tests", [])))


def _fault_json(f: KernelMessage) -> dict[str, Any]:
    return {"kind": f.kind, "fatal": f.fatal, "text": f.text}


def _fault(d: dict[str, Any]) -> KernelMessage:
    return KernelMessage(d["kind"], d.get("fatal", False), d.get("text", ""))


@dataclass
class BootResult:
    """One boot of a cell's guest and what happened in it."""

    index: int
    facts: BootFacts | None = None
    steps: list[StepResult] = field(default_factory=list)
    #: This boot's samples, by metric name.
    samples: dict[str, list[float]] = field(default_factory=dict)
    faults: list[KernelMessage] = field(default_factory=list)
    tainted: int | None = None
    #: Log files, relative to the run's --out directory, by name (console, qemu, qmp).
    logs: dict[str, str] = field(default_factory=dict)
    #: The infrastructure error that ended this boot (a panic, a hang, a lost QEMU).
    error: str = ""
    #: Where this boot stood in the run's schedule (0 first; None before format 3).
    position: int | None = None
    #: When it started, in seconds after the run started.
    start_s: float | None = None
    #: The host's 1-minute load average when it started (os.getloadavg).
    host_load: float | None = None
    #: From its start to its guest's shutdown.
    duration_s: float = 0.0
    #: Where it ran: the host's name, and on a cluster the worker's name and address
    #: (and what it fetched to run it).
    worker: dict[str, Any] = field(default_factory=dict)
    #: What the executor has to say about it (a rerun after a lost worker).
    note: str = ""

    @property
    def status(self) -> Status:
        if self.error:
            return Status.ERROR
        return Status.worst(s.status for s in self.steps)

    @property
    def failed_to_boot(self) -> bool:
        """An error that no step owns: the boot itself (the guest never reached its
        shell, so it has no facts), or the shutdown, failed."""
        return bool(self.error) and (self.facts is None or
                                     not any(s.status is Status.ERROR for s in self.steps))

    def to_json(self) -> dict[str, Any]:
        facts = self.facts.to_json() if self.facts else None
        return {"index": self.index, "status": self.status.value, "error": self.error,
                "facts": facts, "samples": self.samples, "tainted": self.tainted,
                "faults": [_fault_json(f) for f in self.faults], "logs": self.logs,
                "boot_s": facts["boot_s"] if facts else None, "position": self.position,
                "start_s": None if self.start_s is None else round(self.start_s, 3),
                "host_load": self.host_load, "duration_s": round(self.duration_s, 3),
                "worker": self.worker, "note": self.note}

    @classmethod
    def from_json(cls, d: dict[str, Any], steps: list[StepResult]) -> BootResult:
        f = d.get("facts")
        facts = BootFacts(f["kernel_release"], f["accel"], f["cmdline"], f["boot_s"],
                          f["kpti_active"], f.get("boot", "cold"), f.get("template", ""),
                          f.get("note", "")) if f else None
        return cls(d["index"], facts, steps, d.get("samples", {}),
                   [_fault(x) for x in d.get("faults", [])], d.get("tainted"),
                   d.get("logs", {}), d.get("error", ""), d.get("position"),
                   d.get("start_s"), d.get("host_load"), d.get("duration_s", 0.0),
                   d.get("worker") or {}, d.get("note", ""))


@dataclass
class CellResult:
    """One matrix cell: its boots, and what they share (units, kernel options)."""

    cell: Cell
    scenario: str
    timing: str = "wallclock"
    #: The kernel variant's own options as found in the final .config.
    config: dict[str, str] = field(default_factory=dict)
    boots: list[BootResult] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0
    #: Why the cell did not run at all (it has no boots then).
    error: str = ""
    #: The signal that stopped the run while this cell had not finished ("" if none).
    interrupted: str = ""
    #: The kernel's source: path, describe (git describe --dirty, or a tree hash),
    #: dirty (the files that differ from HEAD, untracked ones included).
    kernel_source: dict[str, Any] = field(default_factory=dict)
    #: Whether its guests booted cold or restored from a snapshot template, and why
    #: (runner.boot_policy); "" in results made before templates.
    boot_policy: str = ""

    @property
    def id(self) -> str:
        return self.cell.id

    @property
    def status(self) -> Status:
        if self.interrupted:
            return Status.INTERRUPTED
        if self.error or not self.boots:
            return Status.ERROR
        return Status.worst(b.status for b in self.boots)

    @property
    def steps(self) -> list[StepResult]:
        return [s for b in self.boots for s in b.steps]

    @property
    def tests(self) -> list[TestResult]:
        """The tests its steps reported one by one, in order."""
        return [t for s in self.steps for t in s.tests]

    @property
    def metrics(self) -> dict[str, list[float]]:
        """Every boot's samples, pooled per metric in boot order."""
        pooled: dict[str, list[float]] = {}
        for b in self.boots:
            for name, values in b.samples.items():
                pooled.setdefault(name, []).extend(values)
        return pooled

    def boot_samples(self, metric: str) -> list[list[float]]:
        """The metric's samples, boot by boot (boots that took none left out). The
        boots restored from one snapshot template are one boot: they are clones of
        the same boot, not independent ones."""
        groups: dict[str, list[float]] = {}
        for i, b in enumerate(self.boots):
            if b.samples.get(metric):
                restored = b.facts is not None and b.facts.boot == "restored"
                key = f"template {b.facts.template}" if restored and b.facts else f"boot {i}"
                groups.setdefault(key, []).extend(b.samples[metric])
        return list(groups.values())

    @property
    def boot_mode(self) -> str:
        """"cold", "restored", or "mixed" (a template that failed, say), over its boots."""
        modes = {b.facts.boot for b in self.boots if b.facts}
        return modes.pop() if len(modes) == 1 else "mixed" if modes else ""

    @property
    def faults(self) -> list[KernelMessage]:
        return [f for b in self.boots for f in b.faults]

    def _first(self, attr: str) -> Any:
        return next((getattr(b.facts, attr) for b in self.boots
                     if b.facts and getattr(b.facts, attr) is not None), None)

    @property
    def accel(self) -> str:
        """tcg or kvm (a boot's facts say "tcg icount" under --icount: timing says that)."""
        return accel_name(self._first("accel") or "")

    @property
    def kernel_release(self) -> str:
        return self._first("kernel_release") or ""

    @property
    def kpti_active(self) -> bool | None:
        return self._first("kpti_active")

    @property
    def boot_times(self) -> list[float]:
        return [b.facts.boot_s for b in self.boots if b.facts]

    @property
    def workers(self) -> list[dict[str, Any]]:
        """Where its boots ran, each worker once, in boot order."""
        found: list[dict[str, Any]] = []
        for b in self.boots:
            where = {k: v for k, v in b.worker.items() if k in WORKER_KEYS}
            if where and where not in found:
                found.append(where)
        return found

    @property
    def error_message(self) -> str:
        return self.error or next((b.error for b in self.boots if b.error), "")

    @property
    def failed_to_boot(self) -> bool:
        return bool(self.error) or any(b.failed_to_boot for b in self.boots)

    @property
    def tainted(self) -> int | None:
        return next((b.tainted for b in reversed(self.boots) if b.tainted is not None), None)

    @property
    def logs(self) -> dict[str, str]:
        """Every boot's logs; with several boots, each name gets its boot's number."""
        several = len(self.boots) > 1
        return {(f"{k}-{b.index}" if several else k): v for b in self.boots
                for k, v in b.logs.items()}

    def to_json(self) -> dict[str, Any]:
        c, boots = self.cell, self.boot_times
        return {
            "id": c.id, "scenario": self.scenario, "arch": c.arch, "kernel": c.kernel,
            "cmdline": c.cmdline, "cmdline_words": list(c.cmdline_words),
            "accel": self.accel, "timing": self.timing, "status": self.status.value,
            "workers": self.workers, "error": self.error_message, "kpti_active": self.kpti_active,
            "kernel_release": self.kernel_release, "config": self.config,
            "kernel_source": self.kernel_source,
            "boot_s": round(statistics.median(boots), 3) if boots else None,
            "boots_s": [round(b, 3) for b in boots],
            "metrics": self.metrics, "units": self.units,
            "steps": [s.to_json() for s in self.steps],
            "faults": [_fault_json(f) for f in self.faults],
            "tainted": self.tainted, "logs": self.logs, "duration_s": round(self.duration_s, 2),
            "cell_error": self.error, "interrupted": self.interrupted,
            "boot": self.boot_mode, "boot_policy": self.boot_policy,
            "boots": [b.to_json() for b in self.boots],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CellResult:
        cell = Cell(d["arch"], d["kernel"], d["cmdline"], tuple(d.get("cmdline_words", ())))
        steps = [StepResult.from_json(s) for s in d.get("steps", [])]
        if "boots" in d:
            boots = [BootResult.from_json(b, [s for s in steps if s.boot == b["index"]])
                     for b in d["boots"]]
            error = d.get("cell_error", "")
        else:
            boots, error = _legacy_boots(d, steps), ""
        return cls(cell, d["scenario"], d.get("timing", "wallclock"), d.get("config", {}),
                   boots, d.get("units", {}), d.get("duration_s", 0.0), error,
                   d.get("interrupted", ""), d.get("kernel_source", {}),
                   d.get("boot_policy", ""))


#: A format-1 log name with its boot's number (the runner wrote those with repeat > 1).
_BOOT_LOG = re.compile(r"^(.+)-(\d+)$")


def _legacy_boots(d: dict[str, Any], steps: list[StepResult]) -> list[BootResult]:
    """Format 1 kept no boots. Each boot time is a boot, and so is each boot its steps or
    its per-boot logs ("console-1") name; one that never came up has no time, so no facts.
    The samples and faults go to the first boot, whose samples then stand for the whole
    cell; the error to the last boot, since a cell stopped at the boot that erred."""
    times = d.get("boots_s") or ([d["boot_s"]] if d.get("boot_s") is not None else [])
    logs: dict[str, str] = d.get("logs", {})
    numbered = {k: (m.group(1), int(m.group(2))) for k in logs if (m := _BOOT_LOG.match(k))}
    if len(numbered) < len(logs):   # a single boot's logs, unnumbered
        numbered = {}
    count = max(len(times), 1, *(s.boot + 1 for s in steps),
                *(n + 1 for _, n in numbered.values()))
    boots = []
    for i in range(count):
        facts = BootFacts(d.get("kernel_release", ""), d.get("accel", ""), "", times[i],
                          d.get("kpti_active")) if i < len(times) else None
        boots.append(BootResult(i, facts, [s for s in steps if s.boot == i]))
    for k, v in logs.items():
        name, n = numbered.get(k, (k, 0))
        boots[n].logs[name] = v
    first = boots[0]
    first.samples = d.get("metrics", {})
    first.faults = [_fault(x) for x in d.get("faults", [])]
    first.tainted = d.get("tainted")
    if d.get("status") == "error":
        boots[-1].error = d.get("error") or "error"
    return boots


@dataclass
class RunResult:
    """One `lab run`: the scenarios, the host it ran on, and every cell."""

    scenarios: list[dict[str, str]]
    host: HostFacts
    jobs: int
    timing: str
    cells: list[CellResult] = field(default_factory=list)
    duration_s: float = 0.0
    lab_version: str = ""
    #: The signal that stopped the run ("" when it ran to its end).
    interrupted: str = ""
    #: How the boots were ordered: {"order": "interleaved"|"in order", "seed": N}.
    schedule: dict[str, Any] = field(default_factory=dict)
    #: Where the boots ran: {"kind": "local", "jobs": N} or {"kind": "dask",
    #: "scheduler": ADDRESS, "workers": {ADDRESS: guest slots}, "jobs": their sum}.
    #: jobs above is the same guest-slot count (a cluster run's -j means nothing).
    executor: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        if self.interrupted:
            return Status.INTERRUPTED
        return Status.worst(c.status for c in self.cells)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "scenario": ", ".join(s["name"] for s in self.scenarios),
                "scenarios": self.scenarios, "lab_version": self.lab_version,
                "host": self.host.to_json(), "jobs": self.jobs, "timing": self.timing,
                "duration_s": round(self.duration_s, 2), "interrupted": self.interrupted,
                "schedule": self.schedule, "executor": self.executor,
                "cells": [c.to_json() for c in self.cells]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunResult:
        version = d.get("format", 1)
        if version > FORMAT:
            raise ValueError(f"results format {version} is newer than this lab ({FORMAT})")
        scenarios = d.get("scenarios") or [{"name": n} for n in
                                           str(d.get("scenario", "")).split(", ") if n]
        return cls(scenarios, HostFacts.from_json(d.get("host") or {}), d.get("jobs", 1),
                   d.get("timing", "wallclock"),
                   [CellResult.from_json(c) for c in d.get("cells", [])],
                   d.get("duration_s", 0.0), d.get("lab_version", ""), d.get("interrupted", ""),
                   d.get("schedule", {}), d.get("executor", {}))
