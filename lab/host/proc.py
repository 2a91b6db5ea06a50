"""The one place where the lab runs an external command (tuxmake's run_cmd,
kunit's _wait_proc).

Every command gets an argv list (never a shell), stdin from /dev/null, its
own process group, a logged command line, and a deadline that a waiter
enforces whether or not the child prints. Any exception while it runs,
Ctrl-C included, kills the whole process group. A failure becomes a
CommandError (or the subclass the caller names) carrying the tail of the log.

popen() is the one place a child is created; Watched is a command running
under those guarantees while the caller does something else (the KVM probe
polls its serial file); run() is a Watched waited for.

A stop signal never orphans a child: on_stop_signal (the CLI's handler) holds a
signal that arrives while the main thread is inside popen() until the child is
started and known, then kills it and raises; and every child popen() made is
remembered until it is reaped, so stop_all() at the lab's exit kills any that a
signal caught between popen() and its owner.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from lab.core.deadline import Deadline
from lab.core.errors import CommandError, Interrupted, UserError
from lab.host import packages

log = logging.getLogger("lab.host.proc")

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


def stop_group(proc: subprocess.Popen, grace_s: float) -> None:
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


class _Spawning:
    """The main thread is inside popen(): a stop signal waits in `held`."""
    active = False
    held: int | None = None


#: Every child popen() started and nobody has reaped yet (stop_all's list).
_children: weakref.WeakSet[subprocess.Popen] = weakref.WeakSet()


def on_stop_signal(signum: int, frame: object) -> None:
    """The lab's handler for SIGINT, SIGTERM and SIGHUP: raise Interrupted, unless
    the main thread is starting a child (subprocess.Popen interrupted after its
    fork would lose the child's pid): then popen() raises it once the child is
    known and killed. Handlers run in the main thread only."""
    if _Spawning.active:
        _Spawning.held = signum
        return
    raise Interrupted(signum, signal.Signals(signum).name)


def stop_all() -> None:
    """Kill the group of every child still running (the lab's last act, so that
    a signal between a popen() and its owner's cleanup orphans nothing)."""
    for child in list(_children):
        if child.poll() is None:
            stop_group(child, 0.0)


def popen(argv: Sequence[str | os.PathLike[str]], *, stdout: int | IO | None,
          cwd: Path | None = None, env: dict[str, str] | None = None,
          text: bool = False, stderr: int | IO | None = subprocess.STDOUT,
          stdin: int | IO | None = subprocess.DEVNULL) -> subprocess.Popen:
    """Start argv the lab's way: the one place where a child process is created.

    stdin is /dev/null (None: the lab's own, for a debugger a person drives at
    the terminal), stderr goes where stdout goes (unless asked), the child leads its
    own process group, so one killpg takes it and everything it started.
    env is added to the lab's own environment. A missing program is a UserError
    that names its Debian package. The caller owns the process: run() and
    Watched bound it by a deadline; qemu.Machine by its shutdown.
    """
    words = [str(a) for a in argv]
    log.debug("start: %s", shlex.join(words))
    main = threading.current_thread() is threading.main_thread()
    child = None
    _Spawning.active = main
    try:
        child = subprocess.Popen(
            words, cwd=cwd, env={**os.environ, **(env or {})}, stdin=stdin,
            stdout=stdout, stderr=stderr, text=text,
            errors="replace" if text else None, start_new_session=True)
        _children.add(child)
    except FileNotFoundError:
        packages.require(words[0])
        raise UserError(f"{words[0]}: not found") from None
    except PermissionError as exc:
        raise UserError(f"{words[0]}: cannot run: {exc.strerror}") from None
    finally:
        if main:
            _Spawning.active = False
            held, _Spawning.held = _Spawning.held, None
            if held is not None:
                if child is not None:
                    stop_group(child, 0.0)
                raise Interrupted(held, signal.Signals(held).name)
    return child


class Watched:
    """A command running under a deadline, watched while it runs (kunit's _wait_proc).

    A reader thread takes its output as it comes (into the log, the tail and
    progress); a waiter thread stops it (SIGTERM, a grace, SIGKILL) the moment
    the deadline passes, whether or not it prints; leaving the `with` block,
    however it is left (Ctrl-C included), kills whatever still runs. run() is
    this plus a wait; the KVM probe polls a file while its QEMU runs.
    """

    def __init__(self, argv: Sequence[str | os.PathLike[str]], *, deadline: Deadline | float,
                 log_path: Path | None = None, cwd: Path | None = None,
                 env: dict[str, str] | None = None, what: str | None = None,
                 progress: Callable[[str], None] | None = None, keep_output: bool = True,
                 merge_stderr: bool = True):
        self.argv = tuple(str(a) for a in argv)
        self.deadline = Deadline(deadline) if isinstance(deadline, (int, float)) else deadline
        self.what = what or Path(self.argv[0]).name
        self.cmdline = shlex.join(self.argv)
        self.log_path = log_path
        #: Set by the waiter when it had to stop the command at the deadline.
        self.timed_out = False
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._kept: list[str] | None = [] if keep_output else None
        self._progress = progress
        self._logfh: IO[str] | None = open(log_path, "a", encoding="utf-8") if log_path else None
        self.started = time.monotonic()
        try:
            self._log(f"$ {self.cmdline}\n")
            self.proc = popen(self.argv, stdout=subprocess.PIPE, cwd=cwd, env=env, text=True,
                              stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE)
        except BaseException:
            self._close_log()
            raise
        try:
            self._lock = threading.Lock()   # the stdout and stderr readers share the tail
            self._readers = [threading.Thread(target=self._read, args=(stream, keep),
                                              name=f"proc-{self.what}", daemon=True)
                             for stream, keep in ((self.proc.stdout, True),
                                                  (self.proc.stderr, False))
                             if stream is not None]
            self._waiter = threading.Thread(target=self._watch, name=f"wait-{self.what}",
                                            daemon=True)
            for reader in self._readers:
                reader.start()
            self._waiter.start()
        except BaseException:   # Ctrl-C before the caller's `with` holds it
            stop_group(self.proc, 0.0)
            self._close_log()
            raise

    def __enter__(self) -> Watched:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log(self, text: str) -> None:
        if self._logfh:
            try:
                self._logfh.write(text)
                self._logfh.flush()
            except ValueError:   # closed: a grandchild kept the pipe past the end
                pass

    def _close_log(self) -> None:
        if self._logfh:
            self._logfh.close()
            self._logfh = None

    def _read(self, stream: IO[str], keep: bool) -> None:
        """One pipe's lines into the tail, the log and progress; stdout's into the
        kept output too (stderr stays out of an answer such as `git rev-parse`)."""
        last = 0.0
        for line in stream:
            with self._lock:
                self._tail.append(line)
                if keep and self._kept is not None:
                    self._kept.append(line)
                self._log(line)
            if self._progress is not None and time.monotonic() - last > PROGRESS_EVERY_S:
                last = time.monotonic()
                self._progress(line.rstrip())

    def _watch(self) -> None:
        try:
            self.proc.wait(timeout=self.deadline.remaining())
        except subprocess.TimeoutExpired:
            self.timed_out = True
            stop_group(self.proc, TERM_GRACE_S)

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self) -> int | None:
        """Until the command ends; bounded, since the waiter ends it at the deadline."""
        end = Deadline(self.deadline.remaining() + TERM_GRACE_S + 15)
        while self._waiter.is_alive() and not end.expired():
            # short joins: a KeyboardInterrupt raised without a real signal
            # (_thread.interrupt_main) cannot wake a long one
            self._waiter.join(0.1)
        self._join_readers()
        return self.proc.returncode

    def _join_readers(self) -> None:
        """Bounded: the group is dead or done, so its pipes close (a daemonised
        grandchild that kept one open is not waited for)."""
        for reader in self._readers:
            reader.join(timeout=5)

    def stop(self) -> None:
        """Kill what still runs (no grace), reap it, and close the log. Idempotent."""
        if self.proc.poll() is None:
            stop_group(self.proc, 0.0)
        self._waiter.join(timeout=15)
        self._join_readers()
        with self._lock:
            self._close_log()

    @property
    def tail(self) -> str:
        return "".join(self._tail)

    @property
    def output(self) -> str:
        """Everything it printed (only the tail with keep_output=False)."""
        return "".join(self._kept) if self._kept is not None else self.tail


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
    with Watched(argv, deadline=deadline, log_path=log_path, cwd=cwd, env=env, what=what,
                 progress=progress, keep_output=keep_output, merge_stderr=merge_stderr) as w:
        returncode = w.wait()
    logged = str(log_path) if log_path else None
    if w.timed_out:
        raise error(f"{w.what}: did not finish within its deadline of "
                    f"{w.deadline.seconds:g} s (killed): {w.cmdline}", logged, w.tail)
    assert returncode is not None
    if check and returncode != 0:
        raise error(f"{w.what} failed (exit code {returncode}): {w.cmdline}", logged, w.tail)
    return Completed(w.argv, returncode, w.output, time.monotonic() - w.started)


def wait_at_terminal(child: subprocess.Popen) -> int:
    """Wait for a child a person drives at the terminal (a debugger started with the
    lab's stdin): a ^C there is the child's. The terminal sends it to the lab, whose
    children lead sessions of their own; it is passed on. Main thread only."""
    previous = signal.signal(signal.SIGINT, lambda *_: child.send_signal(signal.SIGINT))
    try:
        return child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
        if child.poll() is None:
            stop_group(child, 0.0)


def interactive(argv: Sequence[str | os.PathLike[str]], cwd: Path | None = None) -> int:
    """argv on the person's terminal until it exits; its exit status."""
    return wait_at_terminal(popen(argv, stdout=None, stderr=None, stdin=None, cwd=cwd))


#: Prefix that makes a child die with the lab thread that started it
#: (PR_SET_PDEATHSIG, set by util-linux's setpriv, which then execs the command).
#: A prctl in a preexec_fn would do the same from Python, but Python documents
#: that preexec_fn can deadlock in a process with threads, and the lab has them.
#: The option is spelled in one word so that argv[3] is the command itself.
PDEATHSIG = ("setpriv", "--pdeathsig=KILL", "--")


def with_pdeathsig(argv: list[str] | tuple[str, ...]) -> list[str]:
    """argv, run so that it is SIGKILLed when the thread that started it dies. Pure.

    The kernel sends the signal when the *thread* that forked the child exits,
    not the process: start such a child from a thread that outlives it (the main
    thread, or a pool worker that keeps running until its cells are done).
    """
    return [*PDEATHSIG, *argv]
