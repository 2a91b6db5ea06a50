"""What every step kind gets to work with, and the helpers kinds share.

A kind is a frozen dataclass (lab.core.model.Step plus its own fields) with a
`parse` classmethod (Fields -> step) and an `execute` method (Context ->
problems; empty means pass). Test failures are problems, never exceptions;
a guest that dies raises GuestError, which ends the boot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lab.core.deadline import Deadline
from lab.core.model import BootFacts, CommandResult, KernelBuild, KernelMessage, Metric
from lab.core.results import TestResult
from lab.guest.console import Dialog
from lab.guest.uart import Uart


class GuestCapabilities(Protocol):
    """What steps may ask of a booted guest (lab.guest.guest.Guest provides it)."""

    facts: BootFacts | None

    def run(self, command: str, timeout: float = ...,
            output_file: Path | None = ...) -> CommandResult: ...
    def put_file(self, data: bytes, path: str, mode: int = ...,
                 deadline: Deadline | None = ...) -> None: ...
    def qmp(self, command: str, arguments: dict[str, Any] | None = ...,
            timeout: float = ..., **args: Any) -> Any: ...
    def hmp(self, command_line: str, timeout: float = ...) -> str: ...
    def uart(self) -> Uart: ...
    def spawn(self, command: str, timeout: float = ...) -> Dialog: ...
    def tainted(self) -> int: ...
    def faults(self) -> list[KernelMessage]: ...


@dataclass
class Context:
    """One step's view of its boot: the guest, this boot's samples, the deadline."""

    guest: GuestCapabilities
    deadline: Deadline
    #: Samples of this boot so far, by metric name (shared by the boot's steps).
    samples: dict[str, list[float]]
    #: Units of the cell's metrics (shared by the cell's boots).
    units: dict[str, str]
    #: The cell's arch.
    arch: str = ""
    #: Where a step that runs a command keeps its whole output, and that file's
    #: name as results show it (relative to the run's --out directory).
    output_file: Path | None = None
    output_label: str = ""
    #: Set by steps that run a command.
    exit_code: int | None = None
    #: What the result should say even when the step passes.
    notes: list[str] = field(default_factory=list)
    #: The tests a step ran and reports one by one (kselftest, kunit): kept even
    #: when the step ends in an error (a test that crashed the kernel).
    tests: list[TestResult] = field(default_factory=list)
    #: This boot's console.log (both consoles, stamped; lab.guest.console.ConsoleLog).
    console_log: Path | None = None
    #: The kernel the guest booted (what steps built their guest_files for).
    kernel: KernelBuild | None = None

    def kept_output(self) -> str | None:
        """The output file's label, if a step wrote it."""
        return self.output_label if self.output_file and self.output_file.exists() else None

    @property
    def timeout(self) -> float:
        """Seconds left, for capabilities that still take a timeout."""
        return max(self.deadline.remaining(), 0.001)

    def record(self, name: str, value: float, unit: str) -> None:
        self.samples.setdefault(name, []).append(value)
        if unit or name not in self.units:
            self.units[name] = unit


def expectation(*parts: str | None) -> str:
    """What a step expects, for Step.shown(): its non-empty parts joined by "; "."""
    return "; ".join(p for p in parts if p)


def output_expectation(match: str | None, no_match: str | None) -> str:
    """What check_output checks, in words."""
    return expectation(f"output matches {match!r}" if match is not None else None,
                       f"output does not match {no_match!r}" if no_match is not None else None)


def check_output(match: str | None, no_match: str | None, output: str) -> list[str]:
    """Problems with an output against a regex it must match and one it must not."""
    problems = []
    if match is not None and not re.search(match, output, re.M):
        problems.append(f"output does not match {match!r}")
    if no_match is not None and (m := re.search(no_match, output, re.M)):
        problems.append(f"output matches {no_match!r}: {m.group(0)!r}")
    return problems


def number(text: str) -> float:
    """A sample: decimal, or hex with 0x (register values)."""
    return float(int(text, 16)) if text.lower().startswith("0x") else float(text)


def extract(metrics: tuple[Metric, ...], output: str, ctx: Context) -> list[str]:
    """Every metric's samples from an output; a metric with none is a problem."""
    problems = []
    for metric in metrics:
        found = [m.group(1) for m in re.finditer(metric.regex, output, re.M)]
        if not found:
            problems.append(f"metric {metric.name}: no sample in the output")
        for text in found:
            try:
                value = number(text)
            except ValueError:
                problems.append(f"metric {metric.name}: {text!r} is not a number")
                continue
            ctx.record(metric.name, value, metric.unit or _unit(metric.name, output))
    return problems


def _unit(name: str, output: str) -> str:
    m = re.search(rf"^METRIC {re.escape(name)} \S+ (\S+)", output, re.M)
    return m.group(1) if m else ""
