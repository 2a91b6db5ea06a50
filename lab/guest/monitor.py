"""QEMU's monitor of one machine: QMP commands with deadlines, HMP, the QMP log, file
descriptors handed to QEMU, and the migration of a guest's state to and from a file.

The only module that imports qemu.qmp, and only its synchronous API
(qemu.qmp.legacy.QEMUMonitorProtocol). The machine (qemu.Machine) owns the process
and says whether it is alive; the monitor owns the connection to it.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from qemu.qmp import QMPError
from qemu.qmp.legacy import QEMUMonitorProtocol
from qemu.qmp.qmp_client import ExecuteError

from lab.core.deadline import Deadline
from lab.core.errors import GuestLost, InfraError, MonitorError

#: Every QMP command has a timeout; this is the default.
QMP_TIMEOUT_S = 10.0
#: How QEMU 7.2's HMP says a command failed, inside a normal answer: "unknown
#: command: 'info x'", a usage error followed by 'Try "help xp"', "Cannot access
#: memory" from x/xp, "unknown register" from p.
HMP_ERROR = re.compile(r"^.*(?:unknown command:|Cannot access memory|unknown register|"
                       r"invalid char in format|^Error\b|^error:).*$|^Try \"help.*$", re.M)
#: The name a migration's file descriptor has in QEMU's monitor.
MIGRATION_FD = "lab-migration"
#: The name of a memory dump's file descriptor.
DUMP_FD = "lab-dump"


class Monitor:
    """The QMP connection of one QEMU. alive() says whether the process runs;
    exited(grace) whether it ended within grace seconds (a QMP error of a QEMU
    that is gone is GuestLost, not an infrastructure error)."""

    def __init__(self, socket_path: Path, nickname: str, log_path: Path,
                 alive: Callable[[], bool], exited: Callable[[], bool]):
        self._qmp = QEMUMonitorProtocol(str(socket_path), nickname=nickname)
        self._log: IO[str] | None = open(log_path, "a", encoding="utf-8")
        self._alive, self._exited = alive, exited
        self._connected = False

    def connect(self, deadline: Deadline, kill: Callable[[], None]) -> None:
        """Connect and negotiate, bounded by deadline. QEMUMonitorProtocol.connect()
        takes no timeout: a watchdog kills QEMU (kill) at the deadline, which ends
        the connect with an EOF."""
        fired = threading.Event()

        def watchdog() -> None:
            fired.set()
            kill()

        timer = threading.Timer(deadline.remaining(), watchdog)
        timer.start()
        try:
            self._qmp.connect()
        except (QMPError, OSError, EOFError) as exc:
            if fired.is_set():
                raise InfraError(f"QEMU did not greet on QMP within {deadline.seconds:.0f} s "
                                 "(killed)") from exc
            raise InfraError(f"cannot connect to QMP: {exc!r}") from exc
        finally:
            timer.cancel()
        self._connected = True

    @property
    def connected(self) -> bool:
        return self._connected

    def qmp(self, command: str, timeout: float = QMP_TIMEOUT_S,
            arguments: dict[str, Any] | None = None, **args: Any) -> Any:
        """Run a QMP command within timeout; returns its 'return' value.

        arguments (a dict, for names such as `timeout`) and args are the command's
        arguments. An error reply is a MonitorError with QEMU's message; no answer
        within timeout is an InfraError; a QEMU that is gone is GuestLost.
        """
        args = {**args, **(arguments or {})}
        if not self._connected or not self._alive():
            raise GuestLost(f"QMP {command}: QEMU is not running")
        self._write_log(">", {"execute": command, "arguments": args})
        self._qmp.settimeout(timeout)
        try:
            reply = self._qmp.cmd(command, **args)
        except ExecuteError as exc:
            self._write_log("<", dict(exc.received))
            raise MonitorError(f"QMP {command} failed: {exc}") from exc
        except TimeoutError as exc:
            if self._exited():
                raise GuestLost(f"QMP {command}: QEMU exited") from exc
            raise InfraError(f"QMP {command}: no answer within {timeout:g} s") from exc
        except (QMPError, OSError, EOFError) as exc:
            if self._exited():
                raise GuestLost(f"QMP {command}: QEMU exited") from exc
            raise InfraError(f"QMP {command} failed: {exc}") from exc
        self._write_log("<", reply)
        return reply

    def _write_log(self, direction: str, data: object) -> None:
        if self._log:
            self._log.write(f"{time.time():.3f} {direction} {json.dumps(data)}\n")
            self._log.flush()

    def hmp(self, command_line: str, timeout: float = QMP_TIMEOUT_S) -> str:
        """A human-monitor command, e.g. 'xp /4wx 0x9000030'. HMP reports its errors
        as text in a normal answer; those become a MonitorError too."""
        answer = self.qmp("human-monitor-command", timeout,
                          arguments={"command-line": command_line})
        if isinstance(answer, str) and (m := HMP_ERROR.search(answer)):
            raise MonitorError(f"HMP {command_line!r} failed: {m.group(0).strip()}")
        return answer

    def cont(self) -> None:
        self.qmp("cont")

    def close(self) -> None:
        """The connection and the log closed; safe twice."""
        try:
            self._qmp.close()
        except Exception:   # a QEMU already gone: nothing to close cleanly
            pass
        self._connected = False
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- migration: a template's state saved, a clone's loaded

    def save_state(self, path: Path, deadline: Deadline) -> None:
        """Stop the guest and write its device state to path (RAM stays out of it
        where the command line put it in a RamFile). The guest stays stopped."""
        self.qmp("stop")
        self._ignore_shared()
        self.qmp("migrate", uri=self._migration_file(path, write=True))
        self._migration_done("saving the guest's state", deadline)

    def load_state(self, path: Path, deadline: Deadline) -> None:
        """Load a saved state into a QEMU started with incoming; the guest is then
        paused where the template stopped."""
        self._ignore_shared()
        self.qmp("migrate-incoming", uri=self._migration_file(path, write=False))
        self._migration_done("restoring the guest's state", deadline)

    def _migration_file(self, path: Path, write: bool) -> str:
        """The migration URI of path: see _hand_file."""
        return self._hand_file(path, write, MIGRATION_FD)

    def _hand_file(self, path: Path, write: bool, name: str) -> str:
        """fd:NAME for path: the lab opens it (a file it writes: new, mode 0600) and
        hands QEMU the file descriptor (SCM_RIGHTS, then getfd), so no shell and no
        program of QEMU's (`exec:cat`, which cost a restore 4 ms) ever sees the path."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC if write else os.O_RDONLY
        fd = os.open(path, flags | os.O_CLOEXEC, 0o600)
        try:
            if not self._connected or not self._alive():
                raise GuestLost("QMP getfd: QEMU is not running")
            try:
                self._qmp.send_fd_scm(fd)
            except (QMPError, OSError) as exc:
                raise GuestLost(f"QMP getfd: QEMU took no file descriptor ({exc})") from exc
            self.qmp("getfd", fdname=name)
        finally:
            os.close(fd)
        return f"fd:{name}"

    # -- post-mortem

    def dump_memory(self, path: Path, timeout: float, paging: bool) -> None:
        """The guest's memory as an ELF core written to path, each vCPU's registers in
        its notes; with paging, its segments at the kernel's virtual addresses (what
        gdb reads), else at physical ones. The guest stays stopped."""
        self.qmp("stop")
        self.qmp("dump-guest-memory", timeout, paging=paging,
                 protocol=self._hand_file(path, True, DUMP_FD))

    def _ignore_shared(self) -> None:
        """RAM in a file shared with the template stays out of the stream (QEMU 7.2
        has no command-line property for the capability)."""
        self.qmp("migrate-set-capabilities",
                 capabilities=[{"capability": "x-ignore-shared", "state": True}])

    def _migration_done(self, what: str, deadline: Deadline) -> None:
        """Waits for the migration to complete; its failure, or no end within the
        deadline, is an InfraError (a QEMU that exited on it is GuestLost)."""
        while True:
            info = self.qmp("query-migrate", timeout=max(deadline.remaining(), 0.1))
            status = info.get("status") if isinstance(info, dict) else None
            if status == "completed":
                return
            if status in ("failed", "cancelled"):
                raise InfraError(f"{what}: the migration {status}: "
                                 f"{info.get('error-desc', 'QEMU gave no reason')}")
            if deadline.expired():
                raise InfraError(f"{what}: not done within {deadline.seconds:g} s "
                                 f"(migration status {status!r})")
            time.sleep(0.002)
