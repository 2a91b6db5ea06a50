"""A guest without QEMU: the GuestCapabilities of lab/scenario/steps/base.py, scripted.

Commands answer from a table (the first regex that matches the command wins);
an answer can be a CommandResult, an (output, exit code) pair, or a callable
that gets the guest and returns one of those, or raises (a panic, say).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lab.core.deadline import Deadline
from lab.core.model import BootFacts, CommandResult, KernelMessage
from lab.guest.console import TIMEOUT
from lab.guest.uart import Transfer
from lab.scenario.steps.base import Context

FACTS = BootFacts("6.1.0-lab", "tcg", "console=hvc0 quiet", 0.5, True)

Answer = CommandResult | tuple[str, int] | Callable[["FakeGuest"], Any]


@dataclass
class FakeTransfer:
    """A planned transfer outcome for FakeUart."""

    ok: bool
    seconds: float = 0.5
    detail: str = ""


@dataclass
class FakeUart:
    tail: bytes = b""
    #: What the host sent.
    sent: list[bytes] = field(default_factory=list)
    #: What the guest's UART sent, for expect() to search.
    received: bytes = b""
    #: The outcomes of the next transfers, in order.
    transfers: list[FakeTransfer] = field(default_factory=list)
    moved: list[tuple[str, str, int]] = field(default_factory=list)

    def send_within(self, data: bytes, deadline: Deadline) -> None:
        self.sent.append(data)

    def expect(self, pattern: bytes, timeout: float) -> int:
        """pexpect's: 0, or TIMEOUT."""
        m = re.search(pattern, self.received)
        self.tail = self.received[-64:]
        if m is None:
            raise TIMEOUT(f"{pattern!r}")
        return 0

    def _move(self, direction: str, device: str, nbytes: int) -> Transfer:
        """The next planned outcome, as the real UART reports one."""
        self.moved.append((direction, device, nbytes))
        plan = self.transfers.pop(0)
        return Transfer(nbytes, nbytes if plan.ok else 0, plan.ok, plan.seconds, plan.detail)

    def transfer_out(self, device: str, nbytes: int, deadline: Deadline) -> Transfer:
        return self._move("out", device, nbytes)

    def transfer_in(self, device: str, nbytes: int, deadline: Deadline) -> Transfer:
        return self._move("in", device, nbytes)


class FakeGuest:
    """Records what it was asked; answers from its tables."""

    def __init__(self, commands: dict[str, Answer] | None = None,
                 facts: BootFacts | None = FACTS, tainted: int = 0):
        self.commands = dict(commands or {})
        self.facts = facts
        self.taint = tainted
        self.kernel_faults: list[KernelMessage] = []
        self.ran: list[tuple[str, float]] = []
        self.files: list[tuple[bytes, str, int]] = []
        self.qmp_reply: Any = {}
        self.qmp_calls: list[tuple[str, dict]] = []
        self.hmp_answer = ""
        self.hmp_calls: list[str] = []
        self.fake_uart = FakeUart()
        self.core: Path | None = None     # Guest.core: no vmcore

    def run(self, command: str, timeout: float = 60.0,
            output_file: Path | None = None) -> CommandResult:
        self.ran.append((command, timeout))
        answer: Answer = ("", 0)
        for pattern, a in self.commands.items():
            if re.search(pattern, command):
                answer = a
                break
        if callable(answer):
            answer = answer(self)
        if isinstance(answer, tuple):
            answer = CommandResult(command, answer[0], answer[1], 0.01)
        if output_file is not None:
            output_file.parent.mkdir(parents=True, exist_ok=True)
            output_file.write_text(answer.output)
            answer = replace(answer, output_file=output_file)
        return answer

    def put_file(self, data: bytes, path: str, mode: int = 0o644, deadline=None) -> None:
        self.files.append((data, path, mode))

    def qmp(self, command: str, arguments: dict[str, Any] | None = None,
            timeout: float = 10.0, **args: Any) -> Any:
        self.qmp_calls.append((command, {**args, **(arguments or {})}))
        if isinstance(self.qmp_reply, Exception):
            raise self.qmp_reply
        return self.qmp_reply

    def hmp(self, command_line: str, timeout: float = 10.0) -> str:
        self.hmp_calls.append(command_line)
        if isinstance(self.hmp_answer, Exception):
            raise self.hmp_answer
        return self.hmp_answer

    def uart(self) -> FakeUart:
        return self.fake_uart

    def tainted(self) -> int:
        return self.taint

    def faults(self) -> list[KernelMessage]:
        return list(self.kernel_faults)


def context(guest: FakeGuest, samples: dict | None = None, units: dict | None = None,
            seconds: float = 30.0) -> Context:
    return Context(guest, Deadline(seconds), {} if samples is None else samples,
                   {} if units is None else units)
