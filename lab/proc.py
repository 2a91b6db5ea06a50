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
from collections.abc import Callable, Sequence
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


class _Output:
    """Where a command's lines go: the tail, the kept output, the log and
    progress. One reader thread per pipe, so the waiter never depends on output."""

    def __init__(self, log_path: Path | None, keep: bool,
                 progress: Callable[[str], None] | None):
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.kept: list[str] = []
        self._keep = keep
        self._progress = progress
        # closed by close(), which run() calls in a finally
        self._log: IO[str] | None = (open(log_path, "a", encoding="utf-8")  # noqa: SIM115
                                      if log_path else None)
        self._lock = threading.Lock()      # the stdout and stderr readers share it all
        self._last = 0.0
        self._readers: list[threading.Thread] = []

    def note(self, text: str) -> None:
        if self._log:
            self._log.write(text)
            self._log.flush()

    def follow(self, proc: subprocess.Popen, what: str) -> None:
        assert proc.stdout is not None
        streams = [(proc.stdout, self._keep)]
        if proc.stderr is not None:
            streams.append((proc.stderr, False))
        for pair in streams:
            reader = threading.Thread(target=self._read, args=pair, name=f"proc-{what}",
                                      daemon=True)
            reader.start()
            self._readers.append(reader)

    def _read(self, stream: IO[str], keep: bool) -> None:
        for line in stream:
            with self._lock:
                self.tail.append(line)
                if keep:
                    self.kept.append(line)
                if self._log:
                    self._log.write(line)
                due = time.monotonic() - self._last > PROGRESS_EVERY_S
                if due:
                    self._last = time.monotonic()
            if self._progress is not None and due:
                self._progress(line.rstrip())

    def join(self) -> None:
        """Bounded: the group is dead or done, so its pipes close (a daemonised
        grandchild that kept one open is not waited for)."""
        for reader in self._readers:
            reader.join(timeout=5)

    def close(self) -> None:
        if self._log:
            with self._lock:
                self._log.close()
                self._log = None


def _spawn(argv: tuple[str, ...], cwd: Path | None, env: dict[str, str] | None,
           merge_stderr: bool) -> subprocess.Popen:
    """Popen in a new session with /dev/null stdin; a missing command is a
    user error naming its Debian package."""
    try:
        return subprocess.Popen(
            argv, cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE, text=True,
            errors="replace", start_new_session=True)
    except FileNotFoundError:
        from lab import hostdeps  # hostdeps runs commands through here too
        hostdeps.require(argv[0])
        raise UserError(f"{argv[0]}: not found") from None
    except PermissionError as exc:
        raise UserError(f"{argv[0]}: cannot run: {exc.strerror}") from None


def run(argv: Sequence[str | os.PathLike[str]], *, deadline: Deadline | float,
        log_path: Path | None = None, cwd: Path | None = None,
        env: dict[str, str] | None = None, check: bool = True,
        what: str | None = None, progress: Callable[[str], None] | None = None,
        error: type[CommandError] = CommandError, keep_output: bool = True,
        merge_stderr: bool = True) -> Completed:
    """Run argv to completion within deadline; see the module docstring.

    env is added to the lab's own environment. With check (the default) a
    non-zero exit raises `error`; a passed deadline always does. keep_output=False
    keeps only the tail in memory (long builds log to log_path instead).
    merge_stderr=False keeps stderr out of Completed.output (for commands whose
    stdout is an answer: `git rev-parse`, `make -s kernelrelease`); it still
    goes to the log, the tail and progress.
    """
    words = tuple(str(a) for a in argv)
    if isinstance(deadline, (int, float)):
        deadline = Deadline(deadline)
    what = what or Path(words[0]).name
    cmdline = shlex.join(words)
    log.debug("run: %s", cmdline)
    logged = str(log_path) if log_path else None
    out = _Output(log_path, keep_output, progress)
    started = time.monotonic()
    try:
        out.note(f"$ {cmdline}\n")
        proc = _spawn(words, cwd, env, merge_stderr)
        try:
            out.follow(proc, what)
            proc.wait(timeout=deadline.remaining())
        except subprocess.TimeoutExpired:
            _stop(proc, TERM_GRACE_S)
            out.join()
            raise error(f"{what}: did not finish within its deadline of "
                        f"{deadline.seconds:g} s (killed): {cmdline}",
                        logged, "".join(out.tail)) from None
        except BaseException:
            _stop(proc, 0.0)   # Ctrl-C, SIGTERM: nothing of ours keeps running
            raise
        out.join()
    finally:
        out.close()
    done = Completed(words, proc.returncode, "".join(out.kept if keep_output else out.tail),
                     time.monotonic() - started)
    if check and proc.returncode != 0:
        raise error(f"{what} failed (exit code {proc.returncode}): {cmdline}",
                    logged, "".join(out.tail))
    return done
