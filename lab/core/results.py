"""Typed results: a run holds cells, a cell holds boots, a boot holds steps.

Status is derived from the children (kunit's TestCounts.get_status()), never
assigned in several places: a boot is an error when an infrastructure error
ended it, else the worst of its steps; a cell is the worst of its boots.
to_json/from_json sit beside the types. The results.json format is versioned
(FORMAT); files written before the version existed (format 1: no "boots")
still load, and so do format 2 files (boots without their place in the schedule),
and files written before steps reported tests (no "tests").

from_json reads any file a user hands over (`lab report`, `lab compare`): every value
it keeps is checked for its type, and a number must be finite and fit a float, so a
hostile or truncated file is a ValueError naming the key (the caller's one line),
never a crash further on.
"""

from __future__ import annotations

import math
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


# ---------------------------------------------------------------- checked reading

def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object", type(None): "null"}.get(type(value), "a value")


def _wrong(key: str, want: str, value: Any) -> ValueError:
    return ValueError(f"{key!r}: expected {want}, got {_kind(value)}")


def _number(value: Any, key: str) -> float:
    """A finite number that fits a float (JSON allows 10**4000 and 1e999)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(key, "a number", value)
    try:
        as_float = float(value)
    except OverflowError:
        raise ValueError(f"{key!r}: a number of {len(str(abs(value)))} digits is too large")\
            from None
    if not math.isfinite(as_float):
        raise ValueError(f"{key!r}: {value} is not a finite number")
    return as_float


def _float(d: dict[str, Any], key: str, default: float | None = 0.0) -> Any:
    value = d.get(key)
    return default if value is None else _number(value, key)


def _int(d: dict[str, Any], key: str, default: int | None = None) -> Any:
    value = d.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(key, "an integer", value)
    _number(value, key)
    return value


def _str(d: dict[str, Any], key: str, default: str | None = "") -> str:
    """A string; default None: the key is required."""
    value = d.get(key)
    if value is None:
        if default is None:
            raise ValueError(f"{key!r} is missing")
        return default
    if not isinstance(value, str):
        raise _wrong(key, "a string", value)
    return value


def _bool(d: dict[str, Any], key: str) -> bool | None:
    value = d.get(key)
    if value is not None and not isinstance(value, bool):
        raise _wrong(key, "true, false or null", value)
    return value


def _dict(d: dict[str, Any], key: str) -> dict[str, Any]:
    value = d.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _wrong(key, "an object", value)
    return value


def _list(d: dict[str, Any], key: str) -> list[Any]:
    value = d.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _wrong(key, "a list", value)
    return value


def _objects(d: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """A list of JSON objects."""
    items = _list(d, key)
    for item in items:
        if not isinstance(item, dict):
            raise _wrong(f"{key}[]", "an object", item)
    return items


def _strings(d: dict[str, Any], key: str) -> dict[str, str]:
    """An object of strings (logs, units, config)."""
    found = _dict(d, key)
    for k, v in found.items():
        if not isinstance(v, str):
            raise _wrong(f"{key}.{k}", "a string", v)
    return found


def _samples(d: dict[str, Any], key: str) -> dict[str, list[float]]:
    """name -> finite numbers."""
    found = _dict(d, key)
    for name, values in found.items():
        if not isinstance(values, list):
            raise _wrong(f"{key}.{name}", "a list", values)
        for v in values:
            _number(v, f"{key}.{name}[]")
    return found


def _status(d: dict[str, Any], key: str = "status") -> Status:
    value = _str(d, key, None)
    try:
        return Status(value)
    except ValueError:
        raise ValueError(f"{key!r}: {value[:40]!r} is not a status "
                         f"({', '.join(s.value for s in Status)})") from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _wrong(what, "an object", value)
    return value


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
        return cls(_str(d, "name", None), _status(d), _str(d, "message"),
                   tuple(_fault(x) for x in _objects(d, "faults")))


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
    #: What it did and what it expected (Step.shown): a run step's shell command and
    #: "exit 0"; "" in results made before they were recorded.
    command: str = ""
    expected: str = ""
    #: When it started, in seconds after the run started (None before it was recorded).
    start_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "boot": self.boot,
                "status": self.status.value, "duration_s": round(self.duration_s, 4),
                "exit_code": self.exit_code, "message": self.message, "output": self.output,
                "tests": [t.to_json() for t in self.tests], "command": self.command,
                "expected": self.expected,
                "start_s": None if self.start_s is None else round(self.start_s, 3)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StepResult:
        return cls(_str(d, "name", None), _str(d, "kind", None), _int(d, "boot", 0), _status(d),
                   _float(d, "duration_s"), _int(d, "exit_code"), _str(d, "message"),
                   d.get("output") and _str(d, "output"),
                   tuple(TestResult.from_json(t) for t in _objects(d, "tests")),
                   _str(d, "command"), _str(d, "expected"), _float(d, "start_s", None))


def _fault_json(f: KernelMessage) -> dict[str, Any]:
    return {"kind": f.kind, "fatal": f.fatal, "text": f.text}


def _fault(d: dict[str, Any]) -> KernelMessage:
    return KernelMessage(_str(d, "kind"), bool(_bool(d, "fatal")), _str(d, "text"))


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
        f = _dict(d, "facts")
        facts = BootFacts(_str(f, "kernel_release"), _str(f, "accel"), _str(f, "cmdline"),
                          _float(f, "boot_s"), _bool(f, "kpti_active"),
                          _str(f, "boot", "cold"), _str(f, "template"),
                          _str(f, "note")) if f else None
        return cls(_int(d, "index", 0), facts, steps, _samples(d, "samples"),
                   [_fault(x) for x in _objects(d, "faults")], _int(d, "tainted"),
                   _strings(d, "logs"), _str(d, "error"), _int(d, "position"),
                   _float(d, "start_s", None), _float(d, "host_load", None),
                   _float(d, "duration_s"), _dict(d, "worker"), _str(d, "note"))


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
    #: The kernel it booted: {"hash": the cache's content hash, "fragments": the
    #: Kconfig fragments it was made from}; {} in results made before they were kept.
    kernel: dict[str, Any] = field(default_factory=dict)

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
            "kernel_build": self.kernel,
            "boots": [b.to_json() for b in self.boots],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CellResult:
        d = _object(d, "cells[]")
        words = _list(d, "cmdline_words")
        if not all(isinstance(w, str) for w in words):
            raise _wrong("cmdline_words[]", "a string", next(w for w in words
                                                             if not isinstance(w, str)))
        cell = Cell(_str(d, "arch", None), _str(d, "kernel", None), _str(d, "cmdline", None),
                    tuple(words))
        steps = [StepResult.from_json(s) for s in _objects(d, "steps")]
        if "boots" in d:
            boots = [BootResult.from_json(b, [s for s in steps if s.boot == b.get("index")])
                     for b in _objects(d, "boots")]
            error = _str(d, "cell_error")
        else:
            boots, error = _legacy_boots(d, steps), ""
        return cls(cell, _str(d, "scenario", None), _str(d, "timing", "wallclock"),
                   _strings(d, "config"), boots, _strings(d, "units"), _float(d, "duration_s"),
                   error, _str(d, "interrupted"), _dict(d, "kernel_source"),
                   _str(d, "boot_policy"), _dict(d, "kernel_build"))


#: A format-1 log name with its boot's number (the runner wrote those with repeat > 1).
_BOOT_LOG = re.compile(r"^(.+)-(\d+)$")


def _legacy_boots(d: dict[str, Any], steps: list[StepResult]) -> list[BootResult]:
    """Format 1 kept no boots. Each boot time is a boot, and so is each boot its steps or
    its per-boot logs ("console-1") name; one that never came up has no time, so no facts.
    The samples and faults go to the first boot, whose samples then stand for the whole
    cell; the error to the last boot, since a cell stopped at the boot that erred."""
    times = [_number(t, "boots_s[]") for t in _list(d, "boots_s")] or (
        [_number(d["boot_s"], "boot_s")] if d.get("boot_s") is not None else [])
    logs = _strings(d, "logs")
    numbered = {k: (m.group(1), int(m.group(2))) for k in logs if (m := _BOOT_LOG.match(k))}
    if len(numbered) < len(logs):   # a single boot's logs, unnumbered
        numbered = {}
    count = max(len(times), 1, *(s.boot + 1 for s in steps),
                *(n + 1 for _, n in numbered.values()))
    boots = []
    for i in range(count):
        facts = BootFacts(_str(d, "kernel_release"), _str(d, "accel"), "", times[i],
                          _bool(d, "kpti_active")) if i < len(times) else None
        boots.append(BootResult(i, facts, [s for s in steps if s.boot == i]))
    for k, v in logs.items():
        name, n = numbered.get(k, (k, 0))
        boots[n].logs[name] = v
    first = boots[0]
    first.samples = _samples(d, "metrics")
    first.faults = [_fault(x) for x in _objects(d, "faults")]
    first.tainted = _int(d, "tainted")
    if d.get("status") == "error":
        boots[-1].error = _str(d, "error") or "error"
    return boots


@dataclass
class RunResult:
    """One `lab run`: the scenarios, the host it ran on, and every cell."""

    scenarios: list[dict[str, Any]]
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
    #: The kernels and images the run made ready before its boots, in order:
    #: {"what": "aarch64/kpti", "start_s", "duration_s", "built": whether anything was
    #: built (else it came from the cache)}; [] in results made before they were kept.
    builds: list[dict[str, Any]] = field(default_factory=list)

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
                "builds": self.builds, "cells": [c.to_json() for c in self.cells]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunResult:
        d = _object(d, "the file")
        version = _int(d, "format", 1)
        if version > FORMAT:
            raise ValueError(f"results format {version} is newer than this lab ({FORMAT})")
        scenarios = _objects(d, "scenarios") or [{"name": n} for n in
                                                 _str(d, "scenario").split(", ") if n]
        for s in scenarios:
            _str(s, "name"), _str(s, "description"), _str(s, "path"), _dict(s, "compare")
        builds = _objects(d, "builds")
        for b in builds:
            _str(b, "what"), _float(b, "start_s"), _float(b, "duration_s"), _bool(b, "built")
        return cls(scenarios, HostFacts.from_json(_dict(d, "host")), _int(d, "jobs", 1),
                   _str(d, "timing", "wallclock"),
                   [CellResult.from_json(c) for c in _list(d, "cells")],
                   _float(d, "duration_s"), _str(d, "lab_version"), _str(d, "interrupted"),
                   _dict(d, "schedule"), _dict(d, "executor"), builds)
