"""The guest's console channels, each read by one thread of its own, and pexpect
as the engine that waits on them.

The kernel log is two streams merged (KernelLog). The kernel console (hvc0 on
aarch64, ttyS0 on x86_64) carries what only a kernel console can: early boot
and a panic. The guest's init also forwards /dev/kmsg, record by record, over
the virtserialport lab.kmsg; a record the guest's log buffer overwrote before it
was forwarded is a gap in the sequence numbers, which becomes a line of its own
("lab: kernel log: N lines lost") and a fault. Each line goes to console.log
and through the fault catalogue once, whichever stream brings it first.

The shell is busybox sh on a pseudo-terminal in the guest, relayed losslessly
to the virtserialport lab.shell (images/tools/labconsole.c). A Channel thread
is the only reader of its socket: it writes console.log and feeds a queue, from
the moment the socket is connected until it closes, between commands too. A
ConsoleSpawn is pexpect on that queue (a blocking, timed get, never a busy
spin). The shell's markers are found with expect_exact, which searches each
byte once plus the longest marker; a regex search gets a window larger than
one read plus the longest match. A command's output beyond what pexpect keeps
spills, in order, to an Output that keeps MEMORY_LIMIT bytes in memory and the
rest in a file.

Every command runs between markers that carry a fresh random nonce
(secrets.token_hex), assembled by printf so the command line never holds them:
a command cannot print its own end marker, so it cannot forge its exit code,
and output that arrives between commands is never taken for a marker. The end
marker also carries labconsole's count of the bytes it wrote to the shell's port
before that count (COUNT): a count other than the offset where the lab received
it is OutputLost, never a pass.
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
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import pexpect
from pexpect.spawnbase import SpawnBase

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
#: The kernel's last boot line before /init, which every kernel prints (pr_info):
#: the boot's facts (release, KPTI) are in the log by then.
INIT_STARTED = re.compile(r"\] Run \S+ as init process$")
#: At most this many lines of a boot are kept for its facts.
BOOT_LINES = 20_000
#: A command's output kept in memory; the rest spills to output-<n>.txt in the logdir.
MEMORY_LIMIT = 8 * 1024 * 1024
#: What the shell may print while nobody waits (background output) before the
#: oldest of it is dropped from the queue (it is in console.log all the same).
IDLE_LIMIT = 1024 * 1024
#: Longer than any marker.
MAX_MARKER = 128
#: The most a ConsoleSpawn takes from its queue at once (pexpect's maxread).
READ_SIZE = 64 * 1024
#: What a ConsoleSpawn keeps of `before` beyond its search window; more goes to
#: its spill (or is dropped: it is in console.log).
KEEP_BEFORE = 1024 * 1024
#: A regex's search window: larger than one read plus the longest match.
REGEX_WINDOW = READ_SIZE + 8 * 1024
#: pexpect's exceptions, for the callers that wait on a ConsoleSpawn.
TIMEOUT, EOF = pexpect.TIMEOUT, pexpect.EOF
#: The default deadline of a command the lab itself runs in the guest's shell.
COMMAND_DEADLINE_S = 60.0
#: The kernel's last line before the machine stops without QEMU exiting.
STOPPED = re.compile(r"reboot: (Power down|System halted)")
#: Where the shell's setup leaves the nonce labconsole puts in its "the shell
#: ended" marker.
SHELL_NONCE = "/run/lab-shell-nonce"
#: How long the guest may take to start a new shell once one has ended.
SHELL_RESTART_S = 10.0
#: What the shell's end marker prints, in printf's format, where the guest's count
#: of bytes sent on the shell's port belongs: labconsole puts its count there (the
#: bytes it wrote before it) as COUNT_DIGITS digits. Asking costs the shell
#: nothing; reading the driver's debugfs count took 2-4 ms of builtin reads per
#: command under TCG.
COUNT = "\\001LAB-TX-CNT\\001"
COUNT_DIGITS = 12


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


#: A kernel console line's printk timestamp (seconds, microseconds) and its text.
_STAMPED = re.compile(r"\[\s*(\d+)\.(\d{6})\] (.*)")
#: A /dev/kmsg record's head: priority, sequence number, microseconds, flags.
_RECORD = re.compile(r"(\d+),(\d+),(\d+),[^;]*;(.*)")
_ESCAPED = re.compile(r"\\x([0-9a-fA-F]{2})")
#: The forwarder's answer to a request to catch up (labconsole.c: SYNC): the
#: request's line comes back between the markers once every record before it has.
_SYNCED = re.compile(r"@@LAB-SYNC@@(\w+)-(\d+)@@")
#: The forwarder's answer to a cue from the shell's relay: every record logged
#: before the shell printed the end marker with that count has been forwarded.
_CUED = re.compile(r"@@LAB-SYNC@@c(\d+)@@")
#: How long a kernel log sync waits for the guest's answer.
SYNC_S = 5.0
#: How many lines KernelLog remembers as seen on one stream and not yet on the
#: other (a line the kernel console filters out by level never comes twice).
TWIN_KEYS = 50_000


def kmsg_lines(record: str) -> tuple[int, int, list[str]] | None:
    """A /dev/kmsg record's (sequence number, microseconds, lines), its text
    unescaped (the kernel writes a newline inside a message as \\x0a); None if
    it is not a record's first line."""
    m = _RECORD.fullmatch(record)
    if m is None:
        return None
    text = _ESCAPED.sub(lambda e: chr(int(e.group(1), 16)), m.group(4))
    return int(m.group(2)), int(m.group(3)), text.split("\n")


def stamped(usec: int, text: str) -> str:
    """A line as the kernel console prints it, with PRINTK_TIME's stamp."""
    return f"[{usec // 1_000_000:5d}.{usec % 1_000_000:06d}] {text}"


class KernelLog(threading.Thread):
    """The kernel log: the kernel console read until it closes, merged with the
    guest's forwarded /dev/kmsg (attach_kmsg). Every line, once, goes to
    console.log and the fault scanner; a gap in the records' sequence numbers
    is a line of its own, which the catalogue takes as a fault."""

    def __init__(self, sock: socket.socket, log: ConsoleLog, echo=None,
                 first_seq: int | None = 0):
        super().__init__(daemon=True, name="kernel-console")
        self._sock = sock
        self._log = log
        self._echo = echo
        self.scanner = FaultScanner()
        self.lines: deque[str] = deque(maxlen=KERNEL_LINES)
        #: The log up to the start of /init (a cold boot's facts), once `booted`.
        self.boot_lines: list[str] = []
        self.booted = threading.Event()
        self.panicked = threading.Event()
        #: The guest powered off or halted: its consoles stay open, nothing more comes.
        self.stopped: str | None = None
        self.closed = threading.Event()
        self._lock = threading.Lock()
        #: (microseconds, text) -> the stream that brought the line first.
        self._twins: OrderedDict[tuple[int, str], str] = OrderedDict()
        #: The next record's sequence number (None: whatever comes first, as on a
        #: restored guest, whose earlier records its template's lab read).
        self._next_seq = first_seq
        #: Kernel log records lost (gaps in the sequence numbers).
        self.lost = 0
        #: Echo every line; until then, only the kernel console's (a person at
        #: `lab shell` sees a quiet boot, then every kernel message).
        self.echo_all = False
        self._kmsg: tuple[socket.socket, threading.Thread] | None = None
        self._kmsg_seen = time.monotonic()
        #: Requests to catch up: this log's own token (an answer the guest owed a
        #: template's lab is not this one's), the last asked, the last answered.
        self._token = secrets.token_hex(4)
        self._asked = self._answered = 0
        #: The highest shell count the forwarder has caught up with.
        self._cued = 0
        self._kmsg_gone = False
        self._answer = threading.Condition(self._lock)

    def run(self) -> None:
        try:
            for line in _lines(self._sock):
                m = _STAMPED.fullmatch(line)
                key = (int(m.group(1)) * 1_000_000 + int(m.group(2)), m.group(3)) if m else None
                self._merge("console", key, line)
        finally:
            self.closed.set()

    def attach_kmsg(self, sock: socket.socket) -> None:
        """Read the forwarded /dev/kmsg from sock too, until it closes."""
        reader = threading.Thread(target=self._read_kmsg, args=(sock,), daemon=True,
                                  name="kernel-kmsg")
        self._kmsg = (sock, reader)
        reader.start()

    def _read_kmsg(self, sock: socket.socket) -> None:
        try:
            self._forwarded(sock)
        finally:
            with self._lock:
                self._kmsg_gone = True
                self._answer.notify_all()

    def _forwarded(self, sock: socket.socket) -> None:
        for line in _lines(sock):
            self._kmsg_seen = time.monotonic()
            record = kmsg_lines(line)
            if record is None:        # a record's " KEY=value" line, or an answer
                if (m := _SYNCED.fullmatch(line)) and m.group(1) == self._token:
                    with self._lock:
                        self._answered = max(self._answered, int(m.group(2)))
                        self._answer.notify_all()
                elif m := _CUED.fullmatch(line):
                    with self._lock:
                        self._cued = max(self._cued, int(m.group(1)))
                        self._answer.notify_all()
                continue
            seq, usec, texts = record
            with self._lock:
                if self._next_seq is not None and seq < self._next_seq:
                    continue          # a record this log has (a restore replays none)
                if self._next_seq is not None and seq > self._next_seq:
                    gap = seq - self._next_seq
                    self.lost += gap
                    self._emit(f"lab: kernel log: {gap} line{'s' if gap > 1 else ''} lost "
                               f"(records {self._next_seq} to {seq - 1}: the guest's log "
                               f"buffer wrapped before they were forwarded)")
                self._next_seq = seq + 1
            for text in texts:
                self._merge("kmsg", (usec, text), stamped(usec, text))

    def _merge(self, source: str, key: tuple[int, str] | None, line: str) -> None:
        """A line from one stream: emitted unless the other stream brought it already."""
        with self._lock:
            if key is not None:
                first = self._twins.pop(key, None)
                if first is not None and first != source:
                    return
                self._twins[key] = source
                if len(self._twins) > TWIN_KEYS:
                    self._twins.popitem(last=False)
            self._emit(line, source)

    def _emit(self, line: str, source: str = "lab") -> None:
        """One line of the merged log (the lock held)."""
        self._log.write("kernel", line + "\n")
        if self._echo and (source != "kmsg" or self.echo_all):
            self._echo(line + "\n")
        self.lines.append(line)
        if not self.booted.is_set():
            if len(self.boot_lines) < BOOT_LINES:
                self.boot_lines.append(line)
            if INIT_STARTED.search(line):
                self.booted.set()
        fault = self.scanner.feed(line)
        if fault is not None and fault.fatal:
            self.panicked.set()
        if (m := STOPPED.search(line)) is not None:
            self.stopped = {"Power down": "powered off"}.get(m.group(1), "halted")

    def boot_log(self, within_s: float) -> str | None:
        """The kernel log of a cold boot up to /init, as dmesg would print it, once
        it has all come (None if it has not within within_s)."""
        if not self.booted.wait(within_s):
            return None
        with self._lock:
            return "\n".join(self.boot_lines) + "\n"

    def faults(self) -> list[KernelMessage]:
        with self._lock:
            return list(self.scanner.faults)

    def sync(self, within_s: float = SYNC_S, mark: int | None = None) -> bool:
        """Wait until every record the guest's kernel had logged by now is in this
        log; False if the forwarder did not answer within within_s, or cannot (a
        panicked, stopped or gone guest). The shell's channel and the kernel log's
        are not ordered with each other: a warning a command printed may come after
        the command's end marker, and the command's faults are read after this.

        mark: the shell's count in a command's end marker. The relay cued the
        forwarder with it as the marker went out, so this only waits for that
        answer (no request: a round trip less per command). Without one, this
        asks the forwarder (labconsole.c: SYNC)."""
        with self._lock:
            if self._kmsg is None or self._kmsg_gone or self.panicked.is_set() \
                    or self.stopped:
                return False
            if mark is not None:
                return self._answer.wait_for(
                    lambda: self._cued >= mark or self._kmsg_gone, within_s) \
                    and self._cued >= mark
            self._asked += 1
            ticket, sock = self._asked, self._kmsg[0]
        try:
            sock.sendall(f"{self._token}-{ticket}\n".encode())
        except OSError:
            return False
        with self._lock:
            return self._answer.wait_for(
                lambda: self._answered >= ticket or self._kmsg_gone, within_s) \
                and self._answered >= ticket

    def next_seq(self, quiet_s: float = 0.1, within_s: float = 2.0) -> int | None:
        """The next kernel log record's sequence number, once the forwarded log has
        been quiet for quiet_s (a snapshot's: its clones start from there)."""
        end = time.monotonic() + within_s
        while time.monotonic() - self._kmsg_seen < quiet_s and time.monotonic() < end:
            time.sleep(quiet_s / 4)
        with self._lock:
            return self._next_seq

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
        socks = [self._sock] + ([self._kmsg[0]] if self._kmsg else [])
        for sock in socks:
            _close(sock)
        self.join(timeout=2)
        if self._kmsg:
            self._kmsg[1].join(timeout=2)


def _lines(sock: socket.socket):
    """The lines a console socket sends until it closes (\\r dropped; the last
    one even if unfinished)."""
    pending = ""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        while data := sock.recv(65536):
            pending += decoder.decode(data).replace("\r", "")
            *lines, pending = pending.split("\n")
            yield from lines
    except OSError:
        pass
    if pending:
        yield pending


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)   # wakes a thread blocked in recv()
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class Channel(threading.Thread):
    """The only reader of a console socket, until it closes: every byte into
    console.log (by a thread of its own, so that reading never waits on the disk)
    and into a queue, which a ConsoleSpawn reads.

    Offsets count every byte since the connection. While nobody expects
    (`waiting` False) and `idle_limit` is set, the queue keeps about the last
    idle_limit bytes: what a background process prints between commands.
    """

    def __init__(self, sock: socket.socket, log: ConsoleLog | None, source: str,
                 idle_limit: int | None = IDLE_LIMIT):
        super().__init__(daemon=True, name=f"{source}-console")
        self.sock = sock
        self._log = log
        self._source = source
        self._idle_limit = idle_limit
        self._to_log: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._logger = threading.Thread(target=self._write_log, daemon=True,
                                        name=f"{source}-console-log")
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        #: Stream offset of the next byte get() returns.
        self.taken = 0
        self.waiting = False
        self.closed = False

    def _write_log(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while (data := self._to_log.get()) is not None:
            if self._log is not None:
                self._log.write(self._source, decoder.decode(data))

    def run(self) -> None:
        self._logger.start()
        try:
            while data := self.sock.recv(1 << 20):
                self._to_log.put(data)
                with self._cond:
                    self._chunks.append(data)
                    self._queued += len(data)
                    while (not self.waiting and self._idle_limit is not None
                           and self._queued - len(self._chunks[0]) > self._idle_limit):
                        dropped = self._chunks.popleft()
                        self._queued -= len(dropped)
                        self.taken += len(dropped)
                    self._cond.notify_all()
        except OSError:
            pass
        finally:
            self._to_log.put(None)
            self._logger.join(timeout=5)
            with self._cond:
                self.closed = True
                self._cond.notify_all()

    def get(self, timeout: float, limit: int = READ_SIZE) -> bytes | None:
        """Up to limit queued bytes, waiting up to timeout for some: b"" if none
        came, None once the socket has closed and all it sent was taken."""
        with self._cond:
            if not self._chunks and not self.closed:
                self._cond.wait(timeout)
            if not self._chunks:
                return None if self.closed else b""
            out = []
            size = 0
            while self._chunks and size < limit:
                chunk = self._chunks.popleft()
                if size + len(chunk) > limit:
                    chunk, rest = chunk[:limit - size], chunk[limit - size:]
                    self._chunks.appendleft(rest)
                out.append(chunk)
                size += len(chunk)
            self._queued -= size
            self.taken += size
            return b"".join(out)

    def received(self) -> int:
        """Every byte received on this connection so far."""
        with self._cond:
            return self.taken + self._queued

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        _close(self.sock)
        self.join(timeout=10)   # its logger drains into console.log first


class ConsoleSpawn(SpawnBase):
    """pexpect on a Channel's queue: expect, expect_exact, send, sendline,
    sendcontrol, read, readline; EOF once the channel has closed.

    Between reads it calls watch() (which may raise: a panic, a deadline). Of
    `before` it keeps KEEP_BEFORE bytes beyond the search window; the head goes
    to spill, in order (or is dropped: it is in console.log). A regex without a
    searchwindowsize of its own searches REGEX_WINDOW.
    """

    # pexpect's own attributes, which it leaves untyped
    _before: Any
    _buffer: Any
    exitstatus: int | None
    signalstatus: int | None

    def __init__(self, channel: Channel, timeout: float | None = 30, encoding: str | None = None,
                 watch: Callable[[], None] | None = None):
        super().__init__(timeout=timeout, maxread=READ_SIZE, searchwindowsize=None,
                         encoding=encoding, codec_errors="replace")
        self.channel = channel
        self.watch = watch
        self.spill: Callable[[Any], None] | None = None
        self.delayafterread = None    # pexpect sleeps after each read and before each send
        self.delaybeforesend = None
        self.closed = False
        self.name = f"<console {channel.name}>"

    def read_nonblocking(self, size: int = 1, timeout: float | None = -1) -> Any:
        if timeout == -1:
            timeout = self.timeout
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _POLL_S if end is None else max(0.0, min(_POLL_S, end - time.monotonic()))
            data = self._take(max(size, 1), wait)
            if data is None:
                self.flag_eof = True
                raise pexpect.EOF(f"{self.name}: closed")
            if data:
                self._bound_before()
                text = self._decoder.decode(data, final=False)
                self._log(text, "read")
                return text
            if self.watch is not None:
                self.watch()
            if end is not None and time.monotonic() >= end:
                raise pexpect.TIMEOUT(f"{self.name}: nothing within {timeout:g} s")

    def _take(self, size: int, wait: float) -> bytes | None:
        return self.channel.get(wait, size)

    def _bound_before(self) -> None:
        """Spill the head of `before` once it outgrows the window plus KEEP_BEFORE."""
        window = max(self.searchwindowsize or 0, REGEX_WINDOW)
        if self._before.tell() <= window + KEEP_BEFORE:
            return
        held = self._before.getvalue()
        if self.spill is not None:
            self.spill(held[:-window])
        self._before = self.buffer_type()
        self._before.write(held[-window:])

    def expect(self, pattern, timeout=-1, searchwindowsize=-1, async_=False, **kw):
        if searchwindowsize == -1 and self.searchwindowsize is None:
            searchwindowsize = REGEX_WINDOW
        return super().expect(pattern, timeout, searchwindowsize, async_, **kw)

    def send(self, s: Any) -> int:
        data = self._encoder.encode(self._coerce_send_string(s), final=False)
        self._log(s, "send")
        self.channel.send(data)
        return len(data)

    def sendline(self, s: Any = "") -> int:
        return self.send(self._coerce_send_string(s) + self.linesep)

    def sendcontrol(self, char: str) -> int:
        """^char, as a terminal sends it (sendcontrol("c") is an interrupt)."""
        char = char.lower()
        code = ord(char) - ord("a") + 1 if "a" <= char <= "z" else \
            {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31, "?": 127}[char]
        return self.send(bytes([code]) if self.encoding is None else chr(code))

    def sendeof(self) -> int:
        return self.sendcontrol("d")

    def isalive(self) -> bool:
        return not self.flag_eof


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

    def drop_cr(self) -> None:
        """Drop a \\r that ended the last add(): the tty's \\r of a marker's \\r\\n."""
        self._cr = False

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
    #: labconsole's count in the end marker (KernelLog.sync's mark), if it had one.
    mark: int | None = None


@dataclass(frozen=True)
class Resume:
    """What a shell restored from a snapshot carries over from the one that was set
    up before the snapshot (Shell.resume() of that one)."""

    session: str
    tx_base: int
    #: The template's next kernel log record (None: unknown, the first one seen).
    kmsg_seq: int | None = None


class Shell:
    """busybox sh on the shell's channel: markers with nonces, found by pexpect."""

    def __init__(self, sock: socket.socket, log: ConsoleLog, kernel: KernelLog,
                 spill_dir: Path, resume: Resume | None = None):
        self._kernel = kernel
        self._spill_dir = spill_dir
        self._n = 0
        #: A restored shell (resume) keeps the session its template's setup() left in
        #: the guest, and labconsole's count of bytes sent starts where the
        #: template's connection left it, not at 0 as this connection does.
        self._session = resume.session if resume else secrets.token_hex(8)
        self._tx_base = resume.tx_base if resume else 0
        #: What labconsole prints on the shell's port when the lab's shell ends,
        #: then the status and "@@\r\n". Only the session's secret nonce makes it:
        #: a line start is not required, since the tty may echo what the dead
        #: shell left unread in front of it.
        self._ended = b"@@LAB-X" + self._session.encode() + b"@@"
        #: ... after a newline of its own, which is not the output's.
        self._ended_markers = [b"\r\n" + self._ended, b"\n" + self._ended, self._ended]
        self.channel = Channel(sock, log, "shell")
        self.channel.start()
        self._spawn = ConsoleSpawn(self.channel, timeout=None)

    # -- waiting, with the kernel log watched all along

    def _expect(self, markers: list[bytes], deadline: Deadline, what: str,
                sink: Output | None = None) -> int:
        """Which of markers comes first in what the shell prints from here on. The
        bytes before it go to sink (or are dropped: they are in console.log); a
        panic, a stopped guest, a passed deadline or a closed channel ends the wait."""
        spawn = self._spawn
        spawn.watch = lambda: self._check(deadline, what)
        spawn.spill = sink.add if sink is not None else None
        self.channel.waiting = True
        try:
            index = spawn.expect_exact(markers, timeout=None)
        except pexpect.EOF:
            raise self._closed(what) from None
        finally:
            self.channel.waiting = False
            spawn.watch = spawn.spill = None
        if sink is not None:
            sink.add(spawn.before)
        return index

    def _tail(self, deadline: Deadline, what: str) -> list[bytes]:
        """The @@-separated fields after a marker, up to the "@@" that ends its line."""
        self._expect([b"@@\r\n", b"@@\n"], deadline, what)
        return self._spawn.before.split(b"@@")

    def _position(self) -> int:
        """The stream offset where the last match began."""
        spawn = self._spawn
        return self.channel.taken - len(spawn._before.getvalue()) - len(spawn.after)

    def _check(self, deadline: Deadline | None, what: str) -> None:
        """Raises what ends a wait, if anything does."""
        panic = self._kernel.panic()
        if panic is not None:
            raise GuestPanic(f"{what}: kernel panic\n{panic.text}")
        if self._kernel.stopped:
            raise GuestLost(f"{what}: the guest {self._kernel.stopped} "
                            f"(the kernel console says so)")
        if deadline is not None and deadline.expired():
            raise GuestTimeout(f"{what}: deadline passed; the guest is shut down")

    def _closed(self, what: str) -> Exception:
        """What a closed shell channel means, once the kernel log has drained."""
        self._kernel.closed.wait(2.0)
        panic = self._kernel.panic()
        if panic is not None:
            return GuestPanic(f"{what}: kernel panic\n{panic.text}")
        return GuestLost(f"{what}: the guest console closed (QEMU exited)")

    def _send(self, data: bytes, what: str) -> None:
        """Writes to the shell; a channel gone under the lab is GuestPanic or GuestLost."""
        try:
            self.channel.send(data)
        except OSError as exc:
            self._kernel.closed.wait(2.0)
            panic = self._kernel.panic()
            if panic is not None:
                raise GuestPanic(f"{what}: kernel panic\n{panic.text}") from exc
            raise GuestLost(f"{what}: the guest console failed ({exc.strerror or exc}; "
                            f"QEMU exited?)") from exc

    def wait_ready(self, deadline_s: float) -> None:
        self._expect([READY_MARKER.encode()], Deadline(deadline_s),
                     f"boot (ready marker within {deadline_s:.0f} s)")

    def setup(self, deadline_s: float = 10.0) -> None:
        """In one line, one round trip: no prompts, a trap on SIGINT (an interactive
        ash whose job a ^C ended drops the rest of the line, the end marker with it;
        a trap keeps the line, and the job still gets the default action), and the
        nonce labconsole puts in the marker it prints when the shell ends
        (SHELL_NONCE). labconsole starts the pty with echo off, so this line is
        never echoed, and ash reads plain lines, with no line editor."""
        self._send(f"PS1=''; PS2=''; trap : INT; printf %s {self._session} > {SHELL_NONCE}; "
                   "printf '%s\\n' '@@LAB''-SYNC@@'\n".encode(), "shell setup")
        self._expect([b"@@LAB-SYNC@@\r\n", b"@@LAB-SYNC@@\n"], Deadline(deadline_s),
                     "shell setup")

    def _restart(self, status: int, what: str) -> None:
        """After labconsole said the shell ended: wait for the new one, and set it up."""
        self._expect([READY_MARKER.encode()], Deadline(SHELL_RESTART_S),
                     f"{what}: the shell exited with status {status}; its successor")
        self.setup()

    def resume(self) -> Resume:
        """What a shell restored from a snapshot of this guest, taken now (the
        shell idle), needs: this session, and the bytes received so far (all the
        guest sent, when nothing was lost)."""
        return Resume(self._session, self._tx_base + self.channel.received())

    # -- commands

    def _begin(self, command: str, nonce: str, deadline: Deadline, what: str,
               stdin: str = " </dev/null", tx: bool = True, newline: str = "\\n") -> int | None:
        """Send command between its markers, and wait for its begin marker: None, or
        the status of a shell that had ended before it (then a new one is set up)."""
        self._send(
            f"printf '\\n@@LAB-B%s@@\\n' {nonce}; command eval {shlex.quote(command)}{stdin}; "
            f"_lab_s=$?; printf '{newline}@@LAB-E%s@@%d@@{COUNT if tx else ''}@@\\n' {nonce} "
            f"$_lab_s\n".encode(), what)
        begin = b"@@LAB-B" + nonce.encode() + b"@@"
        if self._expect([begin + b"\r\n", begin + b"\n", *self._ended_markers],
                        deadline, what) < 2:
            return None
        status = int(self._tail(deadline, what)[0])
        self._restart(status, what)
        return status

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
        if self._begin(command, nonce, deadline, what) is not None:
            # the shell ended before this command: run it anew
            return replace(self.run(command, deadline, output_file), shell_reset=True)
        output = Output(output_file or self._spill_dir / f"output-{self._n}.txt",
                        keep=output_file is not None)
        try:
            ended = self._expect([b"\n@@LAB-E" + nonce.encode() + b"@@",
                                  *self._ended_markers], deadline, what, output) > 0
            output.drop_cr()
            fields = self._tail(deadline, what)
            at = self._position() - len(fields[-1])   # where the count arrived
        finally:
            text, kept = output.finish()
        if ended:
            self._restart(int(fields[0]), what)
            return Reply(text, int(fields[0]), kept, shell_reset=True)
        status, sent = int(fields[0]), fields[1]
        counted = len(sent) == COUNT_DIGITS and sent.isdigit()
        if counted and int(sent) - self._tx_base != at:
            raise OutputLost(f"{what}: output lost: the guest had sent "
                             f"{int(sent) - self._tx_base} bytes on "
                             f"the shell console before its end marker's count, the lab "
                             f"received {at}; "
                             f"{output.size} bytes of output arrived"
                             + (f" (in {kept})" if kept else ""))
        return Reply(text, status, kept, mark=int(sent) if counted else None)

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

    # -- a program driven as a dialog (pexpect)

    def spawn(self, command: str, timeout: float = 30.0, encoding: str | None = "utf-8",
              deadline_s: float = COMMAND_DEADLINE_S) -> Dialog:
        """command started on the shell's tty, its stdin the tty, as a pexpect
        object (a Dialog): expect, sendline, sendcontrol("c"); EOF when it ends,
        then exitstatus. Echo is off, so what is sent does not come back.
        The shell runs nothing else until the Dialog is closed."""
        self._n += 1
        nonce = secrets.token_hex(8)
        what = f"dialog {command!r}"
        deadline = Deadline(deadline_s)
        if self._begin(command, nonce, deadline, what, stdin="", tx=False,
                       newline="") is not None:
            return self.spawn(command, timeout, encoding, deadline_s)
        self.channel.waiting = True
        return Dialog(self, nonce, timeout, encoding)

    def _leftover(self) -> bytes:
        """What the shell's pexpect buffer holds past its last match (given up)."""
        held = self._spawn._before.getvalue()
        self._spawn._before = self._spawn.buffer_type()
        self._spawn._buffer = self._spawn.buffer_type()
        return held

    # -- a person at the shell (app.terminal)

    def read(self, timeout: float) -> bytes | None:
        """What the shell printed, as it comes (b"" if nothing within timeout), None
        once its channel has closed: for a terminal passed through."""
        return self._leftover() or self.channel.get(timeout)

    def send(self, data: bytes) -> None:
        """Bytes to the shell as they are: what a person types (app.terminal)."""
        self._send(data, "interact")

    def ended(self, seen: bytes) -> bool:
        """Whether seen holds the marker of the shell's exit (the session is over)."""
        return self._ended in seen

    def close(self) -> None:
        self.channel.close()


class Dialog(ConsoleSpawn):
    """A program the lab's shell runs on its tty, as pexpect sees a spawned
    child: what it prints until it ends, then EOF, exitstatus and
    signalstatus (as pexpect's spawn sets them: a program that a signal ended
    has exitstatus None). Closing it (or leaving its `with`) waits for the end,
    sending ^C first if it still runs."""

    #: How long close() waits for the program to end, before and after its ^C.
    CLOSE_S = 10.0

    def __init__(self, shell: Shell, nonce: str, timeout: float | None,
                 encoding: str | None):
        super().__init__(shell.channel, timeout=timeout, encoding=encoding,
                         watch=lambda: shell._check(None, f"dialog {self.name}"))
        self._shell = shell
        self._end = b"@@LAB-E" + nonce.encode() + b"@@"
        #: What the shell's pexpect read past the begin marker: the program's first bytes.
        self._first = shell._leftover()
        self._held = b""
        self.terminated = False
        self.name = f"<dialog {nonce}>"

    def _take(self, size: int, wait: float) -> bytes | None:
        """The program's bytes; its end marker (held back until whole) ends them."""
        if self.terminated:
            return None
        data, self._first = self._first or self.channel.get(wait, size), b""
        if data is None:
            raise self._shell._closed(f"dialog {self.name}")
        held = self._held + data
        at = held.find(self._end)
        if at >= 0:
            m = re.match(rb"(\d+)@@\d*@@\r?\n", held[at + len(self._end):])
            if m is None:
                self._held = held[at:]
                return held[:at]
            self._finish(int(m.group(1)), held[at + len(self._end) + m.end():])
            return held[:at] or None
        # hold back a tail that may be the start of the marker; release it when idle
        keep = next((k for k in range(min(len(self._end) - 1, len(held)), 0, -1)
                     if self._end.startswith(held[-k:])), 0)
        if not data:
            keep = 0
        self._held = held[len(held) - keep:]
        return held[:len(held) - keep]

    def _finish(self, status: int, rest: bytes) -> None:
        self.terminated = True
        self.status = status
        if status > 128:
            self.exitstatus, self.signalstatus = None, status - 128
        else:
            self.exitstatus, self.signalstatus = status, None
        self._shell._spawn._before.write(rest)
        self.channel.waiting = False

    def wait(self, timeout: float | None = -1) -> int | None:
        """Until the program ends; its exit status (None if a signal ended it)."""
        if not self.terminated:
            self.expect(pexpect.EOF, timeout=timeout)
        return self.exitstatus

    def close(self, force: bool = True) -> None:
        if not self.terminated:
            try:
                self.expect(pexpect.EOF, timeout=0.2)
            except pexpect.TIMEOUT:
                self.sendcontrol("c")
                try:
                    self.expect(pexpect.EOF, timeout=self.CLOSE_S)
                except pexpect.TIMEOUT:
                    raise GuestTimeout(f"dialog {self.name}: the program did not end within "
                                       f"{self.CLOSE_S:g} s of a ^C") from None
        self.closed = True

    def __exit__(self, *exc: object) -> None:
        self.close()
