"""The UART capability's protocol, against a socket pair and a scripted guest shell:
transfers both ways, lost bytes as results, a closed socket as GuestLost."""

import hashlib
import re
import socket
import threading

import pytest

from lab.core.deadline import Deadline
from lab.core.errors import GuestLost
from lab.core.model import CommandResult
from lab.guest.console import TIMEOUT
from lab.guest.uart import Uart


class ScriptedGuest:
    """Plays the guest's end of the wire for the commands Uart sends; `keep` is how
    many bytes the guest's UART lets through (a lossy driver keeps fewer)."""

    def __init__(self, wire: socket.socket, keep: int | None = None, stty_rc: int = 0):
        self.wire, self.keep, self.stty_rc = wire, keep, stty_rc
        self.commands: list[str] = []
        self.data = b""
        self.reader: threading.Thread | None = None
        self.got = bytearray()

    def run(self, command: str, timeout: float) -> CommandResult:
        self.commands.append(command)
        out, rc = "", 0
        if command.startswith("stty"):
            out, rc = ("stty: /dev/ttyX: No such device\n" if self.stty_rc else ""), self.stty_rc
        elif "/dev/urandom" in command:
            self.data = bytes(range(256)) * (int(re.search(r"head -c (\d+)", command)[1]) // 256)
            out = f"{hashlib.md5(self.data).hexdigest()}  /tmp/.lab-tx\n"
        elif command.startswith("cat /tmp/.lab-tx > "):
            self.wire.sendall(self.data[:self.keep])
        elif "head -c" in command:        # the guest's reader starts
            n = int(re.search(r"head -c (\d+)", command)[1])
            self.reader = threading.Thread(target=self._read, args=(n, timeout))
            self.reader.start()
        elif "wait $p" in command:        # until head ends, or its watchdog ends it
            self.reader.join()
            out = (f"[1]+  Done  head\n"
                   f"lab-rx {len(self.got)} {hashlib.md5(self.got).hexdigest()}  /tmp/.lab-rx\n")
        return CommandResult(command, out, rc, 0.0)

    def _read(self, n: int, timeout: float) -> None:
        self.wire.settimeout(timeout)
        try:
            while len(self.got) < min(n, self.keep or n):
                self.got.extend(self.wire.recv(65536))
        except TimeoutError:
            pass


@pytest.fixture
def wire():
    host, guest = socket.socketpair()
    yield host, guest
    host.close()
    guest.close()


def test_guest_to_host_moves_the_bytes_and_checks_both_md5s(wire):
    host, far = wire
    guest = ScriptedGuest(far)
    moved = Uart(host, guest.run).transfer_out("/dev/ttyAMA0", 65536, Deadline(5))
    assert moved.ok and moved.received == 65536 and moved.detail == ""
    assert moved.seconds > 0 and moved.kib_s > 0
    assert guest.commands[0] == "stty -F /dev/ttyAMA0 raw -echo"


def test_lost_bytes_are_a_result_at_the_deadline_not_an_error(wire):
    host, far = wire
    uart = Uart(host, ScriptedGuest(far, keep=1000).run)
    moved = uart.transfer_out("/dev/ttyAMA0", 4096, Deadline(0.5))
    assert not moved.ok and moved.received == 1000
    assert moved.detail.startswith("1000 of 4096 bytes arrived, md5 ")


def test_host_to_guest_moves_the_bytes_and_checks_both_md5s(wire):
    host, far = wire
    guest = ScriptedGuest(far)
    moved = Uart(host, guest.run).transfer_in("/dev/tty LAB", 20000, Deadline(5))
    assert moved.ok and moved.received == 20000
    # the device is quoted in every command that names it
    assert all("'/dev/tty LAB'" in c for c in guest.commands if "LAB" in c)


def test_a_device_that_will_not_go_raw_is_a_failed_transfer(wire):
    host, far = wire
    uart = Uart(host, ScriptedGuest(far, stty_rc=1).run)
    moved = uart.transfer_in("/dev/ttyX", 10, Deadline(2))
    assert not moved.ok
    assert moved.detail == "stty on /dev/ttyX failed: stty: /dev/ttyX: No such device"


def test_expect_consumes_up_to_the_match_and_keeps_the_rest(wire):
    host, far = wire
    uart = Uart(host, ScriptedGuest(far).run)
    far.sendall(b"boot noise\nREADY 42\nmore")
    assert uart.expect(rb"READY (\d+)", timeout=2) == 0
    assert (uart.before, uart.match.group(1)) == (b"boot noise\n", b"42")
    assert uart.expect_exact([b"never", b"\nmo"], timeout=2) == 1
    with pytest.raises(TIMEOUT):
        uart.expect(rb"never", timeout=0.1)
    assert uart.tail == b"boot noise\nREADY 42\nmore"
    uart.sendline(b"ping")
    uart.sendcontrol("c")
    assert far.recv(10) == b"ping\n\x03"


def test_a_closed_socket_is_guest_lost(wire):
    host, far = wire
    uart = Uart(host, ScriptedGuest(far).run)
    far.close()
    with pytest.raises(GuestLost):
        uart.expect(b"x", timeout=2)
