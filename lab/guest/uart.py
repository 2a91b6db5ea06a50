"""The device-under-test UART as a capability of the guest: the host end of the
wire (a unix socket on QEMU's chardev) and the guest commands that drive the
far end.

The wire is a pexpect object (lab.guest.console.ConsoleSpawn on the one reader
of the socket): expect, expect_exact, send, sendline, sendcontrol, as a driver
test scripts an exchange. transfer_out and transfer_in move random bytes
through it and compare md5s on both ends, within a Deadline.
A transfer that loses or mangles bytes is a result (Transfer.ok False); a
socket that closes under the lab (QEMU gone) is GuestLost.

Bytes lost on the way into the guest would leave its `head` waiting for ever:
a watchdog beside it ends it once the file it writes has not grown for
STALL_S seconds, and the transfer is a result (what arrived), not a timeout.
"""

from __future__ import annotations

import hashlib
import os
import re
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from lab.core.deadline import Deadline
from lab.core.errors import GuestError, GuestLost, GuestTimeout
from lab.core.model import CommandResult
from lab.guest.console import Channel, ConsoleSpawn

#: Runs a shell command in the guest within a number of seconds (Guest.run).
Runner = Callable[[str, float], CommandResult]
#: How much of what the UART sent `tail` keeps, for messages.
TAIL_BYTES = 200
_TX, _RX = "/tmp/.lab-tx", "/tmp/.lab-rx"
#: How long the bytes arriving in the guest may stall before the rest counts as lost.
STALL_S = 3


@dataclass(frozen=True)
class Transfer:
    """One transfer of random bytes: what arrived and whether it arrived intact."""

    nbytes: int        # sent
    received: int      # arrived at the far end
    ok: bool           # everything arrived and the md5s agree
    seconds: float     # from the first byte offered to the last one counted
    detail: str = ""   # what went wrong; empty when ok

    @property
    def kib_s(self) -> float:
        return self.nbytes / 1024 / self.seconds if self.seconds > 0 else 0.0


class Uart(ConsoleSpawn):
    """The host end of the guest's device-under-test UART, as pexpect sees it
    (bytes; a send that the UART does not take within `timeout` is GuestTimeout)."""

    def __init__(self, sock: socket.socket, run: Runner, timeout: float = 30.0):
        channel = Channel(sock, None, "dut", idle_limit=None)
        channel.start()
        super().__init__(channel, timeout=timeout)
        self._sock = sock
        self._run = run
        self._seen = b""
        self.name = "<dut uart>"

    @property
    def tail(self) -> bytes:
        """The last bytes the UART sent (at most TAIL_BYTES)."""
        return self._seen

    def close(self) -> None:
        self.channel.close()
        self.closed = True

    def _take(self, size: int, wait: float) -> bytes | None:
        data = self.channel.get(wait, size)
        if data is None:
            raise GuestLost("the UART socket closed (QEMU exited)")
        if data:
            self._seen = (self._seen + data)[-TAIL_BYTES:]
        return data

    # -- the wire

    def _send(self, data: bytes, deadline: Deadline) -> int:
        """As much of data as the UART takes by the deadline; returns how much. (The
        socket's reader is another thread: no socket timeout, a select instead.)"""
        view, sent = memoryview(data), 0
        while sent < len(data) and not deadline.expired():
            if not select.select([], [self._sock], [], deadline.remaining())[1]:
                break
            try:
                sent += self._sock.send(view[sent:], socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise GuestLost(f"the UART socket failed: {exc.strerror or exc}") from exc
        return sent

    def send_within(self, data: bytes, deadline: Deadline) -> None:
        """Write data to the UART; GuestTimeout if it will not take it all in time."""
        sent = self._send(data, deadline)
        if sent < len(data):
            raise GuestTimeout(f"the UART took {sent} of {len(data)} bytes within "
                               f"{deadline.seconds:g} s")

    def send(self, s) -> int:   # pexpect's, bounded by timeout
        data = self._coerce_send_string(s)
        self._log(data, "send")
        self.send_within(data, Deadline(self.timeout if self.timeout is not None else 3600))
        return len(data)

    # -- transfers

    def _raw(self, device: str, deadline: Deadline) -> str:
        """Puts the guest's tty in raw mode (again: a reloaded driver resets it);
        returns what went wrong, or ''."""
        r = self._run(f"stty -F {shlex.quote(device)} raw -echo", deadline.remaining())
        return "" if r.exit_code == 0 else f"stty on {device} failed: {r.output.strip()}"

    def _collect(self, nbytes: int, deadline: Deadline, into: bytearray,
                 lost: list[GuestError]) -> None:
        """What the UART sends, straight from the reader's queue (not what an
        earlier expect left over), until nbytes or the deadline."""
        try:
            while len(into) < nbytes and not deadline.expired():
                into.extend(self._take(min(65536, nbytes - len(into)),
                                       min(0.1, deadline.remaining())) or b"")
        except GuestError as exc:
            lost.append(exc)

    def transfer_out(self, device: str, nbytes: int, deadline: Deadline) -> Transfer:
        """Guest to host: nbytes random bytes made in the guest, written to device."""
        if problem := self._raw(device, deadline):
            return Transfer(nbytes, 0, False, 0.0, problem)
        made = self._run(f"head -c {nbytes} /dev/urandom > {_TX} && md5sum {_TX}",
                         deadline.remaining())
        if made.exit_code != 0 or not made.output.split():
            return Transfer(nbytes, 0, False, 0.0,
                            f"making the data in the guest failed: {made.output.strip()}")
        want = made.output.split()[0]
        got, lost = bytearray(), list[GuestError]()
        reader = threading.Thread(target=self._collect, args=(nbytes, deadline, got, lost),
                                  name="uart-reader", daemon=True)
        started = time.monotonic()
        reader.start()
        try:
            sent = self._run(f"cat {_TX} > {shlex.quote(device)}", deadline.remaining())
        finally:
            reader.join(deadline.remaining() + 1)
        seconds = time.monotonic() - started
        if lost:
            raise lost[0]
        problems = [] if sent.exit_code == 0 else [
            f"writing {device} failed (exit code {sent.exit_code}): {sent.output.strip()}"]
        return _result(nbytes, len(got), want, hashlib.md5(got).hexdigest(), seconds, problems)

    def transfer_in(self, device: str, nbytes: int, deadline: Deadline) -> Transfer:
        """Host to guest: nbytes random bytes sent to the UART, read from device."""
        if problem := self._raw(device, deadline):
            return Transfer(nbytes, 0, False, 0.0, problem)
        dev = shlex.quote(device)
        data = os.urandom(nbytes)
        # Start the reader, and wait until it really has the tty open.
        self._run(f"head -c {nbytes} {dev} > {_RX} & "
                  f"echo $! > {_RX}.pid; until ls -l /proc/$(cat {_RX}.pid)/fd 2>/dev/null | "
                  f"grep -q {dev}; do usleep 1000; done", deadline.remaining())
        started = time.monotonic()
        sent = self._send(data, deadline)
        r = self._run(f"p=$(cat {_RX}.pid); (n=-1; while sleep {STALL_S}; "
                      f"m=$(wc -c < {_RX}); [ \"$m\" != \"$n\" ]; do n=$m; done; kill $p) "
                      f"2>/dev/null & w=$!; wait $p; kill $w 2>/dev/null; "
                      f"echo \"lab-rx $(wc -c < {_RX}) $(md5sum {_RX})\"",
                      max(deadline.remaining(), 1.0))
        seconds = time.monotonic() - started
        # The shell's job notices ("[1]+ Terminated ...") may come first.
        m = re.search(r"^lab-rx (\d+) ([0-9a-f]{32}) ", r.output, re.MULTILINE)
        received, have = (int(m[1]), m[2]) if m else (0, "")
        problems = [] if sent == nbytes else [f"the UART took {sent} of {nbytes} bytes"]
        return _result(nbytes, received, hashlib.md5(data).hexdigest(), have, seconds, problems)


def _result(nbytes: int, received: int, want: str, have: str, seconds: float,
            problems: list[str]) -> Transfer:
    if have != want:
        problems = [f"{received} of {nbytes} bytes arrived, md5 {have or '-'} against {want}",
                    *problems]
    return Transfer(nbytes, received, not problems, seconds, "; ".join(problems))
