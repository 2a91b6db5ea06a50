"""The lab's one exception root.

User errors are bad input or a missing tool: the user can fix them.
Infrastructure errors are the lab's machinery failing: a build that broke,
a QEMU that died, a guest that panicked or hung. Both exit with code 2;
a test that merely failed is a result, never an exception.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence


class LabError(Exception):
    """Root of every error the lab raises on purpose."""

    exit_code = 2


class UserError(LabError):
    """Bad input (a scenario, an option, a fragment) or a missing host tool."""


class InfraError(LabError):
    """The lab's machinery failed: a build, QEMU, a guest."""


class CommandError(InfraError):
    """An external command failed or overran its deadline; carries its log and tail."""

    def __init__(self, message: str, log: str | None = None, tail: str = ""):
        super().__init__(message)
        self.log = log
        self.tail = tail

    def __str__(self) -> str:
        text = super().__str__()
        if self.log:
            text += f"\nfull log: {self.log}"
        if self.tail:
            text += "\n--- last lines of the log ---\n" + self.tail
        return text


class BuildError(CommandError):
    """A kernel, module or image build failed."""


class QemuError(InfraError):
    """QEMU itself misbehaved; keeps its argv and the tail of what it printed, which
    is what a user needs to reproduce it (QEMU's own VMLaunchFailure does the same)."""

    def __init__(self, message: str, argv: Sequence[str], output: str = "",
                 exitcode: int | None = None):
        # Every field in args, so the error survives pickling (a remote executor).
        super().__init__(message, tuple(argv), output, exitcode)
        self.argv = tuple(argv)
        self.output = output
        self.exitcode = exitcode

    def __str__(self) -> str:
        return (f"{self.args[0]}\ncommand line: {shlex.join(self.argv)}\n"
                f"QEMU said:\n{self.output or '(nothing)'}")


class LaunchFailure(QemuError):
    """QEMU did not come up: it exited, made no sockets, or did not greet on QMP."""


class AbnormalShutdown(QemuError):
    """QEMU did not quit when asked (QMP quit and a bounded wait), and was killed."""


class MonitorError(InfraError):
    """QEMU answered a monitor command with an error. For the step that sent the
    command this is a result (the step fails), not a broken lab."""


class GuestError(InfraError):
    """A guest that panicked, hung, or lost its QEMU."""

    kind = "guest"


class GuestPanic(GuestError):
    """The guest kernel panicked; the message quotes the panic."""

    kind = "panic"


class GuestTimeout(GuestError):
    """A deadline passed: boot, or a command."""

    kind = "timeout"


class GuestLost(GuestError):
    """QEMU exited or the console closed under the lab."""

    kind = "lost"


class OutputLost(GuestError):
    """The guest sent more on the shell console than the lab received: a command's
    output is incomplete, so its result cannot be trusted."""

    kind = "output-lost"


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived: the run stops, keeps what it has, and exits
    with 128 + the signal's number. A KeyboardInterrupt, so every cleanup that
    handles Ctrl-C handles the other two alike."""

    def __init__(self, signum: int, name: str):
        super().__init__(name)
        self.signum = signum
        self.name = name
