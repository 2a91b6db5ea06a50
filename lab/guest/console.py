"""The guest's two consoles. Both are read continuously, each by a thread of its own.

KernelLog reads the kernel console (kernel messages only): every line goes to
console.log with a timestamp and through the fault catalogue, so a panic, or
the kernel's last word before a power-off or halt, is known the moment its line
arrives.

Shell drives busybox sh on the shell console. A ShellReader thread reads that
console from the moment it is connected until it closes, between commands too
(background processes print then), into console.log and a pending buffer.
Waiting for a marker takes what is pending and searches only the new bytes
plus a carry of MAX_MARKER bytes, so a command's whole output is searched once:
linear, whatever its size. The bytes before the marker go to an Output that
keeps MEMORY_LIMIT bytes in memory and spills the rest to a file.

No pexpect: pexpect's expect re-searches its growing buffer (quadratic: 48 s
for 1.3 MB on x86_64, and aarch64's virtconsole, which QEMU lets drop what the
host does not read in time, lost data meanwhile). A pexpect spawn fed from the
reader's queue (PopenSpawn's pattern) would still keep all of `before` in
memory with no spill, and the shell then needs one engine for setup and run
alike; the bounded search below is some twenty lines and is the only one.

Every command runs between markers that carry a fresh random nonce
(secrets.token_hex), assembled by printf so the command line never holds them:
a command cannot print its own end marker, so it cannot forge its exit code,
and output that arrives between commands is never taken for a marker. The end
marker also carries the guest driver's count of bytes sent on the shell
console (virtio-ports' bytes_sent, the 8250's tx): fewer bytes received than
the guest sent is OutputLost, never a pass.
"""

from __future__ import annotations

import base64
import codecs
import queue
import re
import secrets
import shlex
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from lab.core.deadline import Deadline
from lab.core.errors import GuestLost, GuestPanic, GuestTimeout, OutputLost
from lab.core.model import READY_MARKER, KernelMessage
from lab.parse import consolelog
from lab.parse.faults import FaultScanner

#: Longest line sent to the guest tty (its canonical limit is 4096 bytes).
MAX_LINE = 3000
CHUNK = 2048
#: How long to wait for the rest of a panic once its first line is seen.
PANIC_GRACE_S = 1.0
_POLL_S = 0.1
#: Kernel lines KernelLog keeps (the fault scanner keeps its own, bounded).
KERNEL_LINES = 2000
#: A command's output kept in memory; the rest spills to output-<n>.txt in the logdir.
MEMORY_LIMIT = 8 * 1024 * 1024
#: What the shell may print while nobody waits (background output) before the
#: oldest of it is dropped from the buffer (it is in console.log all the same).
IDLE_LIMIT = 1024 * 1024
#: Longer than any marker: the bytes a search carries over to the next chunk.
MAX_MARKER = 128
#: The default deadline of a command the lab itself runs in the guest's shell.
COMMAND_DEADLINE_S = 60.0
#: The kernel's last line before the machine stops without QEMU exiting.
STOPPED = re.compile(r"reboot: (Power down|System halted)")
#: Where the shell's setup leaves the nonce init puts in its "the shell ended" marker.
SHELL_NONCE = "/run/lab-shell-nonce"
#: How long init may take to start a new shell once one has ended.
SHELL_RESTART_S = 10.0
#: The body of the shell function that sets _lab_n to the guest driver's count of
#: bytes sent on the shell console, by console kind (none where the count is
#: unavailable). Builtins only (read, case, test): no process is forked, which
#: matters most on a restored guest, whose TCG has translated no code yet (a
#: `sed` there took 100 ms of the first command's 130).
TX_COUNTERS = {
    "virtconsole": "for f in /sys/kernel/debug/virtio-ports/vport*p1; do "
                   "while read -r k v; do [ \"$k\" = bytes_sent: ] && _lab_n=$v; "
                   "done 2>/dev/null < \"$f\"; done",
    "serial": "while read -r l; do case $l in \"1: \"*) l=${l#* tx:}; _lab_n=${l%% *};; "
              "esac; done 2>/dev/null < /proc/tty/driver/serial",
}


#: console.log holds back at most this much of an unfinished line (more is written
#: as a line of its own: re-joining a 20 MB line piece by piece would be quadratic).
LOG_LINE = 64 * 1024


class ConsoleLog:
    """console.log: both consoles, each line stamped with time since start and its source.

    An unfinished line is held as pieces, joined once when it ends: a serial
    console delivers a few bytes per read, and re-joining would be quadratic.
    """

    def __init__(self, path: Path):
        self._fh = open(path, "a", encoding="utf-8", errors="replace")
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._partial: dict[str, list[str]] = {}
        self._held: dict[str, int] = {}

    def write(self, source: str, text: str) -> None:
        with self._lock:
            if self._fh.closed:
                return
            *lines, rest = text.replace("\r", "").split("\n")
            pieces = self._partial.setdefault(source, [])
            if lines:
                lines[0] = "".join(pieces) + lines[0]
                pieces.clear()
                self._held[source] = 0
            if rest:
                pieces.append(rest)
                self._held[source] = self._held.get(source, 0) + len(rest)
            if self._held.get(source, 0) > LOG_LINE:   # a long line is written in pieces
                lines.append("".join(pieces))
                pieces.clear()
                self._held[source] = 0
            if lines:
                stamp = consolelog.stamp(time.monotonic() - self._t0, source)
                self._fh.write("".join(f"{stamp}{line}\n" for line in lines))
                self._fh.flush()

    def close(self) -> None:
        with self._lock:
            for source, pieces in self._partial.items():
                if pieces:
                    self._fh.write(consolelog.stamp(time.monotonic() - self._t0, source)
                                   + "".join(pieces) + "\n")
            self._fh.close()


class KernelLog(threading.Thread):
    """Reads the kernel console until it closes; scans every line for faults."""

    def __init__(self, sock: socket.socket, log: ConsoleLog, echo=None):
        super().__init__(daemon=True, name="kernel-console")
        self._sock = sock
        self._log = log
        self._echo = echo
        self.scanner = FaultScanner()
        self.lines: deque[str] = deque(maxlen=KERNEL_LINES)
        self.panicked = threading.Event()
        #: The guest powered off or halted: its consoles stay open, nothing more comes.
        self.stopped: str | None = None
        self.closed = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        pending = ""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            while True:
                data = self._sock.recv(65536)
                if not data:
                    break
                text = decoder.decode(data)
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
        if (m := STOPPED.search(line)) is not None:
            self.stopped = {"Power down": "powered off"}.get(m.group(1), "halted")

    def faults(self) -> list[KernelMessage]:
        with self._lock:
            return list(self.scanner.faults)

    def panic(self, grace_s: float = PANIC_GRACE_S) -> KernelMessage | None:
        """The panic, once its trace has arrived (or grace_s has passed)."""
        if not self.panicked.is_set():
            return None
        end = time.monotonic() + grace_s
        while time.monotonic() < end and not self.closed.is_set():
            with self._lock:
                if any("end Kernel panic" in line for line in list(self.lines)[-5:]):
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


class ShellReader(threading.Thread):
    """Reads the shell console until it closes: into console.log and a pending buffer.

    Offsets count every byte since the connection (dropped ones too), for the loss
    check. While nobody waits, the buffer keeps the last IDLE_LIMIT bytes only.
    """

    def __init__(self, sock: socket.socket, log: ConsoleLog):
        super().__init__(daemon=True, name="shell-console")
        self._sock = sock
        self._log = log
        # console.log is written by a thread of its own: the reader does nothing but
        # take bytes off the socket, since QEMU's virtconsole drops what the socket
        # cannot take while the reader is busy.
        self._to_log: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._logger = threading.Thread(target=self._write_log, daemon=True,
                                        name="shell-console-log")
        self._cond = threading.Condition()
        self._pending = bytearray()
        self._offset = 0          # stream offset of _pending[0]
        self.waiting = False
        self.closed = False

    def _write_log(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while (data := self._to_log.get()) is not None:
            self._log.write("shell", decoder.decode(data))

    def run(self) -> None:
        self._logger.start()
        try:
            while data := self._sock.recv(1 << 20):
                self._to_log.put(data)
                with self._cond:
                    self._pending += data
                    if not self.waiting and len(self._pending) > IDLE_LIMIT:
                        cut = len(self._pending) - IDLE_LIMIT
                        del self._pending[:cut]
                        self._offset += cut
                    self._cond.notify_all()
        except OSError:
            pass
        finally:
            self._to_log.put(None)
            self._logger.join(timeout=5)
            with self._cond:
                self.closed = True
                self._cond.notify_all()

    def take(self, timeout: float) -> tuple[int, bytes]:
        """(stream offset, what is pending), waiting up to timeout for something."""
        with self._cond:
            if not self._pending and not self.closed:
                self._cond.wait(timeout)
            data, offset = bytes(self._pending), self._offset
            self._offset += len(data)
            self._pending.clear()
            return offset, data

    def received(self) -> int:
        """Every byte received on this connection so far."""
        with self._cond:
            return self._offset + len(self._pending)

    def unread(self, data: bytes) -> None:
        """Gives bytes back, to the front of what is pending."""
        with self._cond:
            self._pending[:0] = data
            self._offset -= len(data)


class Output:
    """A command's output: \\r\\n made \\n, MEMORY_LIMIT bytes in memory. With keep,
    all of it goes to the file as well; without, the file is made only when the
    output outgrows memory (a spill: all of it again, from the start)."""

    def __init__(self, path: Path, keep: bool = False):
        self._memory = bytearray()
        self._path = path
        self._file: BinaryIO | None = open(path, "wb") if keep else None
        self._cr = False
        self.size = 0

    def add(self, data: bytes) -> None:
        if self._cr:
            data = b"\r" + data
        self._cr = data.endswith(b"\r")
        if self._cr:
            data = data[:-1]
        self._write(data.replace(b"\r\n", b"\n"))

    def _write(self, data: bytes) -> None:
        self.size += len(data)
        if self._file is None and len(self._memory) + len(data) > MEMORY_LIMIT:
            self._file = open(self._path, "wb")
            self._file.write(self._memory)
        if self._file is not None:
            self._file.write(data)
        room = MEMORY_LIMIT - len(self._memory)
        self._memory += data[:max(room, 0)]

    def finish(self) -> tuple[str, Path | None]:
        """(the output as text, the file that holds all of it, or None)."""
        if self._cr:
            self._cr = False
            self._write(b"\r")
        text = self._memory.decode("utf-8", errors="replace")
        if self._file is None:
            return text, None
        self._file.close()
        if self.size > MEMORY_LIMIT:
            text += (f"\n[lab: output truncated at {MEMORY_LIMIT} bytes in memory; all "
                     f"{self.size} bytes are in {self._path}]\n")
        return text, self._path


@dataclass(frozen=True)
class Reply:
    """What a command left: its output (the head of it, if it outgrew memory),
    exit code, the file holding all of it (if asked for, or spilled), and whether
    the shell itself ended on it (`exit N`), so that init started a new one."""

    output: str
    exit_code: int
    output_file: Path | None = None
    shell_reset: bool = False


@dataclass(frozen=True)
class Resume:
    """What a shell restored from a snapshot carries over from the one that was set
    up before the snapshot (Shell.resume() of that one)."""

    session: str
    tx_base: int


class Shell:
    """busybox sh on the shell console: markers with nonces, a bounded search."""

    def __init__(self, sock: socket.socket, log: ConsoleLog, kernel: KernelLog,
                 spill_dir: Path, console_kind: str = "", resume: Resume | None = None):
        self._sock = sock
        self._kernel = kernel
        self._spill_dir = spill_dir
        self._tx = TX_COUNTERS.get(console_kind, "")
        self._n = 0
        #: A restored shell (resume) keeps the session its template's setup() left in
        #: the guest, and the guest driver's count of bytes sent starts where the
        #: template's connection left it, not at 0 as this connection does.
        self._session = resume.session if resume else secrets.token_hex(8)
        self._tx_base = resume.tx_base if resume else 0
        #: What init prints on the shell console when the lab's shell ends, and the
        #: status it ended with (group 1 of the pattern it ends). Only the session's
        #: secret nonce makes it: a line start is not required, since the tty may
        #: echo what the dead shell left unread in front of it.
        self._ended = rb"(?:\r?\n)?@@LAB-X" + self._session.encode() + rb"@@(\d+)@@\r?\n"
        self.reader = ShellReader(sock, log)
        self.reader.start()

    # -- waiting, with the kernel console watched all along

    def _expect(self, pattern: bytes, deadline: Deadline, what: str,
                sink: Output | None = None) -> tuple[int, re.Match[bytes]]:
        """The first match of pattern in what the shell prints from here on, and its
        stream offset. The bytes before it go to sink (or are dropped: they are in
        console.log). Searches each byte once, plus a carry of MAX_MARKER bytes;
        a panic, a stopped guest or a closed console ends the wait at once."""
        regex = re.compile(pattern)
        carry, start = b"", 0
        self.reader.waiting = True
        try:
            while True:
                offset, data = self.reader.take(min(_POLL_S, deadline.remaining()))
                window = carry + data
                start = offset - len(carry)
                if (m := regex.search(window)) is not None:
                    self.reader.unread(window[m.end():])
                    if sink is not None:
                        sink.add(window[:m.start()])
                    return start + m.start(), m
                keep = min(len(window), MAX_MARKER)
                if sink is not None:
                    sink.add(window[:len(window) - keep])
                carry = window[len(window) - keep:]
                self._check(deadline, what, idle=not data)
        finally:
            self.reader.waiting = False

    def _check(self, deadline: Deadline, what: str, idle: bool) -> None:
        """Raises what ended the wait, if anything did; a closed console only once
        all it sent has been searched (idle)."""
        panic = self._kernel.panic()
        if panic is not None:
            raise GuestPanic(f"{what}: kernel panic\n{panic.text}")
        if self._kernel.stopped:
            raise GuestLost(f"{what}: the guest {self._kernel.stopped} "
                            f"(the kernel console says so)")
        if idle and self.reader.closed:
            self._kernel.closed.wait(2.0)   # let the kernel console drain
            panic = self._kernel.panic()
            if panic is not None:
                raise GuestPanic(f"{what}: kernel panic\n{panic.text}")
            raise GuestLost(f"{what}: the guest console closed (QEMU exited)")
        if deadline.expired():
            raise GuestTimeout(f"{what}: deadline passed; the guest is shut down")

    def _send(self, data: bytes, what: str) -> None:
        """Writes to the shell; a console gone under the lab is GuestPanic or GuestLost."""
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self._kernel.closed.wait(2.0)
            panic = self._kernel.panic()
            if panic is not None:
                raise GuestPanic(f"{what}: kernel panic\n{panic.text}") from exc
            raise GuestLost(f"{what}: the guest console failed ({exc.strerror or exc}; "
                            f"QEMU exited?)") from exc

    def wait_ready(self, deadline_s: float) -> None:
        self._expect(re.escape(READY_MARKER.encode()), Deadline(deadline_s),
                     f"boot (ready marker within {deadline_s:.0f} s)")

    def setup(self, deadline_s: float = 10.0) -> None:
        """Echo off (ash then reads plain lines, no line editor), no prompts, the
        function that counts the driver's bytes sent (see TX_COUNTERS),
        and the nonce init puts in the marker it prints when the shell ends
        (SHELL_NONCE; written after echo is off, so it is never echoed)."""
        tx = f"_lab_tx() {{ _lab_n=; {self._tx}; }}; " if self._tx else ""
        self._send(f"stty -echo; PS1=''; PS2=''; {tx}"
                   "printf '%s\\n' '@@LAB''-SYNC@@'\n".encode(), "shell setup")
        self._expect(rb"@@LAB-SYNC@@\r?\n", Deadline(deadline_s), "shell setup")
        self.run(f"printf %s {self._session} > {SHELL_NONCE}", deadline_s)

    def _restart(self, status: int, what: str) -> None:
        """After init said the shell ended: wait for the new one, and set it up."""
        self._expect(re.escape(READY_MARKER.encode()), Deadline(SHELL_RESTART_S),
                     f"{what}: the shell exited with status {status}; its successor")
        self.setup()

    def resume(self) -> Resume:
        """What a shell restored from a snapshot of this guest, taken now (the
        shell idle), needs: this session, and the bytes received so far (all the
        guest sent, when nothing was lost)."""
        return Resume(self._session, self._tx_base + self.reader.received())

    # -- commands

    def run(self, command: str, timeout: float | Deadline,
            output_file: Path | None = None) -> Reply:
        """Run one shell command, stdin /dev/null. Its whole output goes to
        output_file too, if given. A command that ends the shell (`exit 3`, a
        signal) gives the shell's exit status, and a new shell (shell_reset).
        `command eval` keeps a shell error (a syntax error, `$((1/0))`, assigning
        a readonly) to the command: its status is 2 and the line goes on to the
        end marker, where a plain eval would abandon the line."""
        deadline = timeout if isinstance(timeout, Deadline) else Deadline(max(timeout, 0))
        what = f"command {command!r} (deadline {deadline.seconds:g} s)"
        if len(command) > MAX_LINE or "\n" in command:
            self._n += 1
            path = f"/tmp/.lab-cmd-{self._n}"
            self.put_file(command.encode(), path, deadline=deadline)
            command = f". {path}"
        self._n += 1
        nonce = secrets.token_hex(8)
        tx = ('_lab_tx; ', '"$_lab_n"') if self._tx else ("", "''")
        self._send(
            f"printf '\\n@@LAB-B%s@@\\n' {nonce}; command eval {shlex.quote(command)} </dev/null; "
            f"_lab_s=$?; {tx[0]}printf '\\n@@LAB-E%s@@%d@@%s@@\\n' {nonce} $_lab_s {tx[1]}\n"
            .encode(), what)
        _, m = self._expect(rb"@@LAB-B" + nonce.encode() + rb"@@\r?\n|" + self._ended, deadline,
                            what)
        if m.group(1) is not None:       # the shell ended before this command: run it anew
            self._restart(int(m.group(1)), what)
            return replace(self.run(command, deadline, output_file), shell_reset=True)
        output = Output(output_file or self._spill_dir / f"output-{self._n}.txt",
                        keep=output_file is not None)
        try:
            at, m = self._expect(rb"\r?\n@@LAB-E" + nonce.encode() + rb"@@(\d+)@@(\d*)@@\r?\n|"
                                 + self._ended, deadline, what, output)
        finally:
            text, kept = output.finish()
        if m.group(3) is not None:
            self._restart(int(m.group(3)), what)
            return Reply(text, int(m.group(3)), kept, shell_reset=True)
        if m.group(2) and int(m.group(2)) - self._tx_base > at:
            raise OutputLost(f"{what}: output lost: the guest sent "
                             f"{int(m.group(2)) - self._tx_base} bytes on "
                             f"the shell console so far, the lab received {at}; "
                             f"{output.size} bytes of output arrived"
                             + (f" (in {kept})" if kept else ""))
        return Reply(text, int(m.group(1)), kept)

    def put_file(self, data: bytes, path: str, mode: int = 0o644,
                 deadline: Deadline | None = None) -> None:
        """Copy bytes into the guest in base64 chunks, never one line over the tty limit,
        all within the deadline (GuestTimeout when it passes)."""
        deadline = deadline or Deadline(60.0)
        encoded = base64.b64encode(data).decode()
        tmp = shlex.quote(f"{path}.b64")
        steps = [f": > {tmp}"]
        steps += [f"printf %s {encoded[i:i + CHUNK]} >> {tmp}"
                  for i in range(0, len(encoded), CHUNK)]
        steps.append(f"base64 -d {tmp} > {shlex.quote(path)} && rm {tmp} "
                     f"&& chmod {mode:o} {shlex.quote(path)}")
        for step in steps:
            if deadline.expired():
                raise GuestTimeout(f"copying {path} into the guest: deadline "
                                   f"{deadline.seconds:g} s passed")
            reply = self.run(step, deadline)
            if reply.exit_code != 0:
                raise GuestLost(f"copying {path} into the guest failed: {reply.output.strip()}")

    def send(self, data: bytes) -> None:
        """Bytes to the shell as they are: what a person types (app.terminal)."""
        self._send(data, "interact")

    def ended(self, seen: bytes) -> bool:
        """Whether seen holds the marker of the shell's exit (the session is over)."""
        return re.search(self._ended, seen) is not None

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass
        self.reader.join(timeout=10)   # its logger drains into console.log first
