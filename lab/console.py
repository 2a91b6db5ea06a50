"""The guest's two consoles. The only module that imports pexpect.

KernelLog reads the kernel console (kernel messages only) in a thread: every
line goes to console.log with a timestamp and through the fault catalogue, so
a panic is known the moment its first line arrives.

Shell drives busybox sh on the shell console: it waits for the ready marker,
turns echo off (which also turns off ash's line editor), and runs each
command between unique markers that carry its exit code.
"""

from __future__ import annotations

import base64
import os
import re
import select
import socket
import sys
import termios
import threading
import time
import tty
from pathlib import Path

import pexpect
from pexpect.fdpexpect import fdspawn

from lab.errors import GuestLost, GuestPanic, GuestTimeout
from lab.faults import FaultScanner
from lab.model import KernelMessage

READY = "@@LAB-READY@@"
#: Longest line sent to the guest tty (its canonical limit is 4096 bytes).
MAX_LINE = 3000
CHUNK = 2048
#: How long to wait for the rest of a panic once its first line is seen.
PANIC_GRACE_S = 1.0
_POLL_S = 0.1


class ConsoleLog:
    """console.log: both consoles, each line stamped with time since start and its source."""

    def __init__(self, path: Path):
        self._fh = open(path, "a", encoding="utf-8", errors="replace")
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._partial: dict[str, str] = {}

    def write(self, source: str, text: str) -> None:
        with self._lock:
            if self._fh.closed:
                return
            data = self._partial.pop(source, "") + text.replace("\r", "")
            *lines, rest = data.split("\n")
            for line in lines:
                self._fh.write(f"{time.monotonic() - self._t0:9.3f} {source:6} | {line}\n")
            if rest:
                self._partial[source] = rest
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            for source, rest in self._partial.items():
                self._fh.write(f"{time.monotonic() - self._t0:9.3f} {source:6} | {rest}\n")
            self._fh.close()


class KernelLog(threading.Thread):
    """Reads the kernel console until it closes; scans every line for faults."""

    def __init__(self, sock: socket.socket, log: ConsoleLog, echo=None):
        super().__init__(daemon=True, name="kernel-console")
        self._sock = sock
        self._log = log
        self._echo = echo
        self.scanner = FaultScanner()
        self.lines: list[str] = []
        self.panicked = threading.Event()
        self.closed = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        pending = ""
        try:
            while True:
                data = self._sock.recv(65536)
                if not data:
                    break
                text = data.decode("utf-8", errors="replace")
                self._log.write("kernel", text)
                if self._echo:
                    self._echo(text)
                pending += text.replace("\r", "")
                *lines, pending = pending.split("\n")
                for line in lines:
                    self._line(line)
        except OSError:
            pass
        finally:
            if pending:
                self._line(pending)
            self.closed.set()

    def _line(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)
            fault = self.scanner.feed(line)
        if fault is not None and fault.fatal:
            self.panicked.set()

    def faults(self) -> list[KernelMessage]:
        with self._lock:
            return self.scanner.faults

    def panic(self, grace_s: float = PANIC_GRACE_S) -> KernelMessage | None:
        """The panic, once its trace has arrived (or grace_s has passed)."""
        if not self.panicked.is_set():
            return None
        end = time.monotonic() + grace_s
        while time.monotonic() < end and not self.closed.is_set():
            with self._lock:
                if any("end Kernel panic" in line for line in self.lines[-5:]):
                    break
            time.sleep(0.05)
        with self._lock:
            return self.scanner.panic

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self.join(timeout=2)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


class Shell:
    """busybox sh on the shell console, driven through pexpect."""

    def __init__(self, sock: socket.socket, log: ConsoleLog, kernel: KernelLog):
        self._sock = sock
        self._kernel = kernel
        self._n = 0
        # fdspawn over the socket's fd: pexpect 4.9's SocketSpawn does not
        # decode what it reads when given an encoding.
        self.child = fdspawn(sock.fileno(), encoding="utf-8", codec_errors="replace",
                             use_poll=True)
        self.child.delaybeforesend = None
        self._log_tap = _Tap(log)
        self.child.logfile_read = self._log_tap

    # -- waiting, with the kernel console watched all along

    def _expect(self, patterns: list, deadline: float, what: str) -> int:
        """expect() in short slices, so a panic or a dead QEMU ends the wait at once."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GuestTimeout(f"{what}: deadline passed; the guest is shut down")
            try:
                return self.child.expect(patterns, timeout=min(_POLL_S, remaining))
            except pexpect.TIMEOUT:
                lost = False
            except pexpect.EOF:
                lost = True
                self._kernel.closed.wait(2.0)   # let the kernel console drain
            panic = self._kernel.panic()
            if panic is not None:
                raise GuestPanic(f"{what}: kernel panic\n{panic.text}")
            if lost:
                raise GuestLost(f"{what}: the guest console closed (QEMU exited)")

    def wait_ready(self, deadline_s: float) -> None:
        self._expect([re.escape(READY)], time.monotonic() + deadline_s,
                     f"boot (ready marker within {deadline_s:.0f} s)")

    def setup(self, deadline_s: float = 10.0) -> None:
        """Echo off (ash then reads plain lines, no line editor), no prompts."""
        self.child.send("stty -echo; PS1=''; PS2=''; printf '%s\\n' '@@LAB''-SYNC@@'\n")
        self._expect([r"@@LAB-SYNC@@\r?\n"], time.monotonic() + deadline_s, "shell setup")

    # -- commands

    def run(self, command: str, timeout: float) -> tuple[str, int]:
        """Run one shell command; returns (output, exit code). stdin is /dev/null."""
        if len(command) > MAX_LINE or "\n" in command:
            self._n += 1
            path = f"/tmp/.lab-cmd-{self._n}"
            self.put_file(command.encode(), path, timeout=timeout)
            command = f". {path}"
        self._n += 1
        n = self._n
        self.child.send(f"printf '\\n@@LAB-B%s@@\\n' {n}; eval {_quote(command)} </dev/null; "
                        f"printf '\\n@@LAB-E%s@@%d@@\\n' {n} $?\n")
        deadline = time.monotonic() + timeout
        what = f"command {command!r} (deadline {timeout:g} s)"
        self._expect([rf"@@LAB-B{n}@@\r?\n"], deadline, what)
        self._expect([rf"\r?\n@@LAB-E{n}@@(\d+)@@\r?\n"], deadline, what)
        output = self.child.before.replace("\r\n", "\n")
        return output, int(self.child.match.group(1))

    def put_file(self, data: bytes, path: str, mode: int = 0o644, timeout: float = 60.0) -> None:
        """Copy bytes into the guest in base64 chunks, never one line over the tty limit."""
        encoded = base64.b64encode(data).decode()
        tmp = f"{path}.b64"
        steps = [f": > {_quote(tmp)}"]
        steps += [f"printf %s {encoded[i:i + CHUNK]} >> {_quote(tmp)}"
                  for i in range(0, len(encoded), CHUNK)]
        steps.append(f"base64 -d {_quote(tmp)} > {_quote(path)} && rm {_quote(tmp)} "
                     f"&& chmod {mode:o} {_quote(path)}")
        deadline = time.monotonic() + timeout
        for step in steps:
            out, rc = self.run(step, max(deadline - time.monotonic(), 0.1))
            if rc != 0:
                raise GuestLost(f"copying {path} into the guest failed: {out.strip()}")

    def interact(self, escape: bytes = b"\x1d") -> None:
        """Pass the user's terminal through to the guest shell until escape (Ctrl-]).

        Echo and the line editor come back on, with the host terminal's size.
        """
        size = os.get_terminal_size() if sys.stdin.isatty() else os.terminal_size((80, 24))
        # run() gives commands /dev/null as stdin: name the tty.
        self.run(f"stty -F /dev/tty echo rows {size.lines} cols {size.columns}; "
                 "PS1='lab:$PWD# '", 10)
        sys.stdout.write(self.child.buffer)   # whatever the shell printed after the marker
        sys.stdout.flush()
        fd = self._sock.fileno()
        stdin = sys.stdin.fileno()
        saved = termios.tcgetattr(stdin) if sys.stdin.isatty() else None
        try:
            if saved:
                tty.setraw(stdin)
            inputs = [fd, stdin]
            while True:
                # After the end of a piped input, show what the guest still says.
                ready, _, _ = select.select(inputs, [], [], None if stdin in inputs else 0.5)
                if not ready:
                    return
                if fd in ready:
                    data = os.read(fd, 65536)
                    if not data:
                        return
                    self._log_tap.write(data.decode("utf-8", errors="replace"))
                    os.write(sys.stdout.fileno(), data)
                if stdin in ready:
                    data = os.read(stdin, 1024)
                    if escape in data:
                        return
                    if not data:
                        inputs.remove(stdin)
                        continue
                    self._sock.sendall(data)
        finally:
            if saved:
                termios.tcsetattr(stdin, termios.TCSADRAIN, saved)

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


class _Tap:
    """pexpect's logfile_read: everything the shell prints, into console.log."""

    def __init__(self, log: ConsoleLog):
        self._log = log

    def write(self, text: str) -> None:
        self._log.write("shell", text)

    def flush(self) -> None:
        pass
