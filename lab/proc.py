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
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

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
    if isinstance(deadline, (int, float)):
        deadline = Deadline(deadline)
    what = what or Path(argv[0]).name
    cmdline = shlex.join(argv)
    log.debug("run: %s", cmdline)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    kept: list[str] = []
    logfh: IO[str] | None = open(log_path, "a", encoding="utf-8") if log_path else None
    started = time.monotonic()
    try:
        if logfh:
            logfh.write(f"$ {cmdline}\n")
            logfh.flush()
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                errors="replace", start_new_session=True)
        except FileNotFoundError:
            from lab import hostdeps   # hostdeps runs commands through here too
            hostdeps.require(argv[0])
            raise UserError(f"{argv[0]}: not found") from None
        except PermissionError as exc:
            raise UserError(f"{argv[0]}: cannot run: {exc.strerror}") from None

        def read() -> None:
            last = 0.0
            assert proc.stdout is not None
            for line in proc.stdout:
                tail.append(line)
                if keep_output:
                    kept.append(line)
                if logfh:
                    logfh.write(line)
                if progress is not None and time.monotonic() - last > PROGRESS_EVERY_S:
                    last = time.monotonic()
                    progress(line.rstrip())

        reader = threading.Thread(target=read, name=f"proc-{what}", daemon=True)
        reader.start()
        try:
            proc.wait(timeout=deadline.remaining())
        except subprocess.TimeoutExpired:
            _stop(proc, TERM_GRACE_S)
            reader.join(timeout=5)
            raise error(f"{what}: did not finish within its deadline of "
                        f"{deadline.seconds:.0f} s (killed): {cmdline}",
                        str(log_path) if log_path else None, "".join(tail)) from None
        except BaseException:
            _stop(proc, 0.0)   # Ctrl-C, SIGTERM: nothing of ours keeps running
            raise
        reader.join(timeout=5)
    finally:
        if logfh:
            logfh.close()
    done = Completed(argv, proc.returncode, "".join(kept) if keep_output else "".join(tail),
                     time.monotonic() - started)
    if check and proc.returncode != 0:
        raise error(f"{what} failed (exit code {proc.returncode}): {cmdline}",
                    str(log_path) if log_path else None, "".join(tail))
    return done
