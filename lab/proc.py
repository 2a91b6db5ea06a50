"""The one place where the lab runs an external command (tuxmake's run_cmd,
kunit's _wait_proc).

Every command gets an argv list (never a shell), stdin from /dev/null, its
own process group, a logged command line, and a deadline that a waiter
enforces whether or not the child prints. Any exception while it runs,
Ctrl-C included, kills the whole process group. A failure becomes a
CommandError (or the subclass the caller names) carrying the tail of the log.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from lab.deadline import Deadline
from lab.errors import CommandError, UserError

log = logging.getLogger("lab.proc")

TAIL_LINES = 40
#: After the deadline: SIGTERM to the group, this long, then SIGKILL.
TERM_GRACE_S = 2.0
#: Progress callbacks at most this often.
PROGRESS_EVERY_S = 0.2


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    output: str          # everything the command printed (stdout and stderr merged)
    duration_s: float

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines()


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the group, a bounded wait, then SIGKILL; always reaps."""
    if proc.poll() is None:
        _kill_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    _kill_group(proc, signal.SIGKILL)   # grandchildren that ignored SIGTERM too
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:   # pragma: no cover - an unkillable child
        log.error("pid %d did not die after SIGKILL", proc.pid)


class _Output(threading.Thread):
    """Reads the child's merged output line by line: tail, log file, progress."""

    def __init__(self, proc: subprocess.Popen, what: str, logfh: IO[str] | None,
                 progress: Callable[[str], None] | None, keep: bool):
        super().__init__(name=f"proc-{what}", daemon=True)
        self.proc, self.logfh, self.progress, self.keep = proc, logfh, progress, keep
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.kept: list[str] = []

    def run(self) -> None:
        last = 0.0
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.tail.append(line)
            if self.keep:
                self.kept.append(line)
            if self.logfh:
                self.logfh.write(line)
            if self.progress is not None and time.monotonic() - last > PROGRESS_EVERY_S:
                last = time.monotonic()
                self.progress(line.rstrip())

    def text(self) -> str:
        return "".join(self.kept if self.keep else self.tail)


def _spawn(argv: tuple[str, ...], cwd: Path | None, env: dict[str, str] | None
           ) -> subprocess.Popen:
    try:
        return subprocess.Popen(
            argv, cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            start_new_session=True)
    except FileNotFoundError:
        from lab import hostdeps  # hostdeps runs its commands through here too
        hostdeps.require(argv[0])
        raise UserError(f"{argv[0]}: not found") from None
    except PermissionError as exc:
        raise UserError(f"{argv[0]}: cannot run: {exc.strerror}") from None


def run(argv: list[str] | tuple[str, ...], *, deadline: Deadline | float,
        log_path: Path | None = None, cwd: Path | None = None,
        env: dict[str, str] | None = None, check: bool = True,
        what: str | None = None, progress: Callable[[str], None] | None = None,
        error: type[CommandError] = CommandError, keep_output: bool = True) -> Completed:
    """Run argv to completion within deadline; see the module docstring.

    env is added to the lab's own environment. With check (the default) a
    non-zero exit raises `error`; a passed deadline always does. keep_output=False
    keeps only the tail in memory (long builds log to log_path instead).
    """
    argv = tuple(str(a) for a in argv)
    if not isinstance(deadline, Deadline):
        deadline = Deadline(deadline)
    what = what or Path(argv[0]).name
    cmdline = shlex.join(argv)
    log.debug("run: %s", cmdline)
    logname = str(log_path) if log_path else None
    started = time.monotonic()
    with open(log_path, "a", encoding="utf-8") if log_path else nullcontext() as logfh:
        if logfh:
            logfh.write(f"$ {cmdline}\n")
            logfh.flush()
        proc = _spawn(argv, cwd, env)
        output = _Output(proc, what, logfh, progress, keep_output)
        output.start()
        try:
            proc.wait(timeout=deadline.remaining())
        except subprocess.TimeoutExpired:
            _stop(proc, TERM_GRACE_S)
            output.join(timeout=5)
            raise error(f"{what}: did not finish within its deadline of "
                        f"{deadline.seconds:.0f} s (killed): {cmdline}", logname,
                        "".join(output.tail)) from None
        except BaseException:
            _stop(proc, 0.0)   # Ctrl-C, SIGTERM: nothing of ours keeps running
            raise
        output.join(timeout=5)
    if check and proc.returncode != 0:
        raise error(f"{what} failed (exit code {proc.returncode}): {cmdline}", logname,
                    "".join(output.tail))
    return Completed(argv, proc.returncode, output.text(), time.monotonic() - started)
